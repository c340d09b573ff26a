"""ELLA-V documents (arXiv 2401.07333): phonemes interleaved with their speech codes.

A clip of a pre-encoded table with phone timings (its `phones` column: [[ipa, frames], ...]
at the codec's frame rate, from eSpeak's events or from CTC forced alignment) becomes

    prompt_ids(text, tags)  u_1 <codes of u_1> EOP  u_2 <codes of u_2> EOP ... u_n ... EOP  END

where the prompt holds the whole phoneme sequence (as in the Llasa layout: it plays ELLA-V's
phoneme prefix, its SPEECH_GENERATION_START the BOS) and u_1..u_n are the text's units
(`TTSVocab.phone_units`: each phoneme, word boundary and pause; stress marks stay in the
prompt). The loss is on codes, EOP and END only: the units are given, never predicted. At
decode time the model emits EOP and the caller feeds the next unit (`infer.decode_loop`).

Local advance (`advance` frames): each EOP and the unit after it move that many frames
earlier into the previous unit's codes, so the model sees the next phoneme while it ends
the current one (ELLA-V's "local advance"); 0 places them at the sound's boundary.

Timings to units. The table's phones are eSpeak's events for the clip's own voice (an accent
may say another vowel) and the units come from phonemising the text with the tokenizer's
voice; `unit_frames` aligns the two sequences by edit distance (a phone matches its own
symbol at no cost, any other phone at cost 1; a pause matches a word boundary or pause at no
cost) and gives each unit the frames of the phones aligned to it; a phone aligned to nothing
adds its frames to the unit before it. A clip whose sequences differ in more than
MAX_MISMATCH of their phones, or that has no timings, is left out and counted, never silently.
"""

from __future__ import annotations

import json
from typing import NamedTuple, Sequence

import numpy as np

from emotive.codecs.phonemes import PAUSES, STRESS, WORD
from emotive.codecs.text import TTSVocab

MAX_MISMATCH = 0.4  # edits / units above which a clip's timings are taken as wrong
PAUSE = "_"  # eSpeak's pause event


class Interleaved(NamedTuple):
    """One clip's ELLA-V tokens after the prompt: `tokens` int32 [n], `loss` bool [n] (codes,
    EOP and END), and the frames each unit got (before the advance)."""

    tokens: np.ndarray
    loss: np.ndarray
    unit_frames: np.ndarray


def parse_phones(phones) -> list[tuple[str, int]]:
    """The `phones` column of one clip (JSON text or a list) -> [(ipa, frames)]; [] if none."""
    if isinstance(phones, (str, bytes)):
        phones = json.loads(phones) if str(phones).strip() else []
    return [(str(name), int(frames)) for name, frames in phones]


def phone_frames(phones, hop: int, frames: int) -> str:
    """eSpeak's phone starts of a clip (JSON text or list of [ipa, start sample]; "" for none)
    -> the `phones` column: JSON [[ipa, frames], ...] at the codec's rate (`hop` samples a
    frame), the counts summing to the clip's `frames` codes. A phone starts at frame
    round(start / hop); the silence before the first belongs to it, the last runs to the end,
    and a phone that gets no frame keeps a 0."""
    if isinstance(phones, (str, bytes)):
        phones = json.loads(phones) if str(phones).strip() else []
    if not phones:
        return ""
    starts = np.clip(np.round(np.asarray([at for _, at in phones], np.float64) / hop), 0,
                     frames).astype(np.int64)
    starts = np.maximum.accumulate(starts)
    starts[0] = 0
    counts = np.diff(np.concatenate([starts, [frames]]))
    return json.dumps([[str(name), int(n)] for (name, _), n in zip(phones, counts)])


def _symbols(vocab: TTSVocab, name: str) -> list[str]:
    """An eSpeak phone name -> inventory symbols (stress marks dropped)."""
    if name == PAUSE:
        return [PAUSE]
    for mark in STRESS:
        name = name.replace(mark, "")
    return vocab.tokenizer.split_symbols(name.replace(":", "ː"))


def unit_frames(vocab: TTSVocab, units: Sequence[int],
                phones: Sequence[tuple[str, int]]) -> np.ndarray | None:
    """Frames per unit (int32 [U], summing to the phones' frames), or None when the two
    sequences differ too much (see the module docstring)."""
    boundary = {WORD, *PAUSES.values()}
    names = [vocab.tokenizer.id_to_token(u) for u in units]
    # Each phone split into its symbols, its frames shared out evenly (remainder first).
    events: list[tuple[str, int]] = []
    for name, frames in phones:
        parts = _symbols(vocab, name) or [PAUSE]
        share, extra = divmod(int(frames), len(parts))
        events += [(p, share + (i < extra)) for i, p in enumerate(parts)]
    n, m = len(units), len(events)
    if n == 0 or m == 0:
        return None
    is_boundary = np.array([u in boundary for u in units])
    is_pause = np.array([e == PAUSE for e, _ in events])
    # cost[i, j]: units[:i] against events[:j]; moves: match/substitute, skip a unit, skip
    # an event. Word boundaries are (nearly) free to skip (eSpeak marks no event between words), and
    # so are pauses (eSpeak pauses where the text has no comma, and the reverse).
    sub = np.array([[0.0 if (is_boundary[i] and is_pause[j]) or names[i] == events[j][0]
                     else (1.0 if not (is_boundary[i] or is_pause[j]) else 9.0)
                     for j in range(m)] for i in range(n)])
    # (Nearly free: a pause pairs with a boundary where it can, the longer pause first, so
    # its silence is the boundary's, not the phoneme's before it.)
    skip_unit = np.where(is_boundary, 0.01, 1.0)
    skip_event = np.where(is_pause, 0.01 + 0.001 * np.array([f for _, f in events]), 1.0)
    cost = np.zeros((n + 1, m + 1))
    cost[1:, 0] = np.cumsum(skip_unit)
    cost[0, 1:] = np.cumsum(skip_event)
    move = np.zeros((n + 1, m + 1), np.int8)  # 0 diagonal, 1 skip unit, 2 skip event
    move[1:, 0], move[0, 1:] = 1, 2
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            options = (cost[i - 1, j - 1] + sub[i - 1, j - 1], cost[i - 1, j] + skip_unit[i - 1],
                       cost[i, j - 1] + skip_event[j - 1])
            k = int(np.argmin(options))
            cost[i, j], move[i, j] = options[k], k
    spoken = max(int((~is_boundary).sum()), 1)
    if cost[n, m] > MAX_MISMATCH * spoken:
        return None
    frames = np.zeros(n, np.int64)
    i, j, pairs = n, m, {}  # pairs[event] = its unit
    while i > 0 or j > 0:
        k = move[i, j]
        if k == 0:
            pairs[j - 1] = i - 1
            i, j = i - 1, j - 1
        elif k == 1:
            i -= 1
        else:
            j -= 1
    last = 0
    for j, (_, f) in enumerate(events):
        last = pairs.get(j, last)  # an unpaired event goes to the unit before it
        frames[last] += f
    return frames.astype(np.int32)


def interleave(vocab: TTSVocab, units: Sequence[int], frames_U: np.ndarray, codes_N,
               advance: int = 0) -> Interleaved:
    """The tokens after the prompt: each unit, its codes, EOP; then END (module docstring).
    frames_U must sum to len(codes_N)."""
    frames_U = np.asarray(frames_U, np.int64)
    total = len(codes_N)
    if frames_U.sum() != total:
        raise ValueError(f"unit frames sum to {frames_U.sum()}, the clip has {total} codes")
    ends = np.cumsum(frames_U)
    cuts, previous = [], 0
    for u in range(len(units) - 1):
        previous = int(min(max(ends[u] - advance, previous), total))
        cuts.append(previous)
    cuts.append(total)
    ids = vocab.codes_to_ids(codes_N)
    pieces, loss, start = [], [], 0
    for unit, end in zip(units, cuts):
        piece = np.concatenate([[unit], ids[start:end], [vocab.eop]])
        pieces.append(piece)
        loss.append(np.concatenate([[False], np.ones(end - start + 1, bool)]))
        start = end
    pieces.append(np.asarray([vocab.speech_end]))
    loss.append(np.ones(1, bool))
    return Interleaved(np.concatenate(pieces).astype(np.int32), np.concatenate(loss),
                       frames_U.astype(np.int32))


def split_units(vocab: TTSVocab, tokens_N) -> tuple[np.ndarray, list[int]]:
    """Decoded ELLA-V tokens (after the prompt's first unit) -> (speech codes int32 [F], frames
    of each unit in order). Units and EOPs are dropped; codes after the last EOP count to the
    last unit."""
    tokens_N = np.asarray(tokens_N, np.int64)
    is_code = (tokens_N >= vocab.speech_offset) & (tokens_N < vocab.emotion_offset)
    frames, run = [], 0
    for t, code in zip(tokens_N, is_code):
        if code:
            run += 1
        elif t == vocab.eop:
            frames.append(run)
            run = 0
    if run:
        frames.append(run)
    return (tokens_N[is_code] - vocab.speech_offset).astype(np.int32), frames
