"""Batched sampling from a CausalLM over its fixed-size KV cache: Decoder (start / advance /
select / result) for step-wise search, and generate = start + advance.

    cfg = SamplingConfig(temperature=0.8, top_p=0.95, max_new_tokens=500, stop_ids=(end,))
    out = generate(model, [prompt_a, prompt_b], cfg, seeds=[0, 1])
    out.tokens[b, :out.lengths[b]]          # row b's new tokens, the stop token excluded

The config is `infer.sampling.SamplingConfig`; the cache layout and the jitted loop are
`infer.decode_loop`'s, the processing of logits `infer.logits`'.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emotive.errors import UserError
from emotive.infer import decode_loop
from emotive.infer.decode_loop import DecodeState
from emotive.infer.sampling import SamplingConfig, make_knobs, program_key
from emotive.models.lm import CausalLM

MIN_BUCKET = 16


def bucket_length(n: int) -> int:
    """The padded prompt length for a longest prompt of n tokens (a power of two)."""
    return max(MIN_BUCKET, 1 << (max(n, 1) - 1).bit_length())


class Generated(NamedTuple):
    """tokens int32 [B, max_new] (pad after a stop); lengths int32 [B]: new tokens before
    the stop token. lengths[b] == max_new means row b never stopped (cut by the limit).
    forced int32 [B]: phoneme-synchronous decoding's EOPs forced by a frame limit (else
    None)."""

    tokens: np.ndarray
    lengths: np.ndarray
    forced: np.ndarray | None = None

    def rows(self, index) -> "Generated":
        """The rows `index` (a slice or indices) of every array."""
        return Generated(self.tokens[index], self.lengths[index],
                         None if self.forced is None else self.forced[index])

    @property
    def stopped(self) -> np.ndarray:
        return self.lengths < self.tokens.shape[1]


class Prepared(NamedTuple):
    """A CausalLM split once into graph and state: splitting costs tens of milliseconds of
    Python per call, so callers that sample repeatedly pass this instead of the module."""

    graphdef: nnx.GraphDef
    state: nnx.State
    vocab_size: int


def prepare(model: CausalLM | Prepared) -> Prepared:
    """The model split once (a Prepared is returned as it is)."""
    if isinstance(model, Prepared):
        return model
    graphdef, state = nnx.split(model)
    return Prepared(graphdef, state, model.vocab_size)


def row_keys(seeds_B, group: int = 1) -> jax.Array:
    """Random keys [B, 2]: every row of a guidance group of `group` rows gets its first
    row's PRNGKey(seed)."""
    seeds_B = np.asarray(seeds_B, np.uint32)
    leaders = (np.arange(seeds_B.size) // group) * group
    return jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds_B[leaders]))


def check_seeds(seeds, rows: int) -> np.ndarray:
    """One uint32 seed per row, or UserError."""
    if len(seeds) != rows:
        raise UserError(f"got {len(seeds)} seeds for {rows} prompts; pass one per row")
    if any(int(s) < 0 or int(s) >= 2**32 for s in seeds):
        raise UserError(f"seeds must be integers in [0, 2**32), got {list(seeds)}")
    return np.asarray(seeds, np.uint32)


class Decoder:
    """Step-wise sampling of one batch, for search: start, advance a few tokens, keep and
    duplicate rows (their KV cache gathered on device, never re-prefilled), go on.

        dec = Decoder(model, cfg, max_len=2048)
        state = dec.start(prompts, seeds=[0, 1, 2, 3])
        state = dec.advance(state, 49)              # start drew token 0; now 1..49 too
        state = dec.select(state, [2, 2, 0, 0], seeds=[7, 8, 9, 10])   # rows, new streams
        out = dec.result(dec.advance(state, cfg.max_new_tokens))

    A row's draw at step i uses fold_in(PRNGKey(seed), i) with its current seed, so a row
    continued after `select` equals the same prefix started afresh with `prefixes=` and
    that seed (tests/infer/test_sampling.py checks it). With guidance, rows come in groups
    of K + 1 (see `infer.sampling`); `select` then takes whole groups.

    mesh: a Mesh with a "data" axis shards the rows (and their KV cache) over it, the
    parameters replicated; the batch is padded to a multiple of the axis with copies of
    its first group, which `result` drops. A row's tokens do not depend on the mesh.
    """

    def __init__(self, model: CausalLM | Prepared, cfg: SamplingConfig, *,
                 max_len: int | None = None, mesh=None):
        self.model = prepare(model)
        cfg.validate(self.model.vocab_size)
        self.cfg, self.max_len = cfg, max_len
        self.rows: int | None = None  # rows of the latest batch, padding excluded
        self.sharding = None
        if mesh is not None and mesh.shape.get("data", 1) > 1:
            from jax.sharding import NamedSharding, PartitionSpec
            self.sharding = NamedSharding(mesh, PartitionSpec("data"))
            replicated = NamedSharding(mesh, PartitionSpec())
            self.model = self.model._replace(state=jax.device_put(self.model.state, replicated))
        self.group = len(cfg.guidance) + 1
        self.knobs = make_knobs(cfg)
        self.key = program_key(cfg)
        # One copy of the head's candidate columns in decode layout, made once.
        self.head = decode_loop.candidate_head(self.model.graphdef, self.model.state,
                                               cfg=self.key)

    def start(self, prompts: Sequence[Sequence[int]], *, seeds: Sequence[int],
              prefixes=None, min_new_tokens: Sequence[int] | None = None,
              units: Sequence[Sequence[int]] | None = None,
              targets: Sequence[Sequence[int]] | None = None) -> DecodeState:
        """Prefills the prompts (any lengths) and draws the first new token. prefixes: per
        row, the same number of already-sampled new tokens to continue from (int [B, L]).
        units / targets: phoneme-synchronous decoding (cfg.eop_id >= 0): each row's unit ids
        (its prompt ends with the first) and optionally the frames each unit must last (-1:
        free); see `infer.decode_loop`."""
        cfg, model = self.cfg, self.model
        prompts = [np.asarray(x, np.int64).reshape(-1) for x in prompts]
        if not prompts:
            raise UserError("no prompts to sample from; pass at least one")
        seeds_B = check_seeds(seeds, len(prompts))
        if len(prompts) % self.group:
            raise UserError(f"with {len(cfg.guidance)} guidance weight(s) the prompts come in "
                            f"groups of {self.group}; got {len(prompts)} prompts")
        if min(len(x) for x in prompts) == 0:
            raise UserError("a prompt is empty; every row needs at least one token")
        for x in prompts:
            if x.min() < 0 or x.max() >= model.vocab_size:
                raise UserError(f"prompt ids must lie in [0, {model.vocab_size}), found "
                                f"{x.min()}..{x.max()}; was it built for another vocabulary?")
        longest = max(len(x) for x in prompts)
        if self.max_len is not None and longest + cfg.max_new_tokens > self.max_len:
            raise UserError(f"the longest prompt ({longest} tokens) plus max_new_tokens "
                            f"({cfg.max_new_tokens}) exceeds the model's length "
                            f"{self.max_len}; shorten the text or the reference, or lower the "
                            "new-token limit")
        prefix = np.zeros((len(prompts), 0), np.int64) if prefixes is None else \
            np.asarray(prefixes, np.int64).reshape(len(prompts), -1)
        if not prefix.shape[1] < cfg.max_new_tokens:
            raise UserError(f"a prefix of {prefix.shape[1]} tokens leaves nothing to sample "
                            f"within max_new_tokens={cfg.max_new_tokens}")
        p = bucket_length(longest + prefix.shape[1])
        prompt_BxP = np.zeros((len(prompts), p), np.int32)  # the padding is never attended
        for b, x in enumerate(prompts):
            prompt_BxP[b, :len(x)] = x
            prompt_BxP[b, len(x):len(x) + prefix.shape[1]] = prefix[b]
        lengths_B = np.asarray([len(x) for x in prompts], np.int32)
        if min_new_tokens is None:
            min_new_tokens = [cfg.min_new_tokens] * len(prompts)
        if len(min_new_tokens) != len(prompts) or any(
                not 0 <= int(m) <= cfg.max_new_tokens for m in min_new_tokens):
            raise UserError(f"min_new_tokens needs one value in [0, {cfg.max_new_tokens}] per "
                            f"row, got {list(min_new_tokens)}")
        min_new = np.asarray(min_new_tokens, np.int32)
        min_new = min_new[(np.arange(min_new.size) // self.group) * self.group]
        keys = row_keys(seeds_B, self.group)
        self.rows = len(prompts)
        pad = self._padding(self.rows)
        if pad.size:
            prompt_BxP, lengths_B, min_new = (np.concatenate([x, x[pad]]) for x in
                                              (prompt_BxP, lengths_B, min_new))
            keys = jnp.concatenate([keys, keys[pad]])
        sync = self._units(units, targets, prompts)
        if pad.size and sync is not None:
            sync = tuple(np.concatenate([x, x[pad]]) for x in sync)
        knobs = self.knobs._replace(min_new=min_new)
        if self.sharding is not None:
            prompt_BxP, lengths_B, keys, min_new, sync = jax.device_put(
                (prompt_BxP, lengths_B, keys, min_new, sync), self.sharding)
            knobs = knobs._replace(min_new=min_new)
        return decode_loop.start(model.graphdef, model.state, self.head, prompt_BxP,
                                 lengths_B, np.int32(prefix.shape[1]), keys, knobs, sync,
                                 cfg=self.key, sharding=self.sharding)

    def _units(self, units, targets, prompts):
        """(unit ids [B, U], counts [B], targets [B, U]) padded to a power of two, or None."""
        if self.cfg.eop_id < 0:
            if units is not None:
                raise UserError("units are for phoneme-synchronous decoding; set eop_id")
            return None
        if units is None or len(units) != len(prompts) or any(len(u) == 0 for u in units):
            raise UserError("phoneme-synchronous decoding needs one non-empty unit list per "
                            "row (the text's phonemes)")
        if targets is not None and [len(t) for t in targets] != [len(u) for u in units]:
            raise UserError("duration targets need one value per unit of every row")
        for u, x in zip(units, prompts):
            if int(x[-1]) != int(u[0]):
                raise UserError("each prompt must end with its row's first unit")
        width = bucket_length(max(len(u) for u in units))
        ids = np.zeros((len(units), width), np.int32)
        frames = np.full((len(units), width), -1, np.int32)
        for b, u in enumerate(units):
            ids[b, :len(u)] = u
            if targets is not None:
                frames[b, :len(u)] = targets[b]
        # The pointer starts at unit 0 (the prompt's last token); an EOP moves it on.
        return ids, np.asarray([len(u) for u in units], np.int32), frames

    def _padding(self, rows: int) -> np.ndarray:
        """Row indices appended so that the batch divides the mesh's data axis (copies of
        the first guidance group; empty without a mesh)."""
        if self.sharding is None:
            return np.zeros(0, np.int64)
        d = self.sharding.mesh.shape["data"]
        extra = -rows % d
        return np.arange(extra) % self.group

    def advance(self, state: DecodeState, steps: int) -> DecodeState:
        """Up to `steps` more tokens per row (fewer at max_new_tokens or when all stopped).
        The state passed in is consumed (its buffers are reused)."""
        return decode_loop.advance(self.model.graphdef, self.model.state, self.head, state,
                                   state.i + np.int32(steps), self.knobs, cfg=self.key)

    def select(self, state: DecodeState, rows: Sequence[int], *,
               seeds: Sequence[int]) -> DecodeState:
        """A new batch of the given rows of `state` (repeats allowed; with guidance, the
        first rows of whole groups), each continuing with its new seed."""
        rows = np.asarray(rows, np.int32)
        b = self.rows or state.done.shape[0]
        if rows.size == 0 or rows.min() < 0 or rows.max() >= b:
            raise UserError(f"select needs row indices in [0, {b}), got {rows.tolist()}")
        if np.any(rows % self.group):
            raise UserError(f"with guidance groups of {self.group} rows, select the first row "
                            f"of each group (multiples of {self.group}), got {rows.tolist()}")
        rows = (rows[:, None] + np.arange(self.group)).reshape(-1)
        seeds_R = np.repeat(check_seeds(seeds, rows.size // self.group), self.group)
        keys = row_keys(seeds_R, self.group)
        self.rows = rows.size
        pad = self._padding(rows.size)
        if pad.size:
            rows, keys = np.concatenate([rows, rows[pad]]), jnp.concatenate([keys, keys[pad]])
        if self.sharding is not None:
            keys = jax.device_put(keys, self.sharding)
        return decode_loop.select(state, jnp.asarray(rows), keys, sharding=self.sharding)

    def result(self, state: DecodeState) -> Generated:
        """The new tokens so far as numpy arrays, padding rows dropped."""
        rows = self.rows or state.done.shape[0]
        forced = None if state.sync is None else np.asarray(state.sync.forced)[:rows]
        return Generated(np.asarray(state.out)[:rows], np.asarray(state.count)[:rows], forced)


def generate(model: CausalLM | Prepared, prompts: Sequence[Sequence[int]],
             cfg: SamplingConfig, *, seeds: Sequence[int], max_len: int | None = None,
             min_new_tokens: Sequence[int] | None = None,
             units: Sequence[Sequence[int]] | None = None,
             targets: Sequence[Sequence[int]] | None = None) -> Generated:
    """Samples up to cfg.max_new_tokens after each prompt (lists of token ids, any lengths).

    model: a CausalLM or `prepare(model)`. seeds: one int per row. max_len: the longest
    sequence (prompt + new tokens) the model may see, e.g. its training length; a batch
    that could exceed it raises UserError. min_new_tokens: one per row, in place of
    cfg.min_new_tokens for every row.
    With cfg.guidance (K weights) the prompts are groups of K + 1 rows (see
    `infer.sampling`); the first row's seed and min_new_tokens serve the whole group.
    units / targets: phoneme-synchronous decoding (`Decoder.start`).
    Returns Generated(tokens int32 [B, max_new], lengths int32 [B]) as numpy arrays.
    """
    decoder = Decoder(model, cfg, max_len=max_len)
    state = decoder.start(prompts, seeds=seeds, min_new_tokens=min_new_tokens, units=units,
                          targets=targets)
    return decoder.result(decoder.advance(state, cfg.max_new_tokens))
