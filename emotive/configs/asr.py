"""The CTC speech recogniser experiment, and the log-mel encoder it shares with the speaker model.

Model: 16 kHz audio -> log-mel (10 ms hop) -> strided 1-D convs (20 ms frames by default) ->
the one transformer (bidirectional, rotary) -> a character CTC head (emotive.codecs.chars).
Training rows pack several whole utterances end to end (`AsrDataConfig`), so a fixed-shape
batch wastes little on padding; attention never crosses utterances (segment ids).

    emotive train asr --preset tiny --set data.data_dir=DATA_DIR
    emotive eval asr --ckpt runs/asr-tiny        # CER/WER on held-out speakers and texts
"""

from __future__ import annotations

import dataclasses
import math

from emotive.configs.augment import AugmentConfig
from emotive.configs.common import (SAMPLE_RATE, MeshConfig, OptimConfig, TrainConfig,
                                    TransformerConfig)
from emotive.errors import UserError


def encoder_transformer(num_layers: int, d_model: int, num_heads: int,
                        mlp_dim: int) -> TransformerConfig:
    """A bidirectional pre-LN rotary transformer (positions are frame indices)."""
    return TransformerConfig(num_layers=num_layers, d_model=d_model, num_heads=num_heads,
                             num_kv_heads=num_heads, head_dim=d_model // num_heads,
                             mlp_dim=mlp_dim, mlp_type="gelu", norm_type="layer", causal=False)


@dataclasses.dataclass(frozen=True)
class MelEncoderConfig:
    """Log-mel front end, conv subsampling and transformer; shared by the ASR and speaker models.

    A frame of the output covers hop * prod(strides) samples (160 * 2 = 20 ms by default).
    `feature_norm` standardises the log-mel of each row over its valid frames: "bin" per mel
    bin (CMVN: removes the channel's and the voice's long-term spectrum, right for words),
    "utterance" with one mean and variance for all bins (keeps the spectral envelope, which
    carries much of a speaker's identity).
    Optional SpecAugment (training only): `freq_masks` bands of up to `freq_width` mel bins
    and `time_masks` spans of up to `time_width` mel frames are set to the row's mean.
    """

    n_fft: int = 512
    win_length: int = 400  # 25 ms
    hop: int = 160  # 10 ms
    n_mels: int = 80
    fmin: float = 20.0
    fmax: float = 7600.0
    feature_norm: str = "bin"  # "bin" or "utterance"
    strides: tuple[int, ...] = (2,)  # one conv (kernel conv_kernel, GELU) per stride
    conv_kernel: int = 3
    transformer: TransformerConfig = encoder_transformer(4, 144, 4, 576)
    freq_masks: int = 0
    freq_width: int = 10
    time_masks: int = 0
    time_width: int = 20

    @property
    def frame_samples(self) -> int:
        return self.hop * math.prod(self.strides)

    def validate(self) -> None:
        if self.transformer.causal:
            raise UserError("model.encoder.transformer.causal must be false: the encoder sees "
                            "the whole utterance")
        if self.feature_norm not in ("bin", "utterance"):
            raise UserError(f"model.encoder.feature_norm must be 'bin' or 'utterance', got "
                            f"{self.feature_norm!r}")
        if not self.strides or min(self.strides) < 1 or self.conv_kernel < 1:
            raise UserError(f"model.encoder.strides must be non-empty positive ints and "
                            f"conv_kernel >= 1, got {self.strides} and {self.conv_kernel}")
        if self.win_length > self.n_fft or self.hop < 1:
            raise UserError(f"model.encoder.win_length={self.win_length} must be <= n_fft="
                            f"{self.n_fft}, and hop >= 1")
        if not 0 <= self.fmin < self.fmax <= SAMPLE_RATE / 2:
            raise UserError(f"need 0 <= model.encoder.fmin < fmax <= {SAMPLE_RATE // 2}, got "
                            f"{self.fmin}, {self.fmax}")


@dataclasses.dataclass(frozen=True)
class AsrModelConfig:
    """The encoder plus a Dense CTC head over emotive.codecs.chars (39 ids, blank 0).

    `upsample` > 1 lets the head emit that many label slots per encoder frame (one Dense to
    upsample * 39 logits, read as consecutive slots), so the transformer can run at 40 ms
    frames (half the cost of 20 ms) while CTC still gets 20 ms slots for fast speech.
    `targets="phonemes"` makes the CTC targets eSpeak's phonemes of the transcript, with word
    boundaries (emotive.data.speech.phoneme_targets; 101 ids): a model for forced alignment,
    which transcribes to IPA and is scored by phoneme error rate.
    """

    encoder: MelEncoderConfig = MelEncoderConfig()
    upsample: int = 1
    targets: str = "chars"  # "chars" or "phonemes"

    @property
    def slot_samples(self) -> float:
        """Samples per CTC label slot."""
        return self.encoder.frame_samples / self.upsample

    def validate(self) -> None:
        if self.upsample < 1:
            raise UserError(f"model.upsample must be >= 1, got {self.upsample}")
        if self.targets not in ("chars", "phonemes"):
            raise UserError(f"model.targets must be 'chars' or 'phonemes', got {self.targets!r}")


@dataclasses.dataclass(frozen=True)
class AsrDataConfig:
    """Where the emotive_speech TFDS dataset lives, and how utterances are packed into rows.

    Each step reads round(batch_size * records_per_row) random utterances and packs them,
    longest first, into batch_size rows of `row_seconds` (first fit, at most `max_labels`
    characters per row including one space between utterances). An utterance that fits no
    row is skipped for this step (it comes back in later epochs); one longer than a row, or
    with more characters than `max_labels`, is never used.
    """

    data_dir: str = "data/tfds"
    dataset: str = "emotive_speech"
    train_split: str = "train"
    eval_split: str = "validation"  # held-out speakers and texts
    row_seconds: float = 8.0
    records_per_row: float = 2.5
    max_labels: int = 200

    @property
    def row_samples(self) -> int:
        return int(self.row_seconds * SAMPLE_RATE)


@dataclasses.dataclass(frozen=True)
class AsrConfig:
    task: str = "asr"
    model: AsrModelConfig = AsrModelConfig()
    data: AsrDataConfig = AsrDataConfig()
    augment: AugmentConfig = AugmentConfig()  # training utterances only; off in every preset
    optim: OptimConfig = OptimConfig(lr=2e-3, warmup_steps=100, b2=0.98, weight_decay=0.01)
    mesh: MeshConfig = MeshConfig()
    train: TrainConfig = TrainConfig()

    def validate(self) -> None:
        d = self.data
        if d.row_seconds <= 0 or d.records_per_row <= 0 or d.max_labels < 1:
            raise UserError("data.row_seconds, data.records_per_row and data.max_labels must "
                            "be positive")
        slots = -(-d.row_samples // self.model.encoder.frame_samples) * self.model.upsample
        if d.max_labels > slots:
            raise UserError(f"data.max_labels={d.max_labels} exceeds the {slots} CTC slots of "
                            f"a {d.row_seconds} s row; CTC needs a slot per label")


def tiny() -> AsrConfig:
    """Seconds on a CPU: a 2-layer 32-wide encoder on 2 s rows, for tests."""
    return AsrConfig(
        model=AsrModelConfig(MelEncoderConfig(n_mels=40, transformer=encoder_transformer(
            2, 32, 4, 64))),
        data=AsrDataConfig(row_seconds=4.0, records_per_row=1.5, max_labels=120),
        optim=OptimConfig(lr=3e-3, warmup_steps=5),
        train=TrainConfig(steps=40, batch_size=8, log_every=10, eval_every=40,
                          eval_batches=2, ckpt_every=40),
    )


def base() -> AsrConfig:
    """The best we found for about 12 minutes on 2 shared CPU cores."""
    return AsrConfig(
        model=AsrModelConfig(MelEncoderConfig(strides=(2, 2),
                                              transformer=encoder_transformer(3, 128, 4, 512)),
                             upsample=2),
        data=AsrDataConfig(row_seconds=8.0, records_per_row=2.5, max_labels=200),
        optim=OptimConfig(lr=3e-3, warmup_steps=60, b2=0.98, min_lr_ratio=0.05),
        train=TrainConfig(steps=600, batch_size=8, log_every=25, eval_every=200,
                          eval_batches=4, ckpt_every=200),
    )


def wide() -> AsrConfig:
    """For the 'wide' corpus (`emotive data synth --preset wide`): a 5 x 192 encoder with
    SpecAugment (2 frequency and 2 time masks), 4,000 steps (about 40 utterances per step).

    75 minutes on 2 CPU cores shared with other runs (1.1 s a step). Point data.data_dir at
    the wide build.
    """
    cfg = base()
    encoder = dataclasses.replace(
        cfg.model.encoder, freq_masks=2, time_masks=2,
        transformer=encoder_transformer(5, 192, 4, 768))
    return dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, encoder=encoder),
        train=dataclasses.replace(cfg.train, steps=4000, eval_every=1000, ckpt_every=1000))


def lexicon() -> AsrConfig:
    """For the 'lexicon' corpus (`emotive data synth --preset lexicon`: twice the train clips
    of 'wide', 10,000 frequent words): the 'wide' model with a third time mask, 5,000 steps.

    53 minutes on 2 CPU cores (1.6 steps a second). Point data.data_dir at the lexicon build.
    Issue 6's best figures continue this run: the same command with `--resume --set
    train.steps=15000` (two hours more, in three legs here: to 7,000, 11,000 and 15,000; the
    cosine schedule stretches to each new length, so the learning rate rises at each resume).
    Evaluate greedily, or with `emotive eval asr --beam 32 --lm-order 6 --lm-weight 0.4
    --char-bonus 1.5 --word-lm-order 3` (settings chosen on the validation split): clean test
    CER 14.1% greedy, 9.45% with the beam and both language models.
    """
    cfg = wide()
    encoder = dataclasses.replace(cfg.model.encoder, time_masks=3)
    return dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, encoder=encoder),
        train=dataclasses.replace(cfg.train, steps=5000))


PRESETS = {"tiny": tiny, "base": base, "wide": wide, "lexicon": lexicon}
