"""Hugging Face Wav2Vec2 import: a checkpoint directory -> `SpeechEmotionModel`.

Reads config.json plus safetensors (one `model.safetensors`, an index with shards, or
loose `*.safetensors`); pickled PyTorch files are refused, never unpickled. Works for a
bare `Wav2Vec2Model` and for audeering's `EmotionModel`, whose encoder keys carry a
`wav2vec2.` prefix and whose regression head is

    classifier.dense.weight [E, E], classifier.dense.bias [E]      (Linear, then tanh)
    classifier.out_proj.weight [3, E], classifier.out_proj.bias [3] (arousal, dominance, valence)

Encoder keys (torch Linear weights are [out, in]; conv weights [out, in / groups, K]):

    feature_extractor.conv_layers.{i}.conv.weight [C_i, C_i-1, K_i] (.bias with conv_bias)
    feature_extractor.conv_layers.{i}.layer_norm.weight/bias [C_i]  (layer: every i;
                                                                     group: i = 0, GroupNorm)
    feature_projection.layer_norm.weight/bias [C], feature_projection.projection.* [E, C]
    encoder.pos_conv_embed.conv.{weight_g [1, 1, K], weight_v [E, E/G, K]}, or the same as
        parametrizations.weight.original0/original1, or an already folded .weight; .bias [E]
    encoder.layer_norm.weight/bias [E]  (stable: after the blocks; base: before them)
    encoder.layers.{l}.attention.{q,k,v,out}_proj.weight/bias [E, E]
    encoder.layers.{l}.layer_norm / final_layer_norm.weight/bias [E]
    encoder.layers.{l}.feed_forward.intermediate_dense [M, E], output_dense [E, M]

The positional conv's weight norm (`weight_norm(conv, dim=2)`: one norm per kernel tap)
is folded into one kernel: w = g * v / ||v||, the norm over the output and input dims.
The categorical head never comes from a checkpoint: it is freshly initialised.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import numpy as np
from flax import nnx

from emotive.configs.classifiers import EmotionHeadConfig, Wav2Vec2Config, wav2vec2_transformer
from emotive.errors import UserError
from emotive.hub.hf_files import CheckpointTensors, read_hf_config, weight_files
from emotive.hub.tensors import (NP_DTYPES, HFTensor, build_model, check_import_dtype, listing,
                                 put, to_pure)
from emotive.models.ser import EmotionHeads, SpeechEmotionModel

PREFIX = "wav2vec2."
POS = "encoder.pos_conv_embed.conv."
# Weight-norm spellings (magnitude g, direction v): torch.nn.utils.weight_norm, then the
# newer torch.nn.utils.parametrizations.weight_norm.
WEIGHT_NORM_KEYS = (("weight_g", "weight_v"),
                    ("parametrizations.weight.original0", "parametrizations.weight.original1"))
# Present in some checkpoints, never part of our model: pre-training and other task heads.
IGNORED_PREFIXES = ("masked_spec_embed", "quantizer.", "project_hid.", "project_q.", "lm_head.",
                    "projector.")
# Hugging Face's Wav2Vec2Config defaults, for keys a config.json leaves out.
HF_DEFAULTS = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                   intermediate_size=3072, hidden_act="gelu", layer_norm_eps=1e-5,
                   feat_extract_norm="group", feat_extract_activation="gelu",
                   conv_dim=(512,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2),
                   conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_bias=False,
                   num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
                   do_stable_layer_norm=False, add_adapter=False, adapter_attn_dim=None)


@dataclasses.dataclass(frozen=True)
class HFWav2Vec2Info:
    """What an import found: our config, where the weights came from, what was skipped."""

    config: Wav2Vec2Config
    with_head: bool  # True: the regression head came from the checkpoint
    weight_norm: str  # the positional conv's key spelling: weight_g/weight_v, ..., or folded
    source_dtypes: tuple[str, ...]
    files: tuple[str, ...]
    ignored_keys: tuple[str, ...]
    hf_config: dict


# ----------------------------------------------------------------------------- config


def wav2vec2_config_from_hf(hf: dict, *, dtype: str = "float32",
                            num_emotions: int = 8) -> Wav2Vec2Config:
    """Maps a Hugging Face Wav2Vec2 config.json dict to our Wav2Vec2Config."""
    if hf.get("model_type") != "wav2vec2":
        raise UserError(f"config.json has model_type={hf.get('model_type')!r}; only 'wav2vec2' "
                        "checkpoints can be imported")
    check_import_dtype(dtype)
    c = {**HF_DEFAULTS, **hf}
    for key in ("hidden_act", "feat_extract_activation"):
        if c[key] != "gelu":
            raise UserError(f"config.json has {key}={c[key]!r}; only exact 'gelu' is supported")
    if c["add_adapter"] or c["adapter_attn_dim"] is not None:
        raise UserError("config.json enables adapters (add_adapter / adapter_attn_dim), which "
                        "emotive's wav2vec2 encoder does not have")
    n = len(c["conv_dim"])
    if "num_feat_extract_layers" in hf and hf["num_feat_extract_layers"] != n:
        raise UserError(f"config.json has num_feat_extract_layers={hf['num_feat_extract_layers']} "
                        f"but {n} conv_dim entries")
    e, heads = int(c["hidden_size"]), int(c["num_attention_heads"])
    if e % heads:
        raise UserError(f"config.json has hidden_size={e} not divisible by "
                        f"num_attention_heads={heads}")
    stable = bool(c["do_stable_layer_norm"])
    eps = float(c["layer_norm_eps"])
    cfg = Wav2Vec2Config(
        conv_dim=tuple(int(x) for x in c["conv_dim"]),
        conv_kernel=tuple(int(x) for x in c["conv_kernel"]),
        conv_stride=tuple(int(x) for x in c["conv_stride"]),
        conv_bias=bool(c["conv_bias"]), feat_extract_norm=c["feat_extract_norm"],
        pos_conv_kernel=int(c["num_conv_pos_embeddings"]),
        pos_conv_groups=int(c["num_conv_pos_embedding_groups"]), do_stable_layer_norm=stable,
        transformer=wav2vec2_transformer(d_model=e, num_heads=heads,
                                         mlp_dim=int(c["intermediate_size"]),
                                         num_layers=int(c["num_hidden_layers"]),
                                         stable_layer_norm=stable, norm_eps=eps, dtype=dtype,
                                         param_dtype=dtype),
        layer_norm_eps=eps, head=EmotionHeadConfig(num_emotions=num_emotions))
    cfg.validate()
    return cfg


# ----------------------------------------------------------------------------- weight map


SAME = lambda w: w  # noqa: E731
LINEAR = lambda w: w.T  # noqa: E731 - torch [out, in] -> Dense [in, out]
CONV = lambda w: w.transpose(2, 1, 0)  # noqa: E731 - torch [out, in, K] -> ours [K, in, out]


def _norm(hf: str, path: tuple, dim: int) -> list[HFTensor]:
    return [HFTensor(f"{hf}.weight", path + ("scale",), (dim,), SAME),
            HFTensor(f"{hf}.bias", path + ("bias",), (dim,), SAME)]


def _linear(hf: str, path: tuple, n_in: int, n_out: int, out_split: tuple | None = None,
            in_split: tuple | None = None) -> list[HFTensor]:
    """A torch Linear as a Dense whose output (or input) dim may be split into (heads, dim)."""
    def weight(w):
        k = w.T
        if out_split:
            k = k.reshape((n_in,) + out_split)
        if in_split:
            k = k.reshape(in_split + (n_out,))
        return k
    bias = (lambda b: b.reshape(out_split)) if out_split else SAME
    return [HFTensor(f"{hf}.weight", path + ("kernel",), (n_out, n_in), weight),
            HFTensor(f"{hf}.bias", path + ("bias",), (n_out,), bias)]


def _encoder_specs(cfg: Wav2Vec2Config) -> list[HFTensor]:
    """Every encoder tensor but the positional conv kernel (which needs two tensors)."""
    specs, enc = [], ("encoder",)
    in_ch = 1
    for i, (ch, k) in enumerate(zip(cfg.conv_dim, cfg.conv_kernel)):
        hf, path = f"feature_extractor.conv_layers.{i}", enc + ("convs", i)
        specs.append(HFTensor(f"{hf}.conv.weight", path + ("kernel",), (ch, in_ch, k), CONV))
        if cfg.conv_bias:
            specs.append(HFTensor(f"{hf}.conv.bias", path + ("bias",), (ch,), SAME))
        if cfg.feat_extract_norm == "layer" or i == 0:
            specs += _norm(f"{hf}.layer_norm", path + ("norm",), ch)
        in_ch = ch
    t = cfg.transformer
    e, h, d, m = t.d_model, t.num_heads, t.head_dim, t.mlp_dim
    specs += _norm("feature_projection.layer_norm", enc + ("proj_norm",), in_ch)
    specs += _linear("feature_projection.projection", enc + ("proj",), in_ch, e)
    specs.append(HFTensor(f"{POS}bias", enc + ("pos_conv", "bias"), (e,), SAME))
    final = ("transformer", "final_norm") if cfg.do_stable_layer_norm else ("input_norm",)
    specs += _norm("encoder.layer_norm", enc + final, e)
    for i in range(t.num_layers):
        hf, path = f"encoder.layers.{i}", enc + ("transformer", "blocks", i)
        for name in ("q", "k", "v"):
            specs += _linear(f"{hf}.attention.{name}_proj", path + ("attn", name), e, e,
                             out_split=(h, d))
        specs += _linear(f"{hf}.attention.out_proj", path + ("attn", "o"), e, e, in_split=(h, d))
        specs += _norm(f"{hf}.layer_norm", path + ("attn_norm",), e)
        specs += _norm(f"{hf}.final_layer_norm", path + ("mlp_norm",), e)
        specs += _linear(f"{hf}.feed_forward.intermediate_dense", path + ("mlp", "up"), e, m)
        specs += _linear(f"{hf}.feed_forward.output_dense", path + ("mlp", "down"), m, e)
    return specs


def _head_specs(cfg: Wav2Vec2Config) -> list[HFTensor]:
    e, hidden = cfg.d_model, cfg.head.hidden or cfg.d_model
    return (_linear("classifier.dense", ("heads", "adv_dense"), e, hidden)
            + _linear("classifier.out_proj", ("heads", "adv_out"), hidden, cfg.head.num_adv))


def fold_weight_norm(g: np.ndarray, v: np.ndarray) -> np.ndarray:
    """w = g * v / ||v||, one norm per kernel tap (torch's weight_norm with dim=2).

    Takes g [1, 1, K] and v [out, in, K]; returns w [out, in, K] (float32).
    """
    v64 = v.astype(np.float64)
    norm = np.sqrt(np.sum(v64 * v64, axis=(0, 1), keepdims=True))
    return (g.astype(np.float64) * v64 / norm).astype(np.float32)


# ----------------------------------------------------------------------------- import


def _check(reader: CheckpointTensors, key: str, shape: tuple[int, ...]) -> str:
    """Raises unless `key` exists with `shape` and a float dtype; returns its dtype."""
    if key not in reader.where:
        raise UserError(f"checkpoint lacks tensor {key} that its config.json implies; the "
                        "checkpoint is incomplete or not a Wav2Vec2 model")
    return reader.check(key, shape)


def _pos_conv_keys(reader: CheckpointTensors,
                   cfg: Wav2Vec2Config) -> tuple[str, tuple[str, ...]]:
    """Checks the positional conv kernel's tensors; returns (key spelling, keys: g and v, or w)."""
    e, k, g = cfg.d_model, cfg.pos_conv_kernel, cfg.pos_conv_groups
    for g_name, v_name in WEIGHT_NORM_KEYS:
        g_key, v_key = POS + g_name, POS + v_name
        if g_key in reader.where or v_key in reader.where:
            _check(reader, g_key, (1, 1, k))
            _check(reader, v_key, (e, e // g, k))
            return f"{g_name}/{v_name}", (g_key, v_key)
    if POS + "weight" in reader.where:  # weight norm already removed
        _check(reader, POS + "weight", (e, e // g, k))
        return "folded", (POS + "weight",)
    raise UserError(f"checkpoint lacks the positional conv kernel ({POS}weight_g/weight_v or "
                    f"{POS}parametrizations.weight.original0/original1)")


def _read(reader: CheckpointTensors, key: str) -> np.ndarray:
    return reader.read(key).astype(np.float32)


def _pos_conv_kernel(reader: CheckpointTensors, keys: tuple[str, ...]) -> np.ndarray:
    """The positional conv kernel as ours [K, E/G, E], weight norm folded in."""
    if len(keys) == 1:
        return CONV(_read(reader, keys[0]))
    return CONV(fold_weight_norm(_read(reader, keys[0]), _read(reader, keys[1])))


def import_hf_wav2vec2(path: str | pathlib.Path, *, with_head: bool = True,
                       dtype: str = "float32", num_emotions: int = 8,
                       seed: int = 0) -> tuple[SpeechEmotionModel, HFWav2Vec2Info]:
    """Loads a Hugging Face Wav2Vec2 checkpoint directory as our SpeechEmotionModel.

    `path` holds config.json and safetensors weights. With `with_head`, audeering's
    regression head (`classifier.dense`, `classifier.out_proj`, 3 outputs) must be present;
    without it, any head tensors are ignored and the head is freshly initialised from `seed`,
    as the categorical head (`num_emotions` classes) always is. `dtype` ("float32" or
    "bfloat16") is the parameter and compute dtype. Names, shapes and dtypes of all tensors
    are checked before any is read. Returns (model, HFWav2Vec2Info).
    """
    root = pathlib.Path(path)
    hf = read_hf_config(root)
    cfg = wav2vec2_config_from_hf(hf, dtype=dtype, num_emotions=num_emotions)
    files = weight_files(root)
    with CheckpointTensors(files, strip_prefix=PREFIX) as reader:
        specs = _encoder_specs(cfg)
        if with_head:
            head = _head_specs(cfg)
            if not all(s.hf_key in reader.where for s in head):
                raise UserError(f"{root} has no audeering regression head (classifier.dense.*, "
                                "classifier.out_proj.*); pass with_head=False to import the "
                                "encoder alone")
            specs += head
        dtypes = {_check(reader, s.hf_key, s.hf_shape) for s in specs}
        spelling, pos_keys = _pos_conv_keys(reader, cfg)
        dtypes |= {reader.meta[k][1] for k in pos_keys}
        used = {s.hf_key for s in specs} | set(pos_keys)

        def ignorable(key):
            return (key.startswith(IGNORED_PREFIXES)
                    or (not with_head and key.startswith("classifier.")))

        unexpected = reader.unused(used, ignorable)
        if unexpected:
            raise UserError(f"checkpoint has tensor(s) {listing(unexpected)} that a Wav2Vec2 "
                            "model with its config.json does not have; check the config")
        pure = to_pure(specs, lambda key: _read(reader, key), dtype)
        pos_kernel = _pos_conv_kernel(reader, pos_keys).astype(NP_DTYPES[dtype])
    put(pure, ("encoder", "pos_conv", "kernel"), np.ascontiguousarray(pos_kernel))
    # Only the heads are drawn at random; the encoder is built abstractly.
    heads = EmotionHeads(cfg.head, cfg.d_model, nnx.Rngs(seed),
                         param_dtype=NP_DTYPES[cfg.transformer.param_dtype])
    fresh = jax.tree.map(np.asarray, nnx.state(heads).to_pure_dict())
    pure["heads"] = {**fresh, **pure.get("heads", {})}
    model = build_model(lambda: SpeechEmotionModel(cfg, nnx.Rngs(seed)), pure)
    info = HFWav2Vec2Info(config=cfg, with_head=with_head, weight_norm=spelling,
                          source_dtypes=tuple(sorted(dtypes)), files=tuple(f.name for f in files),
                          ignored_keys=tuple(reader.unused(used)), hf_config=hf)
    return model, info
