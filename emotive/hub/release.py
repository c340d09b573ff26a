"""`emotive release`: a trained run -> a self-verifying bundle with a model card.

    release("runs/ser-base", "releases/ser-judge", eval_reports=["runs/ser-base/eval-ser-test-3000"])
    release("runs/tts-small", "releases/tts-small", dtype="bfloat16", codec="runs/codec-base")

The bundle (format: emotive.infer.bundle) holds the released module's parameters and
non-parameter variables only (no optimiser or iterator state) as safetensors, sharded above
`shard_bytes` (emotive/hub/weights.py); config.json; a TTS run's vocabulary (tts_vocab.json,
tokenizer.json); the models it needs inside it, each a bundle of its own (a TTS pipeline's
codec in codec/ with `codec=`, a motion_ldm run's VAE, speaker encoder and recogniser in
vae/, speaker/, asr/: emotive/hub/nested.py); README.md, a model card whose figures come
from the eval report JSON files given (emotive/hub/card.py); with `hf_llama=True` (TTS
only) hf-llama/, the LM as a transformers LlamaForCausalLM (emotive/hub/hf_tts_export.py);
and SHA256SUMS over everything (nested bundles and hf-llama/ included, so `emotive bundle
verify OUT` checks them too).

Multi-host runs: every process runs the release (the weights are gathered leaf by leaf, a
collective); only process 0 writes, into OUT.partial, renamed to OUT when complete, so a
half-written bundle never looks finished.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import jax

from emotive import registry
from emotive.configs import base
from emotive.errors import UserError
from emotive.hub.card import CARDS, read_report, write_card
from emotive.hub.hf_tts_export import HF_LLAMA_DIR, check_hf_llama, write_hf_llama
from emotive.hub.nested import CODEC_DIR, copy_bundle, motion_models, with_models
from emotive.hub.weights import write_weights
from emotive.infer import bundle
from emotive.train.checkpoint import latest_step_dir, read_config

DEFAULT_SHARD_BYTES = 2 * 10**9  # model-0000i-of-0000n.safetensors above this
DTYPES = ("float32", "bfloat16")


def _read_run(run) -> tuple[pathlib.Path, object]:
    """(newest step folder, config) of a run of a family that has a card and a predictor."""
    step_dir = latest_step_dir(pathlib.Path(run).absolute())
    raw = read_config(step_dir)
    family = raw.get("task")
    if family not in CARDS:
        have = ", ".join(CARDS)
        raise UserError(f"{run} is a {family!r} run; `emotive release` takes runs of {have}")
    if registry.family(family).predictor is None:
        raise UserError(f"family {family!r} has no predictor to load a bundle with")
    return step_dir, base.from_dict(bundle.config_class(family), raw)


def _prepare_out(out: pathlib.Path) -> pathlib.Path:
    """OUT.partial, made empty by process 0; UserError when OUT exists and is not empty."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; pass a new folder (bundles "
                        "are never overwritten)")
    partial = out.with_name(out.name + ".partial")
    if jax.process_index() == 0:
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
    return partial


def _finish(partial: pathlib.Path, out: pathlib.Path) -> None:
    """OUT.partial renamed to OUT: the bundle is complete."""
    if out.exists():
        out.rmdir()  # empty (checked before)
    os.replace(partial, out)


def _sync(name: str) -> None:
    """Waits for every process (several processes only)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _add_nested(root, where: pathlib.Path, source, task: str, label: str, reports, dtype,
                shard_bytes) -> None:
    """A model a bundle holds in subfolder `where`: a bundle of `task` copied (verified; a
    download's .cache/huggingface left out), or a run of `task` released there. `label`
    names the source in errors ("--codec", "vae.ckpt=...")."""
    if bundle.is_bundle(source):
        if root is not None:
            copy_bundle(source, where, task, label)
        return
    step_dir = latest_step_dir(pathlib.Path(source).absolute())
    if read_config(step_dir).get("task") != task:
        raise UserError(f"{label} {source} is not a {task} run or bundle")
    release(source, where, eval_reports=reports, dtype=dtype, shard_bytes=shard_bytes)


def release(run, out, *, eval_reports=(), dtype: str = "float32",
            shard_bytes: int | None = DEFAULT_SHARD_BYTES, codec=None,
            codec_eval_reports=(), hf_llama: bool = False,
            role: str | None = None) -> pathlib.Path:
    """Writes the bundle of `run`'s newest checkpoint to `out` (a new folder); returns it.

    `eval_reports`: report.json files (or their folders) of `emotive eval FAMILY` whose
    figures the card states. `dtype="bfloat16"` stores floating parameters as BF16 (loading
    casts them back). `codec` (TTS only): a codec run or codec bundle copied into codec/, so
    the bundle speaks alone (`emotive.load(bundle)`, `emotive tts --bundle`). `hf_llama`
    (TTS only) adds hf-llama/, the LM as a transformers LlamaForCausalLM (write_hf_llama),
    stored in `dtype`. `role` (a key of bundle.ROLES: judge, teacher, verifier, product) is
    stated in the card; `emotive search` refuses a judge as a verifier.
    """
    if role is not None and role not in bundle.ROLES:
        raise UserError(f"--role must be one of {', '.join(bundle.ROLES)}, got {role!r}")
    if dtype not in DTYPES:
        raise UserError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    step_dir, cfg = _read_run(run)
    family = cfg.task
    if codec is not None and family != "tts":
        raise UserError(f"a codec goes into TTS bundles only; {run} is a {family} run")
    if hf_llama:
        check_hf_llama(cfg)  # before any work: a TTS LM of Llama's shape
    step = int(step_dir.name) if step_dir.name.isdigit() else 0
    reports = [read_report(p, family) for p in eval_reports]  # bad input before any work
    for r in reports:
        if r["step"] is not None and r["step"] != step:
            raise UserError(f"--eval {r['file']} evaluated step {r['step']}, but the released "
                            f"checkpoint is step {step}; evaluate the checkpoint released")
    vocab = None
    if family == "tts":
        from emotive.data.pipelines.tts import read_checkpoint_vocab

        vocab = read_checkpoint_vocab(step_dir)
    models = motion_models(cfg, step_dir) if family == "motion_ldm" else []
    recorded = saved_cfg = cfg  # as the run recorded it; what config.json holds
    if models:  # the run's paths build the model here; the bundle names its subfolders
        cfg = with_models(cfg, {key: str(path) for key, _, _, path, _ in models})
        saved_cfg = with_models(cfg, {key: sub for key, sub, *_ in models})
    out = pathlib.Path(out).absolute()
    partial = _prepare_out(out)
    root = partial if jax.process_index() == 0 else None
    try:
        counts = write_weights(root, step_dir, cfg, dtype=dtype, shard_bytes=shard_bytes,
                               step=step)
        codec_note = ""
        if codec is not None:
            _add_nested(root, partial / CODEC_DIR, codec, "codec", "--codec",
                        codec_eval_reports, dtype, shard_bytes)
            codec_note = " The codec it speaks through is in `codec/` (a bundle of its own)."
        note, extra_files = "", ()
        for key, sub, task, path, what in models:
            _add_nested(root, partial / sub, path, task, key, (), dtype, shard_bytes)
        if models:
            note = (" It holds the models it needs, each a bundle of its own: "
                    + ", ".join(f"{what} in `{sub}/`" for _, sub, _, _, what in models) + ".")
            extra_files = tuple(f"- `{sub}/`: {what}, a `{task}` bundle (config.json's "
                                f"`{key}` names it)" for key, sub, task, _, what in models)
        if root is not None:
            (root / bundle.CONFIG_FILE).write_text(base.to_json(saved_cfg) + "\n")
            if vocab is not None:
                vocab.save(root)
            if hf_llama:  # process 0 alone: it reads back the weights it just wrote
                write_hf_llama(root, out.name, cfg, vocab, dtype=dtype,
                               shard_bytes=shard_bytes, counts=counts,
                               has_codec=codec is not None)
                extra_files = (f"- `{HF_LLAMA_DIR}/`: the language model as a transformers "
                               "`LlamaForCausalLM` in Llasa's layout, with this vocabulary; "
                               f"see `{HF_LLAMA_DIR}/README.md`",)
            write_card(root / bundle.CARD_FILE, out.name, family, recorded, step=step,
                       dtype=dtype, counts=counts, reports=reports, source=step_dir,
                       codec_note=codec_note, extra_files=extra_files, note=note, role=role)
            bundle.write_sums(root)
            _finish(partial, out)
    finally:
        if root is not None and partial.exists():
            shutil.rmtree(partial)  # a failed release leaves nothing that looks like a bundle
    _sync("emotive_release_done")
    return out
