"""The motion VAE: frames [B, T, 385] <-> latents [B, T / downsample, C], on the one transformer.

Encoder: standardise the frames (`FrameNorm`), fold `downsample` frames into one token (a
strided linear map, i.e. a convolution with kernel = stride), a bidirectional transformer
over the tokens (rotary positions, padding masked), a Gaussian per latent step (mean and
log-variance). Decoder: latents -> tokens -> a bidirectional transformer -> each token
unfolded into `downsample` standardised frames. Body and face are one frame vector, so one
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
        self.unfold = Dense(e_dec, (k, frame_dim), in_axes="embed", out_axes=(None, None), **kw)

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
        return rearrange(self.unfold(h), "b n k d -> b (n k) d")

    def decode(self, z_BxNxC, latent_mask_BxN=None):
        """Frames [B, N * downsample, 385] in the data's units."""
        return self.norm.denormalize(self.decode_normalized(z_BxNxC, latent_mask_BxN))
