"""The motion VAE experiment: body and face frames -> a sequence of latents at a quarter rate.

Frames are 385 values (`emotive.data.pipelines.motion`): 55 SMPL-X joints x 6D rotation, root
translation, 52 ARKit face weights, standardised by statistics the model accumulates over
its first training batches. The encoder folds `downsample` frames into one token, runs the
one transformer bidirectionally and predicts a Gaussian per latent step; the decoder runs
another bidirectional transformer over the latents and unfolds each into `downsample` frames.

    emotive train motion_vae --preset tiny --set data.motion_dir=MOTION
    emotive train motion_ldm --preset tiny --set vae.ckpt=runs/motion-vae data.motion_dir=MOTION
"""

from __future__ import annotations

import dataclasses

from emotive.configs.common import MeshConfig, OptimConfig, TrainConfig, TransformerConfig
from emotive.errors import UserError


def motion_transformer(layers: int, width: int, heads: int, *, causal: bool = False,
                       **extra) -> TransformerConfig:
    """A bidirectional pre-norm transformer of `layers` x `width` (head dim width / heads)."""
    return TransformerConfig(num_layers=layers, d_model=width, num_heads=heads,
                             num_kv_heads=heads, head_dim=width // heads, mlp_dim=4 * width,
                             causal=causal, **extra)


@dataclasses.dataclass(frozen=True)
class MotionDataConfig:
    """A motion corpus (`emotive data motion`, or a BEAT2 build in the same layout), its
    splits and the training window. Clips longer than the window are cropped at random,
    shorter ones padded (masked); `max_takes` keeps at most this many takes of a split, spread
    evenly (0: all)."""

    motion_dir: str = "data/motion"
    train_split: str = "train"
    eval_split: str = "validation"
    window_frames: int = 128
    max_takes: int = 0

    def validate(self) -> None:
        if self.window_frames < 16 or self.window_frames % 16:
            raise UserError(f"data.window_frames must be a multiple of 16 (>= 16), got "
                            f"{self.window_frames}")
        if self.max_takes < 0:
            raise UserError(f"data.max_takes must be >= 0, got {self.max_takes}")


@dataclasses.dataclass(frozen=True)
class MotionVAEModelConfig:
    encoder: TransformerConfig = motion_transformer(2, 64, 4)
    decoder: TransformerConfig = motion_transformer(2, 64, 4)
    latent_dim: int = 16
    downsample: int = 4          # frames per latent step
    norm_batches: int = 50       # training batches whose statistics standardise the frames

    def validate(self) -> None:
        if self.latent_dim < 1 or self.downsample < 1 or self.norm_batches < 1:
            raise UserError("model.latent_dim, model.downsample and model.norm_batches must "
                            "be >= 1")
        if self.encoder.causal or self.decoder.causal:
            raise UserError("the motion VAE's transformers are bidirectional; set "
                            "model.encoder.causal=false and model.decoder.causal=false")


@dataclasses.dataclass(frozen=True)
class MotionVAELossConfig:
    """Reconstruction MSE of standardised frames, plus `velocity_weight` x the MSE of their
    frame-to-frame differences, plus `kl_weight` x KL(q(z|x) || N(0, I)) per latent value."""

    kl_weight: float = 1e-3
    velocity_weight: float = 1.0

    def validate(self) -> None:
        if self.kl_weight < 0 or self.velocity_weight < 0:
            raise UserError("loss.kl_weight and loss.velocity_weight must be >= 0")


@dataclasses.dataclass(frozen=True)
class MotionVAEConfig:
    task: str = "motion_vae"
    model: MotionVAEModelConfig = MotionVAEModelConfig()
    data: MotionDataConfig = MotionDataConfig()
    loss: MotionVAELossConfig = MotionVAELossConfig()
    optim: OptimConfig = OptimConfig(lr=1e-3, warmup_steps=50, weight_decay=0.0)
    mesh: MeshConfig = MeshConfig()
    train: TrainConfig = TrainConfig()

    def validate(self) -> None:
        if self.data.window_frames % self.model.downsample:
            raise UserError(f"data.window_frames={self.data.window_frames} must be a multiple "
                            f"of model.downsample={self.model.downsample}")


def tiny() -> MotionVAEConfig:
    """Seconds on a CPU, for tests and the quick path."""
    return MotionVAEConfig(
        model=MotionVAEModelConfig(encoder=motion_transformer(1, 32, 2),
                                   decoder=motion_transformer(1, 32, 2), latent_dim=8,
                                   norm_batches=5),
        data=MotionDataConfig(window_frames=64),
        optim=OptimConfig(lr=2e-3, warmup_steps=5, weight_decay=0.0),
        train=TrainConfig(steps=40, batch_size=8, log_every=10, eval_every=40, eval_batches=2,
                          ckpt_every=40))


def base() -> MotionVAEConfig:
    """The embedded corpus on 2 CPU cores (about 10 minutes)."""
    return MotionVAEConfig(
        model=MotionVAEModelConfig(encoder=motion_transformer(3, 128, 4),
                                   decoder=motion_transformer(3, 128, 4), latent_dim=16),
        data=MotionDataConfig(window_frames=128),
        optim=OptimConfig(lr=1e-3, warmup_steps=100, weight_decay=0.0, min_lr_ratio=0.05),
        train=TrainConfig(steps=3000, batch_size=32, log_every=100, eval_every=1000,
                          eval_batches=4, ckpt_every=500))


PRESETS = {"tiny": tiny, "base": base}
