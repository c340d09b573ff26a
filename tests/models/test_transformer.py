import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emotive.configs.common import TransformerConfig
from emotive.models.lm import CausalLM
from emotive.models.transformer import (KVCache, Transformer, apply_rope, rope_inv_freq,
                                        train_flops)

BASE = TransformerConfig(num_layers=2, d_model=32, num_heads=4, num_kv_heads=4, head_dim=8,
                         mlp_dim=64)


def _tokens(b, t, vocab=50, seed=0):
    return jax.random.randint(jax.random.key(seed), (b, t), 0, vocab)


@pytest.mark.parametrize("changes", [
    {},  # multi-head, causal
    {"num_kv_heads": 2},  # grouped-query 2:1
    {"num_kv_heads": 1, "mlp_type": "gelu", "norm_type": "layer", "use_bias": True},
    {"num_kv_heads": 2, "scan_layers": True, "remat": "dots"},
    {"rope_scaling_factor": 8.0, "rope_original_max_len": 16},
])
def test_kv_cache_decoding_matches_full_forward(changes):
    cfg = dataclasses.replace(BASE, **changes)
    model = CausalLM(cfg, 50, rngs=nnx.Rngs(0))
    tokens = _tokens(3, 11)
    full = model(tokens)
    cache = model.init_cache(3, 16)
    prompt = 5
    logits, cache = model(tokens[:, :prompt], positions=jnp.broadcast_to(jnp.arange(prompt),
                                                                       (3, prompt)), cache=cache)
    steps = [logits]
    for t in range(prompt, 11):
        logits, cache = model(tokens[:, t:t + 1], positions=jnp.full((3, 1), t), cache=cache)
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, 1), full, atol=2e-5, rtol=1e-5)


def test_rows_with_different_prompt_lengths_decode_independently():
    model = CausalLM(dataclasses.replace(BASE, num_kv_heads=2), 50, rngs=nnx.Rngs(1))
    tokens = _tokens(2, 8)
    # Row 1 has a 3-token prompt, right-padded to 5 with junk that its next steps overwrite.
    cache = model.init_cache(2, 8)
    _, cache = model(tokens[:, :5], positions=jnp.broadcast_to(jnp.arange(5), (2, 5)), cache=cache)
    positions = jnp.array([[5], [3]])
    step_tokens = jnp.stack([tokens[0, 5:6], tokens[1, 3:4]])
    logits, _ = model(step_tokens, positions=positions, cache=cache)
    np.testing.assert_allclose(logits[0, 0], model(tokens[:1, :6])[0, 5], atol=2e-5)
    np.testing.assert_allclose(logits[1, 0], model(tokens[1:, :4])[0, 3], atol=2e-5)


def test_packed_segments_equal_separate_sequences():
    model = CausalLM(BASE, 50, rngs=nnx.Rngs(2))
    a, b = _tokens(1, 5, seed=1), _tokens(1, 4, seed=2)
    packed = jnp.concatenate([a, b, jnp.zeros((1, 3), jnp.int32)], 1)
    segments = jnp.array([[1] * 5 + [2] * 4 + [0] * 3])
    positions = jnp.array([list(range(5)) + list(range(4)) + [0] * 3])
    out = model(packed, segment_ids=segments, positions=positions)
    np.testing.assert_allclose(out[0, :5], model(a)[0], atol=2e-5)
    np.testing.assert_allclose(out[0, 5:9], model(b)[0], atol=2e-5)


def test_bidirectional_padding_does_not_change_valid_outputs():
    cfg = dataclasses.replace(BASE, causal=False, position="none", norm_type="layer",
                              norm_position="post", final_norm=False, use_bias=True,
                              mlp_type="gelu")
    enc = Transformer(cfg, rngs=nnx.Rngs(3))
    x = jax.random.normal(jax.random.key(0), (1, 6, 32))
    padded = jnp.concatenate([x, 100 * jnp.ones((1, 4, 32))], 1)
    seg = jnp.array([[1] * 6 + [0] * 4])
    out_padded, _ = enc(padded, segment_ids=seg)
    out_alone, _ = enc(x)
    np.testing.assert_allclose(out_padded[:, :6], out_alone, atol=2e-5)
    # and bidirectional really looks ahead: changing the last token changes the first output
    changed, _ = enc(x.at[:, -1].add(1.0))
    assert not np.allclose(changed[:, 0], out_alone[:, 0])


def test_causal_model_does_not_look_ahead():
    model = CausalLM(BASE, 50, rngs=nnx.Rngs(4))
    tokens = _tokens(1, 8)
    changed = tokens.at[0, 6].set((tokens[0, 6] + 1) % 50)
    np.testing.assert_allclose(model(tokens)[0, :6], model(changed)[0, :6], atol=1e-6)


def test_cross_attention_and_adaptive_norm_conditioning():
    cfg = dataclasses.replace(BASE, causal=False, cross_attention=True, cond_dim=6)
    net = Transformer(cfg, rngs=nnx.Rngs(5))
    x = jax.random.normal(jax.random.key(1), (2, 5, 32))
    ctx = jax.random.normal(jax.random.key(2), (2, 7, 32))
    cond = jax.random.normal(jax.random.key(3), (2, 6))
    base, _ = net(x, context=ctx, cond=cond)
    # adaLN-Zero starts as identity modulation: cond has no effect at initialisation
    np.testing.assert_allclose(net(x, context=ctx, cond=2 * cond)[0], base, atol=1e-6)
    # masked context positions are ignored
    mask = jnp.array([[1] * 4 + [0] * 3] * 2, bool)
    masked, _ = net(x, context=ctx, context_mask=mask, cond=cond)
    junk = ctx.at[:, 4:].set(50.0)
    np.testing.assert_allclose(net(x, context=junk, context_mask=mask, cond=cond)[0], masked,
                               atol=2e-5)
    # after a nudge to the modulation weights, cond changes the output
    for block in net.blocks:
        block.modulation.kernel[...] = 0.1 * jnp.ones_like(block.modulation.kernel[...])
    assert not np.allclose(net(x, context=ctx, cond=cond)[0], net(x, context=ctx, cond=-cond)[0])


def test_scan_and_remat_give_the_same_outputs_and_gradients_as_a_python_loop():
    tokens = _tokens(2, 9)
    loop_model = CausalLM(BASE, 50, rngs=nnx.Rngs(7))
    scan_cfg = dataclasses.replace(BASE, scan_layers=True, remat="full")
    graph, scan_params = nnx.split(CausalLM(scan_cfg, 50, rngs=nnx.Rngs(8)), nnx.Param)
    loop_graph, loop_params = nnx.split(loop_model, nnx.Param)
    # Load the loop model's weights into the scanned stack: blocks stacked on a leading axis.
    weights = loop_params.to_pure_dict()
    weights["body"]["blocks"] = jax.tree.map(lambda *xs: jnp.stack(xs),
                                             *[weights["body"]["blocks"][i] for i in range(2)])
    nnx.replace_by_pure_dict(scan_params, weights)

    def loss(graph, params):
        return jnp.mean(nnx.merge(graph, params)(tokens) ** 2)

    v_loop, g_loop = jax.value_and_grad(loss, argnums=1)(loop_graph, loop_params)
    v_scan, g_scan = jax.value_and_grad(loss, argnums=1)(graph, scan_params)
    np.testing.assert_allclose(v_scan, v_loop, rtol=1e-5)
    g_loop = g_loop.to_pure_dict()
    g_scan = g_scan.to_pure_dict()
    np.testing.assert_allclose(g_scan["body"]["blocks"]["mlp"]["down"]["kernel"][1],
                               g_loop["body"]["blocks"][1]["mlp"]["down"]["kernel"], atol=1e-6)
    np.testing.assert_allclose(g_scan["embed"]["embedding"], g_loop["embed"]["embedding"],
                               atol=1e-6)


def test_rope_preserves_norm_and_relative_positions():
    cfg = dataclasses.replace(BASE, rope_theta=500000.0, rope_scaling_factor=32.0,
                              rope_original_max_len=8192)
    inv = rope_inv_freq(cfg)
    assert inv.shape == (4,)
    q = jax.random.normal(jax.random.key(0), (1, 1, 1, 8))
    k = jax.random.normal(jax.random.key(1), (1, 1, 1, 8))
    at = lambda x, p: apply_rope(x, jnp.array([[p]]), inv)
    np.testing.assert_allclose(jnp.linalg.norm(at(q, 7)), jnp.linalg.norm(q), rtol=1e-5)
    dot = lambda p1, p2: jnp.sum(at(q, p1) * at(k, p2))
    np.testing.assert_allclose(dot(10, 3), dot(107, 100), rtol=1e-4)


def test_every_parameter_has_logical_axes_for_each_dim():
    for cfg in (BASE, dataclasses.replace(BASE, scan_layers=True, cross_attention=True,
                                          cond_dim=4)):
        model = CausalLM(cfg, 50, rngs=nnx.Rngs(0))
        for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
            axes = var.get_metadata().get("axes")
            assert axes is not None, path
            extra = 1 if cfg.scan_layers and "blocks" in path else 0
            assert len(axes) + extra == var.ndim, (path, axes, var.shape)


def test_flop_count_matches_six_n_d_for_attention_free_share():
    cfg = dataclasses.replace(BASE, num_layers=1)
    model = CausalLM(cfg, 50, tie_embeddings=True, rngs=nnx.Rngs(0))
    matmul = sum(v.size for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))
                 if p[-1] == "kernel")
    flops = train_flops(cfg, batch=2, seq_len=4)
    attention = 12 * 2 * 16 * 4 * 8 / 2
    assert flops == 6 * 8 * matmul + attention
    per_layer = KVCache.zeros(cfg, 2, 3)
    assert len(per_layer.k) == 1 and per_layer.k[0].shape == (2, 4, 3, 8)
    stacked = KVCache.zeros(dataclasses.replace(cfg, scan_layers=True), 2, 3)
    assert stacked.k.shape == (1, 2, 4, 3, 8) and stacked.max_len == per_layer.max_len == 3
