"""Scale on paper: parameter counts against the real model and Llama, compiled memory and FLOPs."""

import json
import os
import subprocess
import sys

import jax
import pytest
from flax import nnx

from emotive import cli, configs
from emotive.models.lm import count_params
from emotive.models.transformer import train_flops
from emotive.train.scale import param_counts, scale_report
from emotive.train.state import split_abstract
from emotive.train.tasks import make_task

# Llama-3.2-1B's shape with Llasa's vocabulary, as the 1b preset has it.
LLASA_1B = dict(vocab_size=193_800, hidden_size=2048, intermediate_size=8192,
                num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                tie_word_embeddings=False)


def llama_param_count(vocab_size, hidden_size, intermediate_size, num_hidden_layers,
                      num_attention_heads, num_key_value_heads, tie_word_embeddings):
    """Closed form of Hugging Face's LlamaForCausalLM (no biases, RMSNorm scales only)."""
    head_dim = hidden_size // num_attention_heads
    attn = 2 * hidden_size * num_attention_heads * head_dim  # q and o
    attn += 2 * hidden_size * num_key_value_heads * head_dim  # k and v
    mlp = 3 * hidden_size * intermediate_size  # gate, up, down
    layer = attn + mlp + 2 * hidden_size  # two RMSNorms
    embed = vocab_size * hidden_size
    head = 0 if tie_word_embeddings else vocab_size * hidden_size
    return embed + num_hidden_layers * layer + hidden_size + head


def _counts(preset, overrides=()):
    cfg = configs.load("toy_lm", preset, list(overrides))
    model, _ = split_abstract(make_task(cfg), seed=0)
    return cfg, param_counts(model)


def test_tiny_count_matches_the_real_model():
    cfg, counts = _counts("tiny")
    real = count_params(make_task(cfg).make_model(nnx.Rngs(0)))
    assert counts["total"] == real
    parts = {k: v for k, v in counts.items() if k != "total"}
    assert sum(parts.values()) == real
    assert set(parts) == {"embedding", "layers", "final norm", "head"}
    assert parts["embedding"] == parts["head"] == cfg.data.vocab_size * cfg.model.d_model


def test_1b_count_matches_llama_closed_form():
    cfg, counts = _counts("1b")
    assert cfg.data.vocab_size == LLASA_1B["vocab_size"]
    reference = llama_param_count(**LLASA_1B)
    assert abs(counts["total"] - reference) / reference < 0.005
    assert counts["embedding"] == counts["head"] == 193_800 * 2048


def test_1b_count_matches_transformers():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(**LLASA_1B)
    with torch.device("meta"):  # shapes only: 1.8B parameters are never allocated
        model = transformers.LlamaForCausalLM(config)
    reference = sum(p.numel() for p in model.parameters())
    _, counts = _counts("1b")
    assert abs(counts["total"] - reference) / reference < 0.005


def test_small_config_compiles_on_8_devices_with_memory_and_flops():
    assert len(jax.devices()) == 8
    cfg = configs.load("toy_lm", "tiny", ["mesh.data=2", "mesh.fsdp=4", "mesh.tensor=1"])
    report = scale_report(cfg, jax.devices())
    assert report["mesh"] == {"data": 2, "fsdp": 4, "tensor": 1}
    assert report["batch"] == 8 and report["seq_len"] == cfg.data.seq_len
    memory = report["memory_per_device"]
    for key in ("argument", "output", "temporary", "peak_estimate"):
        assert memory[key] > 0, key
    expected = train_flops(cfg.model, 8, cfg.data.seq_len,
                           head_params=cfg.model.d_model * cfg.data.vocab_size)
    assert report["flops"]["analytic_per_step"] == expected
    assert report["flops"]["xla_per_device"] > 0
    # AdamW keeps two moments per parameter, sharded like it.
    per_device = report["bytes_per_device"]
    assert per_device["optimizer"] >= 2 * per_device["params"]
    assert 0 < per_device["params"] < report["bytes_all_devices"]["params"]
    json.dumps(report)  # JSON-ready


def test_1b_compiles_from_shapes_on_8_devices():
    cfg = configs.load("toy_lm", "1b", ["mesh.data=1", "mesh.fsdp=8"])
    report = scale_report(cfg, jax.devices())
    total = llama_param_count(**LLASA_1B)
    assert report["params"]["total"] == total
    assert report["batch"] == 8 and report["seq_len"] == 2049
    # fp32 master weights, split 8 ways except the (tiny) norm scales.
    per_device = report["bytes_per_device"]["params"]
    assert abs(per_device - 4 * total / 8) / (4 * total / 8) < 0.01
    assert report["memory_per_device"]["temporary"] > 0
    assert report["flops"]["analytic_per_step"] == train_flops(
        cfg.model, 8, 2049, head_params=2048 * 193_800)


def test_bad_mesh_is_one_line_error(capsys):
    flags = os.environ.get("XLA_FLAGS")
    assert cli.main(["scale", "toy_lm", "--mesh", "experts=8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "experts=8" in err and len(err.splitlines()) == 1
    assert cli.main(["scale", "toy_lm", "--mesh", "fsdp=3", "--devices", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs 3 devices" in err and len(err.splitlines()) == 1
    assert cli.main(["scale", "toy_lm", "--mesh", "fsdp=-1"]) == 2
    assert "--devices" in capsys.readouterr().err
    assert os.environ.get("XLA_FLAGS") == flags  # JAX was already up: the command left it alone


def test_cli_prints_table_and_json(tmp_path):
    out = tmp_path / "scale.json"
    env = dict(os.environ, XLA_FLAGS="")  # the command itself asks for the devices it needs
    proc = subprocess.run([sys.executable, "-m", "emotive", "scale", "toy_lm", "--preset", "tiny",
                           "--mesh", "data=2", "fsdp=2", "--set", "model.num_layers=1",
                           "--json", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "parameters" in proc.stdout and "compiled temporary / device" in proc.stdout
    report = json.loads(out.read_text())
    assert report["devices"] == 4 and report["mesh"]["fsdp"] == 2
    assert report["batch"] == 4 and report["overrides"] == ["model.num_layers=1"]
