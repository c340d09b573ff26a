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
one budget samples about the same number of LM tokens:
- best_of_n: N independent samples, the one with the best outcome score is kept.
- beam: N rows; every `step_tokens` tokens (default 50, one second at 50 Hz) each live
  row's newest chunk is decoded by the codec in a window over its last frames
  (`infer.codec.decode_window`, the streaming decoder), the row's audio so far is scored by
  the process verifier, the top B rows (beam_width, default N / 4) are kept and each is
  continued M = N / B ways with fresh random streams. The kept rows' KV caches are gathered
  on device (`infer.sampling.Decoder.select`); no prefix is prefilled twice. Rows that end
  join the pool of finished candidates; the pool is ranked by the process verifier on the
  whole audio.
- prm_orm: beam, then the pool is re-ranked by the outcome verifier (Llasa's best setting).
- partial_prm: beam for the first `prm_fraction` of the expected length (the text's
  characters at EXPECTED_SECONDS_PER_CHAR), then plain sampling of the N rows to the end;
  ranked by the outcome verifier.
The process verifier defaults to the outcome verifier's emotion and speaker parts (the ones
that can judge a prefix), or all of it; intelligibility on a prefix compares against the
best-matching prefix of the text (`metrics.recognition.prefix_cer`).

Selection (`Selection`): by default the best outcome score (a weighted verifier's weighted
mean; a request's own `weights` replace the search's). `Selection(maximise="emotion",
subject_to={"intelligibility": "median"})` keeps the most emotional candidate among those
no less intelligible than the median candidate. Vetoed candidates (`search.vetoes`, and any
score under the request's `thresholds`) are chosen only when all are vetoed.

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
from typing import Mapping, Sequence

import jax
import numpy as np

from emotive.configs.common import SAMPLE_RATE
from emotive.data.speech.emotions import EMOTIONS
from emotive.errors import UserError
from emotive.infer.codec import LoadedCodec, decode_window
from emotive.infer.predictor import pad_rows
from emotive.infer.sampling import Decoder, SamplingConfig
from emotive.infer.tts import DEFAULT_SAMPLING, Plan, decode_rows, join_sentences, plan_batch
from emotive.search.verifiers import (EmotionVerifier, IntelligibilityVerifier, Request,
                                      SpeakerVerifier, Verifier, WeightedVerifier)
from emotive.search.vetoes import Vetoes

STRATEGIES = ("best_of_n", "beam", "prm_orm", "partial_prm")
EXPECTED_SECONDS_PER_CHAR = 0.06  # the full corpus: 0.056 s per character at the median
LEFT_CONTEXT = 50  # frames of codec context when a new chunk is decoded for a process reward


@dataclasses.dataclass(frozen=True)
class Strategy:
    name: str = "best_of_n"
    beam_width: int = 0  # B; 0: budget // 4 (at least 1)
    step_tokens: int = 50  # K: tokens between process rewards
    prm_fraction: float = 0.5  # partial_prm: share of the expected length searched
    # The reference path: kept rows are re-prefilled from their prefixes instead of having
    # their KV caches gathered (slower, the same result; tests compare the two).
    reprefill: bool = False

    def width(self, budget: int) -> int:
        return self.beam_width or max(1, budget // 4)

    def validate(self, budget: int) -> None:
        if self.name not in STRATEGIES:
            raise UserError(f"unknown search strategy {self.name!r}; use one of "
                            f"{', '.join(STRATEGIES)}")
        if not isinstance(budget, (int, np.integer)) or budget < 1:
            raise UserError(f"the budget (candidates per request) must be an integer >= 1, "
                            f"got {budget!r}")
        if self.beam_width < 0 or self.width(budget) > budget:
            raise UserError(f"beam width {self.width(budget)} is wider than the budget "
                            f"{budget}; use a width in 1..{budget}")
        if self.step_tokens < 1:
            raise UserError(f"step_tokens must be >= 1, got {self.step_tokens}")
        if not 0 < self.prm_fraction <= 1:
            raise UserError(f"prm_fraction must lie in (0, 1], got {self.prm_fraction}")

    @property
    def uses_process(self) -> bool:
        return self.name != "best_of_n"


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


@dataclasses.dataclass
class Candidate:
    codes: np.ndarray  # int32 [N] codec codes
    stopped: bool
    audio: np.ndarray | None = None
    scores: dict[str, float] = dataclasses.field(default_factory=dict)  # per verifier
    outcome: float = float("nan")  # the ranking score
    vetoes: list[str] = dataclasses.field(default_factory=list)
    finished_at: int = 0  # the decoding step at which it ended (or was cut)


@dataclasses.dataclass
class SearchResult:
    audio: np.ndarray
    scores: dict[str, float]  # the chosen candidate's (of each sentence, averaged)
    candidates: list[list[Candidate]]  # per sentence, every finished candidate
    chosen: list[int]  # per sentence, the index of the chosen candidate
    details: dict
    compute: Compute


class _Timer:
    def __init__(self, compute: Compute, field: str):
        self.compute, self.field = compute, field

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        setattr(self.compute, self.field,
                getattr(self.compute, self.field) + time.perf_counter() - self.t0)


def parts_of(verifier: Verifier) -> list[Verifier]:
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


def _score(verifier: Verifier, audio: Sequence[np.ndarray], request: Request,
           compute: Compute, partial: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(ranking score [n], per-verifier scores) of n waveforms for one request."""
    batch, lengths = pad_rows([a if a.size else np.zeros(1, np.float32) for a in audio])
    with _Timer(compute, "verifier_seconds"):
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


def _merge_plans(plans: Sequence[Plan]) -> Plan:
    """One plan of all requests' sentences (the shortest new-token limit serves all)."""
    max_new = min(p.sampling.max_new_tokens for p in plans)
    units, sentences, prompts, groups, min_new = [], [], [], [], []
    for k, p in enumerate(plans):
        units += [(k, i) for _, i in p.units]
        sentences += p.sentences
        prompts += p.prompts
        groups += p.groups
        min_new += [min(m, max_new) for m in p.min_new]
    sampling = dataclasses.replace(plans[0].sampling, max_new_tokens=max_new)
    return Plan(units, sentences, prompts, groups, sampling, min_new, plans[0].max_len,
                plans[0].tokens_per_second)


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
    mesh: a device Mesh whose "data" axis shards the decoding rows (`sampling.Decoder`).
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
                            * plan.tokens_per_second) + 1 for k, i in plan.units)
        if cap < plan.sampling.max_new_tokens:
            plan = dataclasses.replace(
                plan, sampling=dataclasses.replace(plan.sampling, max_new_tokens=cap),
                min_new=[min(m, cap) for m in plan.min_new])
    compute = Compute()
    run = _Run(lm, codec, plan, requests, strategy, budget, seed, process, compute, progress,
               mesh)
    pools = run.best_of_n() if strategy.name == "best_of_n" else run.beam()

    # Final ranking of each sentence's pool.
    ranker = process if strategy.name == "beam" else verifiers
    chosen = []
    for u, pool in enumerate(pools):
        request = requests[plan.units[u][0]]
        _finish_audio(run, pool)
        total, parts = _score(ranker, [c.audio for c in pool], request, compute)
        if ranker is not verifiers and (set(kinds) - set(parts)):
            _, extra = _score(verifiers, [c.audio for c in pool], request, compute)
            parts = {**extra, **parts}
        for n, c in enumerate(pool):
            c.outcome = float(total[n])
            c.scores = {k: float(v[n]) for k, v in parts.items()}
            c.vetoes = ([] if vetoes is None else vetoes.reasons(
                c.audio, c.codes, run.unit_sentences[u], c.stopped)) + _threshold_reasons(c.scores, request)
        chosen.append(_choose(pool, selection))

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


def _threshold_reasons(scores: Mapping[str, float], request: Request) -> list[str]:
    why = []
    for kind, minimum in (request.thresholds or {}).items():
        if kind not in scores:
            raise UserError(f"the request sets a threshold for verifier {kind!r}, which the "
                            f"search does not have; it has {', '.join(scores)}")
        if scores[kind] < minimum:
            why.append(f"{kind} {scores[kind]:.3f} < threshold {minimum:g}")
    return why


def _choose(pool: Sequence[Candidate], selection: Selection) -> int:
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


def _finish_audio(run: "_Run", pool: Sequence[Candidate]) -> None:
    """Decodes every finished candidate whole (not chunked), in one batch."""
    todo = [c for c in pool if c.audio is None]
    if not todo:
        return
    width = max(1, max(c.codes.size for c in todo))
    ids = np.zeros((len(todo), width), np.int32)
    lengths = np.array([c.codes.size for c in todo], np.int32)
    for n, c in enumerate(todo):
        ids[n, :c.codes.size] = run.vocab.codes_to_ids(c.codes)
    with _Timer(run.compute, "codec_seconds"):
        audio = decode_rows(run.codec, run.vocab, ids, lengths)
    for c, a in zip(todo, audio):
        c.audio = a


class _Run:
    """One search's decoding: the plan's units, `budget` rows each, in one Decoder batch."""

    def __init__(self, lm, codec, plan: Plan, requests, strategy: Strategy, budget: int,
                 seed: int, process: Verifier, compute: Compute, progress: bool, mesh=None):
        self.lm, self.codec, self.plan, self.requests = lm, codec, plan, requests
        self.vocab = lm.vocab
        self.strategy, self.budget, self.seed = strategy, budget, seed
        self.process, self.compute, self.progress = process, compute, progress
        self.decoder = Decoder(lm.model, plan.sampling, max_len=plan.max_len, mesh=mesh)
        self.group = plan.group
        self.rounds: list[dict] = []
        self.unit_sentences = [plan.sentences[k][i] for k, i in plan.units]

    # -- decoding with accounting
    def _timed(self, fn, *args, **kwargs):
        with _Timer(self.compute, "lm_seconds"):
            state = fn(*args, **kwargs)
            jax.block_until_ready(state.out)
        return state

    def start(self, row_units: Sequence[int], seeds: Sequence[int]):
        plan = self.plan
        state = self._timed(self.decoder.start, plan.rows(row_units), seeds=plan.repeat(seeds),
                            min_new_tokens=plan.repeat([plan.min_new[u] for u in row_units]))
        self.compute.lm_tokens += len(row_units) * self.group
        return state

    def advance(self, state, until: int):
        i0 = int(state.i)
        if until <= i0:
            return state
        state = self._timed(self.decoder.advance, state, until - i0)
        self.compute.lm_tokens += (int(state.i) - i0) * state.done.shape[0]
        return state

    def _done(self, state) -> np.ndarray:
        """Whether each candidate row (a guidance group's first, padding dropped) ended."""
        return np.asarray(state.done)[:self.decoder.rows][::self.group]

    def _codes(self, tokens_N: np.ndarray, count: int) -> np.ndarray:
        return self.vocab.ids_to_codes(tokens_N[:count]).astype(np.int32)

    def row_seed(self, unit: int, round_: int, slot: int) -> int:
        k, i = self.plan.units[unit]
        return int(np.random.SeedSequence([self.seed + k, i, round_, slot]).generate_state(1)[0])

    # -- strategies
    def best_of_n(self) -> list[list[Candidate]]:
        plan, n = self.plan, self.budget
        units = [u for u in range(len(plan.units)) for _ in range(n)]
        seeds = [plan.seed(self.seed, u, j) for u in range(len(plan.units)) for j in range(n)]
        state = self.advance(self.start(units, seeds), plan.sampling.max_new_tokens)
        out = self.decoder.result(state)
        tokens, counts = out.tokens[::self.group], out.lengths[::self.group]
        stopped = counts < tokens.shape[1]
        pools = [[] for _ in plan.units]
        for r, u in enumerate(units):
            pools[u].append(Candidate(self._codes(tokens[r], counts[r]), bool(stopped[r]),
                                      finished_at=int(state.i)))
        self.rounds.append({"step": int(state.i), "rows": len(units)})
        return pools

    def beam(self) -> list[list[Candidate]]:
        plan, n, s = self.plan, self.budget, self.strategy
        width, k_tokens = s.width(n), s.step_tokens
        max_new = plan.sampling.max_new_tokens
        num_units = len(plan.units)
        units = [u for u in range(num_units) for _ in range(n)]
        seeds = [plan.seed(self.seed, u, j) for u in range(num_units) for j in range(n)]
        state = self.start(units, seeds)
        audio = [np.zeros(0, np.float32) for _ in units]  # each row's audio so far
        pooled = np.zeros(len(units), bool)  # rows whose candidate is in a pool already
        decoded = 0  # frames decoded for every row
        pools: list[list[Candidate]] = [[] for _ in plan.units]
        searched_until = max_new
        if s.name == "partial_prm":
            searched_until = max(max(k_tokens, math.ceil(
                s.prm_fraction * len(text) * EXPECTED_SECONDS_PER_CHAR
                * plan.tokens_per_second)) for text in self.unit_sentences)
        round_ = 0
        bar = _progress(self.progress, max_new)
        while True:
            round_ += 1
            state = self.advance(state, min(round_ * k_tokens, max_new))
            i = int(state.i)
            bar(i)
            out = self.decoder.result(state)
            tokens, counts = out.tokens[::self.group], out.lengths[::self.group]
            done = self._done(state)
            # The new chunk of every row, in one batched streaming decode.
            ids = np.where(np.arange(i)[None] < counts[:, None], tokens[:, :i],
                           self.vocab.speech_offset)
            codes = self.vocab.ids_to_codes(ids).astype(np.int32)
            with _Timer(self.compute, "codec_seconds"):
                chunk = decode_window(self.codec, codes, counts, decoded, i,
                                      left_context=LEFT_CONTEXT)
            hop = self.codec.hop
            for r in range(len(units)):
                valid = max(0, min(int(counts[r]), i) - decoded) * hop
                audio[r] = np.concatenate([audio[r], chunk[r, :valid]])
            decoded = i
            for r in np.flatnonzero(done & ~pooled):  # ended this round
                pools[units[r]].append(Candidate(self._codes(tokens[r], counts[r]), True,
                                                 finished_at=i))
            pooled |= done
            live = ~done
            if i >= max_new or not live.any() or i >= searched_until:
                break
            # Process rewards of the live rows, per sentence; keep the top B, expand M ways.
            # A sentence whose rows have all ended keeps them (idle, already pooled), so the
            # batch keeps its shape and nothing recompiles.
            rows, new_seeds, info = [], [], {"step": i, "kept": []}
            for u in range(num_units):
                mine = [r for r in range(len(units)) if units[r] == u]
                alive = [r for r in mine if live[r]]
                if not alive:
                    rows += mine
                    new_seeds += [self.row_seed(u, round_, slot) for slot in range(len(mine))]
                    continue
                request = self.requests[plan.units[u][0]]
                score, _ = _score(self.process, [audio[r] for r in alive], request,
                                  self.compute, partial=True)
                order = sorted(range(len(alive)), key=lambda m: (-score[m], m))
                kept = [alive[m] for m in order[:width]]
                info["kept"].append([round(float(score[m]), 4) for m in order[:width]])
                copies = -(-n // len(kept))
                for slot, r in enumerate([r for r in kept for _ in range(copies)][:n]):
                    rows.append(r)
                    new_seeds.append(self.row_seed(u, round_, slot))
            self.rounds.append(info)
            if s.reprefill:
                prefix = np.asarray(state.out)[:self.decoder.rows][::self.group][:, :i][rows]
                new_units = [units[r] for r in rows]
                state = self._timed(
                    self.decoder.start, plan.rows(new_units), seeds=plan.repeat(new_seeds),
                    prefixes=np.repeat(prefix, self.group, axis=0),
                    min_new_tokens=plan.repeat([plan.min_new[u] for u in new_units]))
                self.compute.lm_tokens += len(rows) * self.group * i
            else:
                state = self._timed(self.decoder.select, state,
                                    [r * self.group for r in rows], seeds=new_seeds)
            units = [units[r] for r in rows]
            audio = [audio[r] for r in rows]
            pooled = pooled[rows]
        bar(None)
        if i < max_new and live.any():  # partial PRM: sample the rest plainly
            state = self.advance(state, max_new)
            out = self.decoder.result(state)
            tokens, counts = out.tokens[::self.group], out.lengths[::self.group]
            done = self._done(state)
            self.rounds.append({"step": int(state.i), "sampled_to_end": int(live.sum())})
        for r in np.flatnonzero(~pooled):
            pools[units[r]].append(Candidate(self._codes(tokens[r], counts[r]), bool(done[r]),
                                             finished_at=int(state.i)))
        return pools


def _progress(enabled: bool, total: int):
    """A tqdm bar over decoding steps, or a no-op; call with the step, then None to close."""
    if not enabled:
        return lambda i: None
    from tqdm import tqdm
    bar = tqdm(total=total, desc="search", unit="tok", leave=False)

    def update(i):
        if i is None:
            bar.close()
        else:
            bar.update(i - bar.n)
    return update
