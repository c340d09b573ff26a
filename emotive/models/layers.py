"""Layers shared by every model: dense, embedding, norms. Each parameter carries logical axes.

Parameters are stored in `param_dtype` (fp32 master weights) and cast to the
compute `dtype` where they are used, so bf16 training needs no second copy.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def dtype_of(name: str):
    return DTYPES[name]


def param(rngs: nnx.Rngs, init, shape: Sequence[int], axes: Sequence[str | None],
          dtype=jnp.float32) -> nnx.Param:
    """An nnx.Param initialised with `init`, tagged with logical `axes` (one per dim)."""
    assert len(axes) == len(shape), (shape, axes)
    return nnx.Param(init(rngs.params(), tuple(shape), dtype), axes=tuple(axes))


def axes_of(variable: nnx.Variable) -> tuple[str | None, ...] | None:
    return variable.get_metadata().get("axes")


class Dense(nnx.Module):
    """y = x @ W (+ b) over the last `len(in_shape)` dims of x.

    `in_shape`/`out_shape` may be tuples so attention projections keep their
    heads and head_dim axes separate (and separately shardable).
    """

    def __init__(self, in_shape, out_shape, *, in_axes, out_axes, rngs: nnx.Rngs,
                 use_bias: bool = False, dtype=jnp.float32, param_dtype=jnp.float32,
                 kernel_init=None):
        self.in_shape = tuple(in_shape) if isinstance(in_shape, (tuple, list)) else (in_shape,)
        self.out_shape = tuple(out_shape) if isinstance(out_shape, (tuple, list)) else (out_shape,)
        in_axes = tuple(in_axes) if isinstance(in_axes, (tuple, list)) else (in_axes,)
        out_axes = tuple(out_axes) if isinstance(out_axes, (tuple, list)) else (out_axes,)
        fan_in = 1
        for n in self.in_shape:
            fan_in *= n
        if kernel_init is None:
            kernel_init = nnx.initializers.variance_scaling(1.0, "fan_in", "truncated_normal",
                                                            in_axis=tuple(range(len(self.in_shape))),
                                                            out_axis=tuple(range(len(self.in_shape), len(self.in_shape) + len(self.out_shape))))
        self.kernel = param(rngs, kernel_init, self.in_shape + self.out_shape, in_axes + out_axes,
                            param_dtype)
        self.bias = (param(rngs, nnx.initializers.zeros, self.out_shape, out_axes, param_dtype)
                     if use_bias else None)
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        n_in = len(self.in_shape)
        kernel = self.kernel[...].astype(self.dtype)
        # fp32 accumulation whatever the compute dtype: on CPUs with bf16 dot products
        # (AVX512-BF16) bf16 x bf16 -> fp32 runs 2-3x faster than a bf16 -> bf16 dot.
        y = jax.lax.dot_general(x.astype(self.dtype), kernel,
                                ((tuple(range(x.ndim - n_in, x.ndim)), tuple(range(n_in))), ((), ())),
                                preferred_element_type=jnp.float32).astype(self.dtype)
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        return y


class Embed(nnx.Module):
    """Token embedding table [vocab, embed]; `attend` gives tied output logits."""

    def __init__(self, vocab_size: int, dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32,
                 param_dtype=jnp.float32):
        self.embedding = param(rngs, nnx.initializers.normal(1.0), (vocab_size, dim),
                               ("vocab", "embed"), param_dtype)
        self.dtype = dtype

    def __call__(self, tokens: jax.Array) -> jax.Array:
        return jnp.take(self.embedding[...], tokens, axis=0).astype(self.dtype)

    def attend(self, x: jax.Array) -> jax.Array:
        return jnp.einsum("...d,vd->...v", x.astype(self.dtype),
                          self.embedding[...].astype(self.dtype),
                          preferred_element_type=jnp.float32).astype(self.dtype)


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, *, eps: float = 1e-6, rngs: nnx.Rngs, dtype=jnp.float32,
                 param_dtype=jnp.float32):
        self.scale = param(rngs, nnx.initializers.ones, (dim,), ("norm",), param_dtype)
        self.eps = eps
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)  # statistics in fp32 even under bf16 compute
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (y * self.scale[...].astype(jnp.float32)).astype(self.dtype)


class LayerNorm(nnx.Module):
    def __init__(self, dim: int, *, eps: float = 1e-5, rngs: nnx.Rngs, use_scale: bool = True,
                 use_bias: bool = True, dtype=jnp.float32, param_dtype=jnp.float32):
        self.scale = (param(rngs, nnx.initializers.ones, (dim,), ("norm",), param_dtype)
                      if use_scale else None)
        self.bias = (param(rngs, nnx.initializers.zeros, (dim,), ("norm",), param_dtype)
                     if use_bias else None)
        self.eps = eps
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        if self.scale is not None:
            y = y * self.scale[...].astype(jnp.float32)
        if self.bias is not None:
            y = y + self.bias[...].astype(jnp.float32)
        return y.astype(self.dtype)


def make_norm(kind: str, dim: int, eps: float, *, rngs: nnx.Rngs, dtype, param_dtype):
    if kind == "rms":
        return RMSNorm(dim, eps=eps, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
    return LayerNorm(dim, eps=eps, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
