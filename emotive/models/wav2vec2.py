"""A wav2vec2-style speech encoder, composed from the one transformer.

    audio [B, T] at 16 kHz
      -> per-utterance normalisation over the valid samples
      -> conv feature extractor (7 strided 1-D convs, 320x down: 50 frames/s), exact GELU
      -> feature projection (LayerNorm, Dense to the model width)
      -> + positional conv embedding (one grouped conv, kernel 128, weight norm folded in)
      -> [base models: LayerNorm] -> Transformer (pre-LN + final norm, or post-LN)
      -> hidden [B, N, E]

Padding: `lengths_B` (valid samples per row) go through the conv arithmetic to frame
lengths; padded frames are zeroed before the positional conv (as Hugging Face does) and
masked out of attention through `segment_ids` (0 = padding). Valid frames of a padded row
then equal those of the row run alone, for both front-end layouts (the GroupNorm of base
models takes its statistics over valid frames only; Hugging Face's takes them over the
whole padded row, which is why its base models are run without padding masks).

Shape letters: B batch, T samples, N frames, C conv channels, E model width, K kernel taps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from emotive.configs.classifiers import Wav2Vec2Config
from emotive.models.layers import Dense, LayerNorm, dtype_of, param
from emotive.models.sharding import constrain
from emotive.models.transformer import Transformer, self_attention_mask

INPUT_NORM_EPS = 1e-7  # Hugging Face's Wav2Vec2FeatureExtractor
CONV_NORM_EPS = 1e-5  # torch's LayerNorm / GroupNorm default, which the conv norms use


# ----------------------------------------------------------------------------- helpers


def valid_mask(lengths_B: jax.Array, length: int) -> jax.Array:
    """bool [B, length]: True where the position is below the row's length."""
    return jnp.arange(length)[None, :] < lengths_B[:, None]


def normalize_waveform(audio_BxT: jax.Array, lengths_B: jax.Array) -> jax.Array:
    """(x - mean) / sqrt(var + 1e-7) per row over its valid samples; padding set to 0.

    Takes float [B, T] and int [B]; returns float32 [B, T].
    """
    x = audio_BxT.astype(jnp.float32)
    mask = valid_mask(lengths_B, x.shape[1])
    count = jnp.maximum(lengths_B, 1).astype(jnp.float32)[:, None]
    mean = jnp.sum(jnp.where(mask, x, 0.0), axis=1, keepdims=True) / count
    var = jnp.sum(jnp.where(mask, jnp.square(x - mean), 0.0), axis=1, keepdims=True) / count
    return jnp.where(mask, (x - mean) * jax.lax.rsqrt(var + INPUT_NORM_EPS), 0.0)


def conv_output_lengths(lengths_B, kernels, strides):
    """Valid output frames of a stack of unpadded strided convs (Hugging Face's arithmetic).

    Works on Python ints and integer arrays alike; never below 0.
    """
    for k, s in zip(kernels, strides):
        lengths_B = (lengths_B - k) // s + 1
        lengths_B = max(lengths_B, 0) if isinstance(lengths_B, int) else jnp.maximum(lengths_B, 0)
    return lengths_B


def conv1d(x_BxTxC, kernel_KxIxO, *, stride: int = 1, padding: int = 0, groups: int = 1):
    """1-D convolution, channels last: [B, T, I*groups] -> [B, T', O]."""
    return jax.lax.conv_general_dilated(
        x_BxTxC, kernel_KxIxO.astype(x_BxTxC.dtype), window_strides=(stride,),
        padding=[(padding, padding)], dimension_numbers=("NWC", "WIO", "NWC"),
        feature_group_count=groups)


def gelu(x):
    return jax.nn.gelu(x, approximate=False)  # exact (erf), as wav2vec2 uses


# ----------------------------------------------------------------------------- modules


class ChannelNorm(nnx.Module):
    """GroupNorm with one group per channel: each channel normalised over its valid frames."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        self.scale = param(rngs, nnx.initializers.ones, (channels,), ("norm",), param_dtype)
        self.bias = param(rngs, nnx.initializers.zeros, (channels,), ("norm",), param_dtype)

    def __call__(self, x_BxNxC, mask_BxN):
        x = x_BxNxC.astype(jnp.float32)
        m = mask_BxN[:, :, None]
        count = jnp.maximum(jnp.sum(m, axis=1, keepdims=True), 1).astype(jnp.float32)
        mean = jnp.sum(jnp.where(m, x, 0.0), axis=1, keepdims=True) / count
        var = jnp.sum(jnp.where(m, jnp.square(x - mean), 0.0), axis=1, keepdims=True) / count
        y = (x - mean) * jax.lax.rsqrt(var + CONV_NORM_EPS)
        return (y * self.scale[...] + self.bias[...]).astype(x_BxNxC.dtype)


class FeatureConv(nnx.Module):
    """One layer of the feature extractor: strided conv, optional norm, exact GELU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, *, use_bias: bool,
                 norm: str | None, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        # He init, as torch's wav2vec2 initialises these convs.
        init = nnx.initializers.variance_scaling(2.0, "fan_in", "normal", in_axis=(0, 1),
                                                 out_axis=2)
        self.kernel = param(rngs, init, (kernel, in_ch, out_ch),
                            ("kernel", "in_channels", "channels"), param_dtype)
        self.bias = (param(rngs, nnx.initializers.zeros, (out_ch,), ("channels",), param_dtype)
                     if use_bias else None)
        if norm == "layer":
            self.norm = LayerNorm(out_ch, eps=CONV_NORM_EPS, rngs=rngs, dtype=dtype,
                                  param_dtype=param_dtype)
        elif norm == "group":
            self.norm = ChannelNorm(out_ch, rngs=rngs, param_dtype=param_dtype)
        else:
            self.norm = None
        self.norm_kind = norm
        self.stride = stride

    def output_lengths(self, lengths):
        return conv_output_lengths(lengths, (self.kernel.shape[0],), (self.stride,))

    def __call__(self, x_BxTxC, mask_BxN):
        y = conv1d(x_BxTxC, self.kernel[...], stride=self.stride)
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        if self.norm_kind == "group":
            y = self.norm(y, mask_BxN)
        elif self.norm is not None:
            y = self.norm(y)
        return gelu(y)


class PositionalConv(nnx.Module):
    """Relative positions from one grouped conv over time ("same" length), then GELU.

    The kernel is the weight-normalised kernel of the checkpoints, folded into one tensor.
    """

    def __init__(self, dim: int, kernel: int, groups: int, *, rngs: nnx.Rngs,
                 param_dtype=jnp.float32):
        std = 2.0 * (1.0 / (kernel * dim)) ** 0.5  # Hugging Face's initialisation
        self.kernel = param(rngs, nnx.initializers.normal(std), (kernel, dim // groups, dim),
                            ("kernel", "in_channels", "channels"), param_dtype)
        self.bias = param(rngs, nnx.initializers.zeros, (dim,), ("channels",), param_dtype)
        self.groups = groups

    def __call__(self, x_BxNxE):
        k = self.kernel.shape[0]
        y = conv1d(x_BxNxE, self.kernel[...], padding=k // 2, groups=self.groups)
        if k % 2 == 0:  # padding k/2 on both sides of an even kernel yields one extra frame
            y = y[:, :-1]
        return gelu(y + self.bias[...].astype(y.dtype))


class Wav2Vec2Encoder(nnx.Module):
    """audio [B, T] -> hidden [B, N, E], with the frame mask and optionally every layer's input."""

    def __init__(self, cfg: Wav2Vec2Config, rngs: nnx.Rngs):
        cfg.validate()
        dt, pdt = dtype_of(cfg.transformer.dtype), dtype_of(cfg.transformer.param_dtype)
        self.cfg = cfg
        convs = []
        in_ch = 1
        for i, (ch, k, s) in enumerate(zip(cfg.conv_dim, cfg.conv_kernel, cfg.conv_stride)):
            if cfg.feat_extract_norm == "layer":
                norm = "layer"
            else:
                norm = "group" if i == 0 else None
            convs.append(FeatureConv(in_ch, ch, k, s, use_bias=cfg.conv_bias, norm=norm,
                                     rngs=rngs, dtype=dt, param_dtype=pdt))
            in_ch = ch
        self.convs = nnx.List(convs)
        e = cfg.transformer.d_model
        self.proj_norm = LayerNorm(in_ch, eps=cfg.layer_norm_eps, rngs=rngs, dtype=dt,
                                   param_dtype=pdt)
        self.proj = Dense(in_ch, e, in_axes="channels", out_axes="embed", rngs=rngs,
                          use_bias=True, dtype=dt, param_dtype=pdt)
        self.pos_conv = PositionalConv(e, cfg.pos_conv_kernel, cfg.pos_conv_groups, rngs=rngs,
                                       param_dtype=pdt)
        # Base (post-LN) models normalise the transformer's input instead of its output.
        self.input_norm = (None if cfg.do_stable_layer_norm else
                           LayerNorm(e, eps=cfg.layer_norm_eps, rngs=rngs, dtype=dt,
                                     param_dtype=pdt))
        self.transformer = Transformer(cfg.transformer, rngs=rngs)

    def frame_lengths(self, lengths_B):
        """Valid frames per row for `lengths_B` valid samples (ints or an int array)."""
        return conv_output_lengths(lengths_B, self.cfg.conv_kernel, self.cfg.conv_stride)

    def __call__(self, audio_BxT, lengths_B=None, *, output_hidden_states: bool = False):
        """Encodes a batch of waveforms.

        Takes float audio [B, T] and optional int lengths [B] (valid samples, default T).
        Returns a dict: "last_hidden_state" [B, N, E], "mask" bool [B, N] (valid frames),
        "lengths" int [B] (valid frames) and, with `output_hidden_states`, "hidden_states":
        num_layers + 1 arrays [B, N, E], the input of every transformer block and the
        output of the last one before any final norm (transformers >= 5's convention).
        """
        cfg = self.cfg
        b, t = audio_BxT.shape
        if lengths_B is None:
            lengths_B = jnp.full((b,), t, jnp.int32)
        lengths_B = jnp.minimum(lengths_B.astype(jnp.int32), t)
        x = audio_BxT.astype(jnp.float32)
        if cfg.normalize_input:
            x = normalize_waveform(x, lengths_B)
        else:
            x = jnp.where(valid_mask(lengths_B, t), x, 0.0)
        h = x[:, :, None].astype(dtype_of(cfg.transformer.dtype))  # [B, T, 1]
        frames_B = lengths_B
        for conv in self.convs:
            frames_B = conv.output_lengths(frames_B)
            h = conv(h, valid_mask(frames_B, conv.output_lengths(h.shape[1])))
        mask_BxN = valid_mask(frames_B, h.shape[1])
        h = self.proj(self.proj_norm(h))
        h = jnp.where(mask_BxN[:, :, None], h, 0)  # padded frames must not leak into pos_conv
        h = h + self.pos_conv(h)
        if self.input_norm is not None:
            h = self.input_norm(h)
        h = constrain(h, ("batch", "length", "act_embed"))
        segment_ids = mask_BxN.astype(jnp.int32)
        out = {"mask": mask_BxN, "lengths": frames_B}
        if output_hidden_states:
            out["hidden_states"], out["last_hidden_state"] = self._blocks_one_by_one(h, segment_ids)
        else:
            out["last_hidden_state"], _ = self.transformer(h, segment_ids=segment_ids)
        return out

    def _blocks_one_by_one(self, x_BxNxE, segment_ids_BxN):
        """The transformer's stack run block by block, keeping every block's input."""
        tcfg = self.cfg.transformer
        mask = self_attention_mask(segment_ids_BxN, tcfg.causal)
        if tcfg.scan_layers:  # one Block whose parameters have a leading layers axis
            graphdef, stacked = nnx.split(self.transformer.blocks)
            blocks = [nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], stacked))
                      for i in range(tcfg.num_layers)]
        else:
            blocks = list(self.transformer.blocks)
        x = x_BxNxE.astype(dtype_of(tcfg.dtype))
        states = [x]
        for block in blocks:
            x = block(x, mask)[0]
            states.append(x)
        if self.transformer.final_norm is not None:
            x = self.transformer.final_norm(x)
        return tuple(states), x
