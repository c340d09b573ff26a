"""The speech-driven motion latent diffusion experiment (`motion_ldm`).

A frozen motion VAE (`vae.ckpt`, a `motion_vae` run) turns body+face windows into latents;
the denoiser (the one transformer, bidirectional) predicts their noise (or v) given:
- speech content: per-frame features at the motion frame rate, added to the latent tokens
  (pooled to their rate) and attended to by cross-attention at full rate. `content.source`
  "mel" (log-mel bands and their deltas, no model needed) or "asr" (the hidden states of a
  CTC recogniser's encoder, `content.asr_ckpt`, resampled to the motion frames);
- emotion: a category (one-hot, or an SER model's probabilities) with an intensity, and/or
  arousal/dominance/valence, each part flagged present or absent;
- speaker style: the speaker encoder's embedding (`style.speaker_ckpt`) of another take of
  the same speaker, never the clip's own audio.
Timestep, emotion and style drive adaLN-Zero; each condition is dropped independently in
training (`guidance.*_dropout`, plus `all_dropout` for all at once) for classifier-free
guidance with one scale per factor at sampling.

    emotive train motion_ldm --preset base --set vae.ckpt=RUN data.motion_dir=MOTION \
        content.source=asr content.asr_ckpt=ASR style.speaker_ckpt=SPK
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from emotive.configs.common import MeshConfig, OptimConfig, TrainConfig, TransformerConfig
from emotive.configs.motion_vae import MotionDataConfig, motion_transformer
from emotive.errors import UserError


@dataclasses.dataclass(frozen=True)
class VAERef:
    """The frozen motion VAE: a `motion_vae` run dir, its checkpoints/ or a step dir."""

    ckpt: str = ""


@dataclasses.dataclass(frozen=True)
class ContentConfig:
    source: Literal["mel", "asr", "asr+mel"] = "mel"
    asr_ckpt: str = ""   # an `asr` run, for source=asr or asr+mel


@dataclasses.dataclass(frozen=True)
class StyleConfig:
    """speaker_ckpt: a `speaker` run whose embeddings give the style; empty: no style."""

    speaker_ckpt: str = ""


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """DDPM training (`steps` noise levels, scaled-linear betas as Stable Diffusion's),
    epsilon or v prediction; DDIM sampling with `sample_steps` (eta 0)."""

    steps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    prediction: Literal["epsilon", "v"] = "v"
    sample_steps: int = 50

    def validate(self) -> None:
        if self.steps < 2 or not 0 < self.beta_start < self.beta_end < 1:
            raise UserError("diffusion.steps must be >= 2 and 0 < beta_start < beta_end < 1")
        if not 1 <= self.sample_steps <= self.steps:
            raise UserError(f"diffusion.sample_steps must be in [1, {self.steps}], got "
                            f"{self.sample_steps}")


@dataclasses.dataclass(frozen=True)
class GuidanceConfig:
    """Training-time condition dropout (probabilities), per factor and for all at once;
    `category_only` / `adv_only`: keep one part of the emotion and drop the other."""

    content_dropout: float = 0.1
    emotion_dropout: float = 0.1
    style_dropout: float = 0.1
    all_dropout: float = 0.1
    category_only: float = 0.15
    adv_only: float = 0.15

    def validate(self) -> None:
        for name, value in dataclasses.asdict(self).items():
            if not 0 <= value < 1:
                raise UserError(f"guidance.{name} must be in [0, 1), got {value}")
        if self.category_only + self.adv_only >= 1:
            raise UserError("guidance.category_only + guidance.adv_only must be below 1")


@dataclasses.dataclass(frozen=True)
class DenoiserConfig:
    transformer: TransformerConfig = motion_transformer(2, 64, 4, cross_attention=True,
                                                        cond_dim=64)

    def validate(self) -> None:
        t = self.transformer
        if t.causal or not t.cross_attention or t.cond_dim != t.d_model:
            raise UserError("the denoiser's transformer must be bidirectional with "
                            "cross_attention=true and cond_dim equal to d_model")


@dataclasses.dataclass(frozen=True)
class MotionLDMConfig:
    task: str = "motion_ldm"
    vae: VAERef = VAERef()
    content: ContentConfig = ContentConfig()
    style: StyleConfig = StyleConfig()
    model: DenoiserConfig = DenoiserConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    guidance: GuidanceConfig = GuidanceConfig()
    data: MotionDataConfig = MotionDataConfig()
    optim: OptimConfig = OptimConfig(lr=5e-4, warmup_steps=100, weight_decay=0.0)
    mesh: MeshConfig = MeshConfig()
    train: TrainConfig = TrainConfig()

    def validate(self) -> None:
        if self.content.source != "mel" and not self.content.asr_ckpt:
            raise UserError(f"content.source={self.content.source} needs "
                            "content.asr_ckpt=ASR_RUN (an `emotive train asr` run); or use "
                            "content.source=mel")


def _denoiser(layers: int, width: int, heads: int) -> DenoiserConfig:
    return DenoiserConfig(motion_transformer(layers, width, heads, cross_attention=True,
                                             cond_dim=width))


def tiny() -> MotionLDMConfig:
    """Seconds on a CPU, for tests and the quick path."""
    return MotionLDMConfig(
        model=_denoiser(1, 32, 2),
        diffusion=DiffusionConfig(sample_steps=10),
        data=MotionDataConfig(window_frames=64),
        optim=OptimConfig(lr=2e-3, warmup_steps=5, weight_decay=0.0),
        train=TrainConfig(steps=40, batch_size=8, log_every=10, eval_every=40, eval_batches=2,
                          ckpt_every=40))


def base() -> MotionLDMConfig:
    """The embedded corpus on 2 CPU cores (about 20 minutes)."""
    return MotionLDMConfig(
        model=_denoiser(4, 128, 4),
        data=MotionDataConfig(window_frames=128),
        optim=OptimConfig(lr=5e-4, warmup_steps=200, weight_decay=0.0, min_lr_ratio=0.05),
        train=TrainConfig(steps=4000, batch_size=32, log_every=100, eval_every=1000,
                          eval_batches=4, ckpt_every=500))


PRESETS = {"tiny": tiny, "base": base}
