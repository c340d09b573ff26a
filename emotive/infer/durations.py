"""Duration control of aligned (ELLA-V) TTS: `speed` and `seconds` as phoneme frame targets.

An aligned model decides each phoneme's length itself by when it draws end-of-phoneme. The
control keeps that rhythm and rescales it: a first pass decodes freely, then every phoneme's
frames become its first-pass frames times a factor (1 / speed, or the factor that brings the
whole sample to `seconds`), rounded so that the running total stays exact, and a second
pass decodes with those lengths fixed (`Decoder.start(targets=...)`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from emotive.codecs.phonemes import PAUSES, WORD
from emotive.errors import UserError


def _spoken(units: Sequence[int]) -> int:
    """Units that are phonemes (not word boundaries or pauses): each needs a frame."""
    return sum(int(u) not in {WORD, *PAUSES.values()} for u in units)


def check_timing(plan, speed: float, seconds: Sequence[float] | None, texts: int,
                 pause_seconds: float = 0.25) -> None:
    """UserError for a speed or length the plan cannot take: speed <= 0, a plain-layout
    model, or seconds too short to give each phoneme one frame."""
    if not np.isfinite(speed) or speed <= 0:
        raise UserError(f"speed must be a positive number (1: the model's own pace, 2: twice "
                        f"as fast), got {speed}")
    if speed == 1.0 and seconds is None:
        return
    if not plan.aligned:
        raise UserError("speed and seconds control need an aligned TTS model (vocab layout "
                        "ella_v); this one has the plain Llasa layout")
    if speed != 1.0 and seconds is not None:
        raise UserError("give speed or seconds, not both")
    if seconds is None:
        return
    if len(seconds) != texts:
        raise UserError(f"seconds needs one length per text ({texts}), got {len(seconds)}")
    for k, want in enumerate(seconds):
        spoken = sum(_spoken(plan.phones[u]) for u, (kk, _) in enumerate(plan.units) if kk == k)
        pauses = (len(plan.sentences[k]) - 1) * pause_seconds
        least = spoken / plan.tokens_per_second + pauses
        if not np.isfinite(want) or want < least:
            raise UserError(f"--seconds {want:g} is too short for {spoken} phonemes; ask for "
                            f"at least {least:.2f} s")


def rescale(frames: Sequence[int], factor: float) -> list[int]:
    """Frames times factor, rounded on the running total (so the sum is round(sum * f))."""
    ends = np.round(np.cumsum(np.asarray(frames, np.float64)) * factor).astype(np.int64)
    return np.diff(np.concatenate([[0], ends])).tolist()


def scaled_targets(plan, found: dict, speed: float, seconds: Sequence[float] | None,
                   samples: int, pause_seconds: float) -> dict:
    """{(unit row u, sample j): frames per phoneme} for the second pass (module docstring).
    found[u, j]["frames"] holds the first pass's; a row cut before its last phoneme gets the
    row's median for the phonemes it did not reach."""
    full = {}
    for (u, j), info in found.items():
        frames, n = list(info["frames"])[:len(plan.phones[u])], len(plan.phones[u])
        fill = int(np.median(frames)) if frames else 1
        full[u, j] = frames + [fill] * (n - len(frames))
    if seconds is None:
        return {key: rescale(f, 1.0 / speed) for key, f in full.items()}
    out = {}
    for j in range(samples):
        for k, want in enumerate(seconds):
            rows = [u for u, (kk, _) in enumerate(plan.units) if kk == k]
            have = sum(sum(full[u, j]) for u in rows)
            room = (want - (len(rows) - 1) * pause_seconds) * plan.tokens_per_second
            factor = room / max(have, 1)
            for u in rows:
                out[u, j] = rescale(full[u, j], factor)
    return out


def given_targets(plan, durations: Sequence[Sequence[int]], samples: int) -> dict:
    """{(unit row u, sample j): frames} from one list of phoneme frames per one-sentence text
    (UserError when a text has several sentences or the counts differ from its units)."""
    if not plan.aligned:
        raise UserError("phoneme durations need an aligned TTS model (vocab layout ella_v)")
    if len(durations) != len(plan.sentences):
        raise UserError(f"durations needs one list per text ({len(plan.sentences)}), got "
                        f"{len(durations)}")
    out = {}
    for u, (k, _) in enumerate(plan.units):
        if len(plan.sentences[k]) != 1 or len(durations[k]) != len(plan.phones[u]):
            raise UserError(f"text {k}: durations need one sentence and one value per phoneme "
                            f"unit ({len(plan.phones[u])}), got {len(durations[k])}")
        out.update({(u, j): [int(f) for f in durations[k]] for j in range(samples)})
    return out
