"""CTC forced alignment: per-phoneme durations of real speech from a phoneme recogniser.

Speech with no eSpeak timings (ESD, LibriTTS-R, any audio folder) gets its `phones` column
(JSON [[ipa, frames], ...] at the codec's frame rate, summing to the clip's codes; see
`emotive.data.pipelines.encoded`) from a recogniser trained with `model.targets=phonemes`:

    rec = load_recognizer("runs/asr-phonemes")
    done = align_clips(rec, audios, texts, codec_frames, voices=voices, hop=codec.hop)
    done[0].phones    # '[["ð", 3], ["ə", 2], ["_", 1], ["k", 4], ...]', or "" and
    done[0].failure   # one line saying why the clip could not be aligned

`ctc_forced_align` is the Viterbi pass over the CTC trellis of N targets: 2N + 1 states,
blank, target 1, blank, ..., target N, blank. A path starts in the first blank or the first
target and ends in the last target or the last blank; each frame it stays, advances one
state, or skips the blank between two different targets (two equal targets in a row need a
blank between them, or CTC would merge them). It keeps one back-pointer (int8) per frame
and state and loops over frames only, so it costs O(T * (2N + 1)) time and memory.

Durations (`phone_durations`): each target owns its frames from its first frame to the next
target's first frame; the leading blanks belong to the first target and the trailing ones to
the last. Starts move from the recogniser's slots to the codec's frames by time and are
rounded there (`ella.phone_frames`, the rule eSpeak's timings go through), so a target may
keep 0 codec frames when the recogniser's slots are finer than the codec's. Targets are
`phoneme_targets`' ids: phonemes and word boundaries; a boundary is written as eSpeak's
pause "_" (it owns the silence between words, if any), which the ELLA-V documents pair with
their word boundaries (`ella.unit_frames`).

`boundary_error_ms` measures an alignment against reference timings of the same phonemes
(eSpeak's own, on the embedded corpus): pauses left out, the mean absolute difference of the
phonemes' start times, the first phoneme's (0 in both by the format) not counted.
"""

from __future__ import annotations

import difflib
import json
from typing import NamedTuple, Sequence

import numpy as np

from emotive.codecs.phonemes import INVENTORY, STRESS, WORD
from emotive.data.pipelines.ella import PAUSE, parse_phones, phone_frames
from emotive.data.speech.phoneme_targets import BLANK, PhonemeTargets
from emotive.errors import UserError
from emotive.infer.predictor import pad_rows


class AlignmentError(Exception):
    """A clip that cannot be aligned (too short for its targets, or no path has a finite
    score); the message is one line saying why."""


class Alignment(NamedTuple):
    """The best CTC path: `states_T` int32 [T] (state per frame: 2n + 1 is target n, an even
    state a blank), `spans_Nx2` int32 [N, 2] (first frame and one past the last frame of
    each target on the path) and `score`, the path's log-probability."""

    states_T: np.ndarray
    spans_Nx2: np.ndarray
    score: float


class ClipAlignment(NamedTuple):
    """One clip's result: its `phones` column ("" when it failed) and `failure` ("" when it
    aligned, else the one-line reason)."""

    phones: str
    failure: str


def ctc_forced_align(log_probs_TxV, targets_N, blank: int = BLANK) -> Alignment:
    """The most likely CTC path of `targets_N` (int [N], no blank) through per-frame
    log-probabilities float [T, V]. AlignmentError when T < N + (adjacent repeats in the
    targets), or when every path scores -inf."""
    log_probs_TxV = np.asarray(log_probs_TxV, np.float64)
    targets_N = np.asarray(targets_N, np.int64).reshape(-1)
    frames, n = log_probs_TxV.shape[0], targets_N.size
    if n == 0:
        raise AlignmentError("no targets to align")
    if np.any(targets_N == blank) or np.any((targets_N < 0) |
                                            (targets_N >= log_probs_TxV.shape[1])):
        raise ValueError(f"targets must be ids in [0, {log_probs_TxV.shape[1]}) other than "
                         f"the blank {blank}, got {targets_N.tolist()}")
    repeats = int(np.sum(targets_N[1:] == targets_N[:-1]))
    if frames < n + repeats:
        raise AlignmentError(f"{frames} frames are too few for {n} targets ({repeats} "
                             f"repeats need a blank between them): at least {n + repeats}")
    states = 2 * n + 1
    labels_S = np.full(states, blank, np.int64)
    labels_S[1::2] = targets_N
    # Skipping into target n's state (2n + 1) passes over the blank before it.
    can_skip_S = np.zeros(states, bool)
    can_skip_S[3::2] = targets_N[1:] != targets_N[:-1]

    # back_TxS[t, s]: how many states back the best path into (t, s) came from (0, 1, 2).
    back_TxS = np.zeros((frames, states), np.int8)
    best_S = np.full(states, -np.inf)
    best_S[:2] = log_probs_TxV[0, labels_S[:2]]
    moves_3xS = np.full((3, states), -np.inf)
    every_state = np.arange(states)
    for t in range(1, frames):
        moves_3xS[0] = best_S
        moves_3xS[1, 1:] = best_S[:-1]
        moves_3xS[2, 2:] = np.where(can_skip_S[2:], best_S[:-2], -np.inf)
        move_S = np.argmax(moves_3xS, axis=0)  # ties: stay before advance before skip
        back_TxS[t] = move_S
        best_S = moves_3xS[move_S, every_state] + log_probs_TxV[t, labels_S]

    last = states - 2 + int(np.argmax(best_S[-2:]))  # the last target or the last blank
    score = float(best_S[last])
    if not np.isfinite(score):
        raise AlignmentError("no path through the targets has a finite log-probability")
    path_T = np.empty(frames, np.int32)
    for t in range(frames - 1, -1, -1):
        path_T[t] = last
        last -= int(back_TxS[t, last])

    on_target = np.flatnonzero(path_T % 2 == 1)
    index = path_T[on_target] // 2  # target of each such frame, non-decreasing
    order = np.arange(n)
    starts = on_target[np.searchsorted(index, order, "left")]
    ends = on_target[np.searchsorted(index, order, "right") - 1] + 1
    return Alignment(path_T, np.stack([starts, ends], 1).astype(np.int32), score)


def target_names(ids: Sequence[int]) -> list[str]:
    """The `phones` name of each target id: its IPA, or PAUSE ("_") for a word boundary."""
    return [PAUSE if int(i) == WORD else INVENTORY[int(i)] for i in ids]


def phone_durations(spans_Nx2, ids: Sequence[int], slot_samples: float, hop: int,
                    codec_frames: int) -> str:
    """The `phones` column of an alignment (the module doc): JSON [[ipa, frames], ...] with
    the frames at the codec's rate (`hop` samples a frame; the recogniser's slots are
    `slot_samples` samples), summing to `codec_frames`."""
    starts = np.asarray(spans_Nx2)[:, 0] * float(slot_samples)
    return phone_frames(list(zip(target_names(ids), starts.tolist())), hop, codec_frames)


def _align_one(log_probs_TxV, ids, slot_samples: float, hop: int,
               codec_frames: int) -> ClipAlignment:
    if len(ids) == 0:
        return ClipAlignment("", "the text has no phonemes to align")
    try:
        spans = ctc_forced_align(log_probs_TxV, ids).spans_Nx2
    except AlignmentError as e:
        return ClipAlignment("", str(e))
    return ClipAlignment(phone_durations(spans, ids, slot_samples, hop, codec_frames), "")


def require_phonemes(recognizer) -> None:
    """UserError unless `recognizer` transcribes to phonemes (forced alignment needs it)."""
    if not recognizer.phonemes:
        raise UserError("forced alignment needs a phoneme recogniser (trained with --set "
                        "model.targets=phonemes); this one transcribes characters")


def align_clips(recognizer, audios: Sequence[np.ndarray], texts: Sequence[str],
                codec_frames: Sequence[int], *, voices: Sequence[str] | None = None,
                hop: int = 320, targets: PhonemeTargets | None = None,
                batch_size: int = 8) -> list[ClipAlignment]:
    """Forced alignment of each clip (float audio [T] at 16 kHz) to its text's phonemes.

    recognizer: an `emotive.infer.asr.Recognizer` with `model.targets=phonemes` (UserError for
    a character one). voices: each clip's eSpeak language (`phoneme_targets.speaker_voice` of
    a corpus speaker; default en-us). codec_frames: each clip's code count, which its phones
    sum to (`hop` samples a frame). targets: the phonemiser's cache (default a new one).
    Returns a ClipAlignment per clip, in order: a clip that fails keeps its reason.
    """
    require_phonemes(recognizer)
    if not len(audios) == len(texts) == len(codec_frames):
        raise ValueError(f"{len(audios)} audios, {len(texts)} texts and {len(codec_frames)} "
                         "frame counts: need one of each per clip")
    ids = (targets or PhonemeTargets()).encode_many(list(texts), voices)
    slot_samples = recognizer.cfg.model.slot_samples
    out: list[ClipAlignment | None] = [None] * len(audios)
    order = np.argsort([len(a) for a in audios], kind="stable")  # similar lengths together
    for first in range(0, len(order), batch_size):
        rows = order[first:first + batch_size]
        audio_BxT, lengths_B = pad_rows([np.asarray(audios[i], np.float32) for i in rows])
        log_probs_BxSxV, slots_B = recognizer.log_probs(audio_BxT, lengths_B)
        for b, i in enumerate(rows):
            out[i] = _align_one(log_probs_BxSxV[b, :int(slots_B[b])], ids[i], slot_samples,
                                hop, int(codec_frames[i]))
    return out


def failure_lines(ids: Sequence[str], results: Sequence[ClipAlignment]) -> list[str]:
    """'id: reason' for each clip that failed, for reports."""
    return [f"{clip}: {r.failure}" for clip, r in zip(ids, results) if r.failure]


def phone_starts(phones) -> list[tuple[str, int]]:
    """(phoneme, start frame) of a `phones` column (JSON text or list), pauses left out and
    names as the inventory spells them (stress marks dropped, ':' as 'ː')."""
    out, start = [], 0
    for name, frames in parse_phones(phones):
        for mark in STRESS:
            name = name.replace(mark, "")
        if name != PAUSE:
            out.append((name.replace(":", "ː"), start))
        start += frames
    return out


def paired_starts(aligned, reference) -> tuple[np.ndarray, np.ndarray]:
    """Start frames int [P] of the phonemes two `phones` columns share, paired by the longest
    matching runs of names (difflib), first phonemes left out (both start at 0)."""
    a, r = phone_starts(aligned)[1:], phone_starts(reference)[1:]
    matcher = difflib.SequenceMatcher(None, [n for n, _ in a], [n for n, _ in r],
                                      autojunk=False)
    pairs = [(a[i + k][1], r[j + k][1]) for i, j, size in matcher.get_matching_blocks()
             for k in range(size)]
    return (np.array([p for p, _ in pairs], np.int64).reshape(-1),
            np.array([q for _, q in pairs], np.int64).reshape(-1))


def boundary_error_ms(aligned, reference, frame_ms: float = 20.0) -> float:
    """Mean absolute difference in ms of the phoneme start times of two `phones` columns of
    the same phonemes (pauses left out; frames of `frame_ms`). ValueError when the phonemes
    differ (`paired_starts` compares the shared ones) or there is no boundary to compare."""
    a, r = phone_starts(aligned), phone_starts(reference)
    if [n for n, _ in a] != [n for n, _ in r]:
        raise ValueError(f"the two phone lists differ: {json.dumps([n for n, _ in a])} "
                         f"against {json.dumps([n for n, _ in r])}")
    if len(a) < 2:
        raise ValueError("fewer than two phonemes: no boundary to compare")
    starts_a, starts_r = paired_starts(aligned, reference)
    return float(np.mean(np.abs(starts_a - starts_r)) * frame_ms)
