"""The speech codec experiment: 16 kHz audio <-> one FSQ token stream at 50 tokens/s.

A strided conv encoder (16 kHz -> 50 Hz) and bidirectional transformer stages from the one
transformer feed a finite scalar quantizer; a transformer decoder and a Vocos-style ISTFT
head (n_fft 1280, hop 320) synthesise the waveform. Trained as a GAN with multi-period and
multi-resolution spectrogram discriminators (X-codec2's recipe; its semantic branch is the optional
`semantic` feature-reconstruction loss against a frozen encoder of this repo).

    emotive train codec --preset tiny --set data.data_dir=DATA_DIR
"""

from __future__ import annotations

import dataclasses
import math

from emotive.configs.common import (SAMPLE_RATE, MeshConfig, OptimConfig, TrainConfig,
                                    TransformerConfig)
from emotive.errors import UserError

# FSQ levels per latent dim: the FSQ paper's choice for about 2^16 codes (64,000), and
# X-codec2's (4,) * 8 = 65,536. emotive.codecs.fsq checks any other choice.
DEFAULT_LEVELS = (8, 8, 8, 5, 5, 5)
XCODEC2_LEVELS = (4,) * 8
TEACHER_TASKS = ("ser", "asr")


def _stage(num_layers: int, d_model: int, num_heads: int, mlp_dim: int) -> TransformerConfig:
    """A bidirectional rotary transformer stage (positions are real frame indices)."""
    return TransformerConfig(num_layers=num_layers, d_model=d_model, num_heads=num_heads,
                             num_kv_heads=num_heads, head_dim=d_model // num_heads,
                             mlp_dim=mlp_dim, mlp_type="gelu", norm_type="layer", causal=False)


@dataclasses.dataclass(frozen=True)
class CodecModelConfig:
    """Encoder convs and transformer, FSQ bottleneck, decoder transformer and ISTFT head."""

    sample_rate: int = SAMPLE_RATE
    # Conv encoder: a k=7 input conv with channels[0], then per stride a block of residual
    # units (one per dilation) and a strided conv to the next channel count.
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    strides: tuple[int, ...] = (2, 4, 5, 8)  # product = hop = samples per token
    dilations: tuple[int, ...] = (1, 3, 9)
    activation: str = "snake"  # "snake" (SnakeBeta) or "gelu"
    encoder: TransformerConfig = _stage(2, 128, 4, 512)
    fsq_levels: tuple[int, ...] = DEFAULT_LEVELS
    decoder: TransformerConfig = _stage(4, 128, 4, 512)
    decoder_conv_kernel: int = 7  # a frame-level conv before the decoder transformer
    n_fft: int = 1280
    max_log_magnitude: float = 4.6  # exp(4.6) = 100, Vocos' magnitude clip

    @property
    def hop(self) -> int:
        return math.prod(self.strides)

    def validate(self) -> None:
        levels = self.fsq_levels
        if not levels or min(levels) < 2 or math.prod(levels) > 2**31 - 1:
            raise UserError(f"model.fsq_levels must be ints >= 2 whose product fits int32 "
                            f"indices, got {levels}; e.g. 8,8,8,5,5,5")
        if len(self.channels) != len(self.strides) + 1:
            raise UserError(f"model.channels needs one more entry than model.strides "
                            f"({len(self.strides) + 1}), got {len(self.channels)}")
        if self.activation not in ("snake", "gelu"):
            raise UserError(f"model.activation must be snake or gelu, got {self.activation!r}")
        if self.encoder.causal or self.decoder.causal:
            raise UserError("codec transformer stages are bidirectional; set causal=false")
        if self.n_fft % self.hop or self.n_fft < 2 * self.hop:
            raise UserError(f"model.n_fft={self.n_fft} must be a multiple of the hop "
                            f"({self.hop}) and at least twice it")


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
    """Multi-period (HiFi-GAN) and multi-resolution spectrogram (UnivNet/Vocos) discriminators."""

    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    period_channels: tuple[int, ...] = (32, 128, 512, 1024)
    # One (n_fft, hop) pair per resolution; the window is n_fft.
    spec_n_ffts: tuple[int, ...] = (512, 1024, 2048)
    spec_hops: tuple[int, ...] = (128, 256, 512)
    spec_channels: int = 32

    def validate(self) -> None:
        if len(self.spec_n_ffts) != len(self.spec_hops):
            raise UserError("disc.spec_n_ffts and disc.spec_hops need the same length")
        if not self.periods and not self.spec_n_ffts:
            raise UserError("the codec needs at least one discriminator (disc.periods or "
                            "disc.spec_n_ffts)")


@dataclasses.dataclass(frozen=True)
class CodecLossConfig:
    """Loss weights (X-codec2: mel 15, adversarial 1, feature matching 1) and mel resolutions."""

    mel_weight: float = 15.0
    adv_weight: float = 1.0
    fm_weight: float = 1.0
    mel_n_ffts: tuple[int, ...] = (256, 512, 1024, 2048)
    mel_n_mels: tuple[int, ...] = (20, 40, 80, 128)  # hop = n_fft // 4
    # Generator trains on the mel loss alone for this many steps (the discriminators train
    # from the start), so the adversarial game starts from a sensible reconstruction.
    gan_start_step: int = 0

    def validate(self) -> None:
        if len(self.mel_n_ffts) != len(self.mel_n_mels) or not self.mel_n_ffts:
            raise UserError("loss.mel_n_ffts and loss.mel_n_mels need the same, non-zero length")


@dataclasses.dataclass(frozen=True)
class SemanticConfig:
    """Feature reconstruction ("semantic distillation", X-codec2's semantic branch).

    A head on the quantised codes predicts the hidden states of a frozen speech encoder of
    this repo, averaged to the codec's frame rate; the loss is 1 - cosine similarity per
    valid frame. Off while weight is 0. The teacher is a trained `ser` run (its
    wav2vec2-style encoder: paralinguistic features) or a trained `asr` run (its CTC
    log-mel encoder: a phonetic teacher, CosyVoice's ASR-supervised tokens in spirit).
    """

    teacher_ckpt: str = ""  # an `emotive train ser` or `asr` workdir (or step dir)
    teacher_task: str = "ser"  # "ser" or "asr": which kind of run teacher_ckpt is
    weight: float = 0.0
    layer: int = -1  # teacher hidden state: 0 = transformer input ... -1 = last block's output

    def validate(self) -> None:
        if self.weight < 0:
            raise UserError(f"semantic.weight must be >= 0, got {self.weight}")
        if self.teacher_task not in TEACHER_TASKS:
            raise UserError(f"semantic.teacher_task must be one of {', '.join(TEACHER_TASKS)}, "
                            f"got {self.teacher_task!r}")
        if self.weight > 0 and not self.teacher_ckpt:
            raise UserError("semantic.weight > 0 needs semantic.teacher_ckpt=RUN_DIR of "
                            f"`emotive train {self.teacher_task}`")
        if self.teacher_task == "asr" and self.layer != -1:
            raise UserError("an asr teacher gives its last layer only; leave semantic.layer=-1")


@dataclasses.dataclass(frozen=True)
class CodecDataConfig:
    """Where the emotive_speech TFDS dataset lives and how it is cropped."""

    data_dir: str = "data/tfds"
    dataset: str = "emotive_speech"
    train_split: str = "train"
    eval_split: str = "validation"  # held-out speakers
    crop_seconds: float = 1.0  # rounded down to whole tokens

    def crop_samples(self, hop: int) -> int:
        return max(1, int(self.crop_seconds * SAMPLE_RATE) // hop) * hop


@dataclasses.dataclass(frozen=True)
class CodecConfig:
    task: str = "codec"
    model: CodecModelConfig = CodecModelConfig()
    disc: DiscriminatorConfig = DiscriminatorConfig()
    loss: CodecLossConfig = CodecLossConfig()
    semantic: SemanticConfig = SemanticConfig()
    data: CodecDataConfig = CodecDataConfig()
    # One AdamW per parameter group (generator, discriminator), X-codec2's betas.
    optim: OptimConfig = OptimConfig(lr=1e-4, b1=0.8, b2=0.9, weight_decay=0.0,
                                     min_lr_ratio=0.2, warmup_steps=1000)
    mesh: MeshConfig = MeshConfig()
    train: TrainConfig = TrainConfig()

    def validate(self) -> None:
        if self.data.crop_seconds <= 0:
            raise UserError(f"data.crop_seconds must be positive, got {self.data.crop_seconds}")


def tiny() -> CodecConfig:
    """Trains on the embedded tiny corpus on 2 CPU cores in about 10 minutes (0.3-0.8 s/step).

    Period discriminators only: on a CPU a spectrogram discriminator's 2-D convs cost about
    1 s per step each (add one with --set disc.spec_n_ffts=1024 disc.spec_hops=256).
    """
    return CodecConfig(
        model=CodecModelConfig(channels=(8, 16, 32, 48, 64), dilations=(1,),
                               encoder=_stage(1, 64, 4, 128), decoder=_stage(2, 64, 4, 192)),
        disc=DiscriminatorConfig(period_channels=(8, 16, 32), spec_n_ffts=(), spec_hops=()),
        loss=CodecLossConfig(mel_n_ffts=(256, 512, 1024), mel_n_mels=(20, 40, 80),
                             gan_start_step=200),
        data=CodecDataConfig(crop_seconds=0.64),
        optim=OptimConfig(lr=2e-3, b1=0.8, b2=0.9, weight_decay=0.0, min_lr_ratio=0.1,
                          warmup_steps=50),
        train=TrainConfig(steps=500, batch_size=8, log_every=50, eval_every=250,
                          eval_batches=8, ckpt_every=250),
    )


def base() -> CodecConfig:
    """The best we found for about 2 hours on 2 CPU cores: 6,000 steps at about 1.1 s/step.

    A 1.8M-parameter generator; period discriminators only, as in `tiny` (one spectrogram
    discriminator triples the step time on a CPU, which costs more than it gives in 2 hours).
    """
    return CodecConfig(
        model=CodecModelConfig(channels=(16, 32, 64, 96, 128), dilations=(1, 3),
                               encoder=_stage(2, 128, 4, 384), decoder=_stage(4, 128, 4, 384)),
        disc=DiscriminatorConfig(period_channels=(16, 32, 64, 64), spec_n_ffts=(),
                                 spec_hops=()),
        loss=CodecLossConfig(gan_start_step=1500),
        data=CodecDataConfig(crop_seconds=1.0),
        optim=OptimConfig(lr=1e-3, b1=0.8, b2=0.9, weight_decay=0.0, min_lr_ratio=0.1,
                          warmup_steps=200),
        train=TrainConfig(steps=6000, batch_size=8, log_every=100, eval_every=1000,
                          eval_batches=8, ckpt_every=1000),
    )


def full() -> CodecConfig:
    """X-codec2 scale: strides 2,2,4,4,5, 12-layer 1024-d decoder; FSQ (4,)*8 = 65,536 codes."""
    return CodecConfig(
        model=CodecModelConfig(channels=(48, 96, 192, 384, 768, 1024), strides=(2, 2, 4, 4, 5),
                               encoder=_stage(12, 1024, 16, 4096), fsq_levels=XCODEC2_LEVELS,
                               decoder=_stage(12, 1024, 16, 4096)),
        disc=DiscriminatorConfig(),
        loss=CodecLossConfig(mel_n_ffts=(32, 64, 128, 256, 512, 1024, 2048),
                             mel_n_mels=(5, 10, 20, 40, 80, 160, 320), gan_start_step=0),
        data=CodecDataConfig(crop_seconds=6.0),
        optim=OptimConfig(lr=1e-4, b1=0.8, b2=0.9, weight_decay=0.0, min_lr_ratio=0.2,
                          warmup_steps=1000),
        train=TrainConfig(steps=400_000, batch_size=64, log_every=100, eval_every=5000,
                          ckpt_every=5000),
    )


PRESETS = {"tiny": tiny, "base": base, "full": full}
