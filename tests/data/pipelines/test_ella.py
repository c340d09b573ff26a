"""ELLA-V documents: phone timings to units (known answers, accents, pauses, mismatches), the
interleaved layout with its loss and local advance, packed rows, and the round trip back
to codes and durations."""

import json

import numpy as np
import pytest

from emotive.codecs.phonemes import PhonemeTokenizer
from emotive.codecs.text import TTSVocab
from emotive.data.pipelines.ella import interleave, parse_phones, split_units, unit_frames
from emotive.data.pipelines.tts import build_documents, pack
from emotive.data.speech.espeak import phonemize
from emotive.errors import UserError


@pytest.fixture(scope="module")
def vocab():
    return TTSVocab(PhonemeTokenizer(phonemize), 50, ["neutral", "happy"], text_vocab_size=128,
                    layout="ella_v")


def _units(vocab, text):
    units = vocab.phone_units(vocab.encode_text(text))
    return units, [vocab.tokenizer.id_to_token(u) for u in units]


def test_eop_is_the_last_text_id_and_stress_stays_in_the_prompt(vocab):
    assert vocab.eop == 127 and vocab.token_name(vocab.eop) == "<|EOP|>"
    ids = vocab.encode_text("The cat sat.")
    units, names = _units(vocab, "The cat sat.")
    assert names == ["ð", "ə", " ", "k", "æ", "t", " ", "s", "æ", "t", "."]
    assert len(ids) == len(units) + 2  # two stress marks
    again = TTSVocab.from_json(vocab.to_json(), phonemizer=phonemize)
    assert again.layout == "ella_v" and again.eop == 127
    with pytest.raises(UserError, match="phoneme front end"):
        TTSVocab(PhonemeTokenizer(phonemize), 50, text_vocab_size=101, layout="ella_v")


def test_timings_go_to_their_units(vocab):
    """Same phones (stress marks on events, ":" for length) with frames: each unit gets its
    phone's frames, a pause its boundary's, leading/trailing silence the neighbours'."""
    units, _ = _units(vocab, "The cat, sat.")
    phones = [("ð", 3), ("ə", 2), ("k", 4), ("ˈæ", 6), ("t", 2), ("_", 7), ("_", 0),
              ("s", 5), ("ˈæ", 6), ("t", 3), ("_", 2)]
    frames = unit_frames(vocab, units, phones)
    assert frames.tolist() == [3, 2, 0, 4, 6, 2, 7, 5, 6, 3, 2]
    assert frames.sum() == sum(f for _, f in phones)


def test_an_accent_substitutes_and_a_wrong_text_is_refused(vocab):
    units, _ = _units(vocab, "The cat sat.")
    british = [("ð", 3), ("ə", 2), ("k", 4), ("ˈa", 6), ("t", 2), ("s", 5), ("ˈa", 6), ("t", 3)]
    assert unit_frames(vocab, units, british).tolist() == [3, 2, 0, 4, 6, 2, 0, 5, 6, 3, 0]
    other = [("m", 4), ("ɪ", 5), ("l", 3), ("k", 2), ("ɪ", 4), ("ŋ", 4), ("z", 3)]
    assert unit_frames(vocab, units, other) is None
    assert unit_frames(vocab, units, []) is None


@pytest.mark.parametrize("advance", [0, 2])
def test_interleaved_layout_loss_and_round_trip(vocab, advance):
    units, _ = _units(vocab, "The cat sat.")
    frames = np.array([3, 2, 0, 4, 6, 2, 0, 5, 6, 3, 1])
    codes = np.arange(frames.sum()) % 50
    doc = interleave(vocab, units, frames, codes, advance)
    tokens = doc.tokens.tolist()
    assert tokens[0] == units[0] and tokens[-2:] == [vocab.eop, vocab.speech_end]
    assert tokens.count(vocab.eop) == len(units)
    is_code = (doc.tokens >= vocab.speech_offset) & (doc.tokens < vocab.emotion_offset)
    assert (doc.loss == (is_code | (doc.tokens == vocab.eop)
                         | (doc.tokens == vocab.speech_end))).all()
    back, got = split_units(vocab, doc.tokens[1:])
    np.testing.assert_array_equal(back, codes)
    if advance == 0:
        assert got == frames.tolist()
    else:  # every EOP but the last moves up to `advance` frames earlier, never before its unit
        ends, cut = np.cumsum(frames), 0
        expected = []
        for u in range(len(units) - 1):
            new = min(max(ends[u] - advance, cut), frames.sum())
            expected.append(new - cut)
            cut = new
        assert got == expected + [frames.sum() - cut]


def test_documents_pack_with_loss_on_codes_eop_and_end_and_untimed_clips_named(vocab):
    texts = ["The cat sat.", "A dog ran.", "Blue sky."]
    timings = []
    for text in texts:
        _, names = _units(vocab, text)
        timings.append([["_" if n in " ,.?!" else n, 3] for n in names])
    timings[2] = [["m", 4], ["ɪ", 2], ["l", 3], ["k", 5]]  # another text: left out, named
    lengths = [sum(f for _, f in t) for t in timings]
    table = {"codes": np.arange(sum(lengths)) % 50, "text": np.array(texts),
             "offsets": np.concatenate([[0], np.cumsum(lengths)]),
             "id": np.array(["a", "b", "c"]), "emotion": np.array([0, 2, 0]),
             "intensity": np.array([1, 1, 1]), "phones": np.array([json.dumps(t) for t in timings]),
             "codebook_size": 50}
    docs = build_documents(table, vocab, advance=1)
    assert len(docs) == 2 and docs.untimed == ("c",)
    rows, stats = pack(docs, 256)
    row = rows[0]
    targets, mask = row["targets"], row["loss_mask"].astype(bool)
    lossy = ((targets >= vocab.speech_offset) & (targets < vocab.emotion_offset)) | \
        (targets == vocab.eop) | (targets == vocab.speech_end)
    # (no prompt token is a code, EOP or the stop token)
    np.testing.assert_array_equal(mask, lossy & (row["segment_ids"] > 0))
    assert 0 < stats.loss_fraction < stats.efficiency
    assert parse_phones("") == [] and parse_phones(table["phones"][0])[0] == ("ð", 3)
    with pytest.raises(UserError, match="no phone timings"):
        build_documents({k: v for k, v in table.items() if k != "phones"}, vocab)


def test_phone_starts_become_frames_that_sum_to_the_codes():
    from emotive.data.pipelines.ella import phone_frames

    starts = [["d", 230], ["uː", 500], ["n", 1400], ["_", 1400], ["_", 2000]]
    # frames at hop 320: starts round to 1, 2, 4, 4, 6 -> the first owns the lead-in
    assert json.loads(phone_frames(starts, 320, 8)) == [["d", 2], ["uː", 2], ["n", 0],
                                                        ["_", 2], ["_", 2]]
    assert json.loads(phone_frames(json.dumps(starts), 320, 5)) == [
        ["d", 2], ["uː", 2], ["n", 0], ["_", 1], ["_", 0]]  # clipped to the codes
    assert phone_frames("", 320, 10) == "" and phone_frames([], 320, 10) == ""
