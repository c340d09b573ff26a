"""`emotive release RUN OUT`: a trained run -> a self-verifying bundle with a model card.

    emotive release runs/ser-base releases/ser-judge --eval runs/ser-base/eval-ser-test-3000
    emotive release runs/tts-small releases/tts-small --dtype bfloat16 --codec runs/codec-base
    emotive release runs/tts-small releases/tts-small-hf --codec runs/codec-base --hf-llama
    emotive bundle verify releases/ser-judge

RUN is a training workdir (its newest checkpoint), its checkpoints/ or a step folder. OUT
is a new folder: model.safetensors (parameters and batch-norm statistics only; shards and
an index above --shard-gb), config.json, a TTS run's vocabulary, README.md (model card
with Hugging Face YAML front matter; its figures are read from the --eval reports, each a
folder or report.json of `emotive eval KIND`) and SHA256SUMS. --codec (TTS only) puts the
codec (a run, released alongside, or a bundle) into OUT/codec/, so `emotive tts --bundle
OUT` speaks alone. --hf-llama (TTS only) adds OUT/hf-llama/: the language model as a
transformers LlamaForCausalLM folder (Llasa's layout; --dtype applies) with the vocabulary
and a README on its ids. Every `--ckpt` and `emotive.load(OUT)` take the bundle. See
emotive/hub/release.py (multi-host: run it on every process; process 0 writes).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="training run dir, its checkpoints/ or a step dir")
    parser.add_argument("out", help="the bundle folder to write (must be new or empty)")
    parser.add_argument("--eval", action="extend", nargs="+", default=[], metavar="REPORT_DIR",
                        help="`emotive eval` output folders (or report.json files) whose "
                             "metrics the card states")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                        help="how parameters are stored (bfloat16: half the size; loading "
                             "casts back)")
    parser.add_argument("--shard-gb", type=float, default=2.0,
                        help="shard model.safetensors above this many GB (default 2)")
    parser.add_argument("--codec", default=None, help="TTS only: a codec run or bundle put "
                        "into OUT/codec/")
    parser.add_argument("--hf-llama", action="store_true",
                        help="TTS only: also write OUT/hf-llama/, the LM as a transformers "
                             "LlamaForCausalLM folder (Llasa's layout)")
    parser.add_argument("--role", default=None,
                        choices=("judge", "teacher", "verifier", "product"),
                        help="what the model is for, stated in its card: a judge scores "
                             "others in evaluations and never guides search or training")
    parser.add_argument("--codec-eval", action="extend", nargs="+", default=[],
                        metavar="REPORT_DIR",
                        help="eval reports for the codec card when --codec is a run")


def run(args: argparse.Namespace) -> int:
    from emotive.errors import UserError
    from emotive.hub.release import release
    from emotive.infer.bundle import summary

    if args.shard_gb <= 0:
        raise UserError(f"--shard-gb must be positive, got {args.shard_gb}")
    out = release(args.run, args.out, eval_reports=args.eval, dtype=args.dtype,
                  shard_bytes=int(args.shard_gb * 1e9), codec=args.codec,
                  codec_eval_reports=args.codec_eval, hf_llama=args.hf_llama,
                  role=args.role)
    info = summary(out)
    total = sum(info["files"].values())
    print(f"wrote {out}: {info['task']} bundle"
          + (f" ({info['role']})" if info["role"] else "") + f", {info['parameters']:,} parameters "
          f"({info['dtype']}), {len(info['files'])} files, {total / 2**20:.2f} MiB")
    return 0
