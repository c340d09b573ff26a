"""The vocabulary-chunked LM loss equals masked_lm_loss, its gradients too, and needs fewer
temporaries."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emotive.configs.common import TransformerConfig
from emotive.models.lm import CausalLM
from emotive.train.losses import causal_lm_loss

B, T, V = 2, 10, 96
CFG = TransformerConfig(num_layers=1, d_model=16, num_heads=2, num_kv_heads=1, head_dim=8,
                        mlp_dim=32)
TOL = dict(atol=1e-5, rtol=1e-5)


def _model(tie_embeddings, cfg=CFG, vocab=V):
    """A CausalLM with numpy-drawn parameters: no initialiser programs to compile."""
    abstract = nnx.eval_shape(lambda: CausalLM(cfg, vocab, tie_embeddings=tie_embeddings,
                                               rngs=nnx.Rngs(0)))
    graphdef, shapes = nnx.split(abstract)
    rng = np.random.default_rng(0)
    return nnx.merge(graphdef, jax.tree.map(
        lambda x: jnp.asarray(rng.normal(0, 0.5, x.shape), x.dtype), shapes))


def _batch(seq=T, vocab=V):
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, vocab, (B, seq + 1))
    mask = (rng.random((B, seq)) < 0.7).astype(np.float32)  # some masked positions
    return {"inputs": jnp.asarray(tokens[:, :-1]), "targets": jnp.asarray(tokens[:, 1:]),
            "loss_mask": jnp.asarray(mask),
            "segment_ids": jnp.asarray(np.array([[1] * seq, [1] * (seq - 3) + [0] * 3]))}


def _loss_and_grads(model, batch, chunk):
    graphdef, params = nnx.split(model)

    def loss(p):
        out = causal_lm_loss(nnx.merge(graphdef, p), batch["inputs"], batch["targets"],
                             batch["loss_mask"], chunk=chunk, segment_ids=batch["segment_ids"])
        return out[0], out

    return jax.grad(loss, has_aux=True)(params)


@pytest.mark.parametrize("tie_embeddings", [False, True])
def test_chunked_loss_accuracy_and_gradients_equal_the_whole_vocabulary(tie_embeddings):
    model, batch = _model(tie_embeddings), _batch()
    # Half the targets are the model's own argmax, so the accuracy is compared for real.
    argmax = jax.jit(lambda m: jnp.argmax(m(batch["inputs"]), -1))(model)
    hit = np.random.default_rng(2).random((B, T)) < 0.5
    batch["targets"] = jnp.where(hit, argmax, batch["targets"])
    # 40 does not divide V = 96 (a remainder chunk of 16); 128 > V is the remainder alone.
    (ref_grads, ref), *chunked = jax.jit(
        lambda: [_loss_and_grads(model, batch, chunk) for chunk in (0, 40, 128)])()
    assert 0.2 < float(ref[1]) < 1
    for grads, out in chunked:
        np.testing.assert_allclose(out, ref, **TOL)
        for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
            np.testing.assert_allclose(g, r, **TOL)


def test_chunking_shrinks_the_compiled_train_step_temporaries():
    """A big vocabulary's fp32 logits dominate the whole-vocabulary step; chunks of 512 of
    4096 ids hold an eighth of them at a time."""
    vocab, seq = 4096, 64
    model, batch = _model(False, dataclasses.replace(CFG, d_model=8, head_dim=4), vocab), \
        _batch(seq, vocab)

    def temporaries(chunk):
        step = jax.jit(lambda m, b: _loss_and_grads(m, b, chunk))
        stats = step.lower(model, batch).compile().memory_analysis()
        return stats.temp_size_in_bytes

    whole, chunked = temporaries(0), temporaries(512)
    logits_bytes = B * seq * vocab * 4
    assert whole > logits_bytes  # the whole logits (and their gradient) are live at once
    assert chunked < whole - logits_bytes // 2, (whole, chunked)
