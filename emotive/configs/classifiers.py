"""Configs of the speech emotion classifiers: the wav2vec2-style teacher and the Wav2Small student.

Plain frozen dataclasses, importable on their own. `wav2vec2_transformer` builds the
TransformerConfig that matches Hugging Face's Wav2Vec2 encoder layers, so the encoder
fields cannot drift from what the two wav2vec2 layouts need (`Wav2Vec2Config.validate`
checks it anyway, for configs written by hand).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from emotive.configs.common import SAMPLE_RATE, TransformerConfig
from emotive.errors import UserError


def wav2vec2_transformer(*, d_model: int = 1024, num_heads: int = 16, mlp_dim: int = 4096,
                         num_layers: int = 12, stable_layer_norm: bool = True,
                         norm_eps: float = 1e-5, **overrides) -> TransformerConfig:
    """The TransformerConfig of a wav2vec2 encoder: LayerNorm, biases, exact GELU, no positions.

    `stable_layer_norm` picks pre-LN blocks with one final norm (large/robust models) or
    post-LN blocks without one (base models, whose extra input norm lives in the encoder).
    `overrides` sets other TransformerConfig fields (dtype, scan_layers, remat, ...).
    """
    return TransformerConfig(
        num_layers=num_layers, d_model=d_model, num_heads=num_heads, num_kv_heads=num_heads,
        head_dim=d_model // num_heads, mlp_dim=mlp_dim, mlp_type="gelu", norm_type="layer",
        norm_eps=norm_eps, norm_position="pre" if stable_layer_norm else "post",
        final_norm=stable_layer_norm, use_bias=True, causal=False, position="none", **overrides)


@dataclasses.dataclass(frozen=True)
class EmotionHeadConfig:
    """Heads on the mean-pooled encoder output."""

    num_emotions: int = 8  # categorical head: Dense(num_emotions) on the pooled features
    num_adv: int = 3  # regression head outputs, in the order arousal, dominance, valence
    hidden: int = 0  # regression head width (Dense -> tanh -> Dense); 0 = the encoder width


@dataclasses.dataclass(frozen=True)
class Wav2Vec2Config:
    """A wav2vec2-style encoder plus emotion heads. Defaults: audeering's 12-layer "Dawn" model."""

    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = True
    # "layer": LayerNorm after every conv (stable-layer-norm models);
    # "group": GroupNorm with one group per channel on the first conv only (base models).
    feat_extract_norm: Literal["layer", "group"] = "layer"
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    do_stable_layer_norm: bool = True
    transformer: TransformerConfig = dataclasses.field(default_factory=wav2vec2_transformer)
    layer_norm_eps: float = 1e-5  # feature projection and encoder norms (conv norms use 1e-5)
    # (x - mean) / sqrt(var + 1e-7) per utterance, over its valid samples, as the
    # Hugging Face feature extractor of these models does before the network.
    normalize_input: bool = True
    head: EmotionHeadConfig = dataclasses.field(default_factory=EmotionHeadConfig)

    @property
    def d_model(self) -> int:
        return self.transformer.d_model

    def validate(self) -> None:
        n = len(self.conv_dim)
        if not n or len(self.conv_kernel) != n or len(self.conv_stride) != n:
            raise UserError(f"conv_dim, conv_kernel and conv_stride must be non-empty and of "
                            f"equal length, got {len(self.conv_dim)}, {len(self.conv_kernel)}, "
                            f"{len(self.conv_stride)}")
        if self.feat_extract_norm not in ("layer", "group"):
            raise UserError(f"feat_extract_norm must be 'layer' or 'group', "
                            f"got {self.feat_extract_norm!r}")
        t = self.transformer
        # Chained by hand (base.check would run it too): the models and the Hugging Face
        # importer validate a Wav2Vec2Config of their own, outside any experiment config.
        t.validate()
        if t.d_model % self.pos_conv_groups:
            raise UserError(f"transformer.d_model={t.d_model} must be a multiple of "
                            f"pos_conv_groups={self.pos_conv_groups}")
        want = wav2vec2_transformer(d_model=t.d_model, num_heads=t.num_heads, mlp_dim=t.mlp_dim,
                                    num_layers=t.num_layers,
                                    stable_layer_norm=self.do_stable_layer_norm,
                                    norm_eps=self.layer_norm_eps)
        for name in ("num_kv_heads", "head_dim", "mlp_type", "norm_type", "norm_eps",
                     "norm_position", "final_norm", "use_bias", "causal", "position",
                     "cross_attention", "cond_dim"):
            if getattr(t, name) != getattr(want, name):
                raise UserError(f"transformer.{name}={getattr(t, name)!r} does not fit a wav2vec2 "
                                f"encoder (needs {getattr(want, name)!r}); build it with "
                                "wav2vec2_transformer()")


@dataclasses.dataclass(frozen=True)
class Wav2SmallConfig:
    """The Wav2Small student: fixed log-mel front end, a VGG-like 2-D conv stack, A/D/V out."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 64  # periodic Hann DFT, applied as a fixed strided conv (no centre padding)
    hop: int = 32
    n_mels: int = 26
    fmax: float = 8000.0
    log_floor: float = 1e-10  # 10 * log10(max(mel power, floor))
    channels: int = 13
    blocks: int = 7  # 3x3 conv + BatchNorm + ReLU each
    pool_after: int = 3  # 2x2 max-pool (time and mel) after this many blocks
    outputs: int = 3  # arousal, dominance, valence
    bn_momentum: float = 0.9  # running-statistics decay (torch momentum 0.1)
    bn_eps: float = 1e-5

    def validate(self) -> None:
        if not 0 < self.pool_after <= self.blocks:
            raise UserError(f"pool_after={self.pool_after} must be in [1, blocks={self.blocks}]")


def dawn() -> Wav2Vec2Config:
    """audeering's wav2vec2-large-robust pruned to 12 layers, with its A/D/V head."""
    return Wav2Vec2Config()


def wav2vec2_base() -> Wav2Vec2Config:
    """facebook/wav2vec2-base: GroupNorm front end, no conv bias, post-LN 12 x 768."""
    return Wav2Vec2Config(conv_bias=False, feat_extract_norm="group", do_stable_layer_norm=False,
                          transformer=wav2vec2_transformer(d_model=768, num_heads=12,
                                                           mlp_dim=3072, stable_layer_norm=False))


def tiny(stable_layer_norm: bool = True) -> Wav2Vec2Config:
    """A few-thousand-parameter encoder for tests."""
    return Wav2Vec2Config(
        conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
        feat_extract_norm="layer" if stable_layer_norm else "group", pos_conv_kernel=16,
        pos_conv_groups=4, do_stable_layer_norm=stable_layer_norm,
        transformer=wav2vec2_transformer(d_model=32, num_heads=4, mlp_dim=64, num_layers=2,
                                         stable_layer_norm=stable_layer_norm))
