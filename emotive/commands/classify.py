"""`emotive classify IN.wav [IN2.wav ...] --ckpt DIR`: emotion of audio files, as JSON.

Prints one JSON object per file (a list for several files): the top emotion and every
category with its probability, highest first, then arousal, dominance and valence (roughly
in [0, 1]). DIR is a `ser` run or a `student` run; an A/D/V-only student prints no
categories. Files at another sample rate are resampled to 16 kHz (`resampled_from_hz` says
so), multi-channel files are mixed to mono; a missing, unreadable, empty, NaN, silent or too
short file is an error that names it. Files of any length work: past 32 s the model runs
in 28 s windows with 2 s of context, its outputs averaged by window length
(emotive.infer.emotion).
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IN",
                        help="audio files (wav, flac, ogg; any rate, resampled to 16 kHz)")
    parser.add_argument("--ckpt", required=True,
                        help="`ser` or `student` run dir, its checkpoints/ or a step dir")


def run(args: argparse.Namespace) -> int:
    from emotive.codecs.audio import load_audio
    from emotive.configs.common import SAMPLE_RATE
    from emotive.infer.emotion import MIN_SECONDS, load_emotion_model

    for path in args.inputs:  # check every file before the model loads
        load_audio(path, SAMPLE_RATE, normalize_loudness=False, min_seconds=MIN_SECONDS)
    predictor = load_emotion_model(args.ckpt)
    results = [predictor.classify_file(path) for path in args.inputs]
    print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    return 0
