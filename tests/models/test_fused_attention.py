"""model.attention=fused (jax.nn.dot_product_attention) equals the einsum reference kernel.

Padding queries (fully masked rows) are compared too: both kernels average v uniformly there.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emotive.configs.base import check
from emotive.configs.common import TransformerConfig
from emotive.errors import UserError
from emotive.models.lm import CausalLM
from emotive.models.transformer import (Transformer, cache_attention_mask,
                                        dot_product_attention, self_attention_mask)

B, T, H, D = 2, 6, 4, 8
TOL = dict(atol=1e-5, rtol=1e-5)
SEGMENTS = {"padded": [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]],
            "packed": [[1, 1, 2, 2, 2, 0], [1, 2, 2, 3, 3, 3]]}


def _normal(*shape, seed=0):
    """Numpy draws: eager jax.random would compile a program per shape."""
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _qkv(kv_heads, s=T, seed=0):
    return (_normal(B, T, H, D, seed=seed), _normal(B, s, kv_heads, D, seed=seed + 100),
            _normal(B, s, kv_heads, D, seed=seed + 200))


def _masks():
    """name -> (key length, mask or None, causal)."""
    out = {"causal": (T, None, True), "bidirectional": (T, None, False)}
    for name, seg in SEGMENTS.items():
        out[f"{name} causal"] = (T, self_attention_mask(jnp.array(seg), causal=False), True)
        out[f"{name} bidirectional"] = (T, self_attention_mask(jnp.array(seg), False), False)
    context_valid = jnp.array([[1] * 9, [1] * 5 + [0] * 4], bool)
    out["cross"] = (9, context_valid[:, None, None, :], False)
    positions = jnp.array([[3, 4, 5, 6, 7, 8], [0, 1, 2, 3, 4, 5]])
    out["cache"] = (12, cache_attention_mask(positions, 12, causal=True), False)
    return out


MASKS = _masks()


def test_fused_kernel_and_its_gradients_equal_einsum_for_every_mask():
    """Every case (grouped-query heads, and multi-head when causal) in one program a kernel."""
    cases = [(name, 2) for name in MASKS if name != "padded bidirectional"] + [("causal", H)]
    inputs = [_qkv(kv_heads, MASKS[name][0], seed=i) for i, (name, kv_heads) in enumerate(cases)]
    cotangent = _normal(B, T, H, D, seed=1)

    @functools.partial(jax.jit, static_argnums=0)
    def outputs_and_grads(kernel, inputs):
        results = []
        for (name, _), qkv in zip(cases, inputs):
            _, mask, causal = MASKS[name]

            def loss(qkv):
                out = dot_product_attention(*qkv, mask, causal=causal, kernel=kernel)
                return jnp.sum(out * cotangent), out

            grads, out = jax.grad(loss, has_aux=True)(qkv)
            results.append((out, grads))
        return results

    for (name, kv_heads), ref, got in zip(cases, outputs_and_grads("einsum", inputs),
                                          outputs_and_grads("fused", inputs)):
        assert np.isfinite(got[0]).all(), name
        for r, g in zip(jax.tree.leaves(ref), jax.tree.leaves(got)):
            np.testing.assert_allclose(g, r, **TOL, err_msg=f"{name}, {kv_heads} kv heads")


CFG = TransformerConfig(num_layers=1, d_model=32, num_heads=4, num_kv_heads=2, head_dim=8,
                        mlp_dim=64)


def _pair(cls, cfg, *args):
    """The einsum and fused models with the same random parameters (drawn by numpy, so no
    initialiser programs are compiled)."""
    rng = np.random.default_rng(0)
    state, models = None, []
    for kernel in ("einsum", "fused"):
        kernel_cfg = dataclasses.replace(cfg, attention=kernel)
        graphdef, shapes = nnx.split(nnx.eval_shape(lambda: cls(kernel_cfg, *args,
                                                                rngs=nnx.Rngs(0))))
        if state is None:
            state = jax.tree.map(lambda x: jnp.asarray(rng.normal(0, 0.3, x.shape), x.dtype),
                                 shapes)
        models.append(nnx.merge(graphdef, state))
    return models


def _param_grads(model, fn):
    graphdef, params = nnx.split(model)
    return jax.grad(lambda p: fn(nnx.merge(graphdef, p)))(params)


def test_causal_lm_packed_logits_and_kv_cache_decoding_match():
    tokens = jnp.asarray(np.random.default_rng(2).integers(0, 40, (B, T)))
    segments = jnp.array(SEGMENTS["packed"])
    positions = jnp.array([[0, 1, 0, 1, 2, 0], [0, 0, 1, 0, 1, 2]])

    @jax.jit
    def run(model):
        packed = model(tokens, positions=positions, segment_ids=segments)
        cache = model.init_cache(B, 8)
        prompt, cache = model(tokens[:, :4], positions=jnp.broadcast_to(jnp.arange(4), (B, 4)),
                              cache=cache)
        step, _ = model(tokens[:, 4:5], positions=jnp.full((B, 1), 4), cache=cache)
        return packed, jnp.concatenate([prompt, step], 1)

    (ref, ref_decoded), (out, decoded) = [run(m) for m in _pair(CausalLM, CFG, 40)]
    np.testing.assert_allclose(out, ref, **TOL)
    np.testing.assert_allclose(decoded, ref_decoded, **TOL)


def test_bidirectional_padded_stack_with_cross_attention_matches():
    cfg = dataclasses.replace(CFG, causal=False, cross_attention=True, scan_layers=True)
    x, context = _normal(B, T, 32, seed=3), _normal(B, 5, 32, seed=4)
    context_mask = jnp.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    segments = jnp.array(SEGMENTS["padded"])

    @jax.jit
    def run(model):
        fn = lambda m: m(x, segment_ids=segments, context=context, context_mask=context_mask)[0]
        return fn(model), _param_grads(model, lambda m: jnp.sum(fn(m) ** 2))

    (ref, ref_grads), (out, grads) = [run(m) for m in _pair(Transformer, cfg)]
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, ref, **TOL)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(g, r, **TOL)


def test_cudnn_kernel_is_refused_where_it_cannot_run():
    with pytest.raises(UserError, match="bfloat16"):
        check(dataclasses.replace(CFG, attention="cudnn"))
    with pytest.raises(UserError, match="one of"):
        check(dataclasses.replace(CFG, attention="flash"))
