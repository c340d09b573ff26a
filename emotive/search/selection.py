"""How a search picks one candidate of a sentence's pool: Candidate, Selection, the
request's score thresholds and the choice itself.

By default the best outcome score is chosen (a weighted verifier's weighted mean; a
request's own `weights` replace the search's). `Selection(maximise="emotion",
subject_to={"intelligibility": "median"})` keeps the most emotional candidate among those
no less intelligible than the median candidate. Vetoed candidates (`search.vetoes`, and any
score under the request's `thresholds`) are chosen only when all are vetoed.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from emotive.errors import UserError
from emotive.search.verifiers import Request


@dataclasses.dataclass(frozen=True)
class Selection:
    """maximise: a verifier kind to maximise (None: the outcome score); subject_to: {kind:
    "median" or a minimum score} that the chosen candidate must reach."""

    maximise: str | None = None
    subject_to: Mapping[str, str | float] = dataclasses.field(default_factory=dict)

    def check(self, kinds: Sequence[str]) -> None:
        for kind in ([self.maximise] if self.maximise else []) + list(self.subject_to):
            if kind not in kinds:
                raise UserError(f"selection names verifier {kind!r}, which the search does not "
                                f"have; it has {', '.join(kinds)}")
        for kind, bound in self.subject_to.items():
            if bound != "median" and not isinstance(bound, (int, float)):
                raise UserError(f"selection bound for {kind!r} must be 'median' or a number, "
                                f"got {bound!r}")


@dataclasses.dataclass
class Candidate:
    """One finished (or cut) candidate of a sentence: its codes, audio, scores and vetoes."""

    codes: np.ndarray  # int32 [N] codec codes
    stopped: bool
    audio: np.ndarray | None = None
    scores: dict[str, float] = dataclasses.field(default_factory=dict)  # per verifier
    outcome: float = float("nan")  # the ranking score
    vetoes: list[str] = dataclasses.field(default_factory=list)
    finished_at: int = 0  # the decoding step at which it ended (or was cut)


def threshold_reasons(scores: Mapping[str, float], request: Request) -> list[str]:
    """One veto reason per score under the request's threshold for it."""
    why = []
    for kind, minimum in (request.thresholds or {}).items():
        if kind not in scores:
            raise UserError(f"the request sets a threshold for verifier {kind!r}, which the "
                            f"search does not have; it has {', '.join(scores)}")
        if scores[kind] < minimum:
            why.append(f"{kind} {scores[kind]:.3f} < threshold {minimum:g}")
    return why


def choose(pool: Sequence[Candidate], selection: Selection) -> int:
    """The index of the chosen candidate (see Selection); ties go to the earlier one."""
    clean = [n for n, c in enumerate(pool) if not c.vetoes]
    if not clean:  # all vetoed: the fewest reasons, then the best score
        return min(range(len(pool)), key=lambda n: (len(pool[n].vetoes), -pool[n].outcome, n))
    eligible = clean
    for kind, bound in selection.subject_to.items():
        floor = (float(np.median([pool[n].scores[kind] for n in clean])) if bound == "median"
                 else float(bound))
        eligible = [n for n in eligible if pool[n].scores[kind] >= floor]
    eligible = eligible or clean
    key = (lambda n: pool[n].scores[selection.maximise]) if selection.maximise else \
        (lambda n: pool[n].outcome)
    return max(eligible, key=lambda n: (key(n), -n))
