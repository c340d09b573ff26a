"""The dataset builders and `emotive data build`: one table of every builder by its TFDS name.

    emotive data build NAME --src DIR --out DATA_DIR [--overwrite] [--min-seconds S] ...

    speech.py   emotive_speech (the embedded corpus), audio_folder (LJSpeech layout), ravdess,
                crema_d
    tts.py      esd, libritts_r
    motion.py   beat2, amass
    base.py     what they share (SourceBuilder, SpeechBuilder, speaker-disjoint splits)
    tfds_io.py  the array_record plumbing, the build report, open_split()
"""

from __future__ import annotations

import argparse

from emotive.data.builders import motion, speech, tfds_io, tts
from emotive.errors import UserError

BUILDERS = {cls.name: cls for cls in (speech.EmotiveSpeech, speech.AudioFolder, speech.Ravdess,
                                      speech.CremaD, tts.Esd, tts.LibriTtsR, motion.Beat2,
                                      motion.Amass)}
# CLI option -> builders it applies to.
_OPTIONS = {"holdout": ("audio_folder",), "speaker": ("audio_folder",),
            "test_fraction": ("ravdess", "crema_d"),
            "validation_fraction": ("ravdess", "crema_d"), "languages": ("esd",)}


def build(name: str, src_dir, data_dir, *, overwrite: bool = False, progress: bool = True,
          verbose: bool = True, **options) -> dict:
    """Builds dataset `name` (a key of BUILDERS) from `src_dir` into `data_dir`.

    `options`: min_seconds, max_seconds for all; holdout, speaker for audio_folder;
    test_fraction, validation_fraction for ravdess and crema_d; languages for esd. Returns
    the build report dict (also written to DATA_DIR/NAME/VERSION/build_report.json and
    printed when `verbose`).
    """
    if name not in BUILDERS:
        raise UserError(f"unknown dataset {name!r}; use one of {', '.join(BUILDERS)}")
    for option in options:
        if name not in _OPTIONS.get(option, BUILDERS):
            raise UserError(f"--{option.replace('_', '-')} does not apply to {name}")
    return tfds_io.build_dataset(BUILDERS[name], src_dir, data_dir, overwrite=overwrite,
                                 progress=progress, verbose=verbose, **options)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the `emotive data build` options to an argparse parser."""
    parser.add_argument("name", choices=sorted(BUILDERS), help="dataset to build")
    parser.add_argument("--src", required=True, help="folder with the source audio")
    parser.add_argument("--out", required=True, help="TFDS data dir (DATA_DIR/NAME/VERSION)")
    parser.add_argument("--overwrite", action="store_true", help="rebuild an existing dataset")
    parser.add_argument("--min-seconds", type=float, default=None,
                        help="reject clips shorter than this (default 0.25 s of audio; "
                             "motion datasets: no limit)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="reject clips longer than this (default: no limit)")
    parser.add_argument("--holdout", type=float, default=None,
                        help="audio_folder: fraction held out as 'validation' (default 0)")
    parser.add_argument("--speaker", default=None,
                        help="audio_folder: speaker name (default: the folder's name)")
    parser.add_argument("--test-fraction", type=float, default=None,
                        help="ravdess/crema_d: fraction of actors in 'test' (default 0.2)")
    parser.add_argument("--validation-fraction", type=float, default=None,
                        help="ravdess/crema_d: fraction of actors in 'validation' (default 0.1)")
    parser.add_argument("--languages", choices=("en", "zh", "all"), default=None,
                        help="esd: speakers by language (default en)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    """Builds the dataset named by parsed arguments and prints its report; returns 0."""
    options = {k: getattr(args, k) for k in _OPTIONS if getattr(args, k) is not None}
    build(args.name, args.src, args.out, overwrite=args.overwrite, progress=not args.no_progress,
          min_seconds=args.min_seconds, max_seconds=args.max_seconds, **options)
    return 0
