"""The log-mel encoder (shared with the speaker model) and the character CTC recogniser.

MelEncoder: waveform [B, T] -> per-row standardised waveform -> log-mel [B, F, M] (10 ms
frames) -> per-row mean/variance normalisation over valid frames (per mel bin, CMVN, or over
all bins: `feature_norm`) -> optional SpecAugment -> strided 1-D convs with GELU -> the one
transformer. Padding and packed utterances are described by sample-level segment ids (0 = padding, 1, 2, ... = the
utterances of a row); an output frame j takes the id of the sample at its start,
j * frame_samples, and attention stays inside a segment.

CtcRecognizer: MelEncoder -> Dense to `upsample` slots x the target vocabulary (`vocab_size`:
39 character ids, or 101 phoneme symbols with `targets="phonemes"`; blank 0 in both) -> fp32
logits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from emotive.codecs.audio import log_mel_spectrogram
from emotive.codecs import chars, phonemes
from emotive.configs.asr import SAMPLE_RATE, AsrModelConfig, MelEncoderConfig
from emotive.models.codec import Conv
from emotive.models.layers import Dense, dtype_of
from emotive.models.transformer import Transformer

NORM_EPS = 1e-5
assert chars.BLANK == phonemes.PAD == 0  # the CTC blank of either target vocabulary


def vocab_size(cfg: AsrModelConfig) -> int:
    """CTC classes of the head: emotive.codecs.chars's 39, or the 101 of the phoneme
    inventory (emotive.codecs.phonemes.INVENTORY, its <pad> the blank)."""
    return chars.VOCAB_SIZE if cfg.targets == "chars" else len(phonemes.INVENTORY)


def segments_from_lengths(lengths_B, num_samples: int) -> jax.Array:
    """int32 [B, num_samples]: 1 on each row's first lengths[b] samples, 0 after."""
    return (jnp.arange(num_samples)[None, :] < lengths_B[:, None]).astype(jnp.int32)


def _masked_standardize(x_BxNxC, mask_BxN, per_channel: bool = True):
    """(x - mean) / std over the valid positions of each row, per channel or over all
    channels together; padding set to 0."""
    m = jnp.broadcast_to(mask_BxN[:, :, None], x_BxNxC.shape)
    axes = (1,) if per_channel else (1, 2)
    count = jnp.maximum(jnp.sum(m, axis=axes, keepdims=True), 1).astype(jnp.float32)
    mean = jnp.sum(jnp.where(m, x_BxNxC, 0.0), axis=axes, keepdims=True) / count
    var = jnp.sum(jnp.where(m, jnp.square(x_BxNxC - mean), 0.0), axis=axes,
                  keepdims=True) / count
    return jnp.where(m, (x_BxNxC - mean) * jax.lax.rsqrt(var + NORM_EPS), 0.0)


def spec_augment(feats_BxFxM, rng, *, freq_masks: int, freq_width: int, time_masks: int,
                 time_width: int):
    """Zeroes random mel bands and time spans of standardised features (0 = the row mean)."""
    b, f, m = feats_BxFxM.shape

    def masks(key, count, width, size):  # bool [B, count, size]
        k_width, k_start = jax.random.split(key)
        w = jax.random.randint(k_width, (b, count, 1), 0, width + 1)
        start = (jax.random.uniform(k_start, (b, count, 1)) * (size - w + 1)).astype(jnp.int32)
        pos = jnp.arange(size)[None, None, :]
        return jnp.any((pos >= start) & (pos < start + w), axis=1)

    k_freq, k_time = jax.random.split(rng)
    keep = jnp.ones((b, f, m), bool)
    if freq_masks:
        keep &= ~masks(k_freq, freq_masks, freq_width, m)[:, None, :]
    if time_masks:
        keep &= ~masks(k_time, time_masks, time_width, f)[:, :, None]
    return jnp.where(keep, feats_BxFxM, 0.0)


class MelEncoder(nnx.Module):
    """Waveforms -> frame features [B, N, E] every `cfg.frame_samples` samples."""

    def __init__(self, cfg: MelEncoderConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        width = cfg.transformer.d_model
        dims = (cfg.n_mels,) + (width,) * len(cfg.strides)
        self.convs = nnx.List([Conv(dims[i], dims[i + 1], cfg.conv_kernel, stride=s, rngs=rngs)
                               for i, s in enumerate(cfg.strides)])
        self.transformer = Transformer(cfg.transformer, rngs=rngs)

    def frame_lengths(self, lengths_B):
        """Valid output frames of rows with `lengths_B` samples: ceil(length / frame_samples)."""
        return -(-lengths_B // self.cfg.frame_samples)

    def __call__(self, audio_BxT, lengths_B=None, *, segment_ids_BxT=None, rng=None):
        """Takes float audio [B, T] at 16 kHz and either lengths [B] (valid samples, one
        utterance per row) or segment_ids [B, T]; `rng` switches SpecAugment on.

        Returns (hidden [B, N, E], frame segment ids int32 [B, N], 0 on padding frames).
        """
        cfg = self.cfg
        b, t = audio_BxT.shape
        if segment_ids_BxT is None:
            lengths_B = jnp.full((b,), t) if lengths_B is None else lengths_B
            segment_ids_BxT = segments_from_lengths(lengths_B, t)
        valid_BxT = segment_ids_BxT > 0
        x = _masked_standardize(audio_BxT.astype(jnp.float32)[:, :, None], valid_BxT)[:, :, 0]
        feats = log_mel_spectrogram(x, SAMPLE_RATE, cfg.n_fft, cfg.hop, cfg.n_mels,
                                    win_length=cfg.win_length, fmin=cfg.fmin, fmax=cfg.fmax)
        # Mel frame f is centred on sample f * hop.
        mel_seg = segment_ids_BxT[:, jnp.minimum(jnp.arange(feats.shape[1]) * cfg.hop, t - 1)]
        feats = _masked_standardize(feats, mel_seg > 0, per_channel=cfg.feature_norm == "bin")
        if rng is not None and (cfg.freq_masks or cfg.time_masks):
            feats = spec_augment(feats, rng, freq_masks=cfg.freq_masks,
                                 freq_width=cfg.freq_width, time_masks=cfg.time_masks,
                                 time_width=cfg.time_width)
        h = feats.astype(dtype_of(cfg.transformer.dtype))
        for conv in self.convs:
            h = jax.nn.gelu(conv(h), approximate=False)
        frames = h.shape[1]
        starts = jnp.minimum(jnp.arange(frames) * cfg.frame_samples, t - 1)
        frame_seg = segment_ids_BxT[:, starts]
        h = jnp.where((frame_seg > 0)[:, :, None], h, 0.0)
        hidden, _ = self.transformer(h, segment_ids=frame_seg)
        return hidden, frame_seg


class CtcRecognizer(nnx.Module):
    """Waveforms -> CTC logits over characters (emotive.codecs.chars layout) or phonemes
    (`cfg.targets`), blank 0, with `cfg.upsample` label slots per encoder frame."""

    def __init__(self, cfg: AsrModelConfig, *, rngs: nnx.Rngs):
        self.upsample = cfg.upsample
        self.vocab_size = vocab_size(cfg)
        self.encoder = MelEncoder(cfg.encoder, rngs=rngs)
        t = cfg.encoder.transformer
        self.head = Dense(t.d_model, (cfg.upsample, self.vocab_size), in_axes="embed",
                          out_axes=(None, None), rngs=rngs, use_bias=True,
                          dtype=dtype_of(t.dtype), param_dtype=dtype_of(t.param_dtype))

    def __call__(self, audio_BxT, lengths_B=None, *, segment_ids_BxT=None, rng=None):
        """Returns dict(logits fp32 [B, S, V], frame_segments int32 [B, S] (0 = padding)),
        S = encoder frames * upsample label slots, V = vocab_size(cfg)."""
        hidden, frame_seg = self.encoder(audio_BxT, lengths_B, segment_ids_BxT=segment_ids_BxT,
                                         rng=rng)
        logits_BxNxUxV = self.head(hidden).astype(jnp.float32)
        b, n = frame_seg.shape
        return {"logits": logits_BxNxUxV.reshape(b, n * self.upsample, self.vocab_size),
                "frame_segments": jnp.repeat(frame_seg, self.upsample, axis=1)}
