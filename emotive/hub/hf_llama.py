"""Hugging Face Llama interop: import `LlamaForCausalLM` safetensors checkpoints, export them back.

Only safetensors are read. Pickled PyTorch files (`pytorch_model.bin`, `*.pt`) can run
arbitrary code when loaded, so they are refused, and torch is never needed.

Weight layout (a torch Linear weight is [out, in]; our Dense kernels are [in..., out...]):

    q_proj [H*D, E] -> attn.q.kernel [E, H, D]    k_proj, v_proj [K*D, E] -> [E, K, D]
    o_proj [E, H*D] -> attn.o.kernel [H, D, E]
    gate_proj, up_proj [M, E] -> [E, M]           down_proj [E, M] -> [M, E]
    embed_tokens [V, E] -> embed.embedding [V, E] lm_head [V, E] -> head.kernel [E, V]
    input_layernorm, post_attention_layernorm, norm -> attn_norm, mlp_norm, final_norm scales

Hugging Face's Llama already uses the rotate-half rotary convention that our transformer
uses, so q and k need no permutation. With scan_layers the block parameters carry a
leading layers axis; both directions stack or unstack it.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jax
import numpy as np
from flax import nnx

from emotive.configs.common import TransformerConfig
from emotive.errors import UserError
from emotive.hub.hf_files import (CheckpointTensors, read_hf_config, weight_files,
                                  write_safetensors)
from emotive.hub.tensors import (NP_DTYPES, HFTensor, build_model, check_import_dtype, listing,
                                 to_hf, to_pure)
from emotive.models.lm import CausalLM


@dataclasses.dataclass(frozen=True)
class HFLlamaInfo:
    """What an import found: our config, vocabulary, tying, and where the weights came from."""

    config: TransformerConfig
    vocab_size: int
    tie_embeddings: bool
    source_dtypes: tuple[str, ...]  # safetensors dtypes seen, e.g. ("BF16",)
    files: tuple[str, ...]  # weight files read, relative to the checkpoint directory
    ignored_keys: tuple[str, ...]  # tensors present but not needed (rotary caches, tied lm_head)
    hf_config: dict


# ----------------------------------------------------------------------------- config


def llama_config_from_hf(hf: dict, *, dtype: str = "float32",
                         scan_layers: bool = False) -> tuple[TransformerConfig, int, bool]:
    """Maps a Hugging Face Llama config.json dict to (TransformerConfig, vocab_size, tied)."""
    model_type = hf.get("model_type")
    if model_type != "llama":
        raise UserError(f"config.json has model_type={model_type!r}; only 'llama' "
                        "(LlamaForCausalLM) checkpoints can be imported")
    archs = hf.get("architectures") or ["LlamaForCausalLM"]
    if "LlamaForCausalLM" not in archs:
        raise UserError(f"config.json lists architectures {archs}; only LlamaForCausalLM "
                        "(a language model with its lm_head) can be imported")
    check_import_dtype(dtype)
    missing = [k for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                           "num_attention_heads", "vocab_size") if k not in hf]
    if missing:
        raise UserError(f"config.json lacks {', '.join(missing)}; is it a Llama config?")
    if hf.get("hidden_act", "silu") != "silu":
        raise UserError(f"config.json has hidden_act={hf['hidden_act']!r}; only silu (SwiGLU) "
                        "Llama MLPs are supported")
    attn_bias, mlp_bias = bool(hf.get("attention_bias", False)), bool(hf.get("mlp_bias", False))
    if attn_bias != mlp_bias:
        raise UserError(f"config.json has attention_bias={attn_bias} but mlp_bias={mlp_bias}; "
                        "emotive's transformer has one use_bias switch for both")
    e, heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
    head_dim = hf.get("head_dim") or e // heads  # older configs derive it
    theta, scaling = _rope_settings(hf)
    cfg = TransformerConfig(
        num_layers=int(hf["num_hidden_layers"]), d_model=e, num_heads=heads,
        num_kv_heads=int(hf.get("num_key_value_heads") or heads), head_dim=int(head_dim),
        mlp_dim=int(hf["intermediate_size"]), mlp_type="swiglu", norm_type="rms",
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)), norm_position="pre", final_norm=True,
        use_bias=attn_bias, causal=True, position="rope", rope_theta=theta, **scaling,
        scan_layers=scan_layers, dtype=dtype, param_dtype=dtype)
    cfg.validate()
    return cfg, int(hf["vocab_size"]), bool(hf.get("tie_word_embeddings", False))


def _rope_settings(hf: dict) -> tuple[float, dict]:
    """(rope_theta, TransformerConfig scaling fields) from either config.json dialect.

    transformers 5 writes `rope_parameters` (theta inside); 4.x writes `rope_theta`
    plus `rope_scaling` ("type" in old files, "rope_type" in newer ones).
    """
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if not isinstance(rope, dict) or any(isinstance(v, dict) for v in rope.values()):
        raise UserError("config.json has per-layer-type rope parameters; Llama uses one set")
    theta = float(rope.get("rope_theta", hf.get("rope_theta", 10000.0)))
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind == "default":
        return theta, {}
    if kind != "llama3":
        raise UserError(f"config.json uses rope scaling type {kind!r}; only 'default' and "
                        "'llama3' rotary embeddings are supported")
    try:
        return theta, dict(rope_scaling_factor=float(rope["factor"]),
                           rope_low_freq_factor=float(rope["low_freq_factor"]),
                           rope_high_freq_factor=float(rope["high_freq_factor"]),
                           rope_original_max_len=int(rope["original_max_position_embeddings"]))
    except KeyError as exc:
        raise UserError(f"config.json's llama3 rope scaling lacks {exc.args[0]}") from None


def hf_config_from_model(cfg: TransformerConfig, vocab_size: int, tie: bool, *,
                         dtype: str = "float32", max_position_embeddings: int | None = None,
                         extra: dict | None = None) -> dict:
    """The config.json of a LlamaForCausalLM equal to our model; raises if none exists."""
    wrong = {"mlp_type": "swiglu", "norm_type": "rms", "norm_position": "pre",
             "final_norm": True, "causal": True, "position": "rope", "cross_attention": False,
             "cond_dim": 0}
    for name, want in wrong.items():
        if getattr(cfg, name) != want:
            raise UserError(f"model.{name}={getattr(cfg, name)!r} has no Llama equivalent "
                            f"(Llama needs {want!r}); only Llama-shaped models can be exported")
    scaled = cfg.rope_scaling_factor > 0
    if max_position_embeddings is None:
        max_position_embeddings = (int(cfg.rope_original_max_len * cfg.rope_scaling_factor)
                                   if scaled else 8192)
    rope_scaling = (dict(rope_type="llama3", factor=cfg.rope_scaling_factor,
                         low_freq_factor=cfg.rope_low_freq_factor,
                         high_freq_factor=cfg.rope_high_freq_factor,
                         original_max_position_embeddings=cfg.rope_original_max_len)
                    if scaled else None)
    hf = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": vocab_size, "hidden_size": cfg.d_model,
        "intermediate_size": cfg.mlp_dim, "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim, "hidden_act": "silu", "rms_norm_eps": cfg.norm_eps,
        "max_position_embeddings": max_position_embeddings, "tie_word_embeddings": tie,
        "attention_bias": cfg.use_bias, "mlp_bias": cfg.use_bias, "attention_dropout": 0.0,
        "initializer_range": 0.02, "pretraining_tp": 1, "use_cache": True,
        "torch_dtype": dtype,
        # Both dialects, so transformers 4.x and 5.x read the same rotary settings.
        "rope_theta": cfg.rope_theta, "rope_scaling": rope_scaling,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta}
        if not scaled else {**rope_scaling, "rope_theta": cfg.rope_theta},
    }
    return {**hf, **(extra or {})}


# ----------------------------------------------------------------------------- weight map


IDENTITY = (lambda w: w), (lambda w: w)
TRANSPOSE = (lambda w: w.T), (lambda w: w.T)  # torch Linear [out, in] <-> Dense [in, out]


def _split_heads(n: int, d: int):
    """[N*D, E] <-> [E, N, D] (the q, k and v projections)."""
    return ((lambda w: w.reshape(n, d, -1).transpose(2, 0, 1)),
            (lambda k: k.transpose(1, 2, 0).reshape(n * d, -1)))


def _split_bias(n: int, d: int):
    """[N*D] <-> [N, D] (the q, k and v biases)."""
    return (lambda b: b.reshape(n, d)), (lambda b: b.reshape(n * d))


def _merge_heads(e: int, n: int, d: int):
    """[E, N*D] <-> [N, D, E] (the output projection)."""
    return ((lambda w: w.reshape(e, n, d).transpose(1, 2, 0)),
            (lambda k: k.transpose(2, 0, 1).reshape(e, n * d)))


def _tensor_specs(cfg: TransformerConfig, vocab: int, tie: bool) -> list[HFTensor]:
    """Every tensor of the LlamaForCausalLM that equals our model, in file order; the paths
    are those of an unscanned CausalLM's pure parameter dict."""
    e, h, k, d, m = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.mlp_dim
    specs = [HFTensor("model.embed_tokens.weight", ("embed", "embedding"), (vocab, e),
                      *IDENTITY)]
    bias_fns = {"q": _split_bias(h, d), "k": _split_bias(k, d), "v": _split_bias(k, d)}
    for i in range(cfg.num_layers):
        rows = [
            ("input_layernorm.weight", ("attn_norm", "scale"), (e,), IDENTITY),
            ("self_attn.q_proj.weight", ("attn", "q", "kernel"), (h * d, e), _split_heads(h, d)),
            ("self_attn.k_proj.weight", ("attn", "k", "kernel"), (k * d, e), _split_heads(k, d)),
            ("self_attn.v_proj.weight", ("attn", "v", "kernel"), (k * d, e), _split_heads(k, d)),
            ("self_attn.o_proj.weight", ("attn", "o", "kernel"), (e, h * d),
             _merge_heads(e, h, d)),
            ("post_attention_layernorm.weight", ("mlp_norm", "scale"), (e,), IDENTITY),
            ("mlp.gate_proj.weight", ("mlp", "gate", "kernel"), (m, e), TRANSPOSE),
            ("mlp.up_proj.weight", ("mlp", "up", "kernel"), (m, e), TRANSPOSE),
            ("mlp.down_proj.weight", ("mlp", "down", "kernel"), (e, m), TRANSPOSE),
        ]
        if cfg.use_bias:  # every projection then has a bias shaped like its output
            rows += [(key.replace(".weight", ".bias"), path[:-1] + ("bias",), shape[:1],
                      bias_fns.get(path[1], IDENTITY))
                     for key, path, shape, _ in rows if key.endswith("_proj.weight")]
        specs += [HFTensor(f"model.layers.{i}.{key}", ("body", "blocks", i) + path, shape, *fns)
                  for key, path, shape, fns in rows]
    specs.append(HFTensor("model.norm.weight", ("body", "final_norm", "scale"), (e,), *IDENTITY))
    if not tie:
        specs.append(HFTensor("lm_head.weight", ("head", "kernel"), (vocab, e), *TRANSPOSE))
    return specs


def _is_ignorable(key: str, tie: bool) -> bool:
    # Old exports saved the rotary inverse-frequency buffers, and some tied checkpoints
    # still carry a copy of the embedding as lm_head; neither is a parameter of ours.
    return key.endswith("rotary_emb.inv_freq") or (tie and key == "lm_head.weight")


# ----------------------------------------------------------------------------- import


def import_hf_llama(path: str | pathlib.Path, *, dtype: str = "float32",
                    scan_layers: bool = False) -> tuple[CausalLM, HFLlamaInfo]:
    """Loads a LlamaForCausalLM directory (config.json + safetensors) as our CausalLM.

    `dtype` ("float32" or "bfloat16") is the parameter and compute dtype of the result;
    `scan_layers` stacks the blocks on a leading layers axis. Every tensor's name, shape
    and dtype is checked before any weight is read. Returns (model, HFLlamaInfo).
    """
    root = pathlib.Path(path)
    hf = read_hf_config(root)
    cfg, vocab, tie = llama_config_from_hf(hf, dtype=dtype, scan_layers=scan_layers)
    specs = _tensor_specs(cfg, vocab, tie)
    files = weight_files(root)
    with CheckpointTensors(files) as tensors:
        source_dtypes = _check_tensors(specs, tensors, tie, root)
        pure = to_pure(specs, tensors.read, dtype)
    if scan_layers:
        _stack_layers(pure, cfg.num_layers)
    model = build_model(lambda: CausalLM(cfg, vocab, tie_embeddings=tie, rngs=nnx.Rngs(0)),
                        pure)
    ignored = tuple(tensors.unused({s.hf_key for s in specs}))
    info = HFLlamaInfo(config=cfg, vocab_size=vocab, tie_embeddings=tie,
                       source_dtypes=source_dtypes,
                       files=tuple(f.name for f in files), ignored_keys=ignored, hf_config=hf)
    return model, info


def _check_tensors(specs: list[HFTensor], tensors: CheckpointTensors, tie: bool,
                   root: pathlib.Path) -> tuple[str, ...]:
    """Raises on missing, unexpected, misshapen or non-float tensors; returns dtypes seen."""
    missing = [s.hf_key for s in specs if s.hf_key not in tensors.where]
    if missing:
        raise UserError(f"{root} lacks tensor(s) {listing(missing)} that its "
                        "config.json implies; the checkpoint is incomplete or not a "
                        "LlamaForCausalLM")
    unexpected = tensors.unused({s.hf_key for s in specs}, lambda k: _is_ignorable(k, tie))
    if unexpected:
        raise UserError(f"{root} has tensor(s) {listing(unexpected)} that a "
                        "LlamaForCausalLM with its config.json does not have; check the config")
    return tuple(sorted({tensors.check(s.hf_key, s.hf_shape) for s in specs}))


def _stack_layers(pure: dict, num_layers: int) -> None:
    """{0: block, 1: block, ...} -> one block whose leaves have a leading layers axis."""
    blocks = pure["body"]["blocks"]
    pure["body"]["blocks"] = jax.tree.map(lambda *xs: np.stack(xs),
                                          *[blocks[i] for i in range(num_layers)])


# ----------------------------------------------------------------------------- export


def export_hf_llama(model: CausalLM, path: str | pathlib.Path, *, dtype: str = "float32",
                    shard_size_bytes: int | None = None,
                    max_position_embeddings: int | None = None,
                    extra_config: dict | None = None) -> pathlib.Path:
    """Writes `model` as a LlamaForCausalLM directory that transformers can load.

    `dtype` ("float32", "bfloat16" or "float16") is the stored weight dtype. With
    `shard_size_bytes` the weights are split into model-0000i-of-0000n.safetensors files
    of at most that size (one larger tensor gets a file of its own) plus an index.
    `extra_config` adds or overrides config.json fields (e.g. bos_token_id). Returns the
    directory.
    """
    if dtype not in NP_DTYPES:
        raise UserError(f"export dtype must be one of {', '.join(NP_DTYPES)}, got {dtype!r}")
    root = pathlib.Path(path)
    if root.exists() and (not root.is_dir() or any(root.glob("*.safetensors"))):
        raise UserError(f"{root} already holds weights or is a file; export into a new or "
                        "empty directory")
    cfg, vocab, tie = model.cfg, model.vocab_size, model.tie_embeddings
    hf = hf_config_from_model(cfg, vocab, tie, dtype=dtype,
                              max_position_embeddings=max_position_embeddings,
                              extra=extra_config)
    pure = jax.device_get(nnx.state(model, nnx.Param).to_pure_dict())
    if cfg.scan_layers:  # unstack the leading layers axis into {0: block, 1: block, ...}
        blocks = pure["body"]["blocks"]
        pure["body"]["blocks"] = {i: jax.tree.map(lambda x, i=i: x[i], blocks)
                                  for i in range(cfg.num_layers)}
    tensors = to_hf(_tensor_specs(cfg, vocab, tie), pure, dtype)
    root.mkdir(parents=True, exist_ok=True)
    write_safetensors(tensors, root, shard_size_bytes)
    (root / "config.json").write_text(json.dumps(hf, indent=2, sort_keys=True) + "\n")
    return root

