"""TFDS builders for speech datasets, written as array_record without TensorFlow.

    emotive data build NAME --src DIR --out DATA_DIR [--overwrite] [--min-seconds S] ...

NAME is one of:
    emotive_speech  the embedded corpus made by `emotive data synth` (metadata.jsonl + wavs/);
                    keeps its train/validation/test splits (disjoint by speaker and text)
    audio_folder    an LJSpeech-style folder: metadata.csv of `id|text[|normalized text]` and
                    wavs/<id>.wav; split 'train', plus 'validation' with --holdout F (chosen by
                    a hash of the id, so it does not depend on file order)
    ravdess         a RAVDESS download: Actor_XX/03-01-EE-II-SS-RR-AA.wav; only audio-only
                    (03) speech (01) files, other modalities are skipped and counted
    crema_d         a CREMA-D download: AudioWAV/AAAA_SSS_EEE_LL.wav (actor, sentence, emotion,
                    level); VideoDemographics.csv, when present, gives each actor's sex
    esd, libritts_r the ESD and LibriTTS-R downloads (see `emotive.data.builders_tts`)

RAVDESS and CREMA-D are split by actor (speaker-disjoint): actors sorted by number, the last
`test_fraction` (default 20%, rounded down, at least one) are 'test', the `validation_fraction`
(default 10%, rounded down) before them 'validation', the rest 'train'. For RAVDESS's 24 actors
that is test 21-24, validation 19-20 (one male, one female each); for CREMA-D's 91 actors test
1074-1091 and validation 1065-1073.

Emotion labels are mapped onto the project's eight names (`emotive.data.emotions.EMOTIONS`,
one ClassLabel for every dataset); the dataset's own label is kept in `label`. Every clip is
loaded through `load_audio(path, 16000, normalize_loudness=False)`; bad files are rejected
and reported (see `emotive.data.tfds_io`), never dropped silently.
"""

from __future__ import annotations

import abc
import argparse
import csv
import json
import pathlib
import re
import zlib

import numpy as np
import tensorflow_datasets as tfds

from emotive.data import tfds_io
from emotive.data.emotions import EMOTIONS
from emotive.data.tfds_io import Clip
from emotive.errors import UserError

RAVDESS_EMOTIONS = {  # code -> (RAVDESS label, project emotion)
    "01": ("neutral", "neutral"), "02": ("calm", "calm"), "03": ("happy", "happy"),
    "04": ("sad", "sad"), "05": ("angry", "angry"), "06": ("fearful", "fearful"),
    "07": ("disgust", "disgusted"), "08": ("surprised", "surprised"),
}
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
CREMA_D_EMOTIONS = {"ANG": "angry", "DIS": "disgusted", "FEA": "fearful", "HAP": "happy",
                    "NEU": "neutral", "SAD": "sad"}
CREMA_D_LEVELS = {"LO": 1, "MD": 2, "HI": 3, "XX": 0}  # XX: level unspecified
CREMA_D_SENTENCES = {
    "IEO": "It's eleven o'clock", "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting", "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full", "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock", "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket", "ITS": "I think I've seen this before",
    "TSI": "The surface is slick", "WSI": "We'll stop in a couple of minutes",
}
_RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_CREMA_D_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
SPLITS = ("train", "validation", "test")


def _emotion_label():
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


class _SpeechBuilder(SourceBuilder, skip_registration=True):
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


class EmotiveSpeech(_SpeechBuilder, skip_registration=True):
    """The embedded synthetic corpus (`emotive data synth`), with its own splits."""

    name = "emotive_speech"
    DESCRIPTION = "Synthetic emotional speech (eSpeak NG + prosody and signal processing)."
    _FIELDS = ("id", "path", "split", "speaker", "emotion", "intensity", "arousal", "dominance",
               "valence", "condition", "text")

    def _label_features(self):
        f = tfds.features
        return {"text": f.Text(), "speaker": f.Text(), "emotion": _emotion_label(),
                "intensity": f.Scalar(dtype=np.int32), "arousal": f.Scalar(dtype=np.float32),
                "dominance": f.Scalar(dtype=np.float32), "valence": f.Scalar(dtype=np.float32),
                "condition": f.Text()}

    def _clips(self):
        meta = self._src / "metadata.jsonl"
        if not meta.is_file():
            raise UserError(f"--src {self._src} has no metadata.jsonl; make the corpus with "
                            f"`emotive data synth --out {self._src}`")
        clips, listed = [], set()
        for n, line in enumerate(meta.read_text().splitlines(), 1):
            try:
                row = json.loads(line)
                missing = [k for k in self._FIELDS if k not in row]
                if missing or row["emotion"] not in EMOTIONS or row["split"] not in SPLITS:
                    raise ValueError(f"missing {missing}" if missing else "unknown emotion/split")
            except ValueError as e:
                self._report.reject(meta, "bad_metadata", f"{meta}: line {n}: {e}")
                continue
            path = self._src / row["path"]
            listed.add(path.resolve())
            labels = {k: row[k] for k in ("text", "speaker", "emotion", "intensity", "arousal",
                                          "dominance", "valence", "condition")}
            clips.append(Clip(row["id"], path, row["split"], labels))
        for wav in (self._src / "wavs").rglob("*.wav"):
            if wav.resolve() not in listed:
                self._report.skip(wav, "not_in_metadata")
        return clips


class AudioFolder(_SpeechBuilder, skip_registration=True):
    """LJSpeech-style folder: metadata.csv (`id|text[|normalized]`) and wavs/<id>.wav."""

    name = "audio_folder"
    DESCRIPTION = "Speech from an LJSpeech-style folder (metadata.csv + wavs/)."

    def __init__(self, *, holdout: float = 0.0, speaker: str | None = None, **kwargs):
        if not 0 <= holdout < 1:
            raise UserError(f"--holdout must be in [0, 1), got {holdout}")
        self._holdout = holdout
        self._speaker = speaker or pathlib.Path(kwargs["src_dir"]).resolve().name
        super().__init__(**kwargs)

    def _label_features(self):
        f = tfds.features
        return {"text": f.Text(), "normalized_text": f.Text(), "speaker": f.Text()}

    def _clips(self):
        meta = self._src / "metadata.csv"
        if not meta.is_file():
            raise UserError(f"--src {self._src} has no metadata.csv (lines `id|text`); "
                            "pass an LJSpeech-style folder")
        clips, seen = [], set()
        for n, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), 1):
            fields = line.rstrip("\r").split("|", 2)
            if not line.strip():
                continue
            if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
                self._report.reject(meta, "bad_metadata", f"{meta}: line {n}: expected `id|text`")
                continue
            key, text = fields[0].strip(), fields[1].strip()
            if key in seen:
                self._report.reject(meta, "bad_metadata", f"{meta}: line {n}: duplicate id {key}")
                continue
            seen.add(key)
            normalized = fields[2].strip() if len(fields) > 2 and fields[2].strip() else text
            # A hash of the id, not the position, picks the held-out clips: stable under edits.
            held_out = zlib.crc32(key.encode()) % 10_000 < self._holdout * 10_000
            clips.append(Clip(key, self._src / "wavs" / f"{key}.wav",
                              "validation" if held_out else "train",
                              {"text": text, "normalized_text": normalized,
                               "speaker": self._speaker}))
        for wav in self._wavs():
            if wav.stem not in seen:
                self._report.skip(wav, "not_in_metadata")
        return clips


class _ActorSplitBuilder(_SpeechBuilder, skip_registration=True):
    """A corpus of acted speech split by actor (see `split_speakers`)."""

    def __init__(self, *, test_fraction: float = 0.2, validation_fraction: float = 0.1, **kwargs):
        self._fractions = (test_fraction, validation_fraction)
        super().__init__(**kwargs)


class Ravdess(_ActorSplitBuilder, skip_registration=True):
    """RAVDESS speech, audio-only: 24 actors, 8 emotions, 2 intensities, 2 statements."""

    name = "ravdess"
    DESCRIPTION = "RAVDESS emotional speech (audio-only speech files), speaker-disjoint splits."

    def _label_features(self):
        f = tfds.features
        return {"text": f.Text(), "speaker": f.Text(), "sex": f.Text(),
                "emotion": _emotion_label(), "label": f.Text(),
                "intensity": f.Scalar(dtype=np.int32), "statement": f.Scalar(dtype=np.int32),
                "repetition": f.Scalar(dtype=np.int32)}

    def _clips(self):
        parsed = []
        for wav in self._wavs():
            m = _RAVDESS_NAME.match(wav.stem)
            if not m or m[3] not in RAVDESS_EMOTIONS or m[5] not in RAVDESS_STATEMENTS:
                self._report.skip(wav, "unrecognised_name")
            elif (m[1], m[2]) != ("03", "01"):
                self._report.skip(wav, "not_audio_only_speech")
            else:
                parsed.append((wav, m))
        split_of = split_speakers([m[7] for _, m in parsed], *self._fractions)
        clips = []
        for wav, m in parsed:
            label, emotion = RAVDESS_EMOTIONS[m[3]]
            actor = int(m[7])
            clips.append(Clip(wav.stem, wav, split_of[m[7]], {
                "text": RAVDESS_STATEMENTS[m[5]], "speaker": f"actor_{m[7]}",
                "sex": "male" if actor % 2 else "female",  # RAVDESS: odd actors are male
                "emotion": emotion, "label": label, "intensity": int(m[4]),
                "statement": int(m[5]), "repetition": int(m[6])}))
        return clips


class CremaD(_ActorSplitBuilder, skip_registration=True):
    """CREMA-D audio: 91 actors, 6 emotions, 12 sentences, levels LO/MD/HI/XX."""

    name = "crema_d"
    DESCRIPTION = "CREMA-D emotional speech (AudioWAV), speaker-disjoint splits."

    def _label_features(self):
        f = tfds.features
        return {"text": f.Text(), "speaker": f.Text(), "sex": f.Text(),
                "emotion": _emotion_label(), "label": f.Text(), "level": f.Text(),
                "intensity": f.Scalar(dtype=np.int32), "sentence": f.Text()}

    def _sexes(self) -> dict[str, str]:
        """Actor id -> 'male'/'female' from VideoDemographics.csv, if the download has it."""
        path = next(iter(sorted(self._src.rglob("VideoDemographics.csv"))), None)
        if path is None:
            return {}
        with open(path, newline="", encoding="utf-8") as f:
            return {row["ActorID"].strip(): row["Sex"].strip().lower()
                    for row in csv.DictReader(f) if row.get("ActorID") and row.get("Sex")}

    def _clips(self):
        parsed = []
        for wav in self._wavs():
            m = _CREMA_D_NAME.match(wav.stem)
            if (not m or m[2] not in CREMA_D_SENTENCES or m[3] not in CREMA_D_EMOTIONS
                    or m[4] not in CREMA_D_LEVELS):
                self._report.skip(wav, "unrecognised_name")
            else:
                parsed.append((wav, m))
        split_of = split_speakers([m[1] for _, m in parsed], *self._fractions)
        sexes = self._sexes()
        return [Clip(wav.stem, wav, split_of[m[1]], {
            "text": CREMA_D_SENTENCES[m[2]], "speaker": m[1], "sex": sexes.get(m[1], "unknown"),
            "emotion": CREMA_D_EMOTIONS[m[3]], "label": m[3], "level": m[4],
            "intensity": CREMA_D_LEVELS[m[4]], "sentence": m[2]}) for wav, m in parsed]


BUILDERS = {cls.name: cls for cls in (EmotiveSpeech, AudioFolder, Ravdess, CremaD)}
# CLI option -> builders it applies to.
_OPTIONS = {"holdout": ("audio_folder",), "speaker": ("audio_folder",),
            "test_fraction": ("ravdess", "crema_d"),
            "validation_fraction": ("ravdess", "crema_d")}


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


# esd and libritts_r subclass _SpeechBuilder, so their module is imported last; it adds them
# to BUILDERS and _OPTIONS (in either import order).
from emotive.data import builders_tts  # noqa: E402,F401
