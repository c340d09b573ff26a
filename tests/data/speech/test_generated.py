"""Generated training sentences, frequent-word sequences, and the 'wide' and 'lexicon'
corpus presets that speak them."""

from collections import Counter

import numpy as np
import pytest

from emotive.codecs.chars import normalize_text
from emotive.data.speech import synth
from emotive.data.speech.espeak import Synthesizer
from emotive.data.speech.generated import (frequent_words, generate_sentences, pseudo_word, vocabulary,
                                    word_sequences)
from emotive.data.speech.texts import TEXTS
from emotive.data.speech.voices import EXTRA_SPEAKERS, SPEAKERS, speaker_by_id
from emotive.errors import UserError


def test_sentences_are_distinct_deterministic_ascii_and_excluded():
    banned = {t for t, _ in TEXTS}
    a = generate_sentences(3000, seed=0, exclude=banned)
    assert a == generate_sentences(3000, seed=0, exclude=banned)
    assert a[:100] != generate_sentences(100, seed=1, exclude=banned)
    keys = [t.lower().rstrip('.?!') for t in a]
    assert len(set(keys)) == len(a)
    assert not set(keys) & {t.lower().rstrip('.?!') for t in banned}
    assert all(t.isascii() and t[0].isupper() and t[-1] in '.?!' for t in a)
    assert all(3 <= len(t.split()) <= 20 for t in a)
    # every word is in the vocabulary or a pseudo-word; the templates are all used
    vocab = vocabulary()
    words = Counter(w for t in a for w in normalize_text(t).split())
    assert len(words) > 800
    made_up = [w for w in words if w not in vocab]
    assert 0 < len(made_up) < 0.6 * len(words)
    first = Counter(t.split()[0] for t in a)
    assert len(first) > 40


def test_excluding_a_generated_sentence_removes_it():
    some = generate_sentences(50, seed=3)
    again = generate_sentences(50, seed=3, exclude={some[10]})
    assert some[10] not in again and len(again) == 50


def test_pseudo_words_are_lower_case_letters():
    rng = np.random.default_rng(0)
    words = [pseudo_word(rng) for _ in range(200)]
    assert all(w.isalpha() and w.islower() for w in words) and len(set(words)) > 150


def test_bad_counts_are_refused():
    with pytest.raises(UserError, match="0 or more"):
        generate_sentences(-1)


def test_extra_speakers_are_distinct_train_only_voices():
    engine = Synthesizer()
    core = {s.voice.split('+')[1] for s in SPEAKERS}
    ids = [s.id for s in SPEAKERS + EXTRA_SPEAKERS]
    assert len(set(ids)) == len(ids)
    for speaker in EXTRA_SPEAKERS:
        assert speaker.voice.split('+')[1] not in core  # no held-out speaker's variant
        assert speaker_by_id(speaker.id) is speaker
        engine.check_voice(speaker.voice)
    assert Counter(s.sex for s in EXTRA_SPEAKERS).keys() == {'female', 'male'}


def test_wide_plan_is_full_plus_train_only_generated_clips():
    full, full_split = synth.plan_corpus('full', 0)
    wide, wide_split = synth.plan_corpus('wide', 0)
    assert wide[:len(full)] == full  # the held-out splits are untouched
    assert {k: wide_split[k] for k in full_split} == full_split
    extra = wide[len(full):]
    assert len(extra) == synth.PRESETS['wide'].generated_texts
    assert {j['split'] for j in extra} == {'train'}
    assert all(wide_split[j['speaker']] == 'train' for j in extra)
    speakers = Counter(j['speaker'] for j in extra)
    assert len(speakers) == 10 + synth.PRESETS['wide'].extra_speakers
    assert max(speakers.values()) - min(speakers.values()) <= 1
    assert Counter(j['condition'] for j in extra)['clean'] > 0.7 * len(extra)
    assert len({j['emotion'] for j in extra}) == 8 and len({j['id'] for j in wide}) == len(wide)


@pytest.mark.parametrize('preset,kind', [('wide', 'generated'), ('lexicon', 'wordlist')])
def test_a_generated_clip_renders_with_its_text(tmp_path, preset, kind):
    jobs, _ = synth.plan_corpus(preset, 0)
    job = jobs[-1]
    synth._init_worker(str(tmp_path))
    (tmp_path / 'wavs' / 'train').mkdir(parents=True)
    record = synth._make_clip(job)
    assert record['text'] == job['text'] and record['text_kind'] == kind
    assert record['split'] == 'train' and record['seconds'] > 0.5
    assert (tmp_path / record['path']).is_file()


def test_frequent_words_are_plain_distinct_and_ranked():
    words = frequent_words(5000)
    assert len(words) == len(set(words)) == 5000
    assert words[:3] == ('the', 'to', 'and')  # most frequent first
    assert frequent_words(100) == words[:100]
    assert all(normalize_text(w) == w and w.isascii() and any(v in w for v in 'aeiouy')
               for w in words)
    assert not {'mr', 'tv', 'uk', 's', 't'} & set(words)  # abbreviations and letters are dropped
    assert {'a', 'i', 'of', "don't"} <= set(words)
    with pytest.raises(UserError, match='1 or more'):
        frequent_words(0)


def test_word_sequences_are_deterministic_and_uniform_over_the_list():
    words = [f'w{i}' for i in range(50)]
    a = word_sequences(2000, words, seed=3)
    assert a == word_sequences(2000, words, seed=3) and a != word_sequences(2000, words, seed=4)
    lengths = [len(t.split()) for t in a]
    assert min(lengths) == 4 and max(lengths) == 8
    assert all(len(set(t.split())) == len(t.split()) for t in a)  # no word twice in a text
    counts = Counter(w for t in a for w in t.split())
    assert set(counts) == set(words) and max(counts.values()) < 1.4 * min(counts.values())
    for bad in ((0, 3), (5, 4), (2, 51)):
        with pytest.raises(UserError, match='lengths'):
            word_sequences(1, words, lengths=bad)
    with pytest.raises(UserError, match='0 or more'):
        word_sequences(-1, words)


def test_lexicon_plan_is_wide_plus_train_only_word_clips():
    wide, wide_split = synth.plan_corpus('wide', 0)
    lexicon, lexicon_split = synth.plan_corpus('lexicon', 0)
    assert lexicon[:len(wide)] == wide and lexicon_split == wide_split
    extra = lexicon[len(wide):]
    cfg = synth.PRESETS['lexicon']
    assert len(extra) == cfg.word_texts
    assert {j['split'] for j in extra} == {'train'} and {j['text_kind'] for j in extra} == {'wordlist'}
    speakers = Counter(j['speaker'] for j in extra)
    assert len(speakers) == 34 and max(speakers.values()) - min(speakers.values()) <= 1
    spoken = Counter(w for j in extra for w in j['text'].split())
    assert set(spoken) <= set(frequent_words(cfg.word_list)) and len(spoken) > 0.99 * cfg.word_list
    assert len({j['id'] for j in lexicon}) == len(lexicon)
