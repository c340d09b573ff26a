"""The speech codec generator: conv encoder, transformer stages, FSQ, transformer decoder, ISTFT.

    audio [B, T] (16 kHz) -> strided convs (x1/hop) -> Dense -> Transformer (bidirectional)
      -> Dense -> FSQ codes [B, N, D] / indices [B, N]        (N = ceil(T / hop), 50 Hz)
      -> Dense -> frame conv -> Transformer -> Dense -> log-magnitude, phase [B, N, F]
      -> ISTFT (n_fft 1280, hop 320) -> audio [B, N * hop]

Padding: `lengths_B` (valid samples per row) give each resolution's valid length
(ceil division by each stride). Every conv input is zero outside its valid part and the
convs are zero-padded at the array edge, so a valid frame sees exactly what it would see
if its clip were encoded alone; the transformers get frame-level segment ids (0 = padding)
and rotary positions that are real frame indices. A padded batch therefore encodes each
clip as it would alone (tests/models/test_codec.py checks the codes).

Shape letters: B batch, T samples, N frames (tokens), C channels, D FSQ dims, E model width,
F frequency bins (n_fft // 2 + 1), K kernel taps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emotive.codecs import audio as audio_lib
from emotive.codecs.fsq import FSQ
from emotive.configs.codec import SAMPLE_RATE, CodecModelConfig
from emotive.models.layers import Dense, param
from emotive.models.transformer import Transformer


def ceil_div(a, b: int):
    return -(-a // b)


def length_mask(lengths_B, size: int) -> jax.Array:
    """bool [B, size]: True at positions < lengths_B."""
    return jnp.arange(size)[None, :] < jnp.asarray(lengths_B)[:, None]


def masked_window_sum_square(frame_mask_BxN, n_fft: int, hop: int) -> jax.Array:
    """Sum of squared Hann windows of the frames where mask is True, float32 [B, L].

    L = n_fft + hop * (N - 1), the untrimmed overlap-add grid of a centred ISTFT; frame k
    covers [k * hop, k * hop + n_fft). Needs n_fft % hop == 0.
    """
    r = n_fft // hop
    w2_RxH = jnp.asarray(audio_lib.hann_window(n_fft) ** 2).reshape(r, hop)
    m = jnp.asarray(frame_mask_BxN, jnp.float32)
    # Output chunk c receives piece j of frame c - j.
    out_BxCxH = sum(jnp.pad(m, ((0, 0), (j, r - 1 - j)))[:, :, None] * w2_RxH[j]
                    for j in range(r))
    return out_BxCxH.reshape(m.shape[0], -1)


class Conv(nnx.Module):
    """N-d convolution, channels last, with explicit zero padding ("same" for stride 1).

    kernel [*K, I, O] carries logical axes ("kernel", ..., "in_channels", "channels").
    """

    def __init__(self, in_ch: int, out_ch: int, kernel, *, rngs: nnx.Rngs, stride=1,
                 dilation=1, padding=None, use_bias: bool = True, scale: float = 1.0):
        kernel = tuple(kernel) if isinstance(kernel, (tuple, list)) else (kernel,)
        nd = len(kernel)
        as_tuple = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd
        self.stride, self.dilation = as_tuple(stride), as_tuple(dilation)
        if padding is None:  # centred: output length = ceil(input / stride)
            padding = []
            for k, s, d in zip(kernel, self.stride, self.dilation):
                total = max(d * (k - 1) + 1 - s, 0)
                padding.append((total // 2, total - total // 2))
        self.padding = tuple(tuple(p) for p in padding)
        init = nnx.initializers.variance_scaling(scale, "fan_in", "truncated_normal",
                                                 in_axis=tuple(range(nd + 1)), out_axis=nd + 1)
        self.kernel = param(rngs, init, kernel + (in_ch, out_ch),
                            ("kernel",) * nd + ("in_channels", "channels"))
        self.bias = (param(rngs, nnx.initializers.zeros, (out_ch,), ("channels",))
                     if use_bias else None)
        spatial = "HW"[:nd]  # 1-D or 2-D
        self.dims = ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")

    def __call__(self, x):
        y = jax.lax.conv_general_dilated(
            x, self.kernel[...].astype(x.dtype), window_strides=self.stride,
            padding=self.padding, rhs_dilation=self.dilation, dimension_numbers=self.dims)
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y


class SnakeBeta(nnx.Module):
    """x + sin^2(alpha x) / beta, per-channel alpha and beta stored as logs (BigVGAN)."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs):
        self.log_alpha = param(rngs, nnx.initializers.zeros, (channels,), ("channels",))
        self.log_beta = param(rngs, nnx.initializers.zeros, (channels,), ("channels",))

    def __call__(self, x):
        alpha = jnp.exp(self.log_alpha[...])
        beta = jnp.exp(self.log_beta[...])
        return x + jnp.square(jnp.sin(alpha * x)) / (beta + 1e-9)


class _Gelu(nnx.Module):
    def __call__(self, x):
        return jax.nn.gelu(x)


def make_activation(kind: str, channels: int, rngs: nnx.Rngs) -> nnx.Module:
    # Both map 0 to 0, so zeroed padding stays zero through every activation.
    return SnakeBeta(channels, rngs=rngs) if kind == "snake" else _Gelu()


class ResidualUnit(nnx.Module):
    """x + conv1(act(conv7_dilated(act(x)))), keeping padded positions at zero."""

    def __init__(self, channels: int, dilation: int, activation: str, *, rngs: nnx.Rngs):
        self.act1 = make_activation(activation, channels, rngs)
        self.conv1 = Conv(channels, channels, 7, dilation=dilation, rngs=rngs)
        self.act2 = make_activation(activation, channels, rngs)
        self.conv2 = Conv(channels, channels, 1, rngs=rngs, scale=0.1)

    def __call__(self, x_BxTxC, mask_BxTx1):
        h = self.conv1(self.act1(x_BxTxC)) * mask_BxTx1
        return x_BxTxC + self.conv2(self.act2(h)) * mask_BxTx1


class DownBlock(nnx.Module):
    """Residual units at one resolution, then a strided conv (kernel 2 * stride)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, dilations, activation: str, *,
                 rngs: nnx.Rngs):
        self.units = nnx.List([ResidualUnit(in_ch, d, activation, rngs=rngs) for d in dilations])
        self.act = make_activation(activation, in_ch, rngs)
        self.down = Conv(in_ch, out_ch, 2 * stride, stride=stride, rngs=rngs)
        self.stride = stride

    def __call__(self, x_BxTxC, lengths_B):
        mask = length_mask(lengths_B, x_BxTxC.shape[1])[:, :, None]
        for unit in self.units:
            x_BxTxC = unit(x_BxTxC, mask)
        y = self.down(self.act(x_BxTxC))
        lengths_B = ceil_div(lengths_B, self.stride)
        return y * length_mask(lengths_B, y.shape[1])[:, :, None], lengths_B


class Codec(nnx.Module):
    """The generator: `encode` audio to FSQ codes, `decode` codes to audio (see module doc)."""

    def __init__(self, cfg: CodecModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.fsq = FSQ(cfg.fsq_levels)
        ch, act = cfg.channels, cfg.activation
        self.conv_in = Conv(1, ch[0], 7, rngs=rngs)
        self.blocks = nnx.List([DownBlock(ch[i], ch[i + 1], s, cfg.dilations, act, rngs=rngs)
                                for i, s in enumerate(cfg.strides)])
        self.conv_act = make_activation(act, ch[-1], rngs)
        e_enc, e_dec = cfg.encoder.d_model, cfg.decoder.d_model
        dense = lambda i, o, ia, oa: Dense(i, o, in_axes=ia, out_axes=oa, rngs=rngs, use_bias=True)
        self.enc_in = dense(ch[-1], e_enc, "in_channels", "embed")
        self.encoder = Transformer(cfg.encoder, rngs=rngs)
        self.to_codes = dense(e_enc, self.fsq.dim, "embed", None)
        self.from_codes = dense(self.fsq.dim, e_dec, None, "embed")
        self.dec_conv = Conv(e_dec, e_dec, cfg.decoder_conv_kernel, rngs=rngs)
        self.decoder = Transformer(cfg.decoder, rngs=rngs)
        self.num_bins = cfg.n_fft // 2 + 1
        self.head = dense(e_dec, 2 * self.num_bins, "embed", None)

    @property
    def hop(self) -> int:
        return self.cfg.hop

    def frame_lengths(self, lengths_B):
        """Tokens of clips with `lengths_B` samples: ceil(lengths / hop)."""
        return ceil_div(lengths_B, self.hop)

    def encode_latents(self, audio_BxT, lengths_B=None):
        """Pre-quantisation latents float32 [B, N, D] and the frame mask bool [B, N].

        T is zero-padded to a multiple of the hop; lengths default to T.
        """
        b, t = audio_BxT.shape
        if lengths_B is None:
            lengths_B = jnp.full((b,), t, jnp.int32)
        pad = ceil_div(t, self.hop) * self.hop - t
        x = jnp.pad(audio_BxT.astype(jnp.float32), ((0, 0), (0, pad)))
        x_BxTx1 = (x * length_mask(lengths_B, x.shape[1]))[:, :, None]
        h = self.conv_in(x_BxTx1) * length_mask(lengths_B, x.shape[1])[:, :, None]
        lengths = jnp.asarray(lengths_B)
        for block in self.blocks:
            h, lengths = block(h, lengths)
        frame_mask_BxN = length_mask(lengths, h.shape[1])
        h = self.enc_in(self.conv_act(h))
        positions = jnp.broadcast_to(jnp.arange(h.shape[1]), h.shape[:2])
        h, _ = self.encoder(h, positions=positions,
                            segment_ids=frame_mask_BxN.astype(jnp.int32))
        return self.to_codes(h).astype(jnp.float32), frame_mask_BxN

    def encode(self, audio_BxT, lengths_B=None):
        """Returns (codes float32 [B, N, D] with straight-through gradients, indices int32
        [B, N], frame mask bool [B, N]); indices of padded frames are meaningless."""
        z_BxNxD, frame_mask_BxN = self.encode_latents(audio_BxT, lengths_B)
        codes_BxNxD = self.fsq.quantize(z_BxNxD)
        return codes_BxNxD, self.fsq.codes_to_indices(codes_BxNxD), frame_mask_BxN

    def decode_codes(self, codes_BxNxD, frame_mask_BxN=None, positions_BxN=None):
        """FSQ codes [B, N, D] -> waveform float32 [B, N * hop], zero on padded frames.

        `positions_BxN` are the frames' real indices (default 0..N-1); a streaming decoder
        passes a window's global frame numbers so rotary positions match the full decode.
        """
        b, n = codes_BxNxD.shape[:2]
        if frame_mask_BxN is None:
            frame_mask_BxN = jnp.ones((b, n), bool)
        if positions_BxN is None:
            positions_BxN = jnp.broadcast_to(jnp.arange(n), (b, n))
        m = frame_mask_BxN[:, :, None]
        h = self.from_codes(codes_BxNxD) * m
        h = h + self.dec_conv(h) * m
        h, _ = self.decoder(h, positions=positions_BxN,
                            segment_ids=frame_mask_BxN.astype(jnp.int32))
        out = self.head(h).astype(jnp.float32)
        log_mag = jnp.minimum(out[..., :self.num_bins], self.cfg.max_log_magnitude)
        phase = out[..., self.num_bins:]
        # Zero magnitude on padded frames, so they add nothing to the overlap-add.
        mag = jnp.exp(log_mag) * m
        spec_BxNxF = jax.lax.complex(mag * jnp.cos(phase), mag * jnp.sin(phase))
        spec_BxFxN = jnp.swapaxes(spec_BxNxF, 1, 2)
        length = n * self.hop
        audio = audio_lib.istft(spec_BxFxN, hop=self.hop, n_fft=self.cfg.n_fft, length=length)
        # istft divides by the window-sum-square of every frame in the array; rescale to that
        # of the valid frames only, so padded or masked frames change no valid sample.
        start = self.cfg.n_fft // 2
        wss_all = masked_window_sum_square(jnp.ones((1, n)), self.cfg.n_fft, self.hop)
        wss_valid = masked_window_sum_square(frame_mask_BxN, self.cfg.n_fft, self.hop)
        wss_all = wss_all[:, start:start + length]
        wss_valid = wss_valid[:, start:start + length]
        ok = wss_valid > 1e-6
        audio = audio * jnp.where(ok, wss_all / jnp.where(ok, wss_valid, 1.0), 0.0)
        sample_mask = jnp.repeat(frame_mask_BxN, self.hop, axis=1)
        return audio * sample_mask

    def decode(self, indices_BxN, frame_mask_BxN=None, positions_BxN=None):
        """Code indices int [B, N] -> waveform float32 [B, N * hop] (see decode_codes)."""
        return self.decode_codes(self.fsq.indices_to_codes(indices_BxN), frame_mask_BxN,
                                 positions_BxN)

    def __call__(self, audio_BxT, lengths_B=None):
        """Reconstructs `audio_BxT`; returns dict audio [B, T] (zero past each length),
        codes [B, N, D] (quantised, straight-through), indices [B, N], frame_mask [B, N]."""
        b, t = audio_BxT.shape
        if lengths_B is None:
            lengths_B = jnp.full((b,), t, jnp.int32)
        codes, indices, frame_mask = self.encode(audio_BxT, lengths_B)
        recon = self.decode_codes(codes, frame_mask)[:, :t] * length_mask(lengths_B, t)
        return {"audio": recon, "codes": codes, "indices": indices, "frame_mask": frame_mask}


# ----------------------------------------------------------------------------- spectral losses


def _mel_frames_mask(lengths_B, t: int, hop: int) -> jax.Array:
    """bool [B, frames] of a centred STFT: frame k is valid if its centre k * hop is."""
    if lengths_B is None:
        return None
    return length_mask(ceil_div(jnp.asarray(lengths_B), hop), 1 + t // hop)


def log_mel_l1(pred_BxT, target_BxT, lengths_B, *, sample_rate: int, n_fft: int, n_mels: int,
               hop: int | None = None) -> jax.Array:
    """Mean |log-mel(pred) - log-mel(target)| over valid frames and mel bins; scalar float32."""
    hop = hop or n_fft // 4
    kw = dict(sample_rate=sample_rate, n_fft=n_fft, hop=hop, n_mels=n_mels)
    diff = jnp.abs(audio_lib.log_mel_spectrogram(pred_BxT, **kw)
                   - audio_lib.log_mel_spectrogram(target_BxT, **kw))  # [B, frames, M]
    mask = _mel_frames_mask(lengths_B, pred_BxT.shape[-1], hop)
    if mask is None:
        return jnp.mean(diff)
    w = mask[:, :, None].astype(jnp.float32)
    return jnp.sum(diff * w) / jnp.maximum(jnp.sum(w) * n_mels, 1.0)


def multi_resolution_mel_loss(pred_BxT, target_BxT, lengths_B, *, sample_rate: int,
                              n_ffts, n_mels) -> jax.Array:
    """Mean over resolutions of log_mel_l1 (hop n_fft // 4 each); scalar float32."""
    losses = [log_mel_l1(pred_BxT, target_BxT, lengths_B, sample_rate=sample_rate, n_fft=f,
                         n_mels=m) for f, m in zip(n_ffts, n_mels)]
    return sum(losses) / len(losses)


def mel_distance(pred_BxT, target_BxT, lengths_B=None, sample_rate: int = SAMPLE_RATE) -> jax.Array:
    """The eval metric: log-mel L1 at n_fft 1024, hop 256, 80 mels; scalar float32."""
    return log_mel_l1(pred_BxT, target_BxT, lengths_B, sample_rate=sample_rate, n_fft=1024,
                      n_mels=80, hop=256)


def si_sdr(pred_BxT, target_BxT, lengths_B=None) -> jax.Array:
    """Scale-invariant SDR in dB per row, float32 [B], over each row's valid samples."""
    t = pred_BxT.shape[-1]
    m = (length_mask(lengths_B, t) if lengths_B is not None
         else jnp.ones(pred_BxT.shape, bool)).astype(jnp.float32)
    pred, target = pred_BxT * m, target_BxT * m
    scale = jnp.sum(pred * target, -1, keepdims=True) / (jnp.sum(target**2, -1, keepdims=True)
                                                         + 1e-8)
    projection = scale * target
    noise = pred - projection
    ratio = (jnp.sum(projection**2, -1) + 1e-8) / (jnp.sum(noise**2, -1) + 1e-8)
    return 10 * jnp.log10(ratio)


def count_params(module: nnx.Module) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.state(module, nnx.Param))))
