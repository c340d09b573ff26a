"""The speech emotion recognition (SER) experiment: a wav2vec2-style encoder with two heads.

One model predicts the 8 emotion categories (softmax cross-entropy) and arousal, dominance,
valence (1 - CCC per dimension over the batch, audeering's training objective); both losses
are trained jointly on random crops of the emotive_speech corpus.

    emotive train ser --preset tiny --set data.data_dir=DATA_DIR
    emotive eval ser --ckpt runs/ser-tiny --data-dir DATA_DIR
"""

from __future__ import annotations

import dataclasses

from emotive.configs.classifiers import EmotionHeadConfig, Wav2Vec2Config, wav2vec2_transformer
from emotive.configs.common import MeshConfig, OptimConfig, TrainConfig
from emotive.errors import UserError

SAMPLE_RATE = 16000
NUM_EMOTIONS = 8  # emotive.data.emotions.EMOTIONS; configs do not import data/


@dataclasses.dataclass(frozen=True)
class EmotionDataConfig:
    """Where the labelled TFDS dataset lives and how training crops are cut."""

    data_dir: str = "data/tfds"
    dataset: str = "emotive_speech"
    train_split: str = "train"
    eval_split: str = "validation"  # held-out speakers
    crop_seconds: float = 2.0  # random crops; shorter clips are zero-padded and masked

    @property
    def crop_samples(self) -> int:
        return max(1, int(self.crop_seconds * SAMPLE_RATE))

    def validate(self) -> None:
        if self.crop_seconds <= 0:
            raise UserError(f"data.crop_seconds must be positive, got {self.crop_seconds}")


@dataclasses.dataclass(frozen=True)
class SerLossConfig:
    """Weights of cross-entropy on the categories and of (1 - CCC) on each A/D/V dimension."""

    ce_weight: float = 1.0
    arousal_weight: float = 1.0
    dominance_weight: float = 1.0
    valence_weight: float = 1.0
    label_smoothing: float = 0.0

    @property
    def adv_weights(self) -> tuple[float, float, float]:
        return (self.arousal_weight, self.dominance_weight, self.valence_weight)

    def validate(self) -> None:
        weights = (self.ce_weight,) + self.adv_weights
        if min(weights) < 0 or sum(weights) <= 0:
            raise UserError(f"loss weights must be >= 0 and not all 0, got ce {self.ce_weight}, "
                            f"arousal/dominance/valence {self.adv_weights}")
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"loss.label_smoothing must be in [0, 1), got {self.label_smoothing}")


@dataclasses.dataclass(frozen=True)
class SerConfig:
    task: str = "ser"
    model: Wav2Vec2Config = Wav2Vec2Config()
    data: EmotionDataConfig = EmotionDataConfig()
    loss: SerLossConfig = SerLossConfig()
    optim: OptimConfig = OptimConfig()
    mesh: MeshConfig = MeshConfig()
    train: TrainConfig = TrainConfig()

    def validate(self) -> None:
        self.model.validate()
        if self.model.head.num_emotions != NUM_EMOTIONS or self.model.head.num_adv != 3:
            raise UserError(f"model.head must have num_emotions={NUM_EMOTIONS} and num_adv=3 "
                            f"(the corpus labels), got {self.model.head.num_emotions} and "
                            f"{self.model.head.num_adv}")
        self.data.validate()
        self.loss.validate()
        self.optim.validate()
        self.train.validate()


def _encoder(conv_dim, conv_kernel, conv_stride, *, d_model: int, num_heads: int, mlp_dim: int,
             num_layers: int, pos_conv_kernel: int, pos_conv_groups: int,
             head_hidden: int = 0) -> Wav2Vec2Config:
    """A stable-layer-norm (pre-LN) wav2vec2 encoder of the given size with emotion heads."""
    return Wav2Vec2Config(
        conv_dim=tuple(conv_dim), conv_kernel=tuple(conv_kernel), conv_stride=tuple(conv_stride),
        pos_conv_kernel=pos_conv_kernel, pos_conv_groups=pos_conv_groups,
        transformer=wav2vec2_transformer(d_model=d_model, num_heads=num_heads, mlp_dim=mlp_dim,
                                         num_layers=num_layers),
        head=EmotionHeadConfig(hidden=head_hidden))


def tiny() -> SerConfig:
    """A 40 K-parameter model for tests: 1 s crops, 160x down (100 frames/s), 2 x 32 layers."""
    return SerConfig(
        model=_encoder((16, 16, 32, 32), (10, 4, 4, 2), (5, 4, 4, 2), d_model=32, num_heads=4,
                       mlp_dim=64, num_layers=2, pos_conv_kernel=16, pos_conv_groups=4),
        data=EmotionDataConfig(crop_seconds=1.0),
        optim=OptimConfig(lr=2e-3, warmup_steps=20, weight_decay=0.01),
        train=TrainConfig(steps=200, batch_size=16, log_every=20, eval_every=100,
                          eval_batches=4, ckpt_every=100),
    )


def base() -> SerConfig:
    """The best we found for about 12 minutes on 2 CPU cores on the embedded full corpus."""
    return SerConfig(
        model=_encoder((32, 32, 64, 64, 64, 64, 64), (10, 3, 3, 3, 3, 2, 2),
                       (5, 2, 2, 2, 2, 2, 2), d_model=96, num_heads=4, mlp_dim=256,
                       num_layers=3, pos_conv_kernel=32, pos_conv_groups=8),
        data=EmotionDataConfig(crop_seconds=2.0),
        optim=OptimConfig(lr=1e-3, warmup_steps=100, weight_decay=0.01),
        train=TrainConfig(steps=1500, batch_size=16, log_every=50, eval_every=500,
                          eval_batches=8, ckpt_every=500),
    )


PRESETS = {"tiny": tiny, "base": base}
