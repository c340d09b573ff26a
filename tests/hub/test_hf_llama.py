"""Hugging Face Llama interop: logits parity with transformers, exact round trips, refusals."""

import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from safetensors.numpy import load_file, save_file  # noqa: E402

from emotive import cli  # noqa: E402
from emotive.configs import base  # noqa: E402
from emotive.configs.toy_lm import ToyLMConfig  # noqa: E402
from emotive.errors import UserError  # noqa: E402
from emotive.hub.hf_llama import (export_hf_llama, import_hf_llama,  # noqa: E402
                                  llama_config_from_hf)
from emotive.models.lm import CausalLM  # noqa: E402
from emotive.train.checkpoint import latest_step_dir, read_config, restore_params  # noqa: E402

TOL = 1e-4
SEQ_LEN = 40  # beyond the llama3 config's original_max_position_embeddings (32)

CONFIGS = {
    # (a) grouped-query attention, 4 query heads per key/value head; untied head
    "gqa": dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=8, num_key_value_heads=2),
    # (b) tied embeddings, biases, plain multi-head, head_dim != hidden / heads
    "tied": dict(vocab_size=96, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=4, head_dim=16,
                 tie_word_embeddings=True, attention_bias=True, mlp_bias=True),
    # (c) Llama-3 rope scaling: with head_dim 16 and theta 1e4 the frequencies fall into all
    # three bands (kept, blended, divided by 8) for an original length of 32
    "llama3": dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                   rope_theta=10000.0, max_position_embeddings=256,
                   rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                     high_freq_factor=4.0,
                                     original_max_position_embeddings=32)),
    # (d) odd vocabulary, Llama-3 theta, saved in shards with an index
    "odd_vocab": dict(vocab_size=1001, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1,
                      rope_theta=500000.0),
}
SHARDED = {"odd_vocab": "40KB"}  # every other config is one model.safetensors
DIFFS = {}


def _random_llama(name, **overrides):
    """A transformers Llama with every weight random (biases and norm scales too)."""
    cfg = transformers.LlamaConfig(**{**CONFIGS[name], **overrides},
                                   attn_implementation="eager")
    torch.manual_seed(sum(map(ord, name)))
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for key, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * 0.1 + (1.0 if "norm" in key else 0.0))
    return model


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """name -> (directory, transformers model), each saved once as safetensors."""
    out = {}
    for name in CONFIGS:
        model = _random_llama(name)
        path = tmp_path_factory.mktemp(name)
        shards = {"max_shard_size": SHARDED[name]} if name in SHARDED else {}
        model.save_pretrained(path, safe_serialization=True, **shards)
        out[name] = (path, model)
    return out


def _tokens(vocab, batch=2, length=SEQ_LEN, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, (batch, length))


def _torch_logits(model, tokens):
    with torch.no_grad():
        return model(torch.tensor(tokens)).logits.numpy()


@nnx.jit
def _forward(model, tokens):
    """Our logits; jitted because compiling once beats compiling each eager op per shape."""
    return model(jnp.asarray(tokens))


@nnx.jit
def _decode(model, tokens, positions, cache):
    return model(tokens, positions=positions, cache=cache)


def _params(model):
    return jax.device_get(nnx.state(model, nnx.Param).to_pure_dict())


def _assert_params_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_match_transformers(checkpoints, name):
    path, hf_model = checkpoints[name]
    if name in SHARDED:
        assert (path / "model.safetensors.index.json").is_file()
    model, info = import_hf_llama(path)
    assert info.vocab_size == CONFIGS[name]["vocab_size"]
    assert info.tie_embeddings == CONFIGS[name].get("tie_word_embeddings", False)
    tokens = _tokens(info.vocab_size)
    ref = _torch_logits(hf_model, tokens)
    diff = float(np.abs(np.asarray(_forward(model, tokens)) - ref).max())
    DIFFS[name] = diff
    print(f"{name}: max abs logit diff {diff:.2e} (logits up to {np.abs(ref).max():.2f})")
    assert diff < TOL


def test_llama3_scaling_matters_at_the_positions_tested(checkpoints):
    """Without the scaling the same weights give clearly different logits, so parity above
    really checks the llama3 frequencies."""
    _, hf_model = checkpoints["llama3"]
    plain = _random_llama("llama3", rope_scaling=None)
    plain.load_state_dict(hf_model.state_dict())
    tokens = _tokens(256)
    assert np.abs(_torch_logits(plain, tokens) - _torch_logits(hf_model, tokens)).max() > 1e-2


def test_scanned_layers_both_directions(checkpoints, tmp_path):
    path, _ = checkpoints["gqa"]
    flat, _ = import_hf_llama(path)
    scanned, info = import_hf_llama(path, scan_layers=True)
    assert info.config.scan_layers
    assert _params(scanned)["body"]["blocks"]["attn"]["q"]["kernel"].shape == (2, 64, 8, 8)
    tokens = jnp.asarray(_tokens(128))
    np.testing.assert_allclose(np.asarray(_forward(scanned, tokens)),
                               np.asarray(_forward(flat, tokens)),
                               atol=1e-5)
    export_hf_llama(scanned, tmp_path / "out")
    again, _ = import_hf_llama(tmp_path / "out")
    _assert_params_equal(_params(again), _params(flat))


@pytest.mark.parametrize("name", ["gqa", "tied", "odd_vocab"])
def test_export_round_trips_and_loads_in_transformers(checkpoints, name, tmp_path):
    path, hf_model = checkpoints[name]
    model, info = import_hf_llama(path)
    out = tmp_path / "export"
    export_hf_llama(model, out, shard_size_bytes=60_000 if name == "odd_vocab" else None)
    if name == "odd_vocab":
        index = json.loads((out / "model.safetensors.index.json").read_text())
        assert len(set(index["weight_map"].values())) > 1
    again, info_again = import_hf_llama(out)
    assert info_again.config == info.config
    _assert_params_equal(_params(again), _params(model))

    loaded = transformers.LlamaForCausalLM.from_pretrained(out, attn_implementation="eager")
    tokens = _tokens(info.vocab_size, seed=1)
    diff = np.abs(_torch_logits(loaded.eval(), tokens) - _torch_logits(hf_model, tokens)).max()
    assert diff < TOL


def test_bfloat16_export_and_import(checkpoints, tmp_path):
    path, _ = checkpoints["gqa"]
    model, _ = import_hf_llama(path)
    export_hf_llama(model, tmp_path / "bf16", dtype="bfloat16")
    again, info = import_hf_llama(tmp_path / "bf16")
    assert info.source_dtypes == ("BF16",)
    want = _params(model)["body"]["blocks"][0]["mlp"]["up"]["kernel"]
    got = _params(again)["body"]["blocks"][0]["mlp"]["up"]["kernel"]
    np.testing.assert_array_equal(got, want.astype(jnp.bfloat16).astype(np.float32))


def test_kv_cache_greedy_decoding_matches_generate(checkpoints):
    path, hf_model = checkpoints["llama3"]
    model, _ = import_hf_llama(path)
    prompt, steps = _tokens(256, batch=1, length=24, seed=2), 12  # crosses position 32
    gen = transformers.GenerationConfig(do_sample=False, max_new_tokens=steps,
                                        eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        want = hf_model.generate(torch.tensor(prompt), generation_config=gen).numpy()[0]

    cache = model.init_cache(1, prompt.shape[1] + steps)
    logits, cache = _decode(model, jnp.asarray(prompt),
                            jnp.arange(prompt.shape[1])[None], cache)
    out = list(prompt[0])
    for _ in range(steps):
        token = int(np.argmax(np.asarray(logits)[0, -1]))
        out.append(token)
        logits, cache = _decode(model, jnp.asarray([[token]]), jnp.asarray([[len(out) - 1]]),
                                cache)
    assert out == list(want)


def _restored_model(step_dir):
    cfg = base.from_dict(ToyLMConfig, read_config(step_dir))
    model_cfg = dataclasses.replace(cfg.model, dtype="float32")  # parity needs fp32 compute
    abstract = nnx.eval_shape(lambda: CausalLM(model_cfg, cfg.data.vocab_size,
                                               rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    target = {"model": jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                                    state.to_pure_dict())}
    nnx.replace_by_pure_dict(state, restore_params(step_dir, target)["model"])
    return cfg, nnx.merge(graphdef, state)


@pytest.mark.parametrize("name, preset", [("tied", None), ("gqa", "1b")])
def test_convert_command_end_to_end(checkpoints, name, preset, tmp_path, capsys):
    path, hf_model = checkpoints[name]
    args = ["convert", "hf-llama", str(path), str(tmp_path / "run")]
    args += [] if preset is None else ["--preset-like", preset]
    assert cli.main(args) == 0
    cfg, model = _restored_model(latest_step_dir(tmp_path / "run"))
    assert cfg.data.vocab_size == CONFIGS[name]["vocab_size"]
    assert cfg.model.scan_layers == (preset == "1b")
    tokens = _tokens(cfg.data.vocab_size, seed=3)
    diff = np.abs(np.asarray(_forward(model, tokens)) - _torch_logits(hf_model, tokens))
    assert diff.max() < TOL

    assert cli.main(args) == 2  # never overwrites a run
    assert "already holds checkpoints" in capsys.readouterr().err


def test_transformers_4_config_dialect():
    """Older config.json files keep rope_theta outside rope_scaling, say "type", and may
    omit head_dim."""
    hf = dict(model_type="llama", hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, vocab_size=300, rms_norm_eps=1e-5,
              rope_theta=500000.0, tie_word_embeddings=True,
              rope_scaling=dict(type="llama3", factor=32.0, low_freq_factor=1.0,
                                high_freq_factor=4.0, original_max_position_embeddings=8192))
    cfg, vocab, tied = llama_config_from_hf(hf)
    assert (cfg.head_dim, cfg.rope_theta, cfg.rope_scaling_factor) == (16, 500000.0, 32.0)
    assert (cfg.rope_original_max_len, cfg.norm_eps, vocab, tied) == (8192, 1e-5, 300, True)
    with pytest.raises(UserError, match="one use_bias switch"):
        llama_config_from_hf({**hf, "attention_bias": True})


def _edit_tensors(path, edit):
    tensors = load_file(path / "model.safetensors")
    edit(tensors)
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})


def _edit_config(path, edit):
    cfg = json.loads((path / "config.json").read_text())
    edit(cfg)
    (path / "config.json").write_text(json.dumps(cfg))


UP = "model.layers.1.mlp.up_proj.weight"
BAD_CHECKPOINTS = {
    "wrong shape": (lambda p: _edit_tensors(p, lambda t: t.update({UP: t[UP][:, :-1]})),
                    f"tensor {UP} has shape [96, 63] but config.json implies [96, 64]"),
    "missing": (lambda p: _edit_tensors(p, lambda t: t.pop(UP)), f"lacks tensor(s) {UP}"),
    "unexpected": (lambda p: _edit_tensors(p, lambda t: t.update(extra=t[UP])),
                   "has tensor(s) extra that a LlamaForCausalLM"),
    "integer": (lambda p: _edit_tensors(p, lambda t: t.update({UP: t[UP].astype(np.int8)})),
                f"tensor {UP} has dtype I8"),
    "yarn": (lambda p: _edit_config(p, lambda c: c.update(rope_parameters=dict(
        rope_type="yarn", factor=4.0, rope_theta=1e4))), "rope scaling type 'yarn'"),
    "mistral": (lambda p: _edit_config(p, lambda c: c.update(model_type="mistral")),
                "model_type='mistral'"),
    "pickle only": (lambda p: [(p / "model.safetensors").unlink(),
                               (p / "pytorch_model.bin").write_bytes(b"never unpickled")],
                    "holds only pickled PyTorch weights (pytorch_model.bin)"),
}


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_bad_checkpoints_are_refused_in_one_line(checkpoints, case, tmp_path):
    src = tmp_path / "bad"
    shutil.copytree(checkpoints["gqa"][0], src)
    edit, message = BAD_CHECKPOINTS[case]
    edit(src)
    with pytest.raises(UserError) as err:
        import_hf_llama(src)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
