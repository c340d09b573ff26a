"""Speaker encoder: log-mel encoder -> mean+std pooling -> Dense -> L2-normalised embedding.

Trained with an additive angular margin softmax (AAM-softmax, ArcFace: Deng et al. 2019):
logits are `scale * cos(theta_c)` between the embedding and each speaker's normalised
weight vector, with the target class's angle widened by `margin` first, so embeddings of
one speaker must cluster more tightly than plain softmax asks. Cosine similarity of two
embeddings is then the verification score.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from emotive.configs.speaker import SpeakerModelConfig
from emotive.models.asr import MelEncoder
from emotive.models.layers import Dense, dtype_of, param

POOL_EPS = 1e-5


def l2_normalize(x, axis: int = -1):
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=axis, keepdims=True),
                                         1e-12))


def mean_std_pool(x_BxNxE, mask_BxN):
    """Mean and standard deviation over valid frames, concatenated: [B, N, E] -> [B, 2E]."""
    m = mask_BxN[:, :, None]
    count = jnp.maximum(jnp.sum(m, axis=1), 1).astype(jnp.float32)
    x = x_BxNxE.astype(jnp.float32)
    mean = jnp.sum(jnp.where(m, x, 0.0), axis=1) / count
    var = jnp.sum(jnp.where(m, jnp.square(x - mean[:, None]), 0.0), axis=1) / count
    return jnp.concatenate([mean, jnp.sqrt(var + POOL_EPS)], axis=-1)


def aam_logits(emb_BxD, weight_DxC, labels_B, *, margin: float, scale: float):
    """AAM-softmax logits [B, C]: scale * cos, with the target's angle theta replaced by
    theta + margin while theta + margin <= pi (beyond that, cos - margin * sin(margin), the
    usual monotone continuation, so the target logit keeps falling as theta grows)."""
    cos = l2_normalize(emb_BxD) @ l2_normalize(weight_DxC, axis=0)
    cos = jnp.clip(cos, -1.0 + 1e-7, 1.0 - 1e-7)
    sin = jnp.sqrt(1.0 - jnp.square(cos))
    widened = cos * math.cos(margin) - sin * math.sin(margin)
    widened = jnp.where(cos > math.cos(math.pi - margin), widened,
                        cos - margin * math.sin(margin))
    target = jax.nn.one_hot(labels_B, cos.shape[-1], dtype=bool)
    return scale * jnp.where(target, widened, cos)


class SpeakerEncoder(nnx.Module):
    """Waveforms -> L2-normalised speaker embeddings; `head` holds the training-time classes."""

    def __init__(self, cfg: SpeakerModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        t = cfg.encoder.transformer
        self.encoder = MelEncoder(cfg.encoder, rngs=rngs)
        self.project = Dense(2 * t.d_model, cfg.embed_dim, in_axes="mlp", out_axes="embed",
                             rngs=rngs, use_bias=True, dtype=dtype_of(t.dtype),
                             param_dtype=dtype_of(t.param_dtype))
        # Classes get no logical axis name: a few dozen columns are not worth sharding.
        self.head = param(rngs, nnx.initializers.normal(1.0), (cfg.embed_dim, cfg.num_speakers),
                          ("embed", None))

    def __call__(self, audio_BxT, lengths_B=None, *, rng=None):
        """Takes float audio [B, T] (16 kHz) and optional valid lengths [B].

        Returns dict(embedding fp32 [B, embed_dim], unit length; pre_norm: before normalising).
        """
        hidden, frame_seg = self.encoder(audio_BxT, lengths_B, rng=rng)
        pooled = mean_std_pool(hidden, frame_seg > 0)
        pre = self.project(pooled).astype(jnp.float32)
        return {"embedding": l2_normalize(pre), "pre_norm": pre}

    def logits(self, embedding_BxD, labels_B):
        """AAM-softmax training logits over the `num_speakers` classes."""
        return aam_logits(embedding_BxD, self.head[...].astype(jnp.float32), labels_B,
                          margin=self.cfg.margin, scale=self.cfg.scale)
