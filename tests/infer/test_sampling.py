"""Batched KV-cache sampling: greedy parity with transformers' generate, cache logits equal a
full forward pass, rows in a batch equal rows alone, top-k/top-p properties, length guard."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from emotive.errors import UserError  # noqa: E402
from emotive.hub.hf_llama import import_hf_llama  # noqa: E402
from emotive.infer.decode_loop import prefill_logits  # noqa: E402
from emotive.infer.decoder import Decoder, Generated, bucket_length, generate  # noqa: E402
from emotive.infer.logits import (candidates, decode_head, draw, filter_logits,  # noqa: E402
                                  head_candidates, next_tokens, top_p_mask,
                                  top_p_threshold_mask)
from emotive.infer.sampling import SamplingConfig, make_knobs  # noqa: E402

TEXT, SPECIALS, CODES = 256, 8, 512  # a Llasa-style enlarged vocabulary
VOCAB = TEXT + SPECIALS + CODES
PROMPT_LENGTHS = (5, 11, 8)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """(our CausalLM, the transformers model) with the same random weights."""
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, max_position_embeddings=128,
                                   attn_implementation="eager")
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for key, p in hf.named_parameters():
            p.copy_(torch.randn_like(p) * 0.15 + (1.0 if "norm" in key else 0.0))
    path = tmp_path_factory.mktemp("llasa_like")
    hf.save_pretrained(path, safe_serialization=True)
    model, _ = import_hf_llama(path)
    return model, hf


def _prompts(seed=0, lengths=PROMPT_LENGTHS):
    rng = np.random.default_rng(seed)
    return [list(rng.integers(0, TEXT, n)) for n in lengths]


def _hf_greedy(hf, prompts, steps, eos, penalty, min_new=0):
    """transformers' batched greedy generate (left padding + attention mask)."""
    width = max(map(len, prompts))
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, x in enumerate(prompts):
        ids[b, width - len(x):] = torch.tensor(x)
        mask[b, width - len(x):] = 1
    gen = transformers.GenerationConfig(do_sample=False, max_new_tokens=steps,
                                        min_new_tokens=min_new, eos_token_id=eos, pad_token_id=0,
                                        repetition_penalty=penalty)
    with torch.no_grad():
        out = hf.generate(ids, attention_mask=mask, generation_config=gen).numpy()
    return out[:, width:]


def _until_stop(row, stops):
    """A row's tokens up to (excluding) its first stop token."""
    for i, t in enumerate(row):
        if t in stops:
            return list(row[:i])
    return list(row)


@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_greedy_matches_transformers_generate(llama, penalty):
    model, hf = llama
    prompts, steps = _prompts(), 12
    free = _hf_greedy(hf, prompts, steps, None, penalty)
    # A stop id that row 0 reaches at step 4 (and not before), so rows finish independently.
    stop = int(free[0, 4])
    assert stop not in free[0, :4]
    want = _hf_greedy(hf, prompts, steps, stop, penalty)
    cfg = SamplingConfig(temperature=0.0, repetition_penalty=penalty, max_new_tokens=steps,
                         stop_ids=(stop,))
    got = generate(model, prompts, cfg, seeds=[0, 0, 0])
    assert got.lengths[0] == 4 and got.stopped[0]
    for b in range(len(prompts)):
        assert list(got.tokens[b, :got.lengths[b]]) == _until_stop(want[b], {stop})
        assert set(got.tokens[b, got.lengths[b] + 1:]) <= {0}  # pad after the stop
    # min_new_tokens=6 forbids that stop before step 6, as transformers' min_new_tokens does.
    want = _hf_greedy(hf, prompts, steps, stop, penalty, min_new=6)
    got = generate(model, prompts, dataclasses.replace(cfg, min_new_tokens=6), seeds=[0, 0, 0])
    assert got.lengths[0] >= 6
    for b in range(len(prompts)):
        assert list(got.tokens[b, :got.lengths[b]]) == _until_stop(want[b], {stop})
    # Per row: only row 0 is held back; the others are as without a minimum.
    per_row = generate(model, prompts, cfg, seeds=[0, 0, 0], min_new_tokens=[6, 0, 0])
    free_rows = generate(model, prompts, cfg, seeds=[0, 0, 0])
    np.testing.assert_array_equal(per_row.tokens[0], got.tokens[0])
    np.testing.assert_array_equal(per_row.tokens[1:], free_rows.tokens[1:])
    with pytest.raises(UserError, match="one value in"):
        generate(model, prompts, cfg, seeds=[0, 0, 0], min_new_tokens=[6])


def test_cache_decoding_equals_full_forward(llama):
    """The generate layout (right padding to a bucket, per-row positions, one token per step
    through the cache) gives the logits of a plain forward pass over each row alone."""
    model, _ = llama
    rows = _prompts(seed=1, lengths=(6, 13))
    p, steps = bucket_length(13), 5
    cont = np.random.default_rng(2).integers(0, VOCAB, (2, steps))
    prompt = np.zeros((2, p), np.int32)
    for b, x in enumerate(rows):
        prompt[b, :len(x)] = x
    lengths = jnp.asarray([len(x) for x in rows])
    positions = jnp.broadcast_to(jnp.arange(p), (2, p))
    step = jax.jit(lambda m, t, pos, c: m(t, positions=pos, cache=c))
    logits, cache = jax.jit(prefill_logits)(model, jnp.asarray(prompt), positions,
                                            model.init_cache(2, p + steps), lengths - 1)
    got = [logits]
    for i in range(steps - 1):
        out, cache = step(model, jnp.asarray(cont[:, i:i + 1]), (lengths + i)[:, None], cache)
        got.append(out[:, 0])
    got = np.stack([np.asarray(g) for g in got], axis=1)  # [B, steps, V]
    # Each row alone, right-padded to a common length (causal: the padding changes nothing).
    full = np.zeros((2, 13 + steps - 1), np.int32)
    for b, x in enumerate(rows):
        full[b, :len(x) + steps - 1] = x + list(cont[b, :steps - 1])
    full_logits = np.asarray(jax.jit(lambda m, t: m(t))(model, jnp.asarray(full)))
    for b, x in enumerate(rows):
        want = full_logits[b, len(x) - 1:len(x) - 1 + steps]
        np.testing.assert_allclose(got[b], want, atol=1e-4, rtol=1e-4)


def test_rows_in_a_batch_equal_rows_alone(llama):
    model, _ = llama
    prompts, seeds = _prompts(seed=3), [11, 22, 33]
    base = SamplingConfig(temperature=0.9, top_k=40, top_p=0.9, repetition_penalty=1.2,
                          max_new_tokens=16, allowed_range=(TEXT + SPECIALS, VOCAB))
    free = generate(model, prompts, base, seeds=seeds)
    assert not free.stopped.any()
    assert ((free.tokens >= TEXT + SPECIALS) & (free.tokens < VOCAB)).all()
    # Stops that rows 0 and 1 reach at different steps; rows continue independently.
    stops = (int(free.tokens[0, 3]), int(free.tokens[1, 9]))
    cfg = SamplingConfig(**{**base.__dict__, "stop_ids": stops})
    batch = generate(model, prompts, cfg, seeds=seeds)
    for b in range(3):
        assert list(batch.tokens[b, :batch.lengths[b]]) == _until_stop(free.tokens[b], stops)
        alone = generate(model, [prompts[b]], cfg, seeds=[seeds[b]])
        np.testing.assert_array_equal(alone.tokens[0], batch.tokens[b])
        assert alone.lengths[0] == batch.lengths[b]
    assert batch.lengths[0] <= 3 and batch.stopped[0]
    assert len(set(batch.lengths.tolist())) > 1
    again = generate(model, prompts, cfg, seeds=seeds)
    np.testing.assert_array_equal(again.tokens, batch.tokens)
    other = generate(model, prompts, cfg, seeds=[12, 23, 34])
    assert (other.tokens != batch.tokens).any()


def test_top_k_top_p_and_penalty_properties():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(4, 50)) * 3, jnp.float32)
    values, ids = filter_logits(logits, SamplingConfig(top_k=5))
    want = np.argsort(-np.asarray(logits), axis=-1)[:, :5]
    np.testing.assert_array_equal(np.asarray(ids), want)

    for p in (0.3, 0.75, 0.95):
        values, ids = filter_logits(logits, SamplingConfig(top_p=p))
        probs = np.asarray(jax.nn.softmax(logits, axis=-1))
        kept = np.asarray(values) > -1e29
        for b in range(4):
            mass = np.sort(probs[b][np.asarray(ids)[b][kept[b]]])
            assert mass.sum() >= p - 1e-6  # reaches top_p ...
            assert mass.sum() - mass[0] < p  # ... and is the smallest such set
    assert np.asarray(top_p_mask(jnp.asarray([[5.0, 0.0, 0.0]]), 0.01)).tolist() == [
        [True, False, False]]  # the top token always stays

    # Draws fall only on kept ids: top_k=3 over many keys.
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(4))
    cfg = SamplingConfig(top_k=3, temperature=1.0)
    draws = jax.jit(jax.vmap(lambda s: next_tokens(logits[:1].repeat(4, 0), None, keys, s,
                                                   cfg)))(jnp.arange(40))
    drawn = set(np.asarray(draws).ravel().tolist())
    assert drawn <= set(want[0, :3].tolist()) and len(drawn) > 1

    # Repetition penalty as Hugging Face: positive divided, negative multiplied.
    raw = jnp.asarray([[2.0, -2.0, 1.0, 0.5]])
    seen = jnp.asarray([[True, True, False, False]])
    greedy = SamplingConfig(temperature=0.0, repetition_penalty=4.0)
    assert int(next_tokens(raw, seen, keys[:1], 0, greedy)[0]) == 2  # 2/4 < 1
    restricted = SamplingConfig(temperature=0.0, allowed_range=(2, 4), stop_ids=(1,))
    assert int(next_tokens(raw, None, keys[:1], 0, restricted)[0]) == 2


def test_top_p_without_a_sort_keeps_the_sorted_rule_set():
    """The bisection threshold keeps exactly the tokens the sorted rule keeps (no ties in
    normal logits), at scales where the kept set is one token, a few, or most."""
    rng = np.random.default_rng(1)
    for scale in (0.1, 1.0, 8.0):
        logits = jnp.asarray(rng.normal(size=(6, 300)) * scale, jnp.float32)
        logits = logits.at[0, :5].set(-1e30)  # masked candidates take no mass
        for p in (0.01, 0.5, 0.9, 0.999):
            values, cols = jax.lax.top_k(logits, logits.shape[1])
            want = np.zeros(logits.shape, bool)
            np.put_along_axis(want, np.asarray(cols), np.asarray(top_p_mask(values, p)), 1)
            got = np.asarray(top_p_threshold_mask(logits, p))
            np.testing.assert_array_equal(got, want)
    spike = jnp.asarray([[40.0, -3.0, -3.5, -4.0]])
    assert np.asarray(top_p_threshold_mask(spike, 0.5)).tolist() == [[True, False, False, False]]


def test_inverse_cdf_draws_follow_the_softmax():
    """Frequencies of 40,000 draws match softmax(logits) within 4 standard errors; masked
    (NEG_INF) columns are never drawn."""
    logits = jnp.asarray([[1.0, -1e30, 0.0, 2.0, -1.0, -1e30, 0.5, 1.5]], jnp.float32)
    n = 40000
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(n))
    picks = np.asarray(jax.jit(lambda k: draw(k, 7, jnp.repeat(logits, n, 0)))(keys))
    freq = np.bincount(picks, minlength=8) / n
    probs = np.asarray(jax.nn.softmax(logits[0]))
    assert freq[1] == 0 and freq[5] == 0
    np.testing.assert_array_less(np.abs(freq - probs), 4 * np.sqrt(probs * (1 - probs) / n) + 1e-9)
    # Another step index draws another stream with the same keys.
    again = np.asarray(jax.jit(lambda k: draw(k, 8, jnp.repeat(logits, n, 0)))(keys))
    assert (again != picks).mean() > 0.3


@pytest.mark.parametrize("tie", [False, True])
def test_head_over_the_allowed_range_equals_the_full_head(llama, tie):
    """Candidate logits from the restricted head (ids lo..hi-1 and the stop columns) equal
    the full head's logits at those ids, with a stop outside the range, one inside it
    (masked: already a candidate) and unused stop slots (masked)."""
    from flax import nnx

    from emotive.models.lm import CausalLM

    model = llama[0] if not tie else CausalLM(llama[0].cfg, VOCAB, tie_embeddings=True,
                                               rngs=nnx.Rngs(3))
    h = jnp.asarray(np.random.default_rng(4).normal(size=(3, llama[0].cfg.d_model)),
                    jnp.float32)
    cfg = SamplingConfig(allowed_range=(TEXT + SPECIALS, VOCAB), stop_ids=(TEXT + 1, VOCAB - 3))
    knobs = make_knobs(cfg)
    got, got_ids = head_candidates(model, h, cfg, knobs, decode_head(model, cfg))
    want, want_ids = candidates(model.logits(h), cfg, knobs)
    np.testing.assert_array_equal(np.asarray(got_ids), np.asarray(want_ids))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
    assert (np.asarray(got)[:, CODES + 1:] < -1e29).all()  # the inside stop, unused slots
    assert np.isfinite(np.asarray(got)[:, :CODES + 1]).all()


def test_length_guard_and_bad_input(llama):
    model, _ = llama
    prompts = _prompts()
    cfg = SamplingConfig(temperature=0.0, max_new_tokens=12)  # compiled by the parity test
    out = generate(model, prompts, cfg, seeds=[0, 1, 2], max_len=23)  # 11 + 12 fits
    assert isinstance(out, Generated) and out.tokens.shape == (3, 12)
    assert (out.lengths == 12).all() and not out.stopped.any()  # cut by the limit
    bad = [
        (dict(max_len=22), "exceeds the model's length 22"),
        (dict(seeds=[0]), "got 1 seeds for 3 prompts"),
        (dict(prompts=[[1, 2], []]), "a prompt is empty"),
        (dict(prompts=[[VOCAB]]), f"prompt ids must lie in [0, {VOCAB})"),
        (dict(cfg=SamplingConfig(top_p=0.0)), "top_p must lie in (0, 1]"),
        (dict(cfg=SamplingConfig(stop_ids=(VOCAB,))), "must lie in [0, "),
    ]
    for change, message in bad:
        kw = dict(prompts=prompts, cfg=cfg, seeds=[0] * len(change.get("prompts", prompts)))
        kw.update(change)
        with pytest.raises(UserError) as err:
            generate(model, kw.pop("prompts"), kw.pop("cfg"), **kw)
        assert message in str(err.value) and "\n" not in str(err.value)


def test_guided_logits_combine_each_group_as_stated():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 5)).astype(np.float32)  # 2 groups of 3 rows
    w = np.array([0.5, 2.0], np.float32)
    from emotive.infer.logits import guided

    out = np.asarray(guided(jnp.asarray(logits), jnp.asarray(w)))
    for g in range(2):
        l0, l1, l2 = logits[3 * g:3 * g + 3]
        want = l0 + 0.5 * (l0 - l1) + 2.0 * (l0 - l2)
        np.testing.assert_allclose(out[3 * g:3 * g + 3], np.stack([want] * 3), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(guided(jnp.asarray(logits), jnp.zeros(0))), logits)


def test_guidance_groups_share_one_stream_and_zero_weight_is_no_guidance(llama):
    model, _ = llama
    cond, other = _prompts(lengths=(7, 4))
    cfg = SamplingConfig(temperature=0.9, top_k=20, max_new_tokens=10)
    plain = generate(model, [cond], cfg, seeds=[3])
    zero = generate(model, [cond, other], dataclasses.replace(cfg, guidance=(0.0,)),
                    seeds=[3, 99])
    np.testing.assert_array_equal(zero.tokens[0], plain.tokens[0])  # weight 0: unguided
    np.testing.assert_array_equal(zero.tokens[0], zero.tokens[1])  # one stream per group
    strong = generate(model, [cond, other], dataclasses.replace(cfg, temperature=0.0,
                                                                guidance=(4.0,)), seeds=[3, 3])
    np.testing.assert_array_equal(strong.tokens[0], strong.tokens[1])
    # Greedy on l0 + 4 (l0 - l1) is what the rows follow, step one checked by hand.
    ids = jnp.asarray([cond + [0] * (16 - len(cond)), other + [0] * (16 - len(other))])
    pos = jnp.broadcast_to(jnp.arange(16), (2, 16))
    first, _ = prefill_logits(model, ids, pos, model.init_cache(2, 32),
                              jnp.asarray([len(cond) - 1, len(other) - 1]))
    want = int(jnp.argmax(first[0] + 4.0 * (first[0] - first[1])))
    assert int(strong.tokens[0, 0]) == want


def test_guidance_needs_whole_groups(llama):
    model, _ = llama
    cfg = SamplingConfig(max_new_tokens=4, guidance=(1.0,))
    with pytest.raises(UserError, match="groups of 2"):
        generate(model, _prompts(), cfg, seeds=[0, 1, 2])
    with pytest.raises(UserError, match="finite"):
        generate(model, _prompts(lengths=(3, 3)), SamplingConfig(guidance=(float("nan"),)),
                 seeds=[0, 1])


def test_decoding_in_steps_equals_one_call(llama):
    """Decoder.start + advance(k) repeatedly gives generate's tokens."""
    model, _ = llama
    cfg = SamplingConfig(temperature=0.9, top_k=50, max_new_tokens=24, stop_ids=(TEXT + 3,),
                         pad_id=TEXT + 3, repetition_penalty=1.3)
    prompts, seeds = _prompts(3), [4, 5, 6]
    whole = generate(model, prompts, cfg, seeds=seeds)
    dec = Decoder(model, cfg)
    state = dec.start(prompts, seeds=seeds)
    for _ in range(5):
        state = dec.advance(state, 5)
    out = dec.result(state)
    np.testing.assert_array_equal(out.tokens, whole.tokens)
    np.testing.assert_array_equal(out.lengths, whole.lengths)


@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_selected_rows_continue_as_if_re_prefilled(llama, penalty):
    """Gathering kept rows' KV cache on device equals re-prefilling their prefixes: the same
    seeds give the same continuations (the beam-search invariant)."""
    model, _ = llama
    cfg = SamplingConfig(temperature=1.0, max_new_tokens=20, repetition_penalty=penalty,
                         penalize_prompt=False, allowed_range=(TEXT + SPECIALS, VOCAB))
    prompts = _prompts(4)
    dec = Decoder(model, cfg)
    state = dec.advance(dec.start(prompts, seeds=[1, 2, 3]), 7)
    prefix = np.asarray(state.out)[:, :int(state.i)]
    rows, seeds = [2, 0, 2, 1], [11, 12, 13, 14]
    gathered = dec.result(dec.advance(dec.select(state, rows, seeds=seeds), 20))
    fresh = dec.start([prompts[r] for r in rows], seeds=seeds, prefixes=prefix[rows])
    refilled = dec.result(dec.advance(fresh, 20))
    np.testing.assert_array_equal(gathered.tokens, refilled.tokens)
    assert prefix.shape[1] == 8  # start draws token 0, advance(7) tokens 1..7
    np.testing.assert_array_equal(gathered.tokens[:, :8], prefix[rows])
    assert not np.array_equal(gathered.tokens[0], gathered.tokens[2])  # new streams differ


def test_select_rejects_bad_rows(llama):
    model, _ = llama
    cfg = SamplingConfig(max_new_tokens=4, guidance=(1.0,))
    dec = Decoder(model, cfg)
    state = dec.start(_prompts(5, (3, 3, 4, 4)), seeds=[0, 0, 1, 1])
    with pytest.raises(UserError, match="first row of each group"):
        dec.select(state, [1], seeds=[0])
    with pytest.raises(UserError, match="row indices"):
        dec.select(state, [4], seeds=[0])


def test_rows_sharded_over_the_data_axis_decode_as_on_one_device(llama):
    """With a mesh, rows (padded to a multiple of the data axis) and their KV cache are spread
    over the devices; tokens equal the single-device run, select included."""
    from jax.sharding import Mesh

    model, _ = llama
    mesh = Mesh(np.asarray(jax.devices()[:4]), ("data",))
    cfg = SamplingConfig(temperature=1.0, max_new_tokens=12, allowed_range=(TEXT + SPECIALS, VOCAB))
    prompts, seeds = _prompts(6, (4, 9, 6, 5, 7)), [1, 2, 3, 4, 5]  # 5 rows -> padded to 8
    outs = []
    for m in (None, mesh):
        dec = Decoder(model, cfg, mesh=m)
        state = dec.advance(dec.start(prompts, seeds=seeds), 4)
        if m is not None:
            cache = jax.tree.leaves(state.cache)[0]
            assert len(cache.sharding.device_set) == 4 and cache.shape[-4] == 8
        state = dec.select(state, [4, 0, 0], seeds=[7, 8, 9])
        outs.append(dec.result(dec.advance(state, 12)))
    np.testing.assert_array_equal(outs[0].tokens, outs[1].tokens)
    assert outs[1].tokens.shape[0] == 3
