"""What a search cost: Compute (LM tokens and seconds, codec seconds, verifier calls, clips
and seconds, wall time, audio seconds, RTF) and Timer, which adds a block's seconds to one
of its fields."""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence


@dataclasses.dataclass
class Compute:
    """What a search cost. lm_tokens counts every decoding row and step (guidance rows too)."""

    lm_tokens: int = 0
    lm_seconds: float = 0.0
    codec_seconds: float = 0.0
    verifier_calls: int = 0  # batches scored, per verifier model
    verifier_clips: int = 0
    verifier_seconds: float = 0.0
    wall_seconds: float = 0.0
    audio_seconds: float = 0.0  # of the returned audio

    @property
    def rtf(self) -> float:
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else float("inf")

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "rtf": self.rtf}

    def scaled(self, factor: float) -> "Compute":
        """This compute times `factor` (counts rounded): one request's share of a batch."""
        out = Compute(**{f.name: getattr(self, f.name) * factor
                         for f in dataclasses.fields(Compute)})
        for name in ("lm_tokens", "verifier_calls", "verifier_clips"):
            setattr(out, name, int(round(getattr(out, name))))
        return out

    @staticmethod
    def total(parts: Sequence["Compute"]) -> "Compute":
        return Compute(**{f.name: sum(getattr(c, f.name) for c in parts)
                          for f in dataclasses.fields(Compute)})


class Timer:
    """A with-block whose seconds are added to one field of a Compute."""

    def __init__(self, compute: Compute, field: str):
        self.compute, self.field = compute, field

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        setattr(self.compute, self.field,
                getattr(self.compute, self.field) + time.perf_counter() - self.t0)
