"""The motion latent denoiser: the one transformer with cross-attention to speech content and
adaLN-Zero conditioning on the timestep, the emotion and the speaker style.

    pred = denoiser(z_t, t, Conditions(content, content_keep, emotion, style, style_keep),
                    latent_mask, frame_mask)      # eps or v, [B, N, C]

Speech content [B, T, F] (T = N x downsample, the motion frame rate) enters twice: folded to
the latent rate and added to the latent tokens (a local path), and at full rate as the
cross-attention context. Both carry sinusoidal embeddings of their time in frames, so the
cross-attention (which has no rotary positions) can align the two. A dropped condition is
replaced by a learned null embedding (content, style) or a zero vector whose presence flags
are zero (emotion), which is what classifier-free guidance contrasts against.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from einops import rearrange
from flax import nnx

from emotive.configs.common import TransformerConfig
from emotive.models.diffusion import timestep_embedding
from emotive.models.layers import Dense, param
from emotive.models.motion_vae import RunningMoments
from emotive.models.transformer import Transformer


class Conditions(NamedTuple):
    content: jax.Array        # [B, T, F]
    content_keep: jax.Array   # [B] 1 = given, 0 = dropped
    emotion: jax.Array        # [B, E] (data.motion_data's 14 values; parts zeroed when absent)
    style: jax.Array          # [B, S]
    style_keep: jax.Array     # [B]


class MotionDenoiser(nnx.Module):
    def __init__(self, cfg: TransformerConfig, *, latent_dim: int, downsample: int,
                 content_dim: int, style_dim: int, emotion_dim: int, norm_batches: int,
                 rngs: nnx.Rngs):
        e = cfg.d_model
        self.cfg, self.downsample = cfg, downsample
        kw = dict(rngs=rngs, use_bias=True)
        self.latent_norm = RunningMoments(latent_dim, norm_batches)
        self.latent_in = Dense(latent_dim, e, in_axes=None, out_axes="embed", **kw)
        self.content_local = Dense((downsample, content_dim), e, in_axes=(None, None),
                                   out_axes="embed", **kw)
        self.content_ctx = Dense(content_dim, e, in_axes=None, out_axes="embed", **kw)
        init = nnx.initializers.normal(0.02)
        self.null_local = param(rngs, init, (e,), ("embed",))
        self.null_ctx = param(rngs, init, (e,), ("embed",))
        self.null_style = param(rngs, init, (e,), ("embed",))
        self.time_mlp = nnx.List([Dense(e, e, in_axes="embed", out_axes="embed", **kw),
                         Dense(e, e, in_axes="embed", out_axes="embed", **kw)])
        self.emotion_mlp = nnx.List([Dense(emotion_dim, e, in_axes=None, out_axes="embed", **kw),
                            Dense(e, e, in_axes="embed", out_axes="embed", **kw)])
        self.style_mlp = nnx.List([Dense(style_dim, e, in_axes=None, out_axes="embed", **kw),
                          Dense(e, e, in_axes="embed", out_axes="embed", **kw)])
        self.transformer = Transformer(cfg, rngs=rngs)
        self.out = Dense(e, latent_dim, in_axes="embed", out_axes=None, rngs=rngs,
                         use_bias=True, kernel_init=nnx.initializers.zeros)

    @staticmethod
    def _mlp(layers, x):
        return layers[1](jax.nn.silu(layers[0](x)))

    def __call__(self, z_BxNxC, t_B, cond: Conditions, latent_mask_BxN, frame_mask_BxT):
        e, k = self.cfg.d_model, self.downsample
        b, n = z_BxNxC.shape[:2]
        keep_c = cond.content_keep.astype(jnp.float32)[:, None, None]
        frames = jnp.arange(n * k, dtype=jnp.float32)
        centres = jnp.arange(n, dtype=jnp.float32) * k + (k - 1) / 2
        local = self.content_local(rearrange(cond.content, "b (n k) f -> b n k f", k=k))
        local = keep_c * local + (1 - keep_c) * self.null_local[...]
        x = self.latent_in(z_BxNxC) + local + timestep_embedding(centres, e)[None]
        ctx = self.content_ctx(cond.content)
        ctx = keep_c * ctx + (1 - keep_c) * self.null_ctx[...] + timestep_embedding(frames, e)[None]
        keep_s = cond.style_keep.astype(jnp.float32)[:, None]
        style = keep_s * self._mlp(self.style_mlp, cond.style) + (1 - keep_s) * self.null_style[...]
        c = (self._mlp(self.time_mlp, timestep_embedding(t_B, e))
             + self._mlp(self.emotion_mlp, cond.emotion) + style)
        h, _ = self.transformer(x, segment_ids=latent_mask_BxN.astype(jnp.int32), context=ctx,
                                context_mask=frame_mask_BxT > 0, cond=c)
        return self.out(h)
