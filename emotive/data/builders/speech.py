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
    esd, libritts_r the ESD and LibriTTS-R downloads (see `emotive.data.builders.tts`)

RAVDESS and CREMA-D are split by actor (speaker-disjoint): actors sorted by number, the last
`test_fraction` (default 20%, rounded down, at least one) are 'test', the `validation_fraction`
(default 10%, rounded down) before them 'validation', the rest 'train'. For RAVDESS's 24 actors
that is test 21-24, validation 19-20 (one male, one female each); for CREMA-D's 91 actors test
1074-1091 and validation 1065-1073.

Emotion labels are mapped onto the project's eight names (`emotive.data.speech.emotions.EMOTIONS`,
one ClassLabel for every dataset); the dataset's own label is kept in `label`. Every clip is
loaded through `load_audio(path, 16000, normalize_loudness=False)`; bad files are rejected
and reported (see `emotive.data.builders.tfds_io`), never dropped silently.
"""

from __future__ import annotations

import csv
import json
import pathlib
import re
import zlib

import numpy as np
import tensorflow_datasets as tfds

from emotive.data.builders.base import SPLITS, SpeechBuilder, emotion_label, split_speakers
from emotive.data.builders.tfds_io import Clip
from emotive.data.speech.emotions import EMOTIONS
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
class EmotiveSpeech(SpeechBuilder, skip_registration=True):
    """The embedded synthetic corpus (`emotive data synth`), with its own splits."""

    name = "emotive_speech"
    DESCRIPTION = "Synthetic emotional speech (eSpeak NG + prosody and signal processing)."
    _FIELDS = ("id", "path", "split", "speaker", "emotion", "intensity", "arousal", "dominance",
               "valence", "condition", "text")

    def _label_features(self):
        f = tfds.features
        return {"text": f.Text(), "speaker": f.Text(), "emotion": emotion_label(),
                "intensity": f.Scalar(dtype=np.int32), "arousal": f.Scalar(dtype=np.float32),
                "dominance": f.Scalar(dtype=np.float32), "valence": f.Scalar(dtype=np.float32),
                "condition": f.Text(), "phones": f.Text()}

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
            # eSpeak's phone starts ([[ipa, sample], ...] as JSON; "" for older corpora).
            labels["phones"] = json.dumps(row["phones"]) if row.get("phones") else ""
            clips.append(Clip(row["id"], path, row["split"], labels))
        for wav in (self._src / "wavs").rglob("*.wav"):
            if wav.resolve() not in listed:
                self._report.skip(wav, "not_in_metadata")
        return clips


class AudioFolder(SpeechBuilder, skip_registration=True):
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


class _ActorSplitBuilder(SpeechBuilder, skip_registration=True):
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
                "emotion": emotion_label(), "label": f.Text(),
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
                "emotion": emotion_label(), "label": f.Text(), "level": f.Text(),
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
