"""CTC prefix beam search and the character n-gram language model."""

import itertools
import math
from collections import defaultdict

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from emotive.codecs.chars import BLANK, SPACE, VOCAB_SIZE, ctc_collapse, ctc_greedy_texts, decode, encode
from emotive.errors import UserError
from emotive.infer.ctc_decode import CharNgramLM, WordNgramLM, WordScoring, prefix_beam_search


def _log_probs(rows: list[dict[str, float]], floor: float = -60.0) -> np.ndarray:
    """[S, V] log-probabilities from per-slot {character or '' for blank: probability}."""
    out = np.full((len(rows), VOCAB_SIZE), floor)
    for s, row in enumerate(rows):
        for c, p in row.items():
            out[s, BLANK if c == '' else SPACE if c == ' ' else int(encode(c)[0])] = math.log(p)
    return out


def _ctc_log_likelihood(log_probs_SxV: np.ndarray, text: str) -> float:
    """log P(text | log-probs) by optax's CTC loss (an independent implementation)."""
    labels = encode(text) if text else np.zeros(0, np.int32)
    n = max(1, labels.size)
    lab = np.zeros((1, n), np.int32)
    lab[0, :labels.size] = labels
    lab_pad = np.ones((1, n), np.float32)
    lab_pad[0, :labels.size] = 0.0
    loss = optax.ctc_loss(jnp.asarray(log_probs_SxV[None], jnp.float32),
                          jnp.zeros((1, log_probs_SxV.shape[0]), jnp.float32),
                          jnp.asarray(lab), jnp.asarray(lab_pad), blank_id=BLANK)
    return -float(loss[0])


def test_witten_bell_matches_the_formula_by_hand():
    lm = CharNgramLM.fit(['ab'], order=2)
    v = len(lm.symbols)  # 38 characters and the end symbol
    assert v == VOCAB_SIZE
    p_uni_b = (1 + 3 / v) / (3 + 3)  # '' was followed by a, b and the end: 3 tokens, 3 types
    assert math.isclose(lm.log_prob('a', 'b'), math.log((1 + 1 * p_uni_b) / (1 + 1)))
    p_uni_z = (0 + 3 / v) / 6
    assert math.isclose(lm.log_prob('q', 'z'), math.log(p_uni_z))  # unseen context backs off


@pytest.mark.parametrize('order', [1, 3, 6])
def test_every_distribution_sums_to_one(order):
    lm = CharNgramLM.fit(['the cat sat on the mat', "don't go home", 'tea at noon'], order)
    for context in ['', 't', 'the ', 'the hom', 'zzzz', "don'", 'a' * 20]:
        assert math.isclose(np.exp(lm.distribution(context)).sum(), 1.0, rel_tol=1e-9)


def test_the_model_learns_spelling():
    lm = CharNgramLM.fit(['we went home', 'home at last', 'a home of our own'], order=5)
    assert lm.log_prob('the hom', 'e') > lm.log_prob('the hom', ' ')
    assert lm.log_prob_text('go home') > lm.log_prob_text('go hom')
    with pytest.raises(UserError, match='non-empty'):
        CharNgramLM.fit(['', '?!'])
    with pytest.raises(UserError, match='order'):
        CharNgramLM.fit(['a'], order=0)


def test_beam_finds_the_labelling_greedy_misses():
    # Each slot: blank 0.6, 'a' 0.4. Greedy reads "" (0.36); "a" has 0.16 + 0.24 + 0.24 = 0.64.
    log_probs = _log_probs([{'': 0.6, 'a': 0.4}] * 2)
    greedy = ctc_greedy_texts(log_probs.argmax(-1)[None], np.array([2]))[0]
    assert greedy == '' and prefix_beam_search(log_probs, beam=4) == 'a'
    assert math.isclose(math.exp(_ctc_log_likelihood(log_probs, 'a')), 0.64, rel_tol=1e-4)


def test_a_wide_beam_is_exact_against_brute_force():
    rng = np.random.default_rng(0)
    chars = ['', 'a', 'b']
    for _ in range(5):
        probs = rng.dirichlet(np.ones(3), size=6)
        log_probs = _log_probs([dict(zip(chars, row)) for row in probs])
        totals: dict[str, float] = defaultdict(float)
        for path in itertools.product(range(3), repeat=6):
            ids = [0 if k == 0 else int(encode(chars[k])[0]) for k in path]
            totals[decode(ctc_collapse(ids))] += float(np.prod(probs[np.arange(6), path]))
        best = max(totals, key=totals.get)
        assert prefix_beam_search(log_probs, beam=200, prune=100.0) == best
        assert math.isclose(_ctc_log_likelihood(log_probs, best), math.log(totals[best]),
                            rel_tol=1e-4)


def test_without_a_model_the_beam_is_never_less_likely_than_greedy():
    rng = np.random.default_rng(1)
    for _ in range(10):
        logits = rng.normal(size=(25, VOCAB_SIZE)) * 3.0
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        greedy = ctc_greedy_texts(log_probs.argmax(-1)[None], np.array([25]))[0]
        beam = prefix_beam_search(log_probs, beam=8)
        assert _ctc_log_likelihood(log_probs, beam) >= _ctc_log_likelihood(log_probs, greedy) - 1e-4


def test_the_language_model_settles_what_the_audio_leaves_open():
    # "c" or "k" at the start sound alike here; the model knows "cat", never "kat".
    rows = [{'c': 0.45, 'k': 0.55}, {'': 0.9, 'a': 0.1}, {'a': 0.9, '': 0.1},
            {'t': 0.9, '': 0.1}]
    log_probs = _log_probs(rows)
    assert prefix_beam_search(log_probs, beam=8) == 'kat'
    lm = CharNgramLM.fit(['the cat', 'a cat sat', 'cats and dogs'], order=4)
    assert prefix_beam_search(log_probs, lm, beam=8, alpha=1.0) == 'cat'


def test_bad_arguments_are_refused():
    with pytest.raises(UserError, match='beam width'):
        prefix_beam_search(np.zeros((3, VOCAB_SIZE)), beam=0)
    with pytest.raises(UserError, match='log-probabilities'):
        prefix_beam_search(np.zeros((3, 5)))


def test_the_word_model_is_witten_bell_over_words_with_an_unknown_class():
    lm = WordNgramLM.fit(['the tea is hot', 'the tea is cold', 'a zorp'], order=2, min_count=2)
    assert lm.vocabulary == {'the', 'tea', 'is'}  # words seen once are the unknown class
    v = len(lm.vocabulary) + 2  # the words, the unknown class and the end
    # after 'is': 'hot' and 'cold' (both unknown) twice, 1 type; without context the unknown
    # class is 4 of 13 tokens (10 words and 3 ends) of 5 types
    p_uni_unk = (4 + 5 / v) / (13 + 5)
    assert math.isclose(lm.log_prob(['the', 'tea', 'is'], 'warm'),
                        math.log((2 + 1 * p_uni_unk) / (2 + 1)))
    for context in [(), ('the',), ('is',), ('never', 'seen')]:
        total = sum(math.exp(lm.log_prob(context, w)) for w in
                    sorted(lm.vocabulary) + [WordNgramLM.UNKNOWN, None])
        assert math.isclose(total, 1.0, rel_tol=1e-9)
    assert lm.log_prob_text('the tea is hot') > lm.log_prob_text('the the is hot')
    with pytest.raises(UserError, match='min_count'):
        WordNgramLM.fit(['a'], min_count=0)


def _spelled(text: str, alternatives: dict[int, tuple[str, float]] | None = None,
             p: float = 0.99) -> np.ndarray:
    """Log-probs that spell text one character per slot with a blank slot between: each
    character has probability p (the rest is blank), except that alternatives[i] = (other, q)
    gives character i probability 1 - q and another character q."""
    rows = []
    for i, c in enumerate(text):
        other, q = (alternatives or {}).get(i, ('', 1 - p))
        rows += [{c: 1 - q, other: q}, {'': 1.0}]
    return _log_probs(rows)


def test_the_word_model_settles_what_the_characters_leave_open():
    # "tee" is a little likelier in the audio; after "drink" the words say "tea"
    log_probs = _spelled('drink tee', {8: ('a', 0.45)})
    assert prefix_beam_search(log_probs, beam=8) == 'drink tee'
    words = WordScoring(WordNgramLM.fit(['i drink tea', 'we drink tea', 'the golf tee',
                                         'a tee shot'], order=2, min_count=1), 1.0, 0.0, 0.0)
    assert prefix_beam_search(log_probs, beam=8, words=words) == 'drink tea'


def test_a_clear_made_up_word_survives_the_word_model():
    words = WordScoring(WordNgramLM.fit(['the cat sat', 'the dog sat'], order=2, min_count=1),
                        0.2, 1.0, 20.0)
    assert prefix_beam_search(_spelled('the zorp sat'), beam=8, words=words) == 'the zorp sat'
    # but where the audio is torn between a known word and an unknown one, the known one wins
    torn = _spelled('the dot sat', {6: ('g', 0.45)})
    assert prefix_beam_search(torn, beam=8) == 'the dot sat'
    assert prefix_beam_search(torn, beam=8, words=words) == 'the dog sat'
