"""TFDS builders for two real TTS corpora: ESD (emotional) and LibriTTS-R (read audiobooks).

    emotive data build esd --src ESD --out DATA_DIR [--languages en|zh|all]
    emotive data build libritts_r --src LibriTTS_R --out DATA_DIR

esd         the Emotional Speech Dataset (Zhou et al. 2021): SPEAKER/EMOTION/*.wav (the
            original download nests EMOTION/{train,evaluation,test}/*.wav; both are read)
            and SPEAKER/SPEAKER.txt of `UTTID<TAB>TEXT<TAB>EMOTION` lines. Speakers 0001-0010
            speak Mandarin (Chinese transcripts), 0011-0020 English; `languages` picks them
            ('en' by default, 'zh' or 'all'), the others are skipped by folder. Folders Angry,
            Happy, Neutral, Sad, Surprise become angry, happy, neutral, sad, surprised; ESD
            does not grade intensity, so every clip has intensity 1 (normal).
libritts_r  LibriTTS-R (Koizumi et al. 2023): SUBSET/SPEAKER/CHAPTER/*.wav at 24 kHz, each
            with ID.normalized.txt (the `text`) and ID.original.txt beside it; --src is the
            folder of subsets or one subset folder. No emotion labels: emotion is -1
            (ClassLabel's "no label") and intensity 0, as for other unlabelled speech.

Splits. ESD uses its own split, per speaker and emotion: each speaker's utterances are
numbered in blocks of 350 per emotion (0011_000001-000350 Neutral, 000351-000700 Angry, ...),
and within a block utterances 1-20 are 'validation' (ESD's "evaluation"), 21-50 'test' and
51-350 'train': 300/20/30 a speaker and emotion, the same files as the download's
train/evaluation/test folders. It is not speaker-disjoint: ESD's sentences are shared by
all speakers, and its evaluation and test sets hold the same speakers as training.
LibriTTS-R follows its subsets: train-* -> 'train', dev-* -> 'validation', test-* -> 'test'
(speaker-disjoint, as the subsets are).

Transcripts are decoded whatever the file's encoding: ESD's are a mix of UTF-8, UTF-16 (with a
BOM), GB2312 and Latin-1, and some separate fields with spaces instead of tabs; the encoding
of each file that is not plain UTF-8 is listed under the report's conversions. Text is NFKC
normalised (full-width punctuation to ASCII). A wav without its transcript line or file, in
an unknown emotion folder, or whose audio does not load is rejected with its reason; nothing
is dropped without an entry in the build report (`emotive.data.builders.tfds_io.BuildReport`).

Full-scale recipe. Unpack ESD (ESD/0001 ... ESD/0020) and the seven LibriTTS-R archives
(openslr.org/141: LibriTTS_R/train-clean-100 ... test-other), then

    emotive data build esd --src ESD --out DATA                 # English: 17,500 clips, ~14 h
    emotive data build esd --src ESD --out DATA_ZH --languages zh   # or --languages all
    emotive data build libritts_r --src LibriTTS_R --out DATA   # ~585 h, 16 kHz int16

LibriTTS-R's train split is about 64 GB at 16 kHz: more than TFDS shuffles in memory on
most machines without TensorFlow, so install tensorflow-cpu first (TFDS then shuffles on
disk), or build one subset at a time (`--src LibriTTS_R/train-clean-100 --out DATA_100`).
"""

from __future__ import annotations

import pathlib
import re
import unicodedata

import numpy as np
import tensorflow_datasets as tfds

from emotive.data.builders.base import SpeechBuilder, emotion_label, require_clips, wrong_root
from emotive.data.builders.tfds_io import Clip
from emotive.errors import UserError

ESD_EMOTIONS = {"Angry": "angry", "Happy": "happy", "Neutral": "neutral", "Sad": "sad",
                "Surprise": "surprised"}
ESD_LANGUAGES = ("en", "zh", "all")
ESD_MALE = {4, 5, 6, 8, 10, 11, 12, 13, 14, 20}  # from ESD's ReadMe; the others are female
ESD_BLOCK, ESD_VALIDATION, ESD_TEST = 350, 20, 30  # per speaker and emotion
LIBRITTS_SUBSETS = {"train-clean-100": "train", "train-clean-360": "train",
                    "train-other-500": "train", "dev-clean": "validation",
                    "dev-other": "validation", "test-clean": "test", "test-other": "test"}
_ESD_NAME = re.compile(r"^(\d{4})_(\d{6})$")
_ESD_LINE = re.compile(r"^\s*(\d{4}_\d{6})\s+(.*?)\s*$")
_LIBRITTS_NAME = re.compile(r"^(\d+)_(\d+)_\d+_\d+$")
_CJK = re.compile(r"[\u3400-\u9fff]")


def esd_language(speaker: str) -> str | None:
    """'zh' for ESD speakers 0001-0010, 'en' for 0011-0020, None for any other name."""
    n = int(speaker) if speaker.isdigit() and len(speaker) == 4 else 0
    return "zh" if 1 <= n <= 10 else "en" if 11 <= n <= 20 else None


def esd_split(utterance: int) -> str:
    """ESD's split of utterance number `utterance` (1-1750): by its place in its emotion's
    block of 350, 1-20 'validation', 21-50 'test', 51-350 'train'."""
    place = (utterance - 1) % ESD_BLOCK
    return ("validation" if place < ESD_VALIDATION
            else "test" if place < ESD_VALIDATION + ESD_TEST else "train")


def decode_transcript(data: bytes, language: str) -> tuple[str, str]:
    """Decodes a transcript file's bytes; returns (text, encoding name). A BOM decides when
    there is one, NUL bytes mean UTF-16LE; otherwise UTF-8, then GB18030 (a superset of
    GB2312), and for English also CP1252 and Latin-1. English text decoded as GB18030 must
    hold no CJK ideographs (that would be Latin-1 bytes misread). Raises UnicodeError."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        candidates = ("utf-16",)
    elif data.startswith(b"\xef\xbb\xbf"):
        candidates = ("utf-8-sig",)
    elif b"\x00" in data:
        candidates = ("utf-16-le",)
    else:
        candidates = ("utf-8", "gb18030") + (("cp1252", "latin-1") if language == "en" else ())
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if not (language == "en" and encoding == "gb18030" and _CJK.search(text)):
            return text, encoding
    raise UnicodeError(f"not {', '.join(candidates)}")


def parse_esd_line(line: str, language: str) -> tuple[str, str] | None:
    """(utterance id, text) of one ESD transcript line, or None for a line without an id.
    The emotion column is dropped, whether it follows a tab or (in some files) a space."""
    m = _ESD_LINE.match(line)
    if not m:
        return None
    key, rest = m[1], m[2]
    if "\t" in rest:
        text = rest.split("\t")[0]
    else:  # space-separated: drop a trailing emotion word (Chinese text has no spaces)
        head, _, last = rest.rpartition(" ")
        text = head if head and (last in ESD_EMOTIONS or language == "zh") else rest
    return key, unicodedata.normalize("NFKC", text).strip()


def _wavs_in(folder: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav")


class Esd(SpeechBuilder, skip_registration=True):
    """ESD: 20 speakers (10 Mandarin, 10 English), 5 emotions, 350 utterances each."""

    name = "esd"
    DESCRIPTION = "ESD emotional speech (Zhou et al. 2021), ESD's own per-emotion splits."

    def __init__(self, *, languages: str = "en", **kwargs):
        if languages not in ESD_LANGUAGES:
            raise UserError(f"--languages must be one of {', '.join(ESD_LANGUAGES)}, "
                            f"got {languages!r}")
        self._languages = languages
        super().__init__(**kwargs)

    def _label_features(self):
        f = tfds.features
        return {"text": f.Text(), "speaker": f.Text(), "sex": f.Text(), "language": f.Text(),
                "emotion": emotion_label(), "label": f.Text(),
                "intensity": f.Scalar(dtype=np.int32), "condition": f.Text()}

    def _speakers(self) -> list[pathlib.Path]:
        def is_root(p):
            return any(esd_language(q.name) for q in p.iterdir() if q.is_dir())

        if not is_root(self._src):
            raise wrong_root(self._src, is_root, "ESD speaker folders (0001 ... 0020)", "ESD")
        folders = []
        for p in sorted(self._src.iterdir()):
            if not p.is_dir():
                continue
            language = esd_language(p.name)
            if language is None:
                self._report.skip(p, "not_a_speaker")
            elif self._languages not in ("all", language):
                self._report.skip(p, "other_language")
            else:
                folders.append(p)
        return folders

    def _transcripts(self, folder: pathlib.Path) -> dict[str, str] | None:
        """Utterance id -> text from SPEAKER/SPEAKER.txt, or None (rejected) if unreadable."""
        path = folder / f"{folder.name}.txt"
        if not path.is_file():
            return None
        language = esd_language(folder.name)
        try:
            content, encoding = decode_transcript(path.read_bytes(), language)
        except UnicodeError as e:
            self._report.reject(path, "bad_transcript", f"{path}: unknown text encoding ({e})")
            return None
        if encoding != "utf-8":
            self._report.converted[f"transcript {encoding} -> utf-8"].append(
                self._report.rel(path))
        lines = (parse_esd_line(line, language) for line in content.splitlines())
        return {key: text for key, text in filter(None, lines) if text}

    def _clips(self):
        clips = []
        for folder in self._speakers():
            texts = self._transcripts(folder)
            speaker = folder.name
            for wav in _wavs_in(folder):
                m = _ESD_NAME.match(wav.stem)
                parts = wav.relative_to(folder).parts
                emotion_dir = parts[0] if len(parts) > 1 else "."
                if not m or m[1] != speaker:
                    self._report.skip(wav, "unrecognised_name")
                elif emotion_dir not in ESD_EMOTIONS:
                    self._report.reject(wav, "unknown_emotion", f"{wav}: folder {emotion_dir!r} "
                                        f"is not one of {', '.join(ESD_EMOTIONS)}")
                elif texts is None or wav.stem not in texts:
                    where = (f"no {speaker}/{speaker}.txt" if texts is None
                             else f"{speaker}.txt has no line for {wav.stem}")
                    self._report.reject(wav, "missing_transcript", f"{wav}: {where}")
                else:
                    clips.append(Clip(wav.stem, wav, esd_split(int(m[2])), {
                        "text": texts[wav.stem], "speaker": speaker,
                        "sex": "male" if int(speaker) in ESD_MALE else "female",
                        "language": esd_language(speaker), "emotion": ESD_EMOTIONS[emotion_dir],
                        "label": emotion_dir, "intensity": 1, "condition": "clean"}))
        return require_clips(clips, self._report, self._src)


def _subset_name(folder: pathlib.Path) -> str | None:
    """The LibriTTS-R subset a folder is named after (dev_clean is read as dev-clean)."""
    name = folder.name.replace("_", "-")
    return name if name in LIBRITTS_SUBSETS else None


class LibriTtsR(SpeechBuilder, skip_registration=True):
    """LibriTTS-R: restored LibriTTS, 2,456 speakers of read English, splits by subset."""

    name = "libritts_r"
    DESCRIPTION = "LibriTTS-R read speech (Koizumi et al. 2023), splits by subset."

    def _label_features(self):
        f = tfds.features
        return {"text": f.Text(), "original_text": f.Text(), "speaker": f.Text(),
                "sex": f.Text(), "chapter": f.Text(), "subset": f.Text(),
                "emotion": emotion_label(), "intensity": f.Scalar(dtype=np.int32),
                "condition": f.Text()}

    def _subsets(self) -> list[tuple[pathlib.Path, str]]:
        """(folder, subset name) for each subset under --src, or --src itself if it is one."""
        if _subset_name(self._src):
            return [(self._src, _subset_name(self._src))]

        def is_root(p):
            return any(_subset_name(q) for q in p.iterdir() if q.is_dir())

        if not is_root(self._src):
            raise wrong_root(self._src, is_root, "LibriTTS-R subset folders (train-clean-100, "
                              "dev-clean, test-clean, ...)", "LibriTTS_R or LibriTTS_R/dev-clean")
        subsets = []
        for p in sorted(self._src.iterdir()):
            if p.is_dir() and _subset_name(p):
                subsets.append((p, _subset_name(p)))
            elif p.is_dir():
                self._report.skip(p, "not_a_subset")
        return subsets

    def _sexes(self) -> dict[str, str]:
        """Speaker id -> 'male'/'female' from speakers.tsv (READER GENDER SUBSET NAME), which
        sits beside the subsets; {} if the download has none."""
        for folder in (self._src, self._src.parent):
            path = folder / "speakers.tsv"
            if path.is_file():
                rows = [line.split("\t") for line in path.read_text("utf-8").splitlines()[1:]]
                return {r[0].strip(): {"F": "female", "M": "male"}.get(r[1].strip(), "unknown")
                        for r in rows if len(r) > 1}
        return {}

    def _read_text(self, wav: pathlib.Path, path: pathlib.Path) -> str | None:
        """The stripped text of `path`, or None with the wav rejected (missing, unreadable,
        empty)."""
        if not path.is_file():
            self._report.reject(wav, "missing_transcript", f"{wav}: no {path.name} beside it")
            return None
        try:
            text = unicodedata.normalize("NFKC", path.read_text("utf-8")).strip()
        except UnicodeDecodeError:
            text = ""
        if not text:
            self._report.reject(wav, "bad_transcript", f"{wav}: {path.name} is empty or not "
                                "UTF-8 text")
        return text or None

    def _clips(self):
        sexes, clips = self._sexes(), []
        for folder, subset in self._subsets():
            for wav in _wavs_in(folder):
                m = _LIBRITTS_NAME.match(wav.stem)
                if not m:
                    self._report.skip(wav, "unrecognised_name")
                    continue
                text = self._read_text(wav, wav.with_name(f"{wav.stem}.normalized.txt"))
                if text is None:
                    continue
                original = wav.with_name(f"{wav.stem}.original.txt")
                clips.append(Clip(wav.stem, wav, LIBRITTS_SUBSETS[subset], {
                    "text": text, "speaker": m[1], "sex": sexes.get(m[1], "unknown"),
                    "original_text": (original.read_text("utf-8", errors="replace").strip()
                                      if original.is_file() else text),
                    "chapter": m[2], "subset": subset, "emotion": -1, "intensity": 0,
                    "condition": "clean"}))
        return require_clips(clips, self._report, self._src)
