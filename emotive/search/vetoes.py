"""Cheap checks that veto degenerate candidates before (or beside) the model verifiers.

    checks = Vetoes()                                       # the defaults below
    reasons = checks.reasons(audio_T, codes_N, text="Hello there.", stopped=True)
    # [] for a plausible candidate, else e.g. ["silence 82% > 60%", "repeats 71% > 50%"]

Each check is a number with a stated limit, computed in microseconds from the waveform or
the codes alone:
- duration per character of the text, in [min_seconds_per_char, max_seconds_per_char]
  (a babbling loop runs long, a truncated take ends early; the full corpus's clips take
  0.056 s per character at the median, 0.124 at the 99th percentile and 0.152 at most);
- silence fraction: 20 ms frames whose RMS is 40 dB or more below the clip's loudest
  frame, at most max_silence;
- clipping: samples at |x| >= 0.999, at most max_clipped of them;
- repetition loops: the share of code positions that continue a `loop_order`-gram already
  seen earlier in the clip, at most max_repeats (speech at 50 Hz rarely repeats 4-grams;
  a stuck decoder does);
- not stopped: the candidate reached the new-token limit without its end token.
A vetoed candidate is only chosen when every candidate of its request is vetoed; the search
then takes the one with the fewest reasons and says so in its details.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from emotive.configs.common import SAMPLE_RATE
from emotive.errors import UserError

FRAME = SAMPLE_RATE // 50  # 20 ms


@dataclasses.dataclass(frozen=True)
class Vetoes:
    min_seconds_per_char: float = 0.03
    max_seconds_per_char: float = 0.2
    max_silence: float = 0.6
    silence_db: float = 40.0
    max_clipped: float = 0.001
    loop_order: int = 4
    max_repeats: float = 0.5
    require_stop: bool = True

    def __post_init__(self):
        if not 0 <= self.min_seconds_per_char < self.max_seconds_per_char:
            raise UserError("veto limits need 0 <= min_seconds_per_char < max_seconds_per_char")
        for name in ("max_silence", "max_clipped", "max_repeats"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserError(f"veto limit {name} must lie in [0, 1], got {getattr(self, name)}")
        if self.loop_order < 1:
            raise UserError(f"loop_order must be >= 1, got {self.loop_order}")

    def measures(self, audio_T: np.ndarray, codes_N: np.ndarray | None = None,
                 text: str | None = None) -> dict[str, float]:
        """The numbers the checks compare: seconds_per_char, silence, clipped, repeats."""
        audio_T = np.asarray(audio_T, np.float32)
        out = {"seconds": audio_T.size / SAMPLE_RATE,
               "silence": silence_fraction(audio_T, self.silence_db),
               "clipped": float(np.mean(np.abs(audio_T) >= 0.999)) if audio_T.size else 0.0}
        if text:
            out["seconds_per_char"] = out["seconds"] / len(text)
        if codes_N is not None:
            out["repeats"] = repeat_fraction(codes_N, self.loop_order)
        return out

    def reasons(self, audio_T: np.ndarray, codes_N: np.ndarray | None = None,
                text: str | None = None, stopped: bool = True) -> list[str]:
        """Why this candidate is degenerate ([] when it passes every check)."""
        m = self.measures(audio_T, codes_N, text)
        why = []
        if self.require_stop and not stopped:
            why.append("no end token (cut at the length limit)")
        if m["seconds"] == 0:
            return why + ["no audio"]
        spc = m.get("seconds_per_char")
        if spc is not None and spc < self.min_seconds_per_char:
            why.append(f"{spc:.3f} s/char < {self.min_seconds_per_char}")
        if spc is not None and spc > self.max_seconds_per_char:
            why.append(f"{spc:.3f} s/char > {self.max_seconds_per_char}")
        if m["silence"] > self.max_silence:
            why.append(f"silence {m['silence']:.0%} > {self.max_silence:.0%}")
        if m["clipped"] > self.max_clipped:
            why.append(f"clipped {m['clipped']:.2%} > {self.max_clipped:.2%}")
        if m.get("repeats", 0.0) > self.max_repeats:
            why.append(f"repeats {m['repeats']:.0%} > {self.max_repeats:.0%}")
        return why


def silence_fraction(audio_T: np.ndarray, below_db: float = 40.0) -> float:
    """Share of 20 ms frames whose RMS lies `below_db` or more under the loudest frame's."""
    n = audio_T.size // FRAME
    if n == 0:
        return 1.0
    rms = np.sqrt(np.mean(np.square(audio_T[:n * FRAME].reshape(n, FRAME)), axis=1))
    peak = rms.max()
    if peak <= 0:
        return 1.0
    return float(np.mean(rms < peak * 10 ** (-below_db / 20)))


def repeat_fraction(codes_N: np.ndarray, order: int = 4) -> float:
    """Share of positions i >= order whose `order` codes ending at i appeared earlier."""
    codes = np.asarray(codes_N).reshape(-1).tolist()
    if len(codes) <= order:
        return 0.0
    seen, repeats = set(), 0
    for i in range(order, len(codes) + 1):
        gram = tuple(codes[i - order:i])
        repeats += gram in seen
        seen.add(gram)
    return repeats / (len(codes) - order + 1)
