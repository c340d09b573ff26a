"""TTSVocab layout (Llasa's numbers), text/code round trips, prompts, text checks, errors."""

import json

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from emotive.codecs.sentences import check_text, split_sentences
from emotive.codecs.text import SPECIALS, TTSVocab, train_bpe
from emotive.configs.tts import CORPUS_EMOTIONS
from emotive.data.speech.emotions import EMOTIONS
from emotive.errors import UserError

TEXTS = [f"The quick brown fox number {i} jumps over the lazy dog. Hello, world!"
         for i in range(60)] + ["Café naïve façade, über cool."] * 5
EMO = ("neutral", "angry", "happy")


@pytest.fixture(scope="module")
def bpe():
    return train_bpe(TEXTS, 320)


@pytest.fixture()
def vocab(bpe):
    return TTSVocab(bpe, 1000, EMO, (1, 2), ("spk01", "spk02"), text_vocab_size=320,
                    speaker_slots=4, pad_to=128)


def _byte_tokenizer(num_model_tokens: int = 256) -> Tokenizer:
    """A byte-level BPE with no merges, padded with dummy tokens to `num_model_tokens`."""
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for i in range(len(vocab), num_model_tokens):
        vocab[f"x{i}"] = i
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def _llama3_like() -> Tokenizer:
    """Llama 3's sizes: 128,000 text tokens + 256 special tokens = 128,256 ids."""
    tok = _byte_tokenizer(128_000)
    chat = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
            "<|eot_id|>"]
    tok.add_special_tokens(chat + [f"<|reserved_special_token_{i}|>" for i in range(251)])
    return tok


def test_llasa_layout_numbers(tmp_path):
    tok = _llama3_like()
    vocab = TTSVocab(tok, 65536)
    assert vocab.text_vocab_size == 128_256
    assert [vocab.special[n] for n in SPECIALS] == list(range(128_256, 128_264))
    assert vocab.speech_offset == 128_264 and vocab.vocab_size == 193_800
    assert vocab.speech_end == 128_261 and vocab.speech_start == 128_260
    assert vocab.codes_to_ids(np.array([0, 65535])).tolist() == [128_264, 193_799]
    # Emotion tags come after the codes, so a Llasa checkpoint is extended by appending rows.
    tagged = TTSVocab(tok, 65536, CORPUS_EMOTIONS, (1, 2), pad_to=128)
    assert tagged.emotion_tag("neutral", 1) == 193_800
    assert tagged.vocab_size == 193_920 == TTSVocab.size_for(128_256, 65536, 16, 0, 128)
    # Llasa's own tokenizer.json lists the specials and <|s_k|> after the text ids.
    tok.add_special_tokens([f"<|{n}|>" for n in SPECIALS] + ["<|s_0|>", "<|s_1|>"])
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    llasa = TTSVocab.from_llama3(path)
    assert llasa.text_vocab_size == 128_256 and llasa.vocab_size == 193_800
    prompt = llasa.prompt_ids("Hi there.")
    assert prompt[0] == tok.token_to_id("<|begin_of_text|>") and prompt[-1] == 128_260
    assert "<|eot_id|><|start_header_id|>assistant<|end_header_id|>" in llasa.decode_text(prompt)


def test_layout_regions_and_names(vocab):
    t = 320
    assert vocab.speech_offset == t + 8 and vocab.emotion_offset == t + 8 + 1000
    assert vocab.emotion_tag("angry", 2) == t + 8 + 1000 + 3
    assert vocab.speaker_tag("spk02") == t + 8 + 1000 + 6 + 1
    assert vocab.used_size == t + 8 + 1000 + 6 + 4 and vocab.vocab_size == 1408
    assert vocab.vocab_size % 128 == 0
    names = {i: vocab.token_name(i) for i in (t, t + 5, t + 8 + 7, vocab.emotion_offset + 1,
                                              vocab.speaker_offset + 1, vocab.used_size - 1,
                                              vocab.vocab_size - 1)}
    assert list(names.values()) == ["<|TEXT_GENERATION_START|>", "<|SPEECH_GENERATION_END|>",
                                    "<|s_7|>", "<|emotion:neutral:2|>", "<|speaker:spk02|>",
                                    "<|reserved|>", "<|pad|>"]
    # Unused BPE ids (the corpus gave fewer merges) are reserved, never produced.
    assert vocab.tokenizer.get_vocab_size() <= t


def test_round_trips(vocab, tmp_path):
    for text in ["Hello, world!", "Café über", "unseen 世界 🎉 Ωmega", "<|eot_id|> x"]:
        ids = vocab.encode_text(text)
        assert max(ids) < vocab.text_vocab_size
        assert vocab.decode_text(ids) == text
    codes = np.random.default_rng(0).integers(0, 1000, (3, 7))
    assert (vocab.ids_to_codes(vocab.codes_to_ids(codes)) == codes).all()
    for loaded in (TTSVocab.load(vocab.save(tmp_path / "v")), TTSVocab.from_json(
            vocab.to_json())):
        assert loaded.meta() == vocab.meta()
        assert loaded.prompt_ids("Fox!", emotion="happy") == vocab.prompt_ids("Fox!",
                                                                          emotion="happy")
    assert json.loads((tmp_path / "v" / "tts_vocab.json").read_text())["vocab_size"] == 1408


def test_prompt_layout(vocab):
    ids = vocab.prompt_ids("  The   fox. ", emotion="Angry", intensity=1, speaker="spk01")
    assert vocab.decode_text(ids) == (
        "Convert the text to speech:<|TEXT_UNDERSTANDING_START|>The fox."
        "<|TEXT_UNDERSTANDING_END|><|emotion:angry:1|><|speaker:spk01|>"
        "<|SPEECH_GENERATION_START|>")
    cloned = vocab.prompt_ids("The fox.", ref_text="Hello there", ref_codes=np.array([5, 6]))
    assert vocab.decode_text(cloned).endswith(
        "Hello there The fox.<|TEXT_UNDERSTANDING_END|><|SPEECH_GENERATION_START|>"
        "<|s_5|><|s_6|>")


def test_typed_special_tokens_stay_text():
    vocab = TTSVocab(_llama3_like(), 16)
    ids = vocab.encode_text("say <|eot_id|> now")
    assert max(ids) < 128_000 and vocab.decode_text(ids) == "say <|eot_id|> now"


def test_bad_input_messages(vocab):
    cases = [
        (lambda: vocab.prompt_ids(""), "empty"),
        (lambda: vocab.prompt_ids(" ?!... — "), "only punctuation"),
        (lambda: vocab.emotion_tag("furious"), "neutral, angry, happy"),
        (lambda: vocab.emotion_tag("angry", 3), "intensities: 1, 2"),
        (lambda: vocab.prompt_ids("Hi", emotion="sad"), "no tag for emotion 'sad'"),
        (lambda: vocab.speaker_tag("spk99"), "spk01, spk02"),
        (lambda: vocab.ids_to_codes([vocab.speech_offset, vocab.speech_end]),
         "SPEECH_GENERATION_END|>) is not a speech code"),
        (lambda: vocab.codes_to_ids(np.array([0, 1000])), "[0, 1000)"),
        (lambda: vocab.codes_to_ids(np.array([0.5])), "integers"),
        (lambda: vocab.prompt_ids("Hi", ref_codes=np.array([1])), "both"),
        (lambda: TTSVocab.from_llama3("/nonexistent/tokenizer.json"), "does not exist"),
        (lambda: train_bpe(["", "  "], 300), "no text"),
        (lambda: train_bpe(TEXTS, 100), "at least 257"),
        (lambda: TTSVocab(vocab.tokenizer, 10, speakers=("a", "b"), speaker_slots=1),
         "speaker slots"),
    ]
    for fn, words in cases:
        with pytest.raises(UserError) as info:
            fn()
        assert words in str(info.value), (words, str(info.value))
        assert "\n" not in str(info.value)


def test_unencodable_characters_named():
    words = ["[UNK]", "Convert", "the", "text", "to", "speech", ":", "hello", "world"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    vocab = TTSVocab(tok, 8)
    assert vocab.decode_text(vocab.encode_text("hello world")) == "hello world"
    with pytest.raises(UserError, match=r"cannot encode \['wörld'\]"):
        vocab.prompt_ids("hello wörld")
    with pytest.raises(UserError, match="llama3_chat needs"):
        TTSVocab(_byte_tokenizer(), 8, prompt_style="llama3_chat")


def test_check_text_and_split_sentences():
    assert check_text("  a\n b  ") == "a b"
    text = ("First sentence here. Second one! A third? " + "word, " * 40
            + "end. " + "x" * 130 + " 「日本語。」最後。")
    chunks = split_sentences(text, max_chars=50)
    assert all(len(c) <= 50 for c in chunks)
    assert " ".join(chunks).replace(" ", "") == " ".join(text.split()).replace(" ", "")
    assert chunks[0] == "First sentence here. Second one! A third?"
    assert split_sentences("Hi. ... Bye.", 5) == ["Hi. ...", "Bye."]
    with pytest.raises(UserError):
        split_sentences("...")


def test_bpe_deterministic_and_emotions_agree(bpe):
    assert train_bpe(TEXTS, 320).to_str() == bpe.to_str()
    assert tuple(EMOTIONS) == CORPUS_EMOTIONS
