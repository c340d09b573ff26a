"""The motion VAE: frames [B, T, 385] <-> latents [B, T / downsample, C], on the one transformer.

Encoder: standardise the frames (`FrameNorm`), fold `downsample` frames into one token (a
strided linear map, i.e. a convolution with kernel = stride), a bidirectional transformer
over the tokens (rotary positions, padding masked), a Gaussian per latent step (mean and
log-variance). Decoder: latents -> tokens -> a bidirectional transformer -> the
token states linearly interpolated to the frame rate (a token sits at the centre of its
frames) -> a per-frame MLP -> standardised frames. Interpolating before the MLP keeps the
output continuous across token boundaries: unfolding each token into its own frames with a
linear map leaves a jump every `downsample` frames, which shows as jitter (extra speed minima,
inflated speeds) in every motion metric. Body and face are one frame vector, so one
latent sequence carries both streams.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from einops import rearrange
from flax import nnx

from emotive.configs.motion_vae import MotionVAEModelConfig
from emotive.models.layers import Dense
from emotive.models.transformer import Transformer


class RunningMoments(nnx.Module):
    """Per-channel mean and standard deviation averaged over the first `batches` training
    batches (masked), then fixed: a standardiser that lives in the checkpoint as batch-norm
    statistics do (`rest`), never a parameter."""

    def __init__(self, dim: int, batches: int):
        self.mean = nnx.BatchStat(jnp.zeros((dim,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((dim,), jnp.float32))
        self.count = nnx.BatchStat(jnp.zeros((), jnp.float32))
        self.batches = batches

    def update(self, x_BxTxD, mask_BxT) -> None:
        """Folds one batch into the running average while fewer than `batches` were seen."""
        m = mask_BxT[..., None].astype(jnp.float32)
        n = jnp.maximum(m.sum(), 1.0)
        mean = jax.lax.stop_gradient((x_BxTxD * m).sum((0, 1)) / n)
        var = jax.lax.stop_gradient((jnp.square(x_BxTxD - mean) * m).sum((0, 1)) / n)
        count = self.count[...]
        w = jnp.where(count < self.batches, 1.0 / (count + 1.0), 0.0)
        self.mean[...] = self.mean[...] + w * (mean - self.mean[...])
        self.var[...] = jnp.where(count == 0, var, self.var[...] + w * (var - self.var[...]))
        self.count[...] = jnp.minimum(count + 1.0, float(self.batches))

    @property
    def std(self):
        return jnp.sqrt(jnp.maximum(self.var[...], 1e-6))

    def normalize(self, x):
        return (x - self.mean[...]) / self.std

    def denormalize(self, x):
        return x * self.std + self.mean[...]


def latent_mask(mask_BxT, downsample: int):
    """A latent step is valid when any of its frames is."""
    return rearrange(mask_BxT, "b (n k) -> b n k", k=downsample).max(-1)


def interpolate_tokens(h_BxNxE, k: int, valid_B):
    """[B, N * k, E]: token n sits at frame n * k + (k - 1) / 2; frames between two centres
    mix them linearly, frames outside the first / last valid centre copy it."""
    b, n, _ = h_BxNxE.shape
    pos = (jnp.arange(n * k, dtype=jnp.float32) - (k - 1) / 2) / k
    last = jnp.maximum(valid_B, 1)[:, None] - 1                          # [B, 1]
    pos = jnp.clip(pos[None], 0.0, last.astype(jnp.float32))            # [B, T]
    i0 = jnp.floor(pos).astype(jnp.int32)
    i1 = jnp.minimum(i0 + 1, last)
    w = (pos - i0)[..., None]
    take = lambda i: jnp.take_along_axis(h_BxNxE, i[..., None], axis=1)
    return (1 - w) * take(i0) + w * take(i1)


class MotionVAE(nnx.Module):
    """frame_dim: values per frame (385 for data.motion_data's body + face frames)."""

    def __init__(self, cfg: MotionVAEModelConfig, *, frame_dim: int, rngs: nnx.Rngs):
        self.cfg = cfg
        e_enc, e_dec, k, c = cfg.encoder.d_model, cfg.decoder.d_model, cfg.downsample, cfg.latent_dim
        kw = dict(rngs=rngs, use_bias=True)
        self.norm = RunningMoments(frame_dim, cfg.norm_batches)
        self.fold = Dense((k, frame_dim), e_enc, in_axes=(None, None), out_axes="embed", **kw)
        self.encoder = Transformer(cfg.encoder, rngs=rngs)
        self.to_latent = Dense(e_enc, 2 * c, in_axes="embed", out_axes=None, **kw)
        self.from_latent = Dense(c, e_dec, in_axes=None, out_axes="embed", **kw)
        self.decoder = Transformer(cfg.decoder, rngs=rngs)
        self.frame_hidden = Dense(e_dec, e_dec, in_axes="embed", out_axes="embed", **kw)
        self.frame_out = Dense(e_dec, frame_dim, in_axes="embed", out_axes=None, **kw)

    def encode(self, frames_BxTxD, mask_BxT):
        """(mean, log-variance) [B, N, C] of standardised frames' latents; T = N * downsample."""
        x = self.norm.normalize(frames_BxTxD) * mask_BxT[..., None]
        tokens = self.fold(rearrange(x, "b (n k) d -> b n k d", k=self.cfg.downsample))
        seg = latent_mask(mask_BxT, self.cfg.downsample).astype(jnp.int32)
        h, _ = self.encoder(tokens, segment_ids=seg)
        mean, logvar = jnp.split(self.to_latent(h), 2, axis=-1)
        return mean, jnp.clip(logvar, -12.0, 6.0)

    def decode_normalized(self, z_BxNxC, latent_mask_BxN=None):
        seg = (jnp.ones(z_BxNxC.shape[:2], jnp.int32) if latent_mask_BxN is None
               else latent_mask_BxN.astype(jnp.int32))
        h, _ = self.decoder(self.from_latent(z_BxNxC), segment_ids=seg)
        h = interpolate_tokens(h, self.cfg.downsample, seg.sum(1))
        return self.frame_out(jax.nn.gelu(self.frame_hidden(h)))

    def decode(self, z_BxNxC, latent_mask_BxN=None):
        """Frames [B, N * downsample, 385] in the data's units."""
        return self.norm.denormalize(self.decode_normalized(z_BxNxC, latent_mask_BxN))
