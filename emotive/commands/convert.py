"""`emotive convert hf-llama SRC OUT [--preset-like NAME]`: public checkpoints -> emotive ones.

Writes OUT/checkpoints/0/{state,config}, a step folder like those `emotive train`
writes, so `emotive.train.checkpoint.restore_params` reads its parameters.

Until the TTS config exists, the carrier of the language-model config is the toy_lm
experiment config (`ToyLMConfig`): its `model` section is the imported transformer and
its data section says `num_symbols = vocab_size - 4` (toy_lm's four reserved ids plus
the payload alphabet), so `data.vocab_size` is the Hugging Face vocabulary size. The
toy_lm task builds an untied CausalLM, so tied embeddings are stored untied (the output
head is the embedding transposed), which gives the same logits. The state holds only
`step` and `params`, with empty optimiser state: the checkpoint starts fine-tuning or
inference, it does not resume a training run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib

from emotive.errors import UserError

FORMATS = ("hf-llama",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=FORMATS,
                        help="source format: hf-llama = a Hugging Face LlamaForCausalLM folder "
                        "with config.json and *.safetensors")
    parser.add_argument("src", help="the source checkpoint directory")
    parser.add_argument("out", help="output run directory; the checkpoint goes to "
                        "OUT/checkpoints/0")
    parser.add_argument("--preset-like", default=None, metavar="NAME",
                        help="take the training, optimiser and mesh sections and the runtime "
                        "model settings (scan_layers, remat, dtypes) from this toy_lm preset "
                        "(e.g. 1b); default: the toy_lm defaults with an unscanned fp32 model")


def convert_hf_llama(src: str | pathlib.Path, out: str | pathlib.Path,
                     preset_like: str | None = None) -> pathlib.Path:
    """Imports the Hugging Face Llama at `src` and saves it under `out`; returns the step dir."""
    from emotive import configs
    from emotive.configs import base
    from emotive.configs.toy_lm import ToyLMConfig

    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"OUT {out} is a file; pass a directory for the converted run")
    ckpt_dir = out / "checkpoints"
    if ckpt_dir.is_dir() and any(p.name.isdigit() for p in ckpt_dir.iterdir()):
        raise UserError(f"{ckpt_dir} already holds checkpoints; choose a new OUT directory")
    like = ToyLMConfig() if preset_like is None else configs.load("toy_lm", preset_like)

    # Heavy imports only once the arguments are known to be sensible.
    import jax
    import numpy as np
    from flax import nnx

    from emotive.hub.hf_llama import import_hf_llama
    from emotive.train.checkpoint import Checkpointer

    model, info = import_hf_llama(src, dtype=like.model.param_dtype,
                                  scan_layers=like.model.scan_layers)
    if info.vocab_size < 5:
        raise UserError(f"vocab_size={info.vocab_size} is too small for the toy_lm carrier "
                        "config, which reserves 4 ids")
    model_cfg = dataclasses.replace(info.config, remat=like.model.remat, dtype=like.model.dtype)
    cfg = dataclasses.replace(
        like, model=model_cfg,
        data=dataclasses.replace(like.data, num_symbols=info.vocab_size - 4))
    base.check(cfg)  # every section, as for any built config
    params = nnx.state(model, nnx.Param).to_pure_dict()
    if info.tie_embeddings:
        embedding = np.asarray(params["embed"]["embedding"])
        params["head"] = {"kernel": jax.device_put(np.ascontiguousarray(embedding.T))}
    state = {"step": jax.device_put(np.int32(0)), "params": {"model": params}, "opt": {},
             "rest": {}}
    ckpt = Checkpointer(ckpt_dir, keep=1, async_save=False)
    ckpt.save(0, state, None, base.to_dict(cfg))
    ckpt.close()
    out.mkdir(parents=True, exist_ok=True)
    # Keep the source config for what the carrier cannot hold (token ids, max length).
    (out / "hf_config.json").write_text(json.dumps(info.hf_config, indent=2) + "\n")
    count = sum(int(x.size) for x in jax.tree.leaves(params))
    step_dir = ckpt_dir / "0"
    print(f"converted {src} ({count:,} parameters, {model_cfg.num_layers} layers, vocabulary "
          f"{info.vocab_size}, weights {'/'.join(info.source_dtypes)}) to {step_dir}")
    return step_dir


def run(args: argparse.Namespace) -> int:
    if args.format == "hf-llama":
        convert_hf_llama(args.src, args.out, args.preset_like)
    return 0
