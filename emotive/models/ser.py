"""Speech emotion recognition: emotion heads on a mean-pooled wav2vec2-style encoder.

Two heads read the pooled features: audeering's regression head (Dense -> tanh ->
Dense(3), outputs arousal, dominance, valence, roughly in [0, 1]) and a categorical head
(one Dense to the emotion logits). Dropout is left out everywhere in this model.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from emotive.configs.classifiers import EmotionHeadConfig, Wav2Vec2Config
from emotive.models.layers import Dense, dtype_of
from emotive.models.wav2vec2 import Wav2Vec2Encoder

ADV_ORDER = ("arousal", "dominance", "valence")


def masked_mean(x_BxNxE: jax.Array, mask_BxN: jax.Array) -> jax.Array:
    """Mean over the valid frames of each row; takes [B, N, E] and bool [B, N], returns [B, E]."""
    m = mask_BxN[:, :, None]
    count = jnp.maximum(jnp.sum(m, axis=1), 1).astype(jnp.float32)
    total = jnp.sum(jnp.where(m, x_BxNxE.astype(jnp.float32), 0.0), axis=1)
    return total / count


class EmotionHeads(nnx.Module):
    """pooled [B, E] -> (adv [B, num_adv], logits [B, num_emotions]), both fp32."""

    def __init__(self, cfg: EmotionHeadConfig, dim: int, rngs: nnx.Rngs, *, dtype=jnp.float32,
                 param_dtype=jnp.float32):
        hidden = cfg.hidden or dim
        kw = dict(rngs=rngs, use_bias=True, dtype=dtype, param_dtype=param_dtype)
        # Output classes get no logical axis name: a handful of columns is not worth sharding.
        self.adv_dense = Dense(dim, hidden, in_axes="embed", out_axes="mlp", **kw)
        self.adv_out = Dense(hidden, cfg.num_adv, in_axes="mlp", out_axes=None, **kw)
        self.emotion = Dense(dim, cfg.num_emotions, in_axes="embed", out_axes=None, **kw)

    def __call__(self, pooled_BxE):
        adv = self.adv_out(jnp.tanh(self.adv_dense(pooled_BxE)))
        logits = self.emotion(pooled_BxE)
        return adv.astype(jnp.float32), logits.astype(jnp.float32)


class SpeechEmotionModel(nnx.Module):
    """Waveforms -> arousal/dominance/valence, emotion logits and the pooled embedding."""

    def __init__(self, cfg: Wav2Vec2Config, rngs: nnx.Rngs):
        self.cfg = cfg
        self.encoder = Wav2Vec2Encoder(cfg, rngs)
        self.heads = EmotionHeads(cfg.head, cfg.d_model, rngs,
                                  dtype=dtype_of(cfg.transformer.dtype),
                                  param_dtype=dtype_of(cfg.transformer.param_dtype))

    def __call__(self, audio_BxT, lengths_B=None):
        """Takes float audio [B, T] (16 kHz) and optional int lengths [B] (valid samples).

        Returns dict(adv=[B, 3] (arousal, dominance, valence), logits=[B, num_emotions],
        pooled=[B, E]: the mean of the last hidden state over valid frames), all fp32.
        """
        enc = self.encoder(audio_BxT, lengths_B)
        pooled = masked_mean(enc["last_hidden_state"], enc["mask"])
        adv, logits = self.heads(pooled)
        return {"adv": adv, "logits": logits, "pooled": pooled}
