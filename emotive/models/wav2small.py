"""Wav2Small: a ~10 K-parameter A/D/V student distilled from a wav2vec2 teacher.

    audio [B, T] at 16 kHz
      -> per-utterance normalisation over the valid samples
      -> 64-point periodic-Hann DFT, hop 32, as a fixed strided conv -> power [B, N, 33]
      -> 26 Slaney mel bands up to 8 kHz -> 10 * log10(max(., 1e-10))     [B, N, 26]
      -> 7 x (3x3 conv, BatchNorm, ReLU), 13 channels; 2x2 max-pool after block 3
      -> attention pooling over time [13 mels x 13 channels] ++ channel Gram matrix [13 x 13]
      -> Linear(338, 3): arousal, dominance, valence

Trainable parameters with the default config: 10,624 = conv kernels 9*1*13 + 6*9*13*13
(9,243; no conv biases, BatchNorm's shift does their job) + BatchNorm scale and shift
7*2*13 (182) + attention scores Dense(13, 13) with bias (182) + Linear(338, 3) (1,017).
BatchNorm's running statistics are non-Param state ("rest" to the trainer).

Padding: frames past a row's valid length are zeroed after every block and left out of
BatchNorm statistics, attention pooling and the Gram matrix, so a padded row gives the
same output as the row run alone. With n_fft 64 at 16 kHz the FFT bins are 250 Hz apart,
narrower than the lowest Slaney mel triangle needs: mel band 0 is empty and always reads
-100 dB (librosa.filters.mel gives the same empty band).

Shape letters: B batch, T samples, N frames, F mel bands, C channels.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emotive.codecs.audio import hann_window, mel_filterbank
from emotive.configs.classifiers import Wav2SmallConfig
from emotive.models.layers import Dense, param
from emotive.models.wav2vec2 import conv1d, conv_output_lengths, normalize_waveform, valid_mask

NEG_INF = -1e30


@functools.lru_cache(maxsize=8)
def dft_kernel(n_fft: int) -> np.ndarray:
    """The windowed real DFT as conv taps, float32 [n_fft, 1, 2 * (n_fft // 2 + 1)].

    Output channels are the real parts of bins 0..n_fft/2, then the imaginary parts.
    """
    n = np.arange(n_fft)[:, None]
    k = np.arange(n_fft // 2 + 1)[None, :]
    angle = 2.0 * np.pi * n * k / n_fft
    window = hann_window(n_fft, periodic=True)[:, None].astype(np.float64)
    basis = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1) * window
    return basis[:, None, :].astype(np.float32)


def log_mel(audio_BxT: jax.Array, cfg: Wav2SmallConfig) -> jax.Array:
    """Fixed front end: float audio [B, T] -> log-mel power in dB [B, N, n_mels].

    N = 1 + (T - n_fft) // hop: frames start every hop samples, with no centre padding.
    """
    spec = conv1d(audio_BxT[:, :, None], jnp.asarray(dft_kernel(cfg.n_fft)), stride=cfg.hop)
    bins = cfg.n_fft // 2 + 1
    power = jnp.square(spec[..., :bins]) + jnp.square(spec[..., bins:])
    filters_MxF = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, fmax=cfg.fmax)
    mel = jnp.einsum("bnf,mf->bnm", power, filters_MxF, precision=jax.lax.Precision.HIGHEST)
    return 10.0 * jnp.log10(jnp.maximum(mel, cfg.log_floor))


def conv2d_same(x_BxNxFxC, kernel_HxWxIxO):
    return jax.lax.conv_general_dilated(x_BxNxFxC, kernel_HxWxIxO, window_strides=(1, 1),
                                        padding="SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def max_pool_2x2(x_BxNxFxC):
    """2x2 max-pool, stride 2; an odd last row or column is pooled alone."""
    return jax.lax.reduce_window(x_BxNxFxC, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1),
                                 "SAME")


class Wav2Small(nnx.Module):
    """audio [B, T] -> arousal, dominance, valence [B, 3] (fp32)."""

    def __init__(self, cfg: Wav2SmallConfig, rngs: nnx.Rngs):
        cfg.validate()
        self.cfg = cfg
        c = cfg.channels
        init = nnx.initializers.variance_scaling(2.0, "fan_in", "normal", in_axis=(0, 1, 2),
                                                 out_axis=3)
        axes = ("kernel", "kernel", "in_channels", "channels")
        self.kernels = nnx.List([param(rngs, init, (3, 3, 1 if i == 0 else c, c), axes)
                                 for i in range(cfg.blocks)])
        self.norms = nnx.List([
            nnx.BatchNorm(c, momentum=cfg.bn_momentum, epsilon=cfg.bn_eps, rngs=rngs,
                          scale_metadata={"axes": ("norm",)}, bias_metadata={"axes": ("norm",)})
            for _ in range(cfg.blocks)])
        # One score per (time, mel, channel) from the channels at that point.
        self.attention = Dense(c, c, in_axes="in_channels", out_axes="channels", rngs=rngs,
                               use_bias=True)
        pooled_mels = -(-cfg.n_mels // 2)
        self.head = Dense(pooled_mels * c + c * c, cfg.outputs, in_axes=None, out_axes=None,
                          rngs=rngs, use_bias=True)

    def __call__(self, audio_BxT, lengths_B=None, *, train: bool = False):
        """Takes float audio [B, T] and optional int lengths [B] (valid samples, default T).

        `train` normalises with batch statistics (over valid frames) and updates the running
        ones; otherwise the running statistics are used. Returns fp32 [B, outputs].
        """
        cfg = self.cfg
        b, t = audio_BxT.shape
        if lengths_B is None:
            lengths_B = jnp.full((b,), t, jnp.int32)
        lengths_B = jnp.minimum(lengths_B.astype(jnp.int32), t)
        x = normalize_waveform(audio_BxT, lengths_B)
        h = log_mel(x, cfg)[..., None]  # [B, N, F, 1]
        frames_B = conv_output_lengths(lengths_B, (cfg.n_fft,), (cfg.hop,))
        mask = valid_mask(frames_B, h.shape[1])[:, :, None, None]
        h = jnp.where(mask, h, 0.0)
        for i, (kernel, norm) in enumerate(zip(self.kernels, self.norms)):
            h = conv2d_same(h, kernel[...])
            h = norm(h, use_running_average=not train, mask=jnp.broadcast_to(mask, h.shape))
            h = jnp.where(mask, jax.nn.relu(h), 0.0)
            if i + 1 == cfg.pool_after:
                h = max_pool_2x2(h)  # padded frames are 0 and ReLU outputs >= 0: no leak
                frames_B = (frames_B + 1) // 2
                mask = valid_mask(frames_B, h.shape[1])[:, :, None, None]
        scores = jnp.where(mask, self.attention(h), NEG_INF)
        weights = jax.nn.softmax(scores, axis=1)  # over time, per (mel, channel)
        pooled_BxFxC = jnp.sum(weights * h, axis=1)
        count = jnp.maximum(frames_B, 1).astype(jnp.float32) * h.shape[2]
        gram_BxCxC = jnp.einsum("bnfc,bnfd->bcd", h, h) / count[:, None, None]
        feats = jnp.concatenate([pooled_BxFxC.reshape(b, -1), gram_BxCxC.reshape(b, -1)], axis=1)
        return self.head(feats).astype(jnp.float32)


def num_trainable(model: nnx.Module) -> int:
    """Number of scalars in the model's nnx.Param variables."""
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
