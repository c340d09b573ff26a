"""The `emotive` command: one entry point, a subcommand per job.

Each subcommand is a (module, description) entry in `COMMANDS`; its module has
`add_arguments(parser)` and `run(args) -> int`, imported only when chosen so that
`emotive --help` stays fast. `UserError` anywhere becomes one line on stderr and
exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from emotive.errors import UserError

COMMANDS = {
    "train": ("emotive.commands.train", "train a model from a config and preset"),
    "data": ("emotive.commands.data", "build datasets (the embedded emotional speech corpus)"),
    "scale": ("emotive.commands.scale", "count parameters, compile the train step on simulated "
              "devices, report per-device memory and FLOPs"),
    "convert": ("emotive.commands.convert", "convert public checkpoints (Hugging Face Llama) "
                "to emotive checkpoints"),
    "codec": ("emotive.commands.codec", "speech codec: encode audio to codes, decode, "
              "pre-encode a dataset split, evaluate (PESQ, STOI, mel, SI-SDR)"),
    "eval": ("emotive.commands.eval", "evaluate a trained model on a held-out split: codec, "
             "ser, student, speaker, asr, tts; or search strategies"),
    "classify": ("emotive.commands.classify", "emotion of audio files: categories, arousal, "
                 "dominance, valence (ser or student checkpoint)"),
    "transcribe": ("emotive.commands.transcribe", "print the text a trained CTC recogniser "
                   "hears in audio files"),
    "tts": ("emotive.commands.tts", "speak text with a TTS LM and codec (emotion, voice prompt)"),
    "search": ("emotive.commands.search", "speak text by verifier-guided search (best-of-N, "
               "beam with process rewards, re-ranking) and report the compute used"),
    "render": ("emotive.commands.render", "stick-figure gif/mp4/png of SMPL-X motion files "
               "side by side, face blendshape plots (no Blender)"),
    "motion": ("emotive.commands.motion", "body and face motion for speech from a motion LDM "
               "(SMPL-X npz, face npz, BVH, ARKit CSV, stick-figure render)"),
    "release": ("emotive.commands.release", "a trained run -> a self-verifying bundle "
                "(safetensors, config.json, model card, SHA256SUMS)"),
    "bundle": ("emotive.commands.bundle", "verify a release bundle against its SHA256SUMS, "
               "or describe it (family, parameters, files, card metrics)"),
    "quickstart": ("emotive.commands.quickstart", "the whole pipeline on the embedded corpus: "
                   "corpus, codec, TTS LM, emotional samples, report (~9 minutes on 2 cores)"),
}


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line plus a hint, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = _Parser(prog="emotive", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # import only the module that will run
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return importlib.import_module(COMMANDS[args.command][0]).run(args) or 0
    except UserError as exc:
        print(f"emotive {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"emotive {args.command}: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())


if __name__ == "__main__":
    entry()
