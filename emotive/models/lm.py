"""A decoder-only language model (Llama layout): embedding, the one transformer, output head."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from emotive.configs.common import TransformerConfig
from emotive.models.layers import Dense, Embed, dtype_of
from emotive.models.sharding import constrain
from emotive.models.transformer import KVCache, Transformer


class CausalLM(nnx.Module):
    """tokens [B, T] -> logits [B, T, V] (fp32), optionally through a KV cache."""

    def __init__(self, cfg: TransformerConfig, vocab_size: int, *, tie_embeddings: bool = False,
                 rngs: nnx.Rngs):
        dt, pdt = dtype_of(cfg.dtype), dtype_of(cfg.param_dtype)
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.tie_embeddings = tie_embeddings
        self.embed = Embed(vocab_size, cfg.d_model, rngs=rngs, dtype=dt, param_dtype=pdt)
        self.body = Transformer(cfg, rngs=rngs)
        self.head = (None if tie_embeddings else
                     Dense(cfg.d_model, vocab_size, in_axes="embed", out_axes="vocab", rngs=rngs,
                           dtype=dt, param_dtype=pdt))

    def __call__(self, tokens_BxT, *, positions=None, segment_ids=None,
                 cache: KVCache | None = None, return_hidden: bool = False):
        """Returns logits [B, T, V] in fp32, or (logits, cache) when a cache is given."""
        x = self.embed(tokens_BxT)
        h, cache = self.body(x, positions=positions, segment_ids=segment_ids, cache=cache)
        logits = self.embed.attend(h) if self.head is None else self.head(h)
        logits = constrain(logits.astype(jnp.float32), ("batch", "length", "act_vocab"))
        if cache is not None:
            return logits, cache
        return (logits, h) if return_hidden else logits

    def init_cache(self, batch: int, max_len: int) -> KVCache:
        return KVCache.zeros(self.cfg, batch, max_len)

    @property
    def head_params(self) -> int:
        """Matmul parameters of the output projection (for FLOP accounting)."""
        return self.cfg.d_model * self.vocab_size


def count_params(module: nnx.Module) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(nnx.state(module, nnx.Param)))
