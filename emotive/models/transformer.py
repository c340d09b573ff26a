"""The one transformer: rotary attention with grouped-query heads, MLPs, blocks and the stack.

Every model of the project composes `Transformer` through `TransformerConfig`:
causal or bidirectional, packed segments and padding, optional cross-attention,
optional adaptive-norm conditioning, optional scan over layers with remat, and
a fixed-size KV cache for incremental decoding.

Shape letters: B batch, T query length, S key length (cache slots or context),
H query heads, K key/value heads, G = H // K, D head dim, E model width.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from einops import rearrange
from flax import nnx

from emotive.configs.common import TransformerConfig
from emotive.models.layers import Dense, dtype_of, make_norm
from emotive.models.sharding import constrain

NEG_INF = -1e30  # finite, so fully masked rows (padding queries) stay NaN-free


class KVCache(NamedTuple):
    """Keys and values of every layer; slot s holds the token at position s.

    With `scan_layers` each of k and v is one array [L, B, K, S, D] that the layer scan
    slices; otherwise a tuple of L arrays [B, K, S, D], so a decode step updates each
    layer's cache in place instead of restacking all layers (bench/decode.py on 2 CPU
    cores: about 30% more tokens/s at batch 1 and 8). Slots sit next to the head dim
    (K before S), the layout the attention's dots read: with [B, S, K, D] XLA copied every
    layer's whole cache into that layout around the write, every step.
    """

    k: jax.Array | tuple[jax.Array, ...]
    v: jax.Array | tuple[jax.Array, ...]

    @classmethod
    def zeros(cls, cfg: TransformerConfig, batch: int, max_len: int) -> "KVCache":
        shape = (batch, cfg.num_kv_heads, max_len, cfg.head_dim)
        dtype = dtype_of(cfg.dtype)
        if cfg.scan_layers:
            stacked = (cfg.num_layers, *shape)
            return cls(jnp.zeros(stacked, dtype), jnp.zeros(stacked, dtype))
        return cls(tuple(jnp.zeros(shape, dtype) for _ in range(cfg.num_layers)),
                   tuple(jnp.zeros(shape, dtype) for _ in range(cfg.num_layers)))

    @property
    def max_len(self) -> int:
        return self.k[0].shape[2] if isinstance(self.k, tuple) else self.k.shape[3]


# ----------------------------------------------------------------------------- rotary


def rope_inv_freq(cfg: TransformerConfig) -> jax.Array:
    """Inverse frequencies [D/2], with Llama-3 scaling when rope_scaling_factor > 0."""
    inv_freq = 1.0 / (cfg.rope_theta ** (jnp.arange(0, cfg.head_dim, 2, dtype=jnp.float32)
                                         / cfg.head_dim))
    if cfg.rope_scaling_factor <= 0:
        return inv_freq
    # Llama 3: keep high frequencies, divide low ones by `factor`, blend in between.
    factor, lo, hi = cfg.rope_scaling_factor, cfg.rope_low_freq_factor, cfg.rope_high_freq_factor
    old_len = cfg.rope_original_max_len
    wavelen = 2 * math.pi / inv_freq
    smooth = (old_len / wavelen - lo) / (hi - lo)
    blended = (1 - smooth) * inv_freq / factor + smooth * inv_freq
    out = jnp.where(wavelen > old_len / lo, inv_freq / factor, inv_freq)
    is_mid = (wavelen <= old_len / lo) & (wavelen >= old_len / hi)
    return jnp.where(is_mid, blended, out)


def apply_rope(x_BxTxNxD: jax.Array, positions_BxT: jax.Array, inv_freq: jax.Array) -> jax.Array:
    """Rotates halves of the head dim (the Llama / Hugging Face convention)."""
    angles = positions_BxT[..., None].astype(jnp.float32) * inv_freq  # [B, T, D/2]
    cos = jnp.cos(angles)[:, :, None, :]
    sin = jnp.sin(angles)[:, :, None, :]
    x = x_BxTxNxD.astype(jnp.float32)
    x1, x2 = jnp.split(x, 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxTxNxD.dtype)


# ----------------------------------------------------------------------------- attention


def dot_product_attention(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask_Bx1xTxS=None, *,
                          causal: bool = False, kernel: str = "einsum") -> jax.Array:
    """Softmax attention with grouped-query heads; the project's only attention. Returns
    [B, T, H, D].

    Query t attends to key s where the boolean mask holds (any shape broadcasting to
    [B, 1, T, S]; None = everywhere) and, with `causal`, s <= t. A fully masked query row
    (padding) averages v uniformly instead of giving NaN. `kernel` (`model.attention`):
    "einsum" is the reference (fp32 softmax); "fused" is `jax.nn.dot_product_attention` with
    jax's own choice of implementation; "cudnn" demands cuDNN flash attention (GPU, bf16).
    Passing `causal` rather than a causal mask lets a fused kernel skip masked blocks.
    """
    if kernel != "einsum":
        return jax.nn.dot_product_attention(
            q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask=mask_Bx1xTxS, is_causal=causal,
            implementation=None if kernel == "fused" else kernel)
    num_kv = k_BxSxKxD.shape[2]
    q = rearrange(q_BxTxHxD, "b t (k g) d -> b t k g d", k=num_kv)
    scale = q.shape[-1] ** -0.5
    logits = jnp.einsum("btkgd,bskd->bkgts", q * jnp.asarray(scale, q.dtype), k_BxSxKxD)
    logits = logits.astype(jnp.float32)
    mask = mask_Bx1xTxS
    if causal:
        tril = jnp.tril(jnp.ones(logits.shape[-2:], bool))[None, None]
        mask = tril if mask is None else mask & tril
    if mask is not None:
        logits = jnp.where(mask[:, :, None], logits, NEG_INF)  # [B, 1, 1, T, S] over K, G
    probs = jax.nn.softmax(logits, axis=-1).astype(v_BxSxKxD.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", probs, v_BxSxKxD)
    return rearrange(out, "b t k g d -> b t (k g) d")


def self_attention_mask(segment_ids_BxT: jax.Array, causal: bool) -> jax.Array:
    """[B, 1, T, T]: same non-padding segment (0 = padding), and j <= i if causal."""
    seg = segment_ids_BxT
    mask = (seg[:, :, None] == seg[:, None, :]) & (seg[:, None, :] != 0)
    if causal:
        t = seg.shape[1]
        mask &= jnp.tril(jnp.ones((t, t), bool))[None]
    return mask[:, None]


def cache_attention_mask(positions_BxT: jax.Array, max_len: int, causal: bool,
                         valid_Bx1: jax.Array | None = None) -> jax.Array:
    """[B, 1, T, S] over cache slots: slot s is visible to the query at position p if s <= p."""
    slots = jnp.arange(max_len)
    if causal:
        mask = slots[None, None, :] <= positions_BxT[:, :, None]
    else:  # bidirectional over everything written so far
        limit = jnp.max(positions_BxT, axis=1, keepdims=True)[:, :, None]
        mask = jnp.broadcast_to(slots[None, None, :] <= limit,
                                positions_BxT.shape + (max_len,))
    return mask[:, None]


class Attention(nnx.Module):
    """Multi-head attention with grouped-query heads; self- or cross-attention."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs, cross: bool = False):
        dt, pdt = dtype_of(cfg.dtype), dtype_of(cfg.param_dtype)
        e, h, k, d = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        kw = dict(rngs=rngs, use_bias=cfg.use_bias, dtype=dt, param_dtype=pdt)
        self.q = Dense(e, (h, d), in_axes="embed", out_axes=("heads", "head_dim"), **kw)
        self.k = Dense(e, (k, d), in_axes="embed", out_axes=("kv_heads", "head_dim"), **kw)
        self.v = Dense(e, (k, d), in_axes="embed", out_axes=("kv_heads", "head_dim"), **kw)
        self.o = Dense((h, d), e, in_axes=("heads", "head_dim"), out_axes="embed", **kw)
        self.use_rope = cfg.position == "rope" and not cross
        self.cfg = cfg

    def __call__(self, x_BxTxE, mask_Bx1xTxS, *, causal=False, positions_BxT=None,
                 kv_input_BxSxE=None, cache_k=None, cache_v=None):
        """Returns (output [B, T, E], updated cache_k, cache_v or None); the mask and
        `causal` are `dot_product_attention`'s."""
        kv_in = x_BxTxE if kv_input_BxSxE is None else kv_input_BxSxE
        q = constrain(self.q(x_BxTxE), ("batch", "length", "act_heads", "head_dim"))
        k = constrain(self.k(kv_in), ("batch", "length", "act_kv_heads", "head_dim"))
        v = constrain(self.v(kv_in), ("batch", "length", "act_kv_heads", "head_dim"))
        if self.use_rope:
            inv_freq = rope_inv_freq(self.cfg)  # a constant under jit, not a parameter
            q = apply_rope(q, positions_BxT, inv_freq)
            k = apply_rope(k, positions_BxT, inv_freq)
        if cache_k is not None:
            rows = jnp.arange(k.shape[0])[:, None]
            # [B, K, S, D] caches; the write's [B, T, K, D] values land at slots positions.
            cache_k = cache_k.at[rows, :, positions_BxT].set(k.astype(cache_k.dtype))
            cache_v = cache_v.at[rows, :, positions_BxT].set(v.astype(cache_v.dtype))
            k, v = jnp.swapaxes(cache_k, 1, 2), jnp.swapaxes(cache_v, 1, 2)
        out = dot_product_attention(q, k, v, mask_Bx1xTxS, causal=causal,
                                    kernel=self.cfg.attention)
        return self.o(out), cache_k, cache_v


class MLP(nnx.Module):
    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        dt, pdt = dtype_of(cfg.dtype), dtype_of(cfg.param_dtype)
        kw = dict(rngs=rngs, use_bias=cfg.use_bias, dtype=dt, param_dtype=pdt)
        self.kind = cfg.mlp_type
        self.up = Dense(cfg.d_model, cfg.mlp_dim, in_axes="embed", out_axes="mlp", **kw)
        self.gate = (Dense(cfg.d_model, cfg.mlp_dim, in_axes="embed", out_axes="mlp", **kw)
                     if cfg.mlp_type == "swiglu" else None)
        self.down = Dense(cfg.mlp_dim, cfg.d_model, in_axes="mlp", out_axes="embed", **kw)

    def __call__(self, x):
        if self.kind == "swiglu":
            h = jax.nn.silu(self.gate(x)) * self.up(x)
        else:  # exact (erf) GELU, as wav2vec2 uses
            h = jax.nn.gelu(self.up(x), approximate=False)
        h = constrain(h, ("batch", "length", "act_mlp"))
        return self.down(h)


class Block(nnx.Module):
    """Self-attention, optional cross-attention, MLP; pre- or post-norm; optional adaLN-Zero."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        dt, pdt = dtype_of(cfg.dtype), dtype_of(cfg.param_dtype)
        norm = lambda: make_norm(cfg.norm_type, cfg.d_model, cfg.norm_eps, rngs=rngs, dtype=dt,
                                 param_dtype=pdt)
        self.cfg = cfg
        self.attn_norm = norm()
        self.attn = Attention(cfg, rngs=rngs)
        self.cross_norm = norm() if cfg.cross_attention else None
        self.cross = Attention(cfg, rngs=rngs, cross=True) if cfg.cross_attention else None
        self.mlp_norm = norm()
        self.mlp = MLP(cfg, rngs=rngs)
        # adaLN-Zero: shift, scale and gate for the attention and MLP sublayers, zero-initialised
        # so every conditioned block starts as the identity.
        self.modulation = (Dense(cfg.cond_dim, (6, cfg.d_model), in_axes="cond",
                                 out_axes=(None, "embed"), rngs=rngs, use_bias=True, dtype=dt,
                                 param_dtype=pdt, kernel_init=nnx.initializers.zeros)
                           if cfg.cond_dim else None)

    def _sublayer(self, x, norm, fn, mod):
        if self.cfg.norm_position == "post":
            return norm(x + fn(x))
        h = norm(x)
        if mod is None:
            return x + fn(h)
        shift, scale, gate = mod
        h = h * (1 + scale[:, None]) + shift[:, None]
        return x + gate[:, None] * fn(h)

    def __call__(self, x, self_mask, *, causal=False, positions=None, context=None,
                 context_mask=None, cond=None, cache_k=None, cache_v=None):
        mods = [None, None]
        if self.modulation is not None:
            m = self.modulation(jax.nn.silu(cond))  # [B, 6, E]
            mods = [(m[:, 0], m[:, 1], m[:, 2]), (m[:, 3], m[:, 4], m[:, 5])]
        new_cache = {}

        def attn(h):
            out, new_cache["k"], new_cache["v"] = self.attn(
                h, self_mask, causal=causal, positions_BxT=positions, cache_k=cache_k,
                cache_v=cache_v)
            return out

        x = self._sublayer(x, self.attn_norm, attn, mods[0])
        if self.cross is not None:
            cross = lambda h: self.cross(h, context_mask, kv_input_BxSxE=context)[0]
            x = self._sublayer(x, self.cross_norm, cross, None)
        x = self._sublayer(x, self.mlp_norm, self.mlp, mods[1])
        x = constrain(x, ("batch", "length", "act_embed"))
        return x, new_cache.get("k"), new_cache.get("v")


REMAT_POLICIES = {
    "full": None,  # save nothing: recompute the whole block in the backward pass
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class Transformer(nnx.Module):
    """The stack of blocks plus the final norm, over embeddings [B, T, E]."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        if cfg.scan_layers:
            @nnx.split_rngs(splits=cfg.num_layers)
            @nnx.vmap(in_axes=(0,), out_axes=0)
            def make_stack(rngs):
                return Block(cfg, rngs=rngs)

            self.blocks = make_stack(rngs)  # one Block whose params have a leading layers dim
        else:
            self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.final_norm = (make_norm(cfg.norm_type, cfg.d_model, cfg.norm_eps, rngs=rngs,
                                     dtype=dtype_of(cfg.dtype), param_dtype=dtype_of(cfg.param_dtype))
                           if cfg.final_norm else None)

    def __call__(self, x_BxTxE, *, positions=None, segment_ids=None, context=None,
                 context_mask=None, cond=None, cache: KVCache | None = None):
        """Runs the stack. Returns (hidden [B, T, E], updated KVCache or None).

        positions [B, T] default to 0..T-1; segment_ids [B, T] (0 = padding) default to
        all ones; context [B, S, E] with context_mask [B, S] feeds cross-attention;
        cond [B, cond_dim] feeds adaptive norms; with `cache`, token t is written to
        slot positions[b, t] and attends to slots <= its position.
        """
        cfg = self.cfg
        b, t = x_BxTxE.shape[:2]
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(t), (b, t))
        # Without a cache, causality goes to the kernel as a flag (a fused kernel skips the
        # masked blocks) and only packed segments or padding need a dense mask.
        causal = cfg.causal and cache is None
        if cache is not None:
            self_mask = cache_attention_mask(positions, cache.max_len, cfg.causal)
        elif segment_ids is not None:
            self_mask = self_attention_mask(segment_ids, causal=False)
        else:
            self_mask = None
        cross_mask = None
        if context is not None and context_mask is not None:
            cross_mask = context_mask[:, None, None, :].astype(bool)  # [B, 1, 1, S]
        x = constrain(x_BxTxE.astype(dtype_of(cfg.dtype)), ("batch", "length", "act_embed"))
        kwargs = dict(causal=causal, positions=positions, context=context,
                      context_mask=cross_mask, cond=cond)

        def run_block(block, x, ck, cv):
            return block(x, self_mask, cache_k=ck, cache_v=cv, **kwargs)

        if cfg.remat != "none":
            run_block = nnx.remat(run_block, policy=REMAT_POLICIES[cfg.remat])

        new_k, new_v = [], []
        if cfg.scan_layers:
            graphdef, stacked = nnx.split(self.blocks)

            def body(x, layer):
                state, ck, cv = layer
                x, ck, cv = run_block(nnx.merge(graphdef, state), x, ck, cv)
                return x, (ck, cv)

            xs = (stacked, None if cache is None else cache.k, None if cache is None else cache.v)
            x, (ks, vs) = jax.lax.scan(body, x, xs)
            new_cache = None if cache is None else KVCache(ks, vs)
        else:
            for i, block in enumerate(self.blocks):
                ck = None if cache is None else cache.k[i]
                cv = None if cache is None else cache.v[i]
                x, ck, cv = run_block(block, x, ck, cv)
                new_k.append(ck)
                new_v.append(cv)
            new_cache = None if cache is None else KVCache(tuple(new_k), tuple(new_v))
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, new_cache


# ----------------------------------------------------------------------------- accounting


def matmul_params_per_layer(cfg: TransformerConfig) -> int:
    e, h, k, d, m = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.mlp_dim
    attn = e * h * d * 2 + e * k * d * 2
    mlp = e * m * (3 if cfg.mlp_type == "swiglu" else 2)
    cross = attn if cfg.cross_attention else 0
    return attn + mlp + cross


def train_flops(cfg: TransformerConfig, batch: int, seq_len: int, head_params: int = 0) -> float:
    """FLOPs of one forward+backward pass (MaxText's accounting).

    6 * tokens * matmul parameters, plus attention 12 * B * S^2 * H * D per layer,
    halved under a causal mask. `head_params` adds an output projection (d_model * vocab).
    """
    tokens = batch * seq_len
    dense = 6 * tokens * (matmul_params_per_layer(cfg) * cfg.num_layers + head_params)
    attn = 12 * batch * seq_len**2 * cfg.num_heads * cfg.head_dim * cfg.num_layers
    if cfg.causal:
        attn /= 2
    return float(dense + attn)


def replace(cfg: TransformerConfig, **changes) -> TransformerConfig:
    return dataclasses.replace(cfg, **changes)
