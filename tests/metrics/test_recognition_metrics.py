"""CER/WER/edit distance and EER against hand-computed cases, plus the character codec."""

import itertools

import numpy as np
import pytest

from emotive.codecs import chars
from emotive.errors import UserError
from emotive.metrics.recognition import (cer, cosine_trials, edit_distance, eer, error_counts, wer,
                                         wrong_text_cer, wrong_text_pairs)


def slow_edit_distance(a, b):
    """Textbook O(n m) dynamic programme, for cross-checking the vectorised one."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i, j in itertools.product(range(1, len(a) + 1), range(1, len(b) + 1)):
        d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[-1][-1]


def test_edit_distance_hand_cases_and_properties():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("flaw", "lawn") == 2
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "") == 3
    assert edit_distance("same", "same") == 0
    assert edit_distance(["the", "cat", "sat"], ["the", "sat"]) == 1
    rng = np.random.default_rng(0)
    for _ in range(40):
        a = "".join(rng.choice(list("abc"), rng.integers(0, 9)))
        b = "".join(rng.choice(list("abc"), rng.integers(0, 9)))
        d = edit_distance(a, b)
        assert d == slow_edit_distance(a, b) == edit_distance(b, a)  # symmetric
        assert abs(len(a) - len(b)) <= d <= max(len(a), len(b))


def test_cer_wer_are_corpus_level_and_normalised():
    # "Hello, World!" -> "hello world" (11 chars, 2 words); "hello word": 1 char, 1 word edit.
    assert cer(["Hello, World!"], ["hello word"]) == pytest.approx(1 / 11)
    assert wer(["Hello, World!"], ["hello word"]) == pytest.approx(1 / 2)
    # Corpus level: (0 + 4) / (2 + 8), not the mean of per-utterance rates (0 and 0.5).
    refs, hyps = ["ab", "abcdefgh"], ["ab", "abcd"]
    assert cer(refs, hyps) == pytest.approx(4 / 10)
    assert error_counts(refs, hyps) == {"char_edits": 4, "chars": 10, "word_edits": 1,
                                        "words": 2}
    assert wer(["a b c"], ["a b c d e f"]) == pytest.approx(1.0)  # insertions can reach 1+
    assert cer([""], [""]) == 0.0 and cer(["."], ["x"]) == float("inf")


def test_eer_hand_cases():
    # Perfectly separated: EER 0, threshold at the lowest same-speaker score.
    assert eer([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == pytest.approx((0.0, 0.8))
    # Accepting >= 0.6 rejects one of two same trials and accepts one of two different ones.
    assert eer([0.9, 0.4, 0.6, 0.1], [1, 1, 0, 0]) == pytest.approx((0.5, 0.6))
    # Fully inverted scores: everything is an error at the crossing.
    rate, _ = eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])
    assert rate == pytest.approx(1.0)
    # FAR/FRR segment (0, 2/3) -> (1/2, 0) crosses FAR = FRR at 2/7.
    rate, thr = eer([0.9, 0.5, 0.5, 0.5, 0.1], [1, 1, 1, 0, 0])
    assert rate == pytest.approx(2 / 7) and thr == pytest.approx(0.9 - 4 / 7 * 0.4)
    with pytest.raises(ValueError):
        eer([0.1, 0.2], [1, 1])


def test_eer_of_random_scores_is_near_half_and_cosine_trials():
    rng = np.random.default_rng(1)
    rate, _ = eer(rng.random(4000), rng.random(4000) < 0.3)
    assert abs(rate - 0.5) < 0.05
    emb = np.array([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0]])
    scores, same = cosine_trials(emb, ["a", "a", "b"])
    assert scores.shape == (3,) and same.tolist() == [True, False, False]
    assert scores[0] == pytest.approx(2 / np.hypot(2, 0.1))
    scores, same = cosine_trials(emb, ["a", "a", "b"], subset_N=[True, False, True])
    assert scores.tolist() == [0.0] and same.tolist() == [False]


def test_character_codec_normalises_encodes_and_decodes():
    assert chars.normalize_text("  Café—au-lait, s’il vous plaît! 'Quoted' 7 ") == \
        "cafe au lait s'il vous plait quoted 7"
    ids = chars.encode("Don't stop.")
    assert chars.decode(ids) == "don't stop" and chars.BLANK not in ids
    # Å loses its ring; Æ and € are outside the vocabulary and dropped.
    assert chars.VOCAB_SIZE == 39 and chars.encode("ÅÆ€").tolist() == [chars.encode("a")[0]]
    with pytest.raises(UserError):
        chars.decode([chars.VOCAB_SIZE])


def test_ctc_greedy_decoding_on_hand_built_logits():
    a, b, sp = chars.encode("a")[0], chars.encode("b")[0], chars.SPACE
    blank = chars.BLANK
    # best path: a a _ a b b _ sp b | padding frames that would read "a"
    path = [a, a, blank, a, b, b, blank, sp, b, a, a]
    logits_NxV = np.full((len(path), chars.VOCAB_SIZE), -5.0)
    logits_NxV[np.arange(len(path)), path] = 3.0
    frame_ids = np.argmax(logits_NxV, -1)
    assert chars.ctc_collapse(frame_ids[:9]).tolist() == [a, a, b, sp, b]
    texts = chars.ctc_greedy_texts(np.stack([frame_ids, frame_ids]), [9, 3])
    assert texts == ["aab b", "a"]
    assert chars.ctc_greedy_texts(np.full((1, 4), blank), [4]) == [""]


def test_wrong_text_pairs_never_pair_a_clip_with_its_own_text():
    refs = ["a b", "a b", "c d", "e f", "c d", "g h"]
    for seed in range(20):
        partner = wrong_text_pairs(refs, seed)
        assert all(refs[j] != refs[i] for i, j in enumerate(partner))
    with pytest.raises(ValueError, match="two different texts"):
        wrong_text_pairs(["same", "same"])


def test_wrong_text_cer_is_chance_for_right_hypotheses():
    refs = ["the cat sat", "a dog ran far", "birds sing", "rain fell today"]
    assert cer(refs, refs) == 0
    assert wrong_text_cer(refs, refs) > 0.5  # a perfect transcript scored on other texts
    # Hypotheses that say nothing in particular score alike against right and wrong texts.
    empty = [""] * 4
    assert wrong_text_cer(refs, empty) == cer(refs, empty) == 1.0  # a permutation of the texts
