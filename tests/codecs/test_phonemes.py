"""Phoneme front end: normalisation known answers, eSpeak IPA tokens, errors, the vocabulary."""

import warnings

import numpy as np
import pytest

from emotive import configs
from emotive.configs import base
from emotive.codecs.phonemes import (INVENTORY, PAUSES, SPECIALS, PhonemeTokenizer, normalise,
                                     number_words)
from emotive.codecs.text import TTSVocab
from emotive.configs.tts import PHONEME_TEXT_IDS
from emotive.data.speech.espeak import Synthesizer, phonemize
from emotive.data.pipelines.tts import build_documents
from emotive.errors import UserError

from tests.data.pipelines.test_tts_data import CODEBOOK, fake_table


@pytest.fixture(scope="module")
def tok():
    return PhonemeTokenizer(phonemize)


def test_the_cat_sat(tok):
    encoding = tok.encode("The cat sat.")
    assert encoding.tokens == ["ð", "ə", " ", "k", "ˈ", "æ", "t", " ", "s", "ˈ", "æ", "t", "."]
    assert encoding.ids == [INVENTORY.index(t) for t in encoding.tokens]
    assert tok.decode(encoding.ids) == "ð_ə k_ˈæ_t s_ˈæ_t."
    assert phonemize(["The cat sat."]) == ["ð_ə k_ˈæ_t s_ˈæ_t"]


def test_pauses_replace_word_boundaries(tok):
    tokens = tok.encode("Dr. Smith paid $42 on May 3rd, didn't he?").tokens
    assert tokens[-1] == "?" and tokens.count(",") == 1 and tokens.count(".") == 0
    comma = tokens.index(",")
    assert tokens[comma - 1] not in SPECIALS and tokens[comma + 1] not in SPECIALS
    assert tokens[:5] == ["d", "ˈ", "ɑː", "k", "t"]  # doctor
    for text, end in [("Stop it!", "!"), ("Stop it.", "."), ("Is it? Yes.", "."),
                      ("Really?!", "?")]:
        assert tok.encode(text).tokens[-1] == end, text
    assert tok.encode("Well... maybe").tokens[-1] not in SPECIALS  # no mark, no pause
    assert tok.encode("Is it? Yes.").tokens.count("?") == 1


@pytest.mark.parametrize("text, expected", [
    ("Dr. Smith paid $42 on May 3rd, didn't he?",
     "doctor smith paid forty two dollars on may third, didn't he?"),
    ("In 1999, 1,234 people paid $3.50 (50%) & left at 3:05.",
     "in nineteen ninety nine, one thousand two hundred thirty four people paid three dollars "
     "fifty cents, fifty percent, and left at three oh five."),
    ("Mrs. Brown met St. Paul, e.g. at No. 5 Baker St.",
     "missus brown met saint paul, for example at number five baker street."),
    ("The 1990s -- and the 21st century; 2005 vs. 2024!",
     "the nineteen nineties, and the twenty first century, two thousand five versus twenty "
     "twenty four!"),
    ("Pi is 3.14, not -5 or 007; it's 9:00...", "pi is three point one four, not minus five or "
     "zero zero seven, it's nine o'clock."),
    ('"Well," she said, \u201cit\u2019s a well-known fact\u2026\u201d',
     "well, she said, it's a well known fact."),
    ("The BBC and NASA use mp3 files, etc.", "the BBC and NASA use mp three files, et cetera."),
    ("THE BBC IS HERE", "the bbc is here"),
    ("Chapter XII. Henry VIII won 2-1.", "chapter twelve. henry the eighth won two to one."),
    ("Hello... world? Yes!", "hello, world? yes!"),
])
def test_normalise_known_answers(text, expected):
    assert normalise(text) == (expected, ())


def test_number_words():
    assert [number_words(n) for n in (0, 13, 42, 100, 105, 1200, 2_000_019)] == [
        "zero", "thirteen", "forty two", "one hundred", "one hundred five",
        "one thousand two hundred", "two million nineteen"]


@pytest.mark.parametrize("text, named", [
    ("你好", "['你', '好']"), ("привет", "'п'"), ("!!! ??? ...", "only punctuation or symbols"),
    ("🎉 → ©", "'🎉'")])
def test_unvoiceable_text_is_a_one_line_error(tok, text, named):
    with pytest.raises(UserError) as info:
        tok.encode(text)
    assert named in str(info.value) and "\n" not in str(info.value)


def test_skipped_characters_warn(tok):
    with pytest.warns(UserWarning, match=r"skipped \['🎉', 'Ω'\]"):
        ids = tok.encode("Party 🎉 time Ω now").ids
    assert ids == tok.encode("Party time now").ids
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tok.encode("Plain café naïve text.")  # accented Latin letters are fine


def test_unknown_phonemes_become_unk_with_a_warning():
    fake = PhonemeTokenizer(lambda texts, voice: ["k_ʘˈa_t" for _ in texts])
    with pytest.warns(UserWarning, match=r"\['ʘ'\] outside the inventory"):
        assert fake.encode("cat").tokens == ["k", "<unk>", "ˈ", "a", "t"]
    with pytest.raises(UserError, match="no phonemiser"):
        PhonemeTokenizer().encode("cat")


def test_batches_are_deterministic(tok):
    texts = [f"Sentence number {i}, with a pause." for i in range(20)] + ["The cat sat."]
    single = [tok.encode(t).ids for t in texts]
    assert phonemize(texts) == [phonemize(t)[0] for t in texts]
    batch = PhonemeTokenizer(phonemize)
    batch.prefetch(texts + ["你好"])
    batch.phonemizer = None  # every text below must come from the one batch
    assert [batch.encode(t).ids for t in texts] == single
    with pytest.raises(UserError, match="你好"):
        batch.encode("你好")


def test_inventory_fits_the_config():
    assert len(set(INVENTORY)) == len(INVENTORY) == 101 <= PHONEME_TEXT_IDS
    assert [INVENTORY[i] for i in PAUSES.values()] == list(PAUSES)
    cfg = configs.load("tts", "tiny", ["vocab.text_frontend=phoneme"])
    assert cfg.vocab.text_size == PHONEME_TEXT_IDS
    with pytest.raises(UserError, match="bpe, phoneme"):
        configs.load("tts", "tiny", ["vocab.text_frontend=chars"])
    raw = base.to_dict(cfg)
    raw["vocab"]["text_frontend"] = "chars"  # a hand-edited checkpoint config
    with pytest.raises(UserError, match="bpe, phoneme"):
        base.from_dict(type(cfg), raw)
    with pytest.raises(UserError, match="tokenizer_json empty"):
        configs.load("tts", "tiny", ["vocab.text_frontend=phoneme", "vocab.tokenizer_json=t.json",
                                     "vocab.text_vocab_size=200"])


def test_vocab_round_trips_with_phonemes(tok, tmp_path):
    vocab = TTSVocab(tok, 100, ("neutral", "happy"), (1, 2), ("spkA",),
                     text_vocab_size=PHONEME_TEXT_IDS, speaker_slots=2, pad_to=64)
    assert vocab.text_frontend == "phoneme" and vocab.speech_offset == PHONEME_TEXT_IDS + 8
    prompt = vocab.prompt_ids("Dr. Smith paid $42.", emotion="happy", speaker="spkA")
    text_ids = prompt[1:prompt.index(vocab.special["TEXT_UNDERSTANDING_END"])]
    assert prompt[0] == vocab.special["TEXT_UNDERSTANDING_START"]  # no instruction
    assert text_ids and all(0 <= i < vocab.text_vocab_size for i in text_ids)
    assert vocab.decode_text(prompt).startswith("<|TEXT_UNDERSTANDING_START|>d_ˈɑː_k_t_ɚ s_")
    for loaded in (TTSVocab.load(vocab.save(tmp_path / "v"), phonemizer=phonemize),
                   TTSVocab.from_json(vocab.to_json(), phonemizer=phonemize)):
        assert loaded.meta() == vocab.meta() and loaded.to_json() == vocab.to_json()
        assert loaded.prompt_ids("Dr. Smith paid $42.", emotion="happy",
                                 speaker="spkA") == prompt
    bare = TTSVocab.from_json(vocab.to_json())  # no phonemiser: decodes, cannot encode
    assert bare.decode_text(prompt) == vocab.decode_text(prompt)
    with pytest.raises(UserError, match="phonemizer=emotive.data.speech.espeak.phonemize"):
        bare.prompt_ids("Hello.")


def test_documents_phonemise_in_one_batch():
    calls = []

    def counting(texts, voice):
        calls.append(len(texts))
        return phonemize(texts, voice)

    vocab = TTSVocab(PhonemeTokenizer(counting), CODEBOOK, text_vocab_size=PHONEME_TEXT_IDS)
    docs = build_documents(fake_table(30), vocab)
    assert len(calls) == 1 and len(docs) == 30
    assert all((docs[d][1:docs.prompt_lens[d] - 2] < PHONEME_TEXT_IDS).all()
               for d in range(len(docs)))


def test_synthesis_reports_phoneme_times():
    engine = Synthesizer()
    samples, events = engine.synth_with_phonemes("The cat sat.", "en-us", seed=3)
    assert np.array_equal(samples, engine.synth("The cat sat.", "en-us", seed=3))
    names = [name for name, _ in events]
    assert names[:5] == ["ð", "ə", "k", "ˈæ", "t"] and names[-1] == "_"
    starts = [start for _, start in events]
    assert starts == sorted(starts) and 0 <= starts[0] and starts[-1] <= len(samples) + 16
