"""The character vocabulary of the CTC recogniser: text <-> int ids, and greedy CTC decoding.

Layout (39 ids):
    0       CTC blank (never part of a text)
    1       space
    2       apostrophe (kept only inside a word: "don't", "o'clock")
    3..28   a..z
    29..38  0..9

`normalize_text` is the one text normalisation, used for training targets and for both sides
of CER/WER (`emotive.metrics.recognition`):
1. Unicode NFKD, then combining marks removed, so accented letters lose their accents
   ("café" -> "cafe") and ligatures/full-width forms become plain letters;
2. lower case;
3. typographic apostrophes (’ ‘ ʼ `) become "'"; an apostrophe not between two letters or
   digits (a quotation mark) is dropped;
4. hyphens, dashes, slashes and underscores become spaces ("well-known" -> "well known"),
   because speech has a word break there;
5. every other character outside the vocabulary (. , ! ? ; : quotes, brackets, symbols,
   letters of other scripts) is dropped: unknown characters are removed, never mapped to a
   placeholder, because a CTC model cannot learn to emit a symbol it never hears;
6. runs of whitespace collapse to one space; leading and trailing spaces go.
Digits stay digits (the recogniser learns "7" only if its training texts contain digits).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Sequence

import numpy as np

from emotive.errors import UserError

BLANK = 0
SPACE = 1
APOSTROPHE = 2
CHARS = " '" + "abcdefghijklmnopqrstuvwxyz" + "0123456789"  # ids 1.. in this order
VOCAB_SIZE = len(CHARS) + 1  # + the blank
_ID_OF = {c: i + 1 for i, c in enumerate(CHARS)}
_CHAR_OF = np.array([""] + list(CHARS), dtype=object)

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_BREAKS = re.compile(r"[\-\u2010-\u2015/_\\]")
_STRAY_APOSTROPHE = re.compile(r"(?<![a-z0-9])'|'(?![a-z0-9])")
_OUTSIDE = re.compile(r"[^ '" + "a-z0-9" + r"]")
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """The normalised form of `text` (see the module docstring); "" if nothing is left."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = _BREAKS.sub(" ", text.translate(_APOSTROPHES))
    text = _SPACES.sub(" ", text)  # before the filter, so tabs and newlines become spaces
    text = _OUTSIDE.sub("", text)
    text = _STRAY_APOSTROPHE.sub("", text)
    return _SPACES.sub(" ", text).strip()


def encode(text: str) -> np.ndarray:
    """Ids int32 [U] of the normalised `text` (no blanks); empty for a text with no letters."""
    return np.array([_ID_OF[c] for c in normalize_text(text)], np.int32)


def decode(ids: Sequence[int]) -> str:
    """Text of ids (blanks skipped, nothing collapsed); raises UserError for an id >= VOCAB_SIZE."""
    ids = np.asarray(ids, np.int64).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= VOCAB_SIZE):
        raise UserError(f"character ids must be in [0, {VOCAB_SIZE}), got "
                        f"{ids.min()}..{ids.max()}; the checkpoint does not match this vocabulary")
    return "".join(_CHAR_OF[ids])


def ctc_collapse(frame_ids_N: Sequence[int]) -> np.ndarray:
    """Greedy CTC rule on one frame-wise best path [N]: merge repeats, then drop blanks."""
    ids = np.asarray(frame_ids_N, np.int64).reshape(-1)
    if ids.size == 0:
        return ids.astype(np.int32)
    keep = np.concatenate([[True], ids[1:] != ids[:-1]]) & (ids != BLANK)
    return ids[keep].astype(np.int32)


def ctc_greedy_texts(frame_ids_BxN, lengths_B) -> list[str]:
    """Texts of a batch of best paths: int [B, N] argmax ids and int [B] valid frames per row.

    Each row is cut to its length, collapsed (`ctc_collapse`) and decoded; spaces at the ends
    and doubled spaces are tidied so the result is already in normalised form.
    """
    frame_ids_BxN, lengths_B = np.asarray(frame_ids_BxN), np.asarray(lengths_B)
    texts = []
    for row, n in zip(frame_ids_BxN, lengths_B):
        texts.append(_SPACES.sub(" ", decode(ctc_collapse(row[:int(n)]))).strip())
    return texts
