"""Next-token logits to tokens: the candidate ids, the head over them, the repetition
penalty, temperature, top-k, top-p, classifier-free guidance and the draw.

Logit processing, in Hugging Face's order: allowed-id restriction, repetition penalty,
temperature, top-k, top-p, then a draw. temperature == 0 is greedy (argmax after the
restriction and the penalty, as Hugging Face's greedy search). With allowed_range only those
ids and the stop ids are candidates, and the output head itself runs over them only
(`decode_head`: the candidate columns, transposed once per Decoder), so a Llasa head costs
the speech codes' third. No step sorts the vocabulary: top-k is `lax.top_k`, top-p after it
sorts only k values, top-p alone finds its threshold by bisection, and the draw is an
inverse CDF with one uniform per row. Row b's randomness at step i is
`fold_in(PRNGKey(seed_b), i)`, so a seed reproduces a row whatever its batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emotive.infer.sampling import Knobs, SamplingConfig, make_knobs
from emotive.models.lm import CausalLM

NEG_INF = -1e30  # finite, so a fully masked row stays NaN-free


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
