"""Search on an aligned (ELLA-V) TTS LM of random weights: best-of-1 is plain synthesis,
best-of-N keeps the verifier's best, and beam search's gathered caches equal re-prefilled
prefixes (the phoneme pointers rebuilt from them)."""

import numpy as np
import pytest

from emotive.infer.tts import load_pipeline, synthesize
from emotive.search.search import search
from emotive.search.strategies import Strategy
from emotive.search.verifiers import Request

from tests.search.test_search import LowCodeVerifier, SpellingCodec


@pytest.fixture(scope="module")
def aligned(tiny_aligned_tts_run):
    return load_pipeline(*tiny_aligned_tts_run)


REQUEST = Request(text="A bird sang.", emotion="happy")
KW = dict(max_seconds=1.0, vetoes=None)


def test_best_of_one_is_synthesis_and_best_of_n_keeps_the_best(aligned):
    verifier = LowCodeVerifier()
    one = search(aligned.lm, aligned.codec, REQUEST, verifiers=verifier, budget=1, seed=2, **KW)
    plain = synthesize(aligned.lm, aligned.codec, REQUEST.text, emotion="happy", seed=2,
                       max_seconds=1.0)[0]
    np.testing.assert_array_equal(one.audio, plain)
    many = search(aligned.lm, SpellingCodec(), REQUEST, verifiers=verifier, budget=6, seed=2,
                  **KW)
    pool = many.candidates[0]
    assert len(pool) == 6 and pool[many.chosen[0]].outcome == max(c.outcome for c in pool)
    assert all(c.codes.max() < 48 for c in pool)  # codes only: units and EOPs dropped


@pytest.mark.parametrize("name", ["beam", "prm_orm"])
def test_gathered_caches_equal_re_prefilled_prefixes(aligned, name):
    kw = dict(verifiers=LowCodeVerifier(), budget=4, seed=1, **KW)
    gathered = search(aligned.lm, SpellingCodec(), REQUEST,
                      strategy=Strategy(name, beam_width=2, step_tokens=5), **kw)
    refilled = search(aligned.lm, SpellingCodec(), REQUEST,
                      strategy=Strategy(name, beam_width=2, step_tokens=5, reprefill=True), **kw)
    np.testing.assert_array_equal(gathered.audio, refilled.audio)
    assert [c.codes.tolist() for c in gathered.candidates[0]] == \
        [c.codes.tolist() for c in refilled.candidates[0]]
