"""Verifier-guided search for expressive TTS: best-of-N, step-wise beam with process rewards,
PRM then ORM, partial PRM, and constrained selection, all over one decoding batch.

    verifiers = load_verifiers({"emotion": "runs/ser-s2", "intelligibility": "runs/asr-s0"})
    result = search(lm, codec, Request(text="The tea has gone cold.", emotion="sad"),
                    strategy="prm_orm", verifiers=verifiers, budget=16, seed=0)
    result.audio            # float32 [T] at 16 kHz, the chosen candidate
    result.scores           # {"emotion": 0.81, "intelligibility": 0.66, "outcome": 0.73}
    result.candidates       # every finished candidate with its scores and veto reasons
    result.compute          # LM tokens, verifier calls and seconds, codec seconds, RTF

The budget is the number of decoding rows a request holds at once, so every strategy of
one budget samples about the same number of LM tokens. The strategies (best_of_n, beam,
prm_orm, partial_prm) are `search.strategies`; the choice among a sentence's candidates is
`search.selection` (`Selection`: by default the best outcome score, or one score maximised
subject to others; a vetoed candidate only when all are).

No candidate is decoded past the veto's length limit (`Vetoes.max_seconds_per_char` times
the longest sentence of the batch): it would be vetoed anyway, and one babbling row would
otherwise keep a whole batch decoding to the new-token limit.

Several requests are searched together: each request's candidates are rows of one batch
(`search_batch`). Long text is split into sentences, each searched on its own and the
chosen sentences joined. Seeds derive from (seed, request, sentence, round, row), so the
same seed gives the same result.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Sequence

import numpy as np

from emotive.configs.common import SAMPLE_RATE
from emotive.errors import UserError
from emotive.infer.codec import LoadedCodec
from emotive.infer.sampling import SamplingConfig
from emotive.infer.tts import DEFAULT_SAMPLING, Plan, decode_rows, join_sentences, plan_batch
from emotive.search.compute import Compute, Timer
from emotive.search.scoring import check_requests, default_process, parts_of, score_audio
from emotive.search.selection import Candidate, Selection, choose, threshold_reasons
from emotive.search.strategies import SearchDecoding, Strategy
from emotive.search.verifiers import Request, Verifier
from emotive.search.vetoes import Vetoes


@dataclasses.dataclass
class SearchResult:
    """One request's chosen audio, its scores, every sentence's candidates and the compute."""

    audio: np.ndarray
    scores: dict[str, float]  # the chosen candidate's (of each sentence, averaged)
    candidates: list[list[Candidate]]  # per sentence, every finished candidate
    chosen: list[int]  # per sentence, the index of the chosen candidate
    details: dict
    compute: Compute


def _merge_plans(plans: Sequence[Plan]) -> Plan:
    """One plan of all requests' sentences (the shortest new-token limit serves all)."""
    max_new = min(p.sampling.max_new_tokens for p in plans)
    aligned = plans[0].aligned
    if aligned:  # a long sentence's units need their room: the largest that fits every prompt
        longest = max(len(x) for p in plans for x in p.prompts)
        max_new = min(max(p.sampling.max_new_tokens for p in plans), plans[0].max_len - longest)
    units, sentences, prompts, groups, min_new, phones = [], [], [], [], [], []
    for k, p in enumerate(plans):
        units += [(k, i) for _, i in p.units]
        sentences += p.sentences
        prompts += p.prompts
        groups += p.groups
        min_new += [min(m, max_new) for m in p.min_new]
        phones += p.phones or []
    sampling = dataclasses.replace(plans[0].sampling, max_new_tokens=max_new)
    return Plan(units, sentences, prompts, groups, sampling, min_new, plans[0].max_len,
                plans[0].tokens_per_second, phones if aligned else None)


def search(lm, codec: LoadedCodec, request: Request, **kwargs) -> SearchResult:
    """Searches one request; see `search_batch` for the arguments."""
    return search_batch(lm, codec, [request], **kwargs)[0]


def search_batch(lm, codec: LoadedCodec, requests: Sequence[Request], *, verifiers: Verifier,
                 strategy: str | Strategy = "best_of_n", budget: int = 8, seed: int = 0,
                 process: Verifier | None = None, selection: Selection | None = None,
                 vetoes: Vetoes | None = Vetoes(), sampling: SamplingConfig = DEFAULT_SAMPLING,
                 max_seconds: float = 20.0, text_scale: float = 1.0,
                 emotion_scale: float = 1.0, progress: bool = False,
                 mesh=None) -> list[SearchResult]:
    """Searches every request with `budget` candidates each, all in one decoding batch.

    lm: `infer.tts_model.load_tts(...)`; codec: the codec its data was encoded with.
    verifiers: the outcome verifier (`search.verifiers.load_verifiers`); process: the
    process verifier of the beam strategies (default: `default_process(verifiers)`).
    strategy: a name of STRATEGIES or a Strategy. selection: how the final candidate is
    chosen (default: the outcome score). vetoes: the degenerate-candidate checks (None:
    off). sampling, max_seconds, text_scale, emotion_scale: as `infer.tts.synthesize`.
    mesh: a device Mesh whose "data" axis shards the decoding rows (`decoder.Decoder`).
    Returns one SearchResult per request; its compute is the batch's, shared pro rata.
    """
    wall0 = time.perf_counter()
    strategy = Strategy(name=strategy) if isinstance(strategy, str) else strategy
    strategy.validate(budget)
    if not 0 <= seed < 2**32:
        raise UserError(f"seed must lie in [0, 2**32), got {seed}")
    process = default_process(verifiers) if process is None else process
    kinds = [v.name for v in parts_of(verifiers)]
    selection = selection or Selection()
    selection.check(kinds)
    check_requests(requests, parts_of(verifiers) + (parts_of(process) if strategy.uses_process
                                                     else []))
    plan = _merge_plans([
        plan_batch(lm, codec, [r.text], emotions=[r.emotion], intensities=[r.intensity],
                   speaker=r.speaker, ref_wav=r.speaker_ref if r.ref_text else None,
                   ref_text=r.ref_text, sampling=sampling, max_seconds=max_seconds,
                   text_scale=text_scale, emotion_scale=emotion_scale) for r in requests])
    if vetoes is not None:  # a candidate past the veto's length limit is lost anyway
        cap = max(math.ceil(vetoes.max_seconds_per_char * len(plan.sentences[k][i])
                            * plan.tokens_per_second) + 1
                  + (2 * len(plan.phones[u]) + 1 if plan.aligned else 0)  # units and EOPs
                  for u, (k, i) in enumerate(plan.units))
        if cap < plan.sampling.max_new_tokens:
            plan = dataclasses.replace(
                plan, sampling=dataclasses.replace(plan.sampling, max_new_tokens=cap),
                min_new=[min(m, cap) for m in plan.min_new])
    compute = Compute()
    run = SearchDecoding(lm, codec, plan, requests, strategy, budget, seed, process, compute,
                         progress, mesh)
    pools = run.best_of_n() if strategy.name == "best_of_n" else run.beam()

    # Final ranking of each sentence's pool.
    ranker = process if strategy.name == "beam" else verifiers
    chosen = []
    for u, pool in enumerate(pools):
        request = requests[plan.units[u][0]]
        _finish_audio(run, pool)
        total, parts = score_audio(ranker, [c.audio for c in pool], request, compute)
        if ranker is not verifiers and (set(kinds) - set(parts)):
            _, extra = score_audio(verifiers, [c.audio for c in pool], request, compute)
            parts = {**extra, **parts}
        for n, c in enumerate(pool):
            c.outcome = float(total[n])
            c.scores = {k: float(v[n]) for k, v in parts.items()}
            c.vetoes = ([] if vetoes is None else vetoes.reasons(
                c.audio, c.codes, run.unit_sentences[u], c.stopped)) + threshold_reasons(
                    c.scores, request)
        chosen.append(choose(pool, selection))

    results = []
    share = 1.0 / len(requests)
    for k, request in enumerate(requests):
        us = [u for u, (kk, _) in enumerate(plan.units) if kk == k]
        pieces = [pools[u][chosen[u]] for u in us]
        audio = join_sentences([c.audio for c in pieces])
        scores = {key: float(np.mean([c.scores[key] for c in pieces]))
                  for key in pieces[0].scores}
        scores["outcome"] = float(np.mean([c.outcome for c in pieces]))
        notes = [f"sentence {i + 1}: every candidate was vetoed; took the one with the fewest "
                 f"reasons ({'; '.join(c.vetoes)})" for i, c in enumerate(pieces) if c.vetoes]
        part = compute.scaled(share)
        part.audio_seconds = audio.size / SAMPLE_RATE
        results.append(SearchResult(
            audio=audio, scores=scores, candidates=[pools[u] for u in us],
            chosen=[chosen[u] for u in us],
            details={"strategy": strategy.name, "budget": budget,
                     "beam_width": strategy.width(budget) if strategy.uses_process else None,
                     "step_tokens": strategy.step_tokens, "rounds": run.rounds,
                     "ranked_by": ranker.name, "notes": notes},
            compute=part))
    wall = time.perf_counter() - wall0
    for r in results:
        r.compute.wall_seconds = wall * share
    return results


def _finish_audio(run: "SearchDecoding", pool: Sequence[Candidate]) -> None:
    """Decodes every finished candidate whole (not chunked), in one batch."""
    todo = [c for c in pool if c.audio is None]
    if not todo:
        return
    width = max(1, max(c.codes.size for c in todo))
    ids = np.zeros((len(todo), width), np.int32)
    lengths = np.array([c.codes.size for c in todo], np.int32)
    for n, c in enumerate(todo):
        ids[n, :c.codes.size] = run.vocab.codes_to_ids(c.codes)
    with Timer(run.compute, "codec_seconds"):
        audio = decode_rows(run.codec, run.vocab, ids, lengths)
    for c, a in zip(todo, audio):
        c.audio = a
