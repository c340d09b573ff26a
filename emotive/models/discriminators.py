"""The codec's discriminators and GAN losses.

- Multi-period (HiFi-GAN): for period p the waveform is folded into p interleaved
  sequences and judged by strided convs along time, so each sees periodic structure.
- Multi-resolution spectrogram (UnivNet / Vocos): 2-D convs over |STFT| at several
  (n_fft, hop) pairs, judging harmonics and noise in time and frequency.

Every discriminator returns (logits, feature maps); losses are least-squares GAN and L1
feature matching. Shape letters: B batch, T samples, N frames, F bins, C channels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from einops import rearrange
from flax import nnx

from emotive.codecs import audio as audio_lib
from emotive.configs.codec import DiscriminatorConfig
from emotive.models.codec import Conv

LEAK = 0.1


class PeriodDiscriminator(nnx.Module):
    """Strided (5, stride 3) convs over the waveform folded by `period`."""

    def __init__(self, period: int, channels, *, rngs: nnx.Rngs):
        self.period = period
        chans = (1,) + tuple(channels)
        self.convs = nnx.List([Conv(chans[i], chans[i + 1], 5, stride=3, rngs=rngs)
                               for i in range(len(channels))]
                              + [Conv(chans[-1], chans[-1], 5, rngs=rngs)])
        self.post = Conv(chans[-1], 1, 3, rngs=rngs)

    def __call__(self, audio_BxT):
        b, t = audio_BxT.shape
        pad = (-t) % self.period
        x = jnp.pad(audio_BxT, ((0, 0), (0, pad)), mode="reflect" if pad < t else "constant")
        # Each of the p phases becomes its own sequence (a 2-D conv with kernel (k, 1)).
        x = rearrange(x, "b (n p) -> (b p) n 1", p=self.period)
        return _conv_stack(self.convs, self.post, x)


def _conv_stack(convs, post, x):
    """Leaky-ReLU conv stack; returns (logits, every layer's output for feature matching)."""
    features = []
    for conv in convs:
        x = jax.nn.leaky_relu(conv(x), LEAK)
        features.append(x)
    logits = post(x)
    features.append(logits)
    return logits, features


class SpectrogramDiscriminator(nnx.Module):
    """2-D convs over the magnitude spectrogram [B, N, F] at one resolution."""

    def __init__(self, n_fft: int, hop: int, channels: int, *, rngs: nnx.Rngs):
        self.n_fft, self.hop = n_fft, hop
        c = channels
        self.convs = nnx.List(
            [Conv(1, c, (3, 9), rngs=rngs)]
            + [Conv(c, c, (3, 9), stride=(1, 2), rngs=rngs) for _ in range(3)]
            + [Conv(c, c, (3, 3), rngs=rngs)])
        self.post = Conv(c, 1, (3, 3), rngs=rngs)

    def __call__(self, audio_BxT):
        spec = audio_lib.stft(audio_BxT, self.n_fft, self.hop)  # [B, F, N]
        x = jnp.swapaxes(jnp.abs(spec), 1, 2)[..., None]  # [B, N, F, 1]
        return _conv_stack(self.convs, self.post, x)


class Discriminators(nnx.Module):
    """All discriminators of a DiscriminatorConfig; call -> [(logits, features), ...]."""

    def __init__(self, cfg: DiscriminatorConfig, *, rngs: nnx.Rngs):
        self.discs = nnx.List(
            [PeriodDiscriminator(p, cfg.period_channels, rngs=rngs) for p in cfg.periods]
            + [SpectrogramDiscriminator(f, h, cfg.spec_channels, rngs=rngs)
               for f, h in zip(cfg.spec_n_ffts, cfg.spec_hops)])

    def __call__(self, audio_BxT):
        return [d(audio_BxT) for d in self.discs]


# ----------------------------------------------------------------------------- losses


def lsgan_generator_loss(fake_outputs) -> jax.Array:
    """Mean over discriminators of mean((1 - D(fake))^2); scalar."""
    return sum(jnp.mean(jnp.square(1.0 - logits)) for logits, _ in fake_outputs) \
        / len(fake_outputs)


def lsgan_discriminator_loss(real_outputs, fake_outputs) -> jax.Array:
    """Mean over discriminators of mean((1 - D(real))^2) + mean(D(fake)^2); scalar."""
    total = sum(jnp.mean(jnp.square(1.0 - r)) + jnp.mean(jnp.square(f))
                for (r, _), (f, _) in zip(real_outputs, fake_outputs))
    return total / len(real_outputs)


def feature_matching_loss(real_outputs, fake_outputs) -> jax.Array:
    """Mean over discriminators and layers of mean |features(real) - features(fake)|.

    Real features are treated as constants (the generator cannot move them).
    """
    losses = [jnp.mean(jnp.abs(jax.lax.stop_gradient(r) - f))
              for (_, real_f), (_, fake_f) in zip(real_outputs, fake_outputs)
              for r, f in zip(real_f, fake_f)]
    return sum(losses) / len(losses)
