"""`emotive data SUBCOMMAND`: build datasets.

    emotive data synth --preset tiny|full|wide|lexicon|heldout_voices --out DIR [--seed S] [--workers N]
    emotive data motion --preset tiny|full --speech DIR --out DIR [--seed S] [--workers N]
    emotive data build emotive_speech|audio_folder|ravdess|crema_d|esd|libritts_r|beat2|amass \
        --src DIR --out DATA_DIR
"""

from __future__ import annotations

import argparse
import importlib

# Sub-subcommand -> (module with add_arguments/run, help).
DATA_COMMANDS = {
    "synth": ("emotive.data.speech.synth",
              "synthesise the embedded emotional speech corpus (eSpeak NG)"),
    "motion": ("emotive.data.motion.synth", "plant body and face motion on a speech corpus "
               "(beats, emotion, speaker style; SMPL-X npz + ARKit-52)"),
    "build": ("emotive.data.builders", "build a TFDS array_record dataset from a folder of audio"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True,
                                parser_class=type(parser))
    for name, (module, help_text) in DATA_COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(p)


def run(args: argparse.Namespace) -> int:
    return importlib.import_module(DATA_COMMANDS[args.data_command][0]).run(args)
