"""What every TFDS builder of a local source folder shares: the SourceBuilder base (the
folder, the build report, duration limits, no download), the speech builder's features and
splits, speaker-disjoint splits, and the one-line errors for a folder without usable clips."""

from __future__ import annotations

import abc
import pathlib

import tensorflow_datasets as tfds

from emotive.data.builders import tfds_io
from emotive.data.builders.tfds_io import Clip
from emotive.data.speech.emotions import EMOTIONS
from emotive.errors import UserError

SPLITS = ("train", "validation", "test")


def emotion_label():
    """The emotion feature shared by every speech dataset (the project's eight names)."""
    return tfds.features.ClassLabel(names=list(EMOTIONS))


class SourceBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """What every builder of a local source folder shares: the folder, the build report,
    the duration limits, version 1.0.0, and no download."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    DESCRIPTION = ""
    MIN_SECONDS = 0.25

    def __init__(self, *, src_dir, report: tfds_io.BuildReport, min_seconds: float | None = None,
                 max_seconds: float | None = None, **kwargs):
        self._src = pathlib.Path(src_dir)
        self._report = report
        self._min_seconds = self.MIN_SECONDS if min_seconds is None else min_seconds
        self._max_seconds = max_seconds
        super().__init__(**kwargs)

    # TFDS looks for a checksums file beside a builder's source through `importlib_resources`,
    # a package it does not install. These builders download nothing: say there is no source.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        return None


class SpeechBuilder(SourceBuilder, skip_registration=True):
    """Shared part: features id/audio/sample_rate plus `_label_features()`, splits from
    `_clips()`, checked audio loading. Subclasses set `name` and implement both methods."""

    # Each concrete builder below defines these two; the base class is never built itself.
    @abc.abstractmethod
    def _label_features(self) -> dict:
        """The dataset's label features beside the shared audio ones."""

    @abc.abstractmethod
    def _clips(self) -> list[Clip]:
        """Every clip found in the source folder, with its split and labels."""

    def _info(self):
        features = {**tfds_io.base_features(), **self._label_features()}
        return tfds.core.DatasetInfo(builder=self, description=self.DESCRIPTION,
                                     features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        del dl_manager  # everything is local
        clips = self._clips()
        return {split: self._generate_examples([c for c in clips if c.split == split])
                for split in SPLITS if any(c.split == split for c in clips)}

    def _generate_examples(self, clips):
        return tfds_io.generate_examples(clips, self._report, min_seconds=self._min_seconds,
                                         max_seconds=self._max_seconds)

    def _wavs(self) -> list[pathlib.Path]:
        wavs = sorted(p for p in self._src.rglob("*") if p.suffix.lower() == ".wav")
        if not wavs:
            raise UserError(f"--src {self._src} holds no .wav files; pass the dataset's folder")
        return wavs


def split_speakers(speakers, test_fraction: float, validation_fraction: float) -> dict[str, str]:
    """Assigns speakers (names that sort by number) to splits: the last `test_fraction` of the
    sorted names (rounded down, at least one when there are two or more) to 'test', the
    `validation_fraction` before them to 'validation', the rest to 'train'.
    Returns name -> split."""
    if not (0 <= test_fraction < 1 and 0 <= validation_fraction < 1
            and test_fraction + validation_fraction < 1):
        raise UserError(f"split fractions test={test_fraction} validation={validation_fraction} "
                        "must be in [0, 1) and sum to less than 1")
    ordered = sorted(set(speakers), key=lambda s: (len(s), s))
    n = len(ordered)
    n_test = max(1, int(n * test_fraction)) if n > 1 and test_fraction > 0 else 0
    n_val = min(int(n * validation_fraction), n - n_test - 1) if n > 1 else 0
    return {s: "test" if i >= n - n_test else "validation" if i >= n - n_test - n_val else "train"
            for i, s in enumerate(ordered)}


def require_clips(clips: list[Clip], report, src: pathlib.Path) -> list[Clip]:
    """`clips`, or a UserError saying why there are none (TFDS would build an empty dataset)."""
    if clips:
        return clips
    found = report.to_dict()
    why = ", ".join(f"{reason} {len(items)}" for key in ("rejected_by_reason", "skipped_by_reason")
                    for reason, items in found[key].items())
    raise UserError(f"--src {src} has no usable clip ({why or 'no .wav files'}); "
                    "check the layout and options")


def wrong_root(src: pathlib.Path, found, expected: str, example: str) -> UserError:
    """The one-line error for a --src that is not the dataset's folder; names a subfolder
    that is, if there is one."""
    inside = [p for p in sorted(src.iterdir()) if p.is_dir() and found(p)] if src.is_dir() else []
    hint = f" (found one in {inside[0]})" if inside else ""
    return UserError(f"--src {src} holds no {expected}{hint}; pass the folder that does, "
                     f"e.g. --src {example}")
