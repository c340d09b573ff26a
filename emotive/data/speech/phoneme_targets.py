"""Phoneme targets of the recogniser's phoneme variant (`model.targets=phonemes`).

A transcript goes through the TTS front end (`emotive.codecs.phonemes.PhonemeTokenizer`:
normalisation, then eSpeak NG's IPA word by word) and keeps only what takes time in the
audio, so that a forced aligner can place every target: phonemes, and one word boundary
between words. Stress marks (not sounds of their own) are dropped and each pause mark
, . ? ! becomes a word boundary. Ids are the tokenizer's (`INVENTORY`, 101 symbols); id 0,
<pad>, is never a target and is the CTC blank, as in the character vocabulary.

A clip of the embedded corpus is phonemised in the accent it was spoken in (the eSpeak
language of its speaker, `speaker_voice`), so its targets are the phonemes eSpeak spoke;
any other speaker gets `VOICE` (en-us).

    targets = PhonemeTargets()
    ids = targets.encode_many(["The cat sat."])[0]   # ð ə | k æ t | s æ t as ids
    decode(ids)                                      # "ð_ə k_æ_t s_æ_t"
    phones("ð_ə k_æ_t s_æ_t")                        # ['ð', 'ə', 'k', 'æ', 't', 's', ...]
"""

from __future__ import annotations

import threading
from typing import Sequence

import numpy as np

from emotive.codecs.chars import ctc_collapse
from emotive.codecs.phonemes import INVENTORY, PAD, PAUSES, STRESS, WORD, PhonemeTokenizer
from emotive.data.speech.espeak import phonemize
from emotive.data.speech.voices import SPEAKERS_BY_ID
from emotive.errors import UserError

VOICE = "en-us"  # the accent of a speaker outside the corpus
BLANK = PAD
VOCAB_SIZE = len(INVENTORY)
_STRESS_IDS = {INVENTORY.index(s) for s in STRESS}
_BOUNDARIES = {WORD, *PAUSES.values()}
_DECODER = PhonemeTokenizer()  # decoding needs no phonemiser


def _str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def speaker_voice(speaker) -> str:
    """The eSpeak language a corpus speaker speaks ('spk04' -> 'en-gb-scotland'); VOICE for
    any other speaker name (str or bytes)."""
    found = SPEAKERS_BY_ID.get(_str(speaker))
    return found.voice.partition("+")[0] if found else VOICE


def target_ids(token_ids: Sequence[int]) -> np.ndarray:
    """PhonemeTokenizer ids -> CTC target ids int32 [U]: stress marks dropped, pause marks made
    word boundaries, one boundary between words and none at either end."""
    out: list[int] = []
    for i in token_ids:
        if i in _BOUNDARIES:
            if out and out[-1] != WORD:
                out.append(WORD)
        elif i not in _STRESS_IDS:
            out.append(int(i))
    if out and out[-1] == WORD:
        out.pop()
    return np.array(out, np.int32)


class PhonemeTargets:
    """Transcripts -> target ids, phonemised in batches and cached per (voice, text).

    phonemizer: (texts, voice) -> eSpeak IPA (default `emotive.data.speech.espeak.phonemize`).
    Safe to share between threads (grain's readers pack batches in threads).
    """

    def __init__(self, phonemizer=phonemize):
        self._phonemizer = phonemizer
        self._tokenizers: dict[str, PhonemeTokenizer] = {}
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self._lock = threading.Lock()

    def encode_many(self, texts: Sequence, voices: Sequence[str] | None = None
                    ) -> list[np.ndarray]:
        """Target ids int32 [U] of each text (str or bytes) in its voice (default VOICE);
        empty for a text with nothing to voice. New texts are phonemised in one batch per voice."""
        keys = [(voice, _str(text)) for voice, text in
                zip(voices if voices is not None else [VOICE] * len(texts), texts)]
        with self._lock:
            new = [key for key in dict.fromkeys(keys) if key not in self._cache]
            for voice in dict.fromkeys(voice for voice, _ in new):
                tokenizer = self._tokenizers.setdefault(
                    voice, PhonemeTokenizer(self._phonemizer, voice))
                texts_of_voice = [text for v, text in new if v == voice]
                tokenizer.prefetch(texts_of_voice)
                for text in texts_of_voice:
                    try:
                        ids = tokenizer.encode(text).ids
                    except UserError:  # nothing to voice: no target, the clip is not used
                        ids = []
                    self._cache[voice, text] = target_ids(ids)
            return [self._cache[key] for key in keys]


def decode(ids: Sequence[int]) -> str:
    """Ids -> eSpeak-style IPA: "_" between the phonemes of a word, " " between words (stress
    and pause ids, which are never targets, are read as `target_ids` reads them)."""
    return _DECODER.decode(target_ids([int(i) for i in ids]))


def ctc_greedy_phonemes(frame_ids_BxN, lengths_B) -> list[str]:
    """Phoneme strings of a batch of best paths: int [B, N] ids and int [B] valid slots."""
    return [decode(ctc_collapse(row[:int(n)]))
            for row, n in zip(np.asarray(frame_ids_BxN), np.asarray(lengths_B))]


def phones(ipa: str) -> list[str]:
    """The phoneme symbols of a `decode` string, word boundaries left out."""
    return [p for word in ipa.split() for p in word.split("_") if p]
