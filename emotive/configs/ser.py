"""The speech emotion recognition (SER) experiment: a wav2vec2-style encoder with two heads.

One model predicts the 8 emotion categories (softmax cross-entropy) and arousal, dominance,
valence (1 - CCC per dimension over the batch, audeering's training objective); both losses
are trained jointly on random crops of the emotive_speech corpus.

    emotive train ser --preset tiny --set data.data_dir=DATA_DIR
    emotive eval ser --ckpt runs/ser-tiny --data-dir DATA_DIR
"""

from __future__ import annotations

import dataclasses

from emotive.configs.augment import AugmentConfig
from emotive.configs.classifiers import EmotionHeadConfig, Wav2Vec2Config, wav2vec2_transformer
from emotive.configs.common import SAMPLE_RATE, MeshConfig, OptimConfig, TrainConfig
from emotive.errors import UserError

NUM_EMOTIONS = 8  # emotive.data.speech.emotions.EMOTIONS; configs do not import data/


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
    """Weights of cross-entropy on the categories and of (1 - CCC) on each A/D/V dimension.

    `class_weights` (one per emotion, empty = all 1) weights each example's cross-entropy by
    its true class, for corpora whose classes are unbalanced (UAR weighs classes equally).
    """

    ce_weight: float = 1.0
    arousal_weight: float = 1.0
    dominance_weight: float = 1.0
    valence_weight: float = 1.0
    label_smoothing: float = 0.0
    class_weights: tuple[float, ...] = ()

    @property
    def adv_weights(self) -> tuple[float, float, float]:
        return (self.arousal_weight, self.dominance_weight, self.valence_weight)

    def validate(self) -> None:
        weights = (self.ce_weight,) + self.adv_weights
        if min(weights) < 0 or sum(weights) <= 0:
            raise UserError(f"loss weights must be >= 0 and not all 0, got ce {self.ce_weight}, "
                            f"arousal/dominance/valence {self.adv_weights}")
        if self.class_weights and (len(self.class_weights) != NUM_EMOTIONS
                                   or min(self.class_weights) <= 0):
            raise UserError(f"loss.class_weights needs {NUM_EMOTIONS} positive values (one per "
                            f"emotion) or none, got {self.class_weights}")
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"loss.label_smoothing must be in [0, 1), got {self.label_smoothing}")


@dataclasses.dataclass(frozen=True)
class SerConfig:
    task: str = "ser"
    model: Wav2Vec2Config = Wav2Vec2Config()
    data: EmotionDataConfig = EmotionDataConfig()
    augment: AugmentConfig = AugmentConfig()  # training crops only; off in every preset
    loss: SerLossConfig = SerLossConfig()
    optim: OptimConfig = OptimConfig()
    mesh: MeshConfig = MeshConfig()
    train: TrainConfig = TrainConfig()

    def validate(self) -> None:
        if self.model.head.num_emotions != NUM_EMOTIONS or self.model.head.num_adv != 3:
            raise UserError(f"model.head must have num_emotions={NUM_EMOTIONS} and num_adv=3 "
                            f"(the corpus labels), got {self.model.head.num_emotions} and "
                            f"{self.model.head.num_adv}")


def _encoder(conv_dim, conv_kernel, conv_stride, *, d_model: int, num_heads: int, mlp_dim: int,
             num_layers: int, pos_conv_kernel: int, pos_conv_groups: int,
             feat_extract_norm: str = "layer") -> Wav2Vec2Config:
    """A stable-layer-norm (pre-LN) wav2vec2 encoder of the given size with emotion heads."""
    return Wav2Vec2Config(
        conv_dim=tuple(conv_dim), conv_kernel=tuple(conv_kernel), conv_stride=tuple(conv_stride),
        feat_extract_norm=feat_extract_norm, pos_conv_kernel=pos_conv_kernel,
        pos_conv_groups=pos_conv_groups,
        transformer=wav2vec2_transformer(d_model=d_model, num_heads=num_heads, mlp_dim=mlp_dim,
                                         num_layers=num_layers),
        head=EmotionHeadConfig())


def tiny() -> SerConfig:
    """A 24 K-parameter model for tests and smoke runs: 1 s crops, 160x down (100 frames/s),
    one 32-wide transformer layer; a minute or two on 2 CPU cores."""
    return SerConfig(
        model=_encoder((16, 32, 32), (10, 8, 4), (5, 8, 4), d_model=32, num_heads=4,
                       mlp_dim=64, num_layers=1, pos_conv_kernel=16, pos_conv_groups=4),
        data=EmotionDataConfig(crop_seconds=1.0),
        optim=OptimConfig(lr=2e-3, warmup_steps=20, weight_decay=0.01),
        train=TrainConfig(steps=200, batch_size=16, log_every=20, eval_every=100,
                          eval_batches=4, ckpt_every=100),
    )


def base() -> SerConfig:
    """The best we found for about 12 minutes on 2 otherwise idle CPU cores (full corpus).

    A 0.36 M-parameter encoder whose first conv (40 taps, stride 20) replaces wav2vec2's
    two finest layers: 1.6x faster per step than the 7-layer front end on a CPU and as good
    after 800 steps in our runs. Only the first conv has a (per-channel group) norm, also
    for speed. Neutral has one intensity level in emotive_speech, so half the clips of the
    other emotions: its cross-entropy weighs double.
    """
    return SerConfig(
        model=_encoder((64, 64, 64, 64, 64), (40, 3, 3, 2, 2), (20, 2, 2, 2, 2), d_model=96,
                       num_heads=4, mlp_dim=256, num_layers=3, pos_conv_kernel=32,
                       pos_conv_groups=8, feat_extract_norm="group"),
        data=EmotionDataConfig(crop_seconds=2.0),
        loss=SerLossConfig(label_smoothing=0.1, class_weights=(2.0,) + (1.0,) * 7),
        optim=OptimConfig(lr=1.5e-3, warmup_steps=100, weight_decay=0.05),
        train=TrainConfig(steps=1600, batch_size=16, log_every=50, eval_every=400,
                          eval_batches=8, ckpt_every=400),
    )


def wide() -> SerConfig:
    """For the 'wide' corpus (`emotive data synth --preset wide`): base for 2,800 steps.

    19 minutes on 2 CPU cores shared with another run (906 s of CPU, as the 11-minute
    full-corpus run of the same settings on idle cores). Point data.data_dir at the wide build.
    """
    cfg = base()
    return dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, steps=2800, eval_every=700, ckpt_every=700))


PRESETS = {"tiny": tiny, "base": base, "wide": wide}
