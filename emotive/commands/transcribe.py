"""`emotive transcribe IN.wav [MORE.wav ...] --ckpt DIR`: print what a trained CTC recogniser hears.

DIR is an `emotive train asr` workdir (its newest checkpoint is used), its checkpoints/
folder or one step folder. Files are read like every audio input of the project
(emotive.codecs.audio.load_audio): any rate (resampled to 16 kHz), channels averaged,
loudness normalised; a missing, unreadable, empty, silent, too short, too long (with
--max-seconds) or non-finite file is a one-line error. Files of any length work: past 16 s
the recogniser runs in 12 s windows with 2 s of context (emotive.infer.asr). One file
prints its text; several print "PATH<TAB>TEXT" lines, in the order given. Text is
normalised: lower case, no punctuation. A phoneme recogniser (trained with
`--set model.targets=phonemes`) prints eSpeak-style IPA instead: "_" between the phonemes of
a word, " " between words ("ð_ə k_æ_t s_æ_t").
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IN",
                        help="audio files (wav, flac, ogg; any sample rate)")
    parser.add_argument("--ckpt", required=True,
                        help="asr run dir, its checkpoints/ or a step dir")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="refuse longer files (default: no limit; long files run in "
                        "windows)")
    parser.add_argument("--min-seconds", type=float, default=0.1,
                        help="refuse shorter files (default 0.1)")


def run(args: argparse.Namespace) -> int:
    from emotive.codecs.audio import load_audio
    from emotive.configs.common import SAMPLE_RATE
    from emotive.infer.asr import load_recognizer
    from emotive.infer.predictor import pad_rows

    # Read and check every file before loading the model, so bad input fails fast.
    audios = [load_audio(path, SAMPLE_RATE, min_seconds=args.min_seconds,
                         max_seconds=args.max_seconds) for path in args.inputs]
    rec = load_recognizer(args.ckpt)
    texts = []
    # Batches of 8 (the recogniser pads each to a bucket length: a few compiled shapes).
    for start in range(0, len(audios), 8):
        texts += rec.transcribe(*pad_rows(audios[start:start + 8]))
    if len(texts) == 1:
        print(texts[0])
    else:
        for path, text in zip(args.inputs, texts):
            print(f"{path}\t{text}")
    return 0
