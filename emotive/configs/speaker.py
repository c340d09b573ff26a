"""The speaker encoder experiment: utterance embeddings for verification and voice similarity.

Model: the log-mel encoder of the recogniser (emotive.configs.asr.MelEncoderConfig) ->
mean and standard deviation over valid frames -> Dense -> L2-normalised embedding.
Training: additive angular margin softmax (AAM, ArcFace) over the train split's speakers,
on random crops. Evaluation: EER of cosine scores over all trial pairs of held-out speakers.

    emotive train speaker --preset tiny --set data.data_dir=DATA_DIR
    emotive eval speaker --ckpt runs/speaker-tiny     # EER overall and per condition
"""

from __future__ import annotations

import dataclasses
import math

from emotive.configs.asr import MelEncoderConfig, encoder_transformer
from emotive.configs.augment import AugmentConfig
from emotive.configs.common import MeshConfig, OptimConfig, TrainConfig
from emotive.errors import UserError


@dataclasses.dataclass(frozen=True)
class SpeakerModelConfig:
    """Encoder, pooling, embedding size and the AAM-softmax head.

    `num_speakers` is the size of the classification head: it must be at least the number of
    speakers in the train split (unused rows only act as extra negatives). The head exists
    for training only; inference uses the embedding.
    """

    encoder: MelEncoderConfig = MelEncoderConfig(strides=(2, 2), feature_norm="utterance")
    embed_dim: int = 128
    num_speakers: int = 64
    margin: float = 0.2  # additive angle, radians
    scale: float = 30.0  # logits = scale * cosine

    def validate(self) -> None:
        if self.embed_dim < 1 or self.num_speakers < 2:
            raise UserError(f"model.embed_dim must be >= 1 and model.num_speakers >= 2, got "
                            f"{self.embed_dim} and {self.num_speakers}")
        if not 0 <= self.margin < math.pi / 2 or self.scale <= 0:
            raise UserError(f"model.margin must be in [0, pi/2) and model.scale positive, got "
                            f"{self.margin} and {self.scale}")


@dataclasses.dataclass(frozen=True)
class SpeakerDataConfig:
    """Where the emotive_speech TFDS dataset lives, training crops and speaker augmentation.

    `speed_factors` (e.g. 0.9, 1.1): each training crop is kept as is or resampled by one of
    these factors (uniform choice), which shifts pitch and formants together; a resampled
    crop counts as a new speaker (class speaker + k * (num_speakers // (1 + len(factors))))
    so the head learns from three times as many voices (speed perturbation as speaker
    augmentation, Yamamoto et al. 2019).
    """

    data_dir: str = "data/tfds"
    dataset: str = "emotive_speech"
    train_split: str = "train"
    eval_split: str = "validation"  # held-out speakers
    crop_seconds: float = 2.0
    speed_factors: tuple[float, ...] = ()


@dataclasses.dataclass(frozen=True)
class SpeakerConfig:
    task: str = "speaker"
    model: SpeakerModelConfig = SpeakerModelConfig()
    data: SpeakerDataConfig = SpeakerDataConfig()
    augment: AugmentConfig = AugmentConfig()  # training crops; preset=channel keeps voices
    optim: OptimConfig = OptimConfig(lr=2e-3, warmup_steps=50, b2=0.98)
    mesh: MeshConfig = MeshConfig()
    train: TrainConfig = TrainConfig()

    def validate(self) -> None:
        if self.data.crop_seconds <= 0:
            raise UserError(f"data.crop_seconds must be positive, got {self.data.crop_seconds}")
        if any(not 0.5 <= f <= 2.0 for f in self.data.speed_factors):
            raise UserError(f"data.speed_factors must lie in [0.5, 2], got "
                            f"{self.data.speed_factors}")
        if self.model.num_speakers // (1 + len(self.data.speed_factors)) < 1:
            raise UserError("model.num_speakers is too small for the speed-perturbed classes; "
                            "raise it")

    @property
    def class_stride(self) -> int:
        """Classes per speed factor: speaker s at factor k is class s + k * class_stride."""
        return self.model.num_speakers // (1 + len(self.data.speed_factors))


def tiny() -> SpeakerConfig:
    """Seconds on a CPU: a 1-layer 32-wide encoder on 1 s crops, for tests."""
    return SpeakerConfig(
        model=SpeakerModelConfig(MelEncoderConfig(n_mels=40, strides=(2, 2),
                                                  feature_norm="utterance",
                                                  transformer=encoder_transformer(1, 32, 4, 64)),
                                 embed_dim=32, num_speakers=16),
        data=SpeakerDataConfig(crop_seconds=1.0),
        optim=OptimConfig(lr=3e-3, warmup_steps=5),
        train=TrainConfig(steps=40, batch_size=8, log_every=10, eval_every=40,
                          eval_batches=2, ckpt_every=40),
    )


def base() -> SpeakerConfig:
    """The best we found for about 12 minutes on 2 shared CPU cores."""
    return SpeakerConfig(
        model=SpeakerModelConfig(MelEncoderConfig(strides=(2, 2), feature_norm="utterance",
                                                  transformer=encoder_transformer(3, 128, 4, 512)),
                                 embed_dim=128, num_speakers=64),
        data=SpeakerDataConfig(crop_seconds=2.0, speed_factors=(0.9, 1.1)),
        optim=OptimConfig(lr=2e-3, warmup_steps=50, b2=0.98, min_lr_ratio=0.05),
        train=TrainConfig(steps=700, batch_size=32, log_every=50, eval_every=350,
                          eval_batches=4, ckpt_every=200),
    )


def wide() -> SpeakerConfig:
    """For the 'wide' corpus (`emotive data synth --preset wide`): four speed factors make its
    34 train speakers 170 classes (a 192-row head); 3,000 steps, about 19 minutes on 2 CPU
    cores shared with another run. Point data.data_dir at the wide build.
    """
    cfg = base()
    return dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, num_speakers=192),
        data=dataclasses.replace(cfg.data, speed_factors=(0.85, 0.92, 1.08, 1.15)),
        train=dataclasses.replace(cfg.train, steps=3000, eval_every=1000, ckpt_every=500))


PRESETS = {"tiny": tiny, "base": base, "wide": wide}
