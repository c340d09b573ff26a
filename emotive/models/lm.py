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
        logits = constrain(self.logits(h), ("batch", "length", "act_vocab"))
        if cache is not None:
            return logits, cache
        return (logits, h) if return_hidden else logits

    def hidden(self, tokens_BxT, *, positions=None, segment_ids=None) -> jax.Array:
        """Final hidden states [B, T, E] without the head (for a loss that applies it in
        chunks, `emotive.train.losses.chunked_lm_loss`)."""
        return self.body(self.embed(tokens_BxT), positions=positions,
                         segment_ids=segment_ids)[0]

    def head_weight(self, lo: int = 0, hi: int | None = None) -> jax.Array:
        """The output projection's columns for ids lo..hi-1, [E, hi - lo] in compute dtype."""
        hi = self.vocab_size if hi is None else hi
        if self.head is None:
            w = self.embed.embedding[lo:hi].T
        else:
            w = self.head.kernel[:, lo:hi]
        return w.astype(self.embed.dtype)

    def logits(self, h_BxTxE: jax.Array, lo: int = 0, hi: int | None = None) -> jax.Array:
        """fp32 logits [B, T, hi - lo] of ids lo..hi-1 from final hidden states: the head
        restricted to an id range costs that range's share of the full head."""
        if lo == 0 and hi is None:  # the full head, as trained
            out = self.embed.attend(h_BxTxE) if self.head is None else self.head(h_BxTxE)
        else:
            w = self.head_weight(lo, hi)
            out = jnp.einsum("...e,ev->...v", h_BxTxE.astype(w.dtype), w)
        return out.astype(jnp.float32)

    def init_cache(self, batch: int, max_len: int) -> KVCache:
        return KVCache.zeros(self.cfg, batch, max_len)

    @property
    def head_params(self) -> int:
        """Matmul parameters of the output projection (for FLOP accounting)."""
        return self.cfg.d_model * self.vocab_size


def count_params(module: nnx.Module) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(nnx.state(module, nnx.Param)))
