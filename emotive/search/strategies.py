"""The search strategies, all over one decoding batch (`infer.decoder.Decoder`):
SearchDecoding samples the candidates of every sentence of a search, `budget` rows each.

The budget is the number of decoding rows a request holds at once, so every strategy of
one budget samples about the same number of LM tokens:
- best_of_n: N independent samples, the one with the best outcome score is kept.
- beam: N rows; every `step_tokens` tokens (default 50, one second at 50 Hz) each live
  row's newest chunk is decoded by the codec in a window over its last frames
  (`infer.codec.decode_window`, the streaming decoder), the row's audio so far is scored by
  the process verifier, the top B rows (beam_width, default N / 4) are kept and each is
  continued M = N / B ways with fresh random streams. The kept rows' KV caches are gathered
  on device (`infer.decoder.Decoder.select`); no prefix is prefilled twice. Rows that end
  join the pool of finished candidates; the pool is ranked by the process verifier on the
  whole audio.
- prm_orm: beam, then the pool is re-ranked by the outcome verifier (Llasa's best setting).
- partial_prm: beam for the first `prm_fraction` of the expected length (the text's
  characters at EXPECTED_SECONDS_PER_CHAR), then plain sampling of the N rows to the end;
  ranked by the outcome verifier.
The process verifier defaults to the outcome verifier's emotion and speaker parts (the ones
that can judge a prefix), or all of it; intelligibility on a prefix compares against the
best-matching prefix of the text (`metrics.recognition.prefix_cer`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import numpy as np

from emotive.data.pipelines.ella import split_units
from emotive.errors import UserError
from emotive.infer.codec import decode_window
from emotive.infer.decoder import Decoder
from emotive.infer.tts import Plan, decode_rows
from emotive.search.compute import Compute, Timer
from emotive.search.scoring import score_audio
from emotive.search.selection import Candidate
from emotive.search.verifiers import Verifier

STRATEGIES = ("best_of_n", "beam", "prm_orm", "partial_prm")
EXPECTED_SECONDS_PER_CHAR = 0.06  # the full corpus: 0.056 s per character at the median
LEFT_CONTEXT = 50  # frames of codec context when a new chunk is decoded for a process reward


@dataclasses.dataclass(frozen=True)
class Strategy:
    """A strategy of STRATEGIES and its beam settings (see the module docstring)."""

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


class SearchDecoding:
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
        with Timer(self.compute, "lm_seconds"):
            state = fn(*args, **kwargs)
            jax.block_until_ready(state.out)
        return state

    def start(self, row_units: Sequence[int], seeds: Sequence[int]):
        plan = self.plan
        state = self._timed(self.decoder.start, plan.rows(row_units), seeds=plan.repeat(seeds),
                            min_new_tokens=plan.repeat([plan.min_new[u] for u in row_units]),
                            units=self._phones(row_units))
        self.compute.lm_tokens += len(row_units) * self.group
        return state

    def _phones(self, row_units: Sequence[int]):
        """Aligned models: each decoding row's phoneme units (a group shares its unit's)."""
        if not self.plan.aligned:
            return None
        return [self.plan.phones[u] for u in row_units for _ in range(self.group)]

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
        if self.plan.aligned:  # phoneme units and EOPs dropped
            return split_units(self.vocab, tokens_N[:count])[0]
        return self.vocab.ids_to_codes(tokens_N[:count]).astype(np.int32)

    def _audio_so_far(self, tokens, counts, i: int, decoded: int, audio: list) -> None:
        """Appends each row's new audio up to step i. The plain layout decodes the new chunk
        of every row in one streaming window; an aligned row's frames are not its steps, so
        its codes so far are decoded whole (short sentences: cheap) and the new part kept."""
        hop = self.codec.hop
        if self.plan.aligned:
            codes = [self._codes(tokens[r], min(int(counts[r]), i)) for r in range(len(audio))]
            with Timer(self.compute, "codec_seconds"):
                whole = decode_rows(self.codec, self.vocab,
                                    *_as_ids(self.vocab, codes))
            for r, a in enumerate(whole):
                audio[r] = np.concatenate([audio[r], a[audio[r].size:]])
            return
        ids = np.where(np.arange(i)[None] < counts[:, None], tokens[:, :i],
                       self.vocab.speech_offset)
        codes = self.vocab.ids_to_codes(ids).astype(np.int32)
        with Timer(self.compute, "codec_seconds"):
            chunk = decode_window(self.codec, codes, counts, decoded, i,
                                  left_context=LEFT_CONTEXT)
        for r in range(len(audio)):
            valid = max(0, min(int(counts[r]), i) - decoded) * hop
            audio[r] = np.concatenate([audio[r], chunk[r, :valid]])

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
            self._audio_so_far(tokens, counts, i, decoded, audio)  # every row's new audio
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
                score, _ = score_audio(self.process, [audio[r] for r in alive], request,
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
                    min_new_tokens=plan.repeat([plan.min_new[u] for u in new_units]),
                    units=self._phones(new_units))
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


def _as_ids(vocab, codes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Code arrays -> (token ids [B, N] padded, lengths [B]) for decode_rows."""
    ids = np.full((len(codes), max(1, max(c.size for c in codes))), vocab.speech_offset,
                  np.int32)
    for r, c in enumerate(codes):
        ids[r, :c.size] = vocab.codes_to_ids(c)
    return ids, np.asarray([c.size for c in codes], np.int32)


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
