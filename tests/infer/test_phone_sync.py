"""Phoneme-synchronous decoding (ELLA-V): the layout it emits, rows alone = rows batched,
select = re-prefill, guidance groups, sharded rows, duration targets and the frame cap, and a
stand-in model whose end-of-phoneme probability is known."""

import jax
import numpy as np
import pytest
from flax import nnx

from emotive.configs.common import TransformerConfig
from emotive.errors import UserError
from emotive.infer.decoder import Decoder, generate
from emotive.infer.sampling import SamplingConfig
from emotive.models.lm import CausalLM

TEXT, SPECIALS, CODES = 32, 8, 40
VOCAB = TEXT + SPECIALS + CODES
EOP, END = TEXT - 1, TEXT + 5
CODE_RANGE = (TEXT + SPECIALS, VOCAB)


@pytest.fixture(scope="module")
def model():
    cfg = TransformerConfig(num_layers=2, d_model=32, num_heads=4, num_kv_heads=2, head_dim=8,
                            mlp_dim=64)
    return CausalLM(cfg, VOCAB, rngs=nnx.Rngs(0))


def _cfg(**kw):
    base = dict(temperature=1.0, max_new_tokens=120, stop_ids=(END, EOP), pad_id=END,
                allowed_range=CODE_RANGE, eop_id=EOP, max_unit_frames=12)
    return SamplingConfig(**{**base, **kw})


def _rows(seed=0, counts=(3, 6, 4)):
    """(prompts ending in their first unit, unit lists) of random text ids."""
    rng = np.random.default_rng(seed)
    units = [list(rng.integers(1, TEXT - 2, n)) for n in counts]
    prompts = [list(rng.integers(1, TEXT - 2, 5)) + [u[0]] for u in units]
    return prompts, units


def _check_layout(tokens, length, units, forced_limit=None):
    """The new tokens follow `codes EOP unit codes EOP ... EOP` and end after the last unit."""
    row = list(tokens[:length])
    assert tokens[length] == END  # stopped
    pieces, current = [], []
    for t in row:
        if t == EOP:
            pieces.append(current)
            current = []
        else:
            current.append(t)
    assert current == [] and len(pieces) == len(units)
    for u, piece in enumerate(pieces):
        codes = piece if u == 0 else piece[1:]
        if u:
            assert piece[0] == units[u]
        assert all(CODE_RANGE[0] <= c < CODE_RANGE[1] for c in codes)
        if forced_limit is not None:
            assert len(codes) <= forced_limit
    return [len(p) - (u > 0) for u, p in enumerate(pieces)]


def test_layout_rows_alone_equal_rows_batched(model):
    cfg = _cfg()
    prompts, units = _rows()
    batch = generate(model, prompts, cfg, seeds=[1, 2, 3], units=units)
    for b in range(3):
        _check_layout(batch.tokens[b], batch.lengths[b], units[b], forced_limit=12)
        alone = generate(model, [prompts[b]], cfg, seeds=[b + 1], units=[units[b]])
        np.testing.assert_array_equal(alone.tokens[0], batch.tokens[b])
        assert alone.forced[0] == batch.forced[b]


def test_selected_rows_continue_as_if_re_prefilled(model):
    cfg = _cfg()
    prompts, units = _rows(1)
    dec = Decoder(model, cfg)
    state = dec.advance(dec.start(prompts, seeds=[1, 2, 3], units=units), 29)
    prefix = np.asarray(state.out)[:, :int(state.i)]
    assert (prefix == EOP).sum(axis=1).min() >= 2  # pointers to rebuild: past two units
    rows, seeds = [2, 0, 2], [11, 12, 13]
    gathered = dec.result(dec.advance(dec.select(state, rows, seeds=seeds), 120))
    fresh = dec.start([prompts[r] for r in rows], seeds=seeds, prefixes=prefix[rows],
                      units=[units[r] for r in rows])
    refilled = dec.result(dec.advance(fresh, 120))
    np.testing.assert_array_equal(gathered.tokens, refilled.tokens)
    for r, b in enumerate(rows):
        _check_layout(gathered.tokens[r], gathered.lengths[r], units[b])


def test_guidance_groups_follow_one_pointer(model):
    cfg = _cfg(guidance=(1.5,))
    prompts, units = _rows(2, (4, 5))
    grouped = [prompts[0], prompts[0][2:], prompts[1], prompts[1][1:]]
    out = generate(model, grouped, cfg, seeds=[3, 3, 4, 4],
                   units=[units[0], units[0], units[1], units[1]])
    np.testing.assert_array_equal(out.tokens[0], out.tokens[1])
    np.testing.assert_array_equal(out.tokens[2], out.tokens[3])
    _check_layout(out.tokens[2], out.lengths[2], units[1])


def test_rows_sharded_over_the_data_axis_decode_as_on_one_device(model):
    from jax.sharding import Mesh

    mesh = Mesh(np.asarray(jax.devices()[:4]), ("data",))
    prompts, units = _rows(3, (3, 5, 2, 4, 6))
    outs = []
    for m in (None, mesh):
        dec = Decoder(model, _cfg(), mesh=m)
        state = dec.advance(dec.start(prompts, seeds=[1, 2, 3, 4, 5], units=units), 6)
        state = dec.select(state, [4, 0, 1], seeds=[7, 8, 9])
        outs.append(dec.result(dec.advance(state, 120)))
    np.testing.assert_array_equal(outs[0].tokens, outs[1].tokens)


def test_targets_fix_every_unit_and_the_cap_is_counted(model):
    prompts, units = _rows(4, (4, 3))
    targets = [[2, 0, 5, 1], [3, 3, 0]]
    out = generate(model, prompts, _cfg(), seeds=[0, 1], units=units, targets=targets)
    for b in range(2):
        assert _check_layout(out.tokens[b], out.lengths[b], units[b]) == targets[b]
    capped = generate(model, prompts, _cfg(max_unit_frames=1), seeds=[0, 1], units=units)
    for b in range(2):
        frames = _check_layout(capped.tokens[b], capped.lengths[b], units[b], forced_limit=1)
        assert capped.forced[b] <= sum(f == 1 for f in frames)
    assert capped.forced.sum() > 0


def test_known_eop_probability_gives_geometric_durations():
    """A stand-in model whose head is zero draws uniformly over the candidates: with 3 codes
    and EOP, P(EOP) = 1/4 per step, so a unit lasts (1 - p) / p = 3 frames on average."""
    cfg_m = TransformerConfig(num_layers=1, d_model=16, num_heads=2, num_kv_heads=1,
                              head_dim=8, mlp_dim=32)
    stand_in = CausalLM(cfg_m, VOCAB, rngs=nnx.Rngs(1))
    stand_in.head.kernel[...] = np.zeros(stand_in.head.kernel.shape, np.float32)
    cfg = _cfg(allowed_range=(CODE_RANGE[0], CODE_RANGE[0] + 3), max_new_tokens=400,
               max_unit_frames=0)
    units = [list(range(1, 31))] * 8
    prompts = [[5, 6, u[0]] for u in units]
    out = generate(stand_in, prompts, cfg, seeds=range(8), units=units)
    frames = [f for b in range(8) for f in _check_layout(out.tokens[b], out.lengths[b],
                                                          units[b])]
    assert len(frames) == 240 and out.forced.sum() == 0
    assert abs(np.mean(frames) - 3.0) < 0.45  # sd of the mean: sqrt(12 / 240) = 0.22


def test_bad_unit_input(model):
    prompts, units = _rows()
    with pytest.raises(UserError, match="one non-empty unit list"):
        generate(model, prompts, _cfg(), seeds=[0, 1, 2])
    with pytest.raises(UserError, match="end with its row's first unit"):
        generate(model, [p[:-1] for p in prompts], _cfg(), seeds=[0, 1, 2], units=units)
    with pytest.raises(UserError, match="stop_ids"):
        _cfg(stop_ids=(END,)).validate(VOCAB)


@pytest.mark.parametrize("temperature", [0.3, 0.8])
def test_end_of_phoneme_keeps_its_temperature_one_probability(temperature):
    """A lower temperature sharpens the codes but leaves P(EOP), so durations stay the model's."""
    import jax.numpy as jnp

    from emotive.infer.decode_loop import PhoneSync, _sync_logits
    from emotive.infer.logits import candidate_ids
    from emotive.infer.sampling import make_knobs

    cfg = _cfg(temperature=temperature)
    knobs = make_knobs(cfg)
    ids_C, _ = candidate_ids(cfg, knobs)
    logits = jax.random.normal(jax.random.PRNGKey(0), (3, ids_C.shape[0])) * 2
    sync = PhoneSync(jnp.zeros((3, 4), jnp.int32), jnp.full(3, 4), jnp.full((3, 4), -1),
                     jnp.zeros(3, jnp.int32), jnp.zeros(3, jnp.int32), jnp.zeros(3, jnp.int32))
    out = _sync_logits(logits, ids_C, sync, cfg, knobs)
    live = ~jnp.isin(ids_C, jnp.asarray([END]))
    eop = np.asarray(ids_C == EOP)
    at_one = jax.nn.softmax(jnp.where(live, logits, -1e30), axis=1)[:, eop]
    at_t = jax.nn.softmax(out / temperature, axis=1)[:, eop]
    np.testing.assert_allclose(at_t, at_one, rtol=1e-4)
    codes = ~eop & np.asarray(live)
    sharper = jax.nn.softmax(out / temperature, axis=1)[:, codes].max(axis=1)
    assert (sharper > jax.nn.softmax(logits[:, codes], axis=1).max(axis=1) * (1 - at_one[:, 0])).all()
