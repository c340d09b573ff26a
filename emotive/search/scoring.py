"""The verifiers' side of a search: the parts of a weighted verifier, the default process
verifier, the checks that every verifier has what it needs, and scoring a request's
candidates with the verifier calls and seconds counted."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from emotive.data.speech.emotions import EMOTIONS
from emotive.errors import UserError
from emotive.infer.predictor import pad_rows
from emotive.search.compute import Compute, Timer
from emotive.search.verifiers import (EmotionVerifier, IntelligibilityVerifier, Request,
                                      SpeakerVerifier, Verifier, WeightedVerifier)


def parts_of(verifier: Verifier) -> list[Verifier]:
    """The verifiers a weighted verifier combines, or [verifier]."""
    return list(verifier.parts) if isinstance(verifier, WeightedVerifier) else [verifier]


def check_requests(requests: Sequence[Request], verifiers: Sequence[Verifier]) -> None:
    """The cheap checks, before any sampling: every verifier has what it needs."""
    if not requests:
        raise UserError("nothing to search: give at least one request")
    for n, r in enumerate(requests):
        where = f"request {n}" if len(requests) > 1 else "the request"
        if not r.text or not r.text.strip():
            raise UserError(f"{where} has no text to speak")
        if r.emotion is not None and r.emotion not in EMOTIONS:
            raise UserError(f"{where}: unknown emotion {r.emotion!r}; use one of "
                            f"{', '.join(EMOTIONS)}")
        if (r.ref_text is None) != (r.speaker_ref is None) and r.ref_text is not None:
            raise UserError(f"{where}: ref_text needs speaker_ref, the recording it transcribes")
        for v in verifiers:
            if isinstance(v, SpeakerVerifier) and r.speaker_ref is None:
                raise UserError(f"{where}: the speaker verifier needs a reference recording "
                                "of the target voice (speaker_ref, --ref)")
            if isinstance(v, EmotionVerifier) and r.emotion is None and r.adv is None:
                raise UserError(f"{where}: the emotion verifier needs an emotion (--emotion) "
                                "or an arousal/dominance/valence target")


def default_process(verifier: Verifier) -> Verifier:
    """The parts of `verifier` that judge a prefix well (emotion, speaker), or all of it."""
    parts = [v for v in parts_of(verifier) if not isinstance(v, IntelligibilityVerifier)]
    if not parts or len(parts) == len(parts_of(verifier)):
        return verifier
    if len(parts) == 1:
        return parts[0]
    weights = dict(zip([v.name for v in parts_of(verifier)], verifier.weights))
    return WeightedVerifier(parts, [weights[v.name] for v in parts])


def score_audio(verifier: Verifier, audio: Sequence[np.ndarray], request: Request,
                compute: Compute, partial: bool = False
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(ranking score [n], per-verifier scores) of n waveforms for one request."""
    batch, lengths = pad_rows([a if a.size else np.zeros(1, np.float32) for a in audio])
    with Timer(compute, "verifier_seconds"):
        if isinstance(verifier, WeightedVerifier):
            parts = verifier.details(batch, request, lengths, partial)
            total = verifier.combine(parts, request)
        else:
            total = verifier.score(batch, request, lengths, partial)
            parts = {verifier.name: total}
    compute.verifier_calls += len(parts_of(verifier))
    compute.verifier_clips += len(audio) * len(parts_of(verifier))
    empty = np.array([a.size == 0 for a in audio])
    total = np.where(empty, -np.inf, total)
    return total, parts
