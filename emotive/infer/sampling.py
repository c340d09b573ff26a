"""Batched sampling from a CausalLM over its fixed-size KV cache.

    cfg = SamplingConfig(temperature=0.8, top_p=0.95, max_new_tokens=500, stop_ids=(end,))
    out = generate(model, [prompt_a, prompt_b], cfg, seeds=[0, 1])
    out.tokens[b, :out.lengths[b]]          # row b's new tokens, the stop token excluded

Layout. Prompts of different lengths are right-padded to a bucket length P (the next power
of two, at least MIN_BUCKET) so that one compiled program serves every batch of the same
(batch size, P, max_new_tokens, config). Row b's prompt sits at positions 0..n_b-1 of a
cache of P + max_new_tokens slots and its i-th new token at position n_b + i. The padding
tokens of the prefill are written to slots n_b..P-1 but are never seen: a query at position
p attends to slots <= p only, and slot p is overwritten by the row's own token before any
query reaches it. So a row's tokens do not depend on the other rows of its batch, and a row
sampled in a batch equals it sampled alone with the same seed.

One jitted function runs the prefill (head logits only at each row's last prompt token) and
a `lax.while_loop` over decode steps that exits as soon as every row has stopped, or after
max_new_tokens. A row stops at its first stop token; afterwards it emits `pad_id`.

Logit processing, in Hugging Face's order: allowed-id restriction, repetition penalty,
temperature, top-k, top-p, then a draw. temperature == 0 is greedy (argmax after the
restriction and the penalty, as Hugging Face's greedy search). With allowed_range only those
ids and the stop ids are candidates, and the output head itself runs over them only
(`decode_head`: the candidate columns, transposed once per Decoder), so a Llasa head costs
the speech codes' third. No step sorts the vocabulary: top-k is `lax.top_k`, top-p after it
sorts only k values, top-p alone finds its threshold by bisection, and the draw is an
inverse CDF with one uniform per row. Row b's randomness at step i is
`fold_in(PRNGKey(seed_b), i)`, so a seed reproduces a row whatever its batch.

Classifier-free guidance (Koel-TTS-style, per condition): with cfg.guidance = (w_1, ..., w_K)
the rows come in groups of G = K + 1 consecutive rows: the conditional prompt first, then K
prompts each lacking one condition (the text, the emotion tag, ...). Every step the group's
logits become l_0 + sum_k w_k (l_0 - l_k) (w_k = scale_k - 1; 0 turns a condition's guidance
off), one token is drawn from them with the first row's seed, and every row of the group is
fed that token, so all G caches follow the same speech. `Generated` then holds G identical
rows per group; callers keep the first.

Compiles: one per (batch, P, program_key(cfg)); temperature, top_p, the penalty, the pad id,
the stop ids and the guidance weights are runtime values. Callers that sample repeatedly pass `prepare(model)`
(the module split once) instead of the module.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emotive.errors import UserError
from emotive.models.lm import CausalLM

MIN_BUCKET = 16
MAX_STOPS = 4  # stop ids travel as a fixed-size array, so changing them does not recompile
NEG_INF = -1e30  # finite, so a fully masked row stays NaN-free


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How to sample. Hashable: `program_key(cfg)` is a static argument of the program.

    repetition_penalty follows Hugging Face: a token already in the row has its logit
    divided by the penalty if positive, multiplied if negative. `penalize_prompt=True`
    counts the prompt's tokens as already in the row, as Hugging Face does; False counts
    only the new ones (for a voice prompt whose reference codes should not be discouraged).
    allowed_range=(lo, hi) restricts draws to ids lo..hi-1 plus the stop ids (at most
    MAX_STOPS), e.g. the speech codes and SPEECH_GENERATION_END after SPEECH_GENERATION_START.
    top_k keeps exactly the k highest logits (ties broken by the lower id); top_p keeps the
    smallest set of highest-probability tokens whose probability reaches top_p.
    """

    temperature: float = 1.0  # 0: greedy
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off
    repetition_penalty: float = 1.0  # 1.0: off
    penalize_prompt: bool = True
    max_new_tokens: int = 256
    min_new_tokens: int = 0  # stop ids cannot be drawn before this many new tokens
    stop_ids: tuple[int, ...] = ()
    pad_id: int = 0
    allowed_range: tuple[int, int] | None = None
    guidance: tuple[float, ...] = ()  # classifier-free guidance weights, one per extra row

    def __post_init__(self):  # lists would make the config unhashable
        object.__setattr__(self, "stop_ids", tuple(int(i) for i in self.stop_ids))
        object.__setattr__(self, "guidance", tuple(float(w) for w in self.guidance))
        if self.allowed_range is not None:
            object.__setattr__(self, "allowed_range", tuple(int(i) for i in self.allowed_range))

    def validate(self, vocab_size: int) -> None:
        if self.temperature < 0:
            raise UserError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        if self.top_k < 0:
            raise UserError(f"top_k must be >= 0 (0 turns it off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p must lie in (0, 1] (1 turns it off), got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise UserError("repetition_penalty must be positive (1 turns it off), got "
                            f"{self.repetition_penalty}")
        if self.max_new_tokens < 1:
            raise UserError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise UserError(f"min_new_tokens must lie in [0, max_new_tokens={self.max_new_tokens}]"
                            f", got {self.min_new_tokens}")
        if len(self.stop_ids) > MAX_STOPS:
            raise UserError(f"at most {MAX_STOPS} stop ids are supported, got {self.stop_ids}")
        ids = tuple(self.stop_ids) + (self.pad_id,)
        if any(not 0 <= i < vocab_size for i in ids):
            raise UserError(f"stop ids {self.stop_ids} and pad id {self.pad_id} must lie in "
                            f"[0, {vocab_size}), the model's vocabulary")
        if any(not np.isfinite(w) for w in self.guidance):
            raise UserError(f"guidance weights must be finite, got {self.guidance}")
        if self.allowed_range is not None:
            lo, hi = self.allowed_range
            if not 0 <= lo < hi <= vocab_size:
                raise UserError(f"allowed_range {self.allowed_range} must satisfy 0 <= lo < hi "
                                f"<= {vocab_size}")


class Generated(NamedTuple):
    """tokens int32 [B, max_new] (pad after a stop); lengths int32 [B]: new tokens before
    the stop token. lengths[b] == max_new means row b never stopped (cut by the limit)."""

    tokens: np.ndarray
    lengths: np.ndarray

    @property
    def stopped(self) -> np.ndarray:
        return self.lengths < self.tokens.shape[1]


def bucket_length(n: int) -> int:
    """The padded prompt length for a longest prompt of n tokens (a power of two)."""
    return max(MIN_BUCKET, 1 << (max(n, 1) - 1).bit_length())


# ----------------------------------------------------------------------------- logits


class Knobs(NamedTuple):
    """The config's values as arrays: changing them reuses the compiled program."""

    temperature: jax.Array  # f32 []
    top_p: jax.Array  # f32 []
    penalty: jax.Array  # f32 []
    pad_id: jax.Array  # int32 []
    stop_ids: jax.Array  # int32 [MAX_STOPS], -1 = unused slot
    min_new: jax.Array  # int32 [] or [B] (per row)
    guidance: jax.Array  # f32 [K]: weights of the K condition-dropped rows of each group


def make_knobs(cfg: SamplingConfig) -> Knobs:
    stops = np.full(MAX_STOPS, -1, np.int32)
    stops[:len(cfg.stop_ids)] = cfg.stop_ids
    return Knobs(np.float32(cfg.temperature or 1.0), np.float32(cfg.top_p),
                 np.float32(cfg.repetition_penalty), np.int32(cfg.pad_id), stops,
                 np.int32(cfg.min_new_tokens), np.asarray(cfg.guidance, np.float32))


def program_key(cfg: SamplingConfig) -> SamplingConfig:
    """The config reduced to what shapes the compiled program (greedy or not, top_k,
    whether top-p and the penalty are on, allowed_range, max_new_tokens); the values travel
    as Knobs, so another temperature or stop id does not recompile."""
    return dataclasses.replace(
        cfg, temperature=0.0 if cfg.temperature == 0 else 1.0,
        top_p=1.0 if cfg.top_p == 1.0 else 0.5,
        repetition_penalty=1.0 if cfg.repetition_penalty == 1.0 else 2.0,
        stop_ids=(), pad_id=0, min_new_tokens=0, guidance=(0.0,) * len(cfg.guidance))


def guided(logits_BxV, weights_K) -> jax.Array:
    """Each group of K + 1 rows' logits combined, l_0 + sum_k w_k (l_0 - l_k), repeated to
    every row of the group: [B, V] -> [B, V]."""
    k = weights_K.shape[0]
    if k == 0:
        return logits_BxV
    groups = logits_BxV.reshape(-1, k + 1, logits_BxV.shape[-1])
    lead_GxV = groups[:, 0]
    combined = lead_GxV + jnp.einsum("k,gkv->gv", weights_K, lead_GxV[:, None] - groups[:, 1:])
    return jnp.repeat(combined, k + 1, axis=0)


def candidate_ids(cfg: SamplingConfig, knobs: Knobs) -> tuple[jax.Array, jax.Array | None]:
    """(ids [C], stop_ok [MAX_STOPS] or None): the whole vocabulary, or with allowed_range
    ids lo..hi-1 then the MAX_STOPS stop slots; stop_ok masks the unused slots and the stops
    inside the range (already candidates)."""
    if cfg.allowed_range is None:
        return None, None
    lo, hi = cfg.allowed_range
    stops = knobs.stop_ids
    stop_ok = (stops >= 0) & ((stops < lo) | (stops >= hi))
    return jnp.concatenate([jnp.arange(lo, hi), jnp.maximum(stops, 0)]), stop_ok


def take_candidates(x_BxV, cfg: SamplingConfig, knobs: Knobs) -> jax.Array:
    """Columns of x [B, V] at the candidate ids: a slice and MAX_STOPS columns, never a
    gather over the vocabulary."""
    if cfg.allowed_range is None:
        return x_BxV
    lo, hi = cfg.allowed_range
    return jnp.concatenate([x_BxV[:, lo:hi], x_BxV[:, jnp.maximum(knobs.stop_ids, 0)]], axis=1)


def candidates(logits_BxV, cfg: SamplingConfig, knobs: Knobs):
    """(logits [B, C], their ids [C]) from full logits: the whole vocabulary, or with
    allowed_range ids lo..hi-1 then the stop slots (unused slots and stops inside the range
    masked), so that the filters see C ids rather than the vocabulary."""
    ids, stop_ok = candidate_ids(cfg, knobs)
    if ids is None:
        return logits_BxV, jnp.arange(logits_BxV.shape[-1])
    values = take_candidates(logits_BxV, cfg, knobs)
    return _mask_stop_slots(values, stop_ok), ids


def _mask_stop_slots(values_BxC, stop_ok):
    c = values_BxC.shape[1] - stop_ok.shape[0]
    keep = jnp.concatenate([jnp.ones(c, bool), stop_ok])
    return jnp.where(keep[None], values_BxC, NEG_INF)


def decode_head(model: CausalLM, cfg: SamplingConfig) -> jax.Array:
    """The head's candidate columns laid out for decoding, [C0, E] in compute dtype: all ids,
    or with allowed_range ids lo..hi-1 only. Made once per Decoder, outside the loop: a
    slice of the kernel inside the loop would be copied every step, and the contraction
    axis minor on both sides runs up to 3x faster on CPU in bf16 (bench/decode.py)."""
    lo, hi = (0, None) if cfg.allowed_range is None else cfg.allowed_range
    return model.head_weight(lo, hi).T


def head_candidates(model: CausalLM, h_BxE, cfg: SamplingConfig, knobs: Knobs,
                    head_C0xE: jax.Array):
    """(logits [B, C] fp32, ids [C]) from final hidden states and `decode_head(model, cfg)`:
    with allowed_range the head runs over ids lo..hi-1 and the stop ids only (a third of a
    Llasa head: 65,536 codes of 193,800 ids), so the other logits are never computed."""
    x = h_BxE.astype(head_C0xE.dtype)
    values = jnp.einsum("be,ce->bc", x, head_C0xE, preferred_element_type=jnp.float32)
    ids, stop_ok = candidate_ids(cfg, knobs)
    if ids is None:
        return values, jnp.arange(model.vocab_size)
    stop_w = model.head_weight()[:, jnp.maximum(knobs.stop_ids, 0)]  # [E, MAX_STOPS]
    stop_logits = jnp.einsum("be,es->bs", x, stop_w.astype(x.dtype),
                             preferred_element_type=jnp.float32)
    return _mask_stop_slots(jnp.concatenate([values, stop_logits], axis=1), stop_ok), ids


def penalize(logits_BxC, seen_BxC, penalty) -> jax.Array:
    """Hugging Face's repetition penalty on the ids already in each row."""
    scaled = jnp.where(logits_BxC < 0, logits_BxC * penalty, logits_BxC / penalty)
    return jnp.where(seen_BxC, scaled, logits_BxC)


def top_p_mask(sorted_logits_BxK: jax.Array, top_p) -> jax.Array:
    """For logits sorted high to low: keep a token if the probability mass strictly above
    it is below top_p (the smallest set reaching top_p; the top token always stays)."""
    probs = jax.nn.softmax(sorted_logits_BxK, axis=-1)
    mass_above = jnp.cumsum(probs, axis=-1) - probs
    return mass_above < top_p


def _order_key(x):
    """float32 -> int32 with the same order (IEEE bits, negatives flipped)."""
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)
    return jnp.where(bits < 0, bits ^ jnp.int32(0x7FFFFFFF), bits)


def top_p_threshold_mask(logits_BxC: jax.Array, top_p) -> jax.Array:
    """top_p_mask without a sort: keep the tokens whose logit is at least the smallest
    logit x at which the mass strictly above x falls below top_p. A bisection over the 2^32
    float orderings (32 passes over C, no sort) finds x exactly; the kept set is the
    sorted rule's, except that tied logits are kept or dropped together."""
    probs = jax.nn.softmax(logits_BxC, axis=-1)
    keys = _order_key(logits_BxC)

    def mass_above(x_B):
        return jnp.sum(jnp.where(keys > x_B[:, None], probs, 0.0), axis=-1)

    def halve(_, bounds):  # invariant: mass_above(hi) < top_p <= mass_above(lo - 1)
        lo, hi = bounds
        mid = (lo & hi) + ((lo ^ hi) >> 1)  # floor((lo + hi) / 2) without overflow
        below = mass_above(mid) < top_p
        return jnp.where(below, lo, mid + 1), jnp.where(below, mid, hi)

    lo, hi = jnp.min(keys, axis=-1), jnp.max(keys, axis=-1)
    lo, hi = jax.lax.fori_loop(0, 32, halve, (lo, hi))
    return keys >= hi[:, None]


def filter_logits(logits_BxC: jax.Array, cfg: SamplingConfig,
                  knobs: Knobs | None = None) -> tuple[jax.Array, jax.Array]:
    """Temperature, top-k and top-p. Returns (kept logits [B, K], their columns [B, K]);
    dropped ones hold NEG_INF. K is top_k when set (sorted by lax.top_k), else C, unsorted:
    top-p alone finds its threshold by bisection (top_p_threshold_mask), so the
    vocabulary is never sorted."""
    knobs = make_knobs(cfg) if knobs is None else knobs
    logits = logits_BxC / knobs.temperature
    b, c = logits.shape
    if 0 < cfg.top_k < c:
        values, cols = jax.lax.top_k(logits, cfg.top_k)  # sorted high to low
        if cfg.top_p < 1.0:
            values = jnp.where(top_p_mask(values, knobs.top_p), values, NEG_INF)
        return values, cols
    cols = jnp.broadcast_to(jnp.arange(c), (b, c))
    if cfg.top_p < 1.0:
        logits = jnp.where(top_p_threshold_mask(logits, knobs.top_p), logits, NEG_INF)
    return logits, cols


def draw(keys_B, step, logits_BxK) -> jax.Array:
    """One column per row from softmax(logits) by the inverse CDF: a single uniform per row
    (row b's from fold_in(keys_B[b], step)) and a cumulative sum, instead of one Gumbel
    variate per candidate (65k random numbers per row and step at a Llasa vocabulary)."""
    u_B = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, step), (),
                                                minval=jnp.finfo(jnp.float32).tiny))(keys_B)
    probs = jnp.exp(logits_BxK - jnp.max(logits_BxK, axis=-1, keepdims=True))
    cdf = jnp.cumsum(probs, axis=-1)
    # The first column whose cumulative mass reaches u * total; a zero-mass column never
    # does before the column with mass preceding it, and u > 0 skips leading zeros.
    return jnp.sum(cdf < (u_B * cdf[:, -1])[:, None], axis=-1).astype(jnp.int32)


def next_tokens(logits_BxV, seen_BxV, keys_B, step, cfg: SamplingConfig,
                knobs: Knobs | None = None) -> jax.Array:
    """One token per row from raw logits [B, V]; row b draws with fold_in(keys_B[b], step).
    seen_BxV (bool, ids already in the row) is needed when the penalty is on."""
    knobs = make_knobs(cfg) if knobs is None else knobs
    logits, ids_C = candidates(logits_BxV, cfg, knobs)
    return draw_candidates(logits, ids_C, seen_BxV, keys_B, step, cfg, knobs)


def draw_candidates(logits_BxC, ids_C, seen_BxV, keys_B, step, cfg: SamplingConfig,
                    knobs: Knobs) -> jax.Array:
    """One token id per row from candidate logits [B, C] with ids [C]: no stop before
    min_new_tokens, the repetition penalty, then greedy or the filters and a draw."""
    # No stop before min_new_tokens (a knob, like the stop ids: 0 changes nothing).
    early_stop_BxC = ((step < jnp.reshape(knobs.min_new, (-1, 1)))
                      & jnp.isin(ids_C, knobs.stop_ids)[None, :])
    logits = jnp.where(early_stop_BxC, NEG_INF, logits_BxC)
    if cfg.repetition_penalty != 1.0:
        logits = penalize(logits, take_candidates(seen_BxV, cfg, knobs), knobs.penalty)
    if cfg.temperature == 0:
        return ids_C[jnp.argmax(logits, axis=-1)].astype(jnp.int32)
    values_BxK, cols_BxK = filter_logits(logits, cfg, knobs)
    picked_B = draw(keys_B, step, values_BxK)
    return ids_C[jnp.take_along_axis(cols_BxK, picked_B[:, None], axis=1)[:, 0]].astype(
        jnp.int32)


# ----------------------------------------------------------------------------- the loop


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


class DecodeState(NamedTuple):
    """The loop's carry between calls, all on device: step i is the index of the next new
    token to draw (the same for every row), `token` the last one fed, `cache` the KV cache
    of P + max_new slots, `out` [B, max_new] the new tokens so far (pad after a stop),
    `count` [B] the new tokens before each row's stop, `lengths` [B] the prompt lengths,
    `keys` [B, 2] each row's random key (a guidance group shares its first row's), `seen`
    [B, V] the ids already in each row (None without a repetition penalty)."""

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
    token = draw_candidates(guided(logits_BxC, knobs.guidance), ids_C, penalised, state.keys,
                            i, cfg, knobs._replace(min_new=state.min_new))
    seen = state.seen
    token = jnp.where(done, knobs.pad_id, token)
    is_stop = ~done & jnp.isin(token, knobs.stop_ids)
    if seen is not None:
        seen = seen.at[rows, token].set(seen[rows, token] | ~done)
    return state._replace(i=i + 1, token=token, seen=seen, done=done | is_stop,
                          out=state.out.at[:, i].set(token),
                          count=state.count + (~done & ~is_stop))


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
def _decode_head(graphdef, params, *, cfg: SamplingConfig) -> jax.Array:
    return decode_head(nnx.merge(graphdef, params), cfg)


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg", "sharding"))
def _start(graphdef, params, head_C0xE, prompt_BxP, lengths_B, prefix_len, keys_B,
           knobs: Knobs, *, cfg: SamplingConfig, sharding=None) -> DecodeState:
    """Prefills prompt + prefix (row b's first lengths_B[b] + prefix_len tokens of
    prompt_BxP, the last prefix_len of them already-sampled new tokens) and draws new token
    prefix_len. The cache holds P + max_new slots, P = prompt_BxP's width."""
    model = nnx.merge(graphdef, params)
    b, p = prompt_BxP.shape
    n = cfg.max_new_tokens
    rows = jnp.arange(b)
    total_B = lengths_B + prefix_len
    # The prefix's tokens count as new ones: they fill out[:, :prefix_len].
    cols = jnp.arange(n)
    out = jnp.take_along_axis(prompt_BxP, jnp.minimum(lengths_B[:, None] + cols, p - 1), axis=1)
    out = jnp.where(cols[None] < prefix_len, out, knobs.pad_id)
    is_stop = jnp.isin(out, knobs.stop_ids) & (cols[None] < prefix_len)
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
    state = DecodeState(jnp.asarray(prefix_len, jnp.int32), prompt_BxP[rows, total_B - 1],
                        cache, seen, done, out, count, lengths_B, keys_B, knobs.min_new)
    return _emit(state, model, head_C0xE, h_BxE, knobs, cfg)


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg"), donate_argnums=(3,))
def _advance(graphdef, params, head_C0xE, state: DecodeState, until, knobs: Knobs, *,
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
def _select(state: DecodeState, rows_R, keys_R, *, sharding=None) -> DecodeState:
    """Rows `rows_R` of every per-row array, the cache included, gathered on device; row r
    then draws with keys_R[r]."""
    cache = jax.tree.map(lambda x: jnp.take(x, rows_R, axis=x.ndim - 4), state.cache)
    take = lambda x: None if x is None else jnp.take(x, rows_R, axis=0)  # noqa: E731
    return _batch_constrained(state._replace(
        cache=cache, token=take(state.token), seen=take(state.seen), done=take(state.done),
        out=take(state.out), count=take(state.count), lengths=take(state.lengths), keys=keys_R,
        min_new=take(state.min_new)), sharding)


class Prepared(NamedTuple):
    """A CausalLM split once into graph and state: splitting costs tens of milliseconds of
    Python per call, so callers that sample repeatedly pass this instead of the module."""

    graphdef: nnx.GraphDef
    state: nnx.State
    vocab_size: int


def prepare(model: CausalLM | Prepared) -> Prepared:
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
    of K + 1 (see the module docstring); `select` then takes whole groups.

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
        self.head = _decode_head(self.model.graphdef, self.model.state, cfg=self.key)

    def start(self, prompts: Sequence[Sequence[int]], *, seeds: Sequence[int],
              prefixes=None, min_new_tokens: Sequence[int] | None = None) -> DecodeState:
        """Prefills the prompts (any lengths) and draws the first new token. prefixes: per
        row, the same number of already-sampled new tokens to continue from (int [B, L])."""
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
        knobs = self.knobs._replace(min_new=min_new)
        if self.sharding is not None:
            prompt_BxP, lengths_B, keys, min_new = jax.device_put(
                (prompt_BxP, lengths_B, keys, min_new), self.sharding)
            knobs = knobs._replace(min_new=min_new)
        return _start(model.graphdef, model.state, self.head, prompt_BxP, lengths_B,
                      np.int32(prefix.shape[1]), keys, knobs, cfg=self.key,
                      sharding=self.sharding)

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
        return _advance(self.model.graphdef, self.model.state, self.head, state,
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
        return _select(state, jnp.asarray(rows), keys, sharding=self.sharding)

    def result(self, state: DecodeState) -> Generated:
        rows = self.rows or state.done.shape[0]
        return Generated(np.asarray(state.out)[:rows], np.asarray(state.count)[:rows])


def generate(model: CausalLM | Prepared, prompts: Sequence[Sequence[int]],
             cfg: SamplingConfig, *, seeds: Sequence[int], max_len: int | None = None,
             min_new_tokens: Sequence[int] | None = None) -> Generated:
    """Samples up to cfg.max_new_tokens after each prompt (lists of token ids, any lengths).

    model: a CausalLM or `prepare(model)`. seeds: one int per row. max_len: the longest
    sequence (prompt + new tokens) the model may see, e.g. its training length; a batch
    that could exceed it raises UserError. min_new_tokens: one per row, in place of
    cfg.min_new_tokens for every row.
    With cfg.guidance (K weights) the prompts are groups of K + 1 rows (see the module
    docstring); the first row's seed and min_new_tokens serve the whole group.
    Returns Generated(tokens int32 [B, max_new], lengths int32 [B]) as numpy arrays.
    """
    decoder = Decoder(model, cfg, max_len=max_len)
    state = decoder.start(prompts, seeds=seeds, min_new_tokens=min_new_tokens)
    return decoder.result(decoder.advance(state, cfg.max_new_tokens))
