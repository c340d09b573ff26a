"""The compiled decode loop: a jitted prefill that draws the first new token, a
`lax.while_loop` over decode steps on a fixed-size KV cache, and the on-device gather of rows
that step-wise search continues (`infer.decoder.Decoder` drives them).

Layout. Prompts of different lengths are right-padded to a bucket length P (the next power
of two, at least MIN_BUCKET: `infer.decoder.bucket_length`) so that one compiled program
serves every batch of the same (batch size, P, max_new_tokens, config). Row b's prompt sits
at positions 0..n_b-1 of a cache of P + max_new_tokens slots and its i-th new token at
position n_b + i. The padding tokens of the prefill are written to slots n_b..P-1 but are
never seen: a query at position p attends to slots <= p only, and slot p is overwritten by
the row's own token before any query reaches it. So a row's tokens do not depend on the
other rows of its batch, and a row sampled in a batch equals it sampled alone with the same
seed.

`start` runs the prefill (head logits only at each row's last prompt token) and draws the
first new token; `advance` a `lax.while_loop` over decode steps that exits as soon as every
row has stopped, or after max_new_tokens; `select` gathers rows (their caches included) on
device. A row stops at its first stop token; afterwards it emits `pad_id`.

Phoneme-synchronous decoding (ELLA-V layout; `cfg.eop_id >= 0`, state.sync a PhoneSync):
every row keeps a pointer into its own units (phonemes, boundaries, pauses). The prompt ends
with the first unit; the model then draws codes until it draws EOP (the end-of-phoneme
token, a candidate beside the codes); the token after an EOP is forced to the row's next
unit, or to the stop token after its last. A row whose unit has reached its frame limit
(`knobs.unit_cap`, or the row's own target for the unit) is forced to EOP (counted in
`forced` when the cap did it); below a target EOP cannot be drawn, so targets fix every unit's length (oracle
durations, speed control).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from emotive.infer.logits import (NEG_INF, decode_head, draw_candidates, guided,
                                  head_candidates)
from emotive.infer.sampling import Knobs, SamplingConfig
from emotive.models.lm import CausalLM


def prefill_hidden(model: CausalLM, tokens_BxT, positions_BxT, cache, last_B):
    """Final hidden state [B, E] of token last_B[b] of each row, and the cache: the output
    head then runs on one position per row only (at a Llasa vocabulary it costs a third of
    a prefill)."""
    h, cache = model.body(model.embed(tokens_BxT), positions=positions_BxT, cache=cache)
    return jnp.take_along_axis(h, last_B[:, None, None], axis=1)[:, 0], cache


def prefill_logits(model: CausalLM, tokens_BxT, positions_BxT, cache, last_B):
    """Logits [B, V] of token last_B[b] of each row, and the cache."""
    h_BxE, cache = prefill_hidden(model, tokens_BxT, positions_BxT, cache, last_B)
    return model.logits(h_BxE), cache


class PhoneSync(NamedTuple):
    """Per-row phoneme pointers of phoneme-synchronous decoding (see the module docstring):
    units [B, U] each row's unit ids (padded), count [B] its units, targets [B, U] frames
    each unit must last (-1: the model decides), ptr [B] the unit being spoken, frames [B]
    its codes so far, forced [B] EOPs forced by a frame limit."""

    units: jax.Array
    count: jax.Array
    targets: jax.Array
    ptr: jax.Array
    frames: jax.Array
    forced: jax.Array


def _unit_limit(sync: PhoneSync, cap) -> jax.Array:
    """The frames the current unit of each row may reach [B]: its target, else the cap."""
    u = jnp.minimum(sync.ptr, sync.units.shape[1] - 1)
    target = jnp.take_along_axis(sync.targets, u[:, None], axis=1)[:, 0]
    return jnp.where(target >= 0, target, cap), target


def _sync_logits(logits_BxC, ids_C, sync: PhoneSync, cfg: SamplingConfig, knobs: Knobs):
    """No EOP below a unit's target frames; no stop token drawn (it is only forced). When
    sampling, EOP keeps its probability at temperature 1 whatever the temperature: a lower
    temperature sharpens which code is spoken, not how long (it would otherwise make every
    phoneme longer, EOP being rarely the likeliest single token)."""
    _, target = _unit_limit(sync, knobs.unit_cap)
    is_eop = (ids_C == cfg.eop_id)[None]
    early = (sync.frames < target)[:, None] & is_eop
    logits = jnp.where(early | jnp.isin(ids_C, knobs.stop_ids)[None] & ~is_eop, NEG_INF,
                       logits_BxC)
    if cfg.temperature == 0:
        return logits
    t = knobs.temperature
    eop = jnp.max(jnp.where(is_eop, logits, NEG_INF), axis=1)
    codes = jnp.where(is_eop, NEG_INF, logits)
    # log p/(1-p) of EOP at temperature 1, plus the codes' log-mass at temperature t: after
    # the division by t EOP's share is p again.
    odds = eop - jax.nn.logsumexp(codes, axis=1)
    calibrated = t * (odds + jax.nn.logsumexp(codes / t, axis=1))
    return jnp.where(is_eop, jnp.where(early, NEG_INF, calibrated[:, None]), logits)


def _sync_step(drawn_B, last_B, sync: PhoneSync, cfg: SamplingConfig, knobs: Knobs):
    """The token each row emits given its drawn one, and the pointers after it."""
    eop = cfg.eop_id
    limit, target = _unit_limit(sync, knobs.unit_cap)
    after_eop = last_B == eop
    nxt = jnp.take_along_axis(sync.units, jnp.minimum(sync.ptr, sync.units.shape[1] - 1)[:, None],
                              axis=1)[:, 0]
    nxt = jnp.where(sync.ptr < sync.count, nxt, knobs.stop_ids[0])
    capped = ~after_eop & (sync.frames >= limit)
    token = jnp.where(after_eop, nxt, jnp.where(capped, eop, drawn_B))
    is_eop = token == eop
    frames = jnp.where(after_eop | is_eop, 0, sync.frames + 1)
    return token, sync._replace(ptr=sync.ptr + is_eop, frames=frames,
                                forced=sync.forced + (capped & (target < 0) & (drawn_B != eop)))


class DecodeState(NamedTuple):
    """The loop's carry between calls, all on device: step i is the index of the next new
    token to draw (the same for every row), `token` the last one fed, `cache` the KV cache
    of P + max_new slots, `out` [B, max_new] the new tokens so far (pad after a stop),
    `count` [B] the new tokens before each row's stop, `lengths` [B] the prompt lengths,
    `keys` [B, 2] each row's random key (a guidance group shares its first row's), `seen`
    [B, V] the ids already in each row (None without a repetition penalty), `sync` the
    phoneme pointers (None unless decoding is phoneme-synchronous)."""

    i: jax.Array
    token: jax.Array
    cache: object
    seen: jax.Array | None
    done: jax.Array
    out: jax.Array
    count: jax.Array
    lengths: jax.Array
    keys: jax.Array
    min_new: jax.Array
    sync: PhoneSync | None = None


def _emit(state: DecodeState, model: CausalLM, head_C0xE, h_BxE, knobs: Knobs,
          cfg: SamplingConfig) -> DecodeState:
    """Draws new token i of every row from its final hidden state; finished rows emit pad."""
    i, done = state.i, state.done
    group = len(cfg.guidance) + 1
    rows = jnp.arange(done.shape[0])
    leader_B = (rows // group) * group
    logits_BxC, ids_C = head_candidates(model, h_BxE, cfg, knobs, head_C0xE)
    penalised = state.seen
    if penalised is not None and group > 1:
        penalised = penalised[leader_B]  # a group penalises its leader's tokens
    logits_BxC = guided(logits_BxC, knobs.guidance)
    sync = state.sync
    if sync is not None:
        logits_BxC = _sync_logits(logits_BxC, ids_C, sync, cfg, knobs)
    token = draw_candidates(logits_BxC, ids_C, penalised, state.keys,
                            i, cfg, knobs._replace(min_new=state.min_new))
    if sync is not None:
        token, moved = _sync_step(token, state.token, sync, cfg, knobs)
        keep = lambda new, old: jnp.where(done.reshape(-1, *[1] * (new.ndim - 1)), old, new)  # noqa: E731
        sync = jax.tree.map(keep, moved, sync)
    seen = state.seen
    token = jnp.where(done, knobs.pad_id, token)
    is_stop = ~done & jnp.isin(token, knobs.stop_ids) & (token != cfg.eop_id)
    if seen is not None:
        seen = seen.at[rows, token].set(seen[rows, token] | ~done)
    return state._replace(i=i + 1, token=token, seen=seen, done=done | is_stop,
                          out=state.out.at[:, i].set(token),
                          count=state.count + (~done & ~is_stop), sync=sync)


def _batch_constrained(tree, sharding):
    """Every array of `tree` sharded on its batch axis (axis ndim - 4 of a KV cache array,
    else 0) over the mesh's data axis; `sharding` None leaves placement to the compiler."""
    if sharding is None:
        return tree

    def put(x):
        if x is None or x.ndim == 0:
            return x
        axis = x.ndim - 4 if x.ndim >= 4 else 0
        spec = [None] * x.ndim
        spec[axis] = "data"
        return jax.lax.with_sharding_constraint(
            x, jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec(*spec)))
    return jax.tree.map(put, tree)


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg"))
def candidate_head(graphdef, params, *, cfg: SamplingConfig) -> jax.Array:
    """`decode_head` of the split model, jitted: [C0, E]."""
    return decode_head(nnx.merge(graphdef, params), cfg)


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg", "sharding"))
def start(graphdef, params, head_C0xE, prompt_BxP, lengths_B, prefix_len, keys_B,
          knobs: Knobs, units=None, *, cfg: SamplingConfig, sharding=None) -> DecodeState:
    """Prefills prompt + prefix (row b's first lengths_B[b] + prefix_len tokens of
    prompt_BxP, the last prefix_len of them already-sampled new tokens) and draws new token
    prefix_len. The cache holds P + max_new slots, P = prompt_BxP's width. units: with
    cfg.eop_id >= 0, (unit ids [B, U], unit counts [B], targets [B, U]); the prompt ends with
    each row's first unit, and the pointers are rebuilt from the prefix."""
    model = nnx.merge(graphdef, params)
    b, p = prompt_BxP.shape
    n = cfg.max_new_tokens
    rows = jnp.arange(b)
    total_B = lengths_B + prefix_len
    # The prefix's tokens count as new ones: they fill out[:, :prefix_len].
    cols = jnp.arange(n)
    out = jnp.take_along_axis(prompt_BxP, jnp.minimum(lengths_B[:, None] + cols, p - 1), axis=1)
    out = jnp.where(cols[None] < prefix_len, out, knobs.pad_id)
    is_stop = jnp.isin(out, knobs.stop_ids) & (out != cfg.eop_id) & (cols[None] < prefix_len)
    done = jnp.any(is_stop, axis=1)
    count = jnp.where(done, jnp.argmax(is_stop, axis=1), prefix_len).astype(jnp.int32)
    seen = None
    if cfg.repetition_penalty != 1.0:
        seen = jnp.zeros((b, model.vocab_size), bool)
        first = jnp.where(cfg.penalize_prompt, 0, lengths_B)[:, None]
        valid = (jnp.arange(p)[None] >= first) & (jnp.arange(p)[None] < total_B[:, None])
        ids = jnp.where(valid, prompt_BxP, model.vocab_size)  # padding: dropped
        seen = seen.at[rows[:, None], ids].set(True, mode="drop")
    positions = jnp.broadcast_to(jnp.arange(p, dtype=jnp.int32), (b, p))
    cache = _batch_constrained(model.init_cache(b, p + n), sharding)
    h_BxE, cache = prefill_hidden(model, prompt_BxP, positions, cache, total_B - 1)
    cache = _batch_constrained(cache, sharding)
    sync = None if cfg.eop_id < 0 else _rebuilt_sync(units, out, prefix_len, cfg)
    state = DecodeState(jnp.asarray(prefix_len, jnp.int32), prompt_BxP[rows, total_B - 1],
                        cache, seen, done, out, count, lengths_B, keys_B, knobs.min_new, sync)
    return _emit(state, model, head_C0xE, h_BxE, knobs, cfg)


def _rebuilt_sync(units, out_BxN, prefix_len, cfg: SamplingConfig) -> PhoneSync:
    """The pointers after a prefix of already-sampled tokens (out[:, :prefix_len]): one unit
    on per EOP, and the codes since the prefix's last non-code token."""
    unit_ids, unit_count, targets = units
    cols = jnp.arange(out_BxN.shape[1])[None]
    new = cols < prefix_len
    lo, hi = cfg.allowed_range
    is_code = new & (out_BxN >= lo) & (out_BxN < hi)
    last_other = jnp.max(jnp.where(new & ~is_code, cols, -1), axis=1)
    zeros = jnp.zeros(out_BxN.shape[0], jnp.int32)
    return PhoneSync(unit_ids, unit_count, targets,
                     jnp.sum(new & (out_BxN == cfg.eop_id), axis=1).astype(jnp.int32),
                     jnp.sum(is_code & (cols > last_other[:, None]), axis=1).astype(jnp.int32),
                     zeros)


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg"), donate_argnums=(3,))
def advance(graphdef, params, head_C0xE, state: DecodeState, until, knobs: Knobs, *,
            cfg: SamplingConfig) -> DecodeState:
    """Decodes one token per step until step `until` (at most max_new) or every row stops."""
    model = nnx.merge(graphdef, params)
    until = jnp.minimum(until, cfg.max_new_tokens)

    def cond(s: DecodeState):
        return (s.i < until) & ~jnp.all(s.done)

    def body(s: DecodeState):
        pos = (s.lengths + s.i - 1)[:, None]
        h, cache = model.body(model.embed(s.token[:, None]), positions=pos, cache=s.cache)
        return _emit(s._replace(cache=cache), model, head_C0xE, h[:, 0], knobs, cfg)

    return jax.lax.while_loop(cond, body, state)


@functools.partial(jax.jit, static_argnames=("sharding",))
def select(state: DecodeState, rows_R, keys_R, *, sharding=None) -> DecodeState:
    """Rows `rows_R` of every per-row array, the cache included, gathered on device; row r
    then draws with keys_R[r]."""
    cache = jax.tree.map(lambda x: jnp.take(x, rows_R, axis=x.ndim - 4), state.cache)
    take = lambda x: None if x is None else jnp.take(x, rows_R, axis=0)  # noqa: E731
    return _batch_constrained(state._replace(
        cache=cache, token=take(state.token), seen=take(state.seen), done=take(state.done),
        out=take(state.out), count=take(state.count), lengths=take(state.lengths), keys=keys_R,
        min_new=take(state.min_new),
        sync=None if state.sync is None else jax.tree.map(take, state.sync)), sharding)
