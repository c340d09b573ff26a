"""The held-out voice family ('heldout_voices'): the test split of 'full' in eSpeak's Klatt
voices with glottal sources no training preset uses; its plan, its sound, a small build and
its TFDS build."""

import json
import re
from collections import Counter
from pathlib import Path

import espeakng_loader
import numpy as np
import pytest
import tensorflow_datasets as tfds

from emotive import cli
from emotive.data import builders
from emotive.data.builders.tfds_io import open_split
from emotive.data.speech import synth
from emotive.data.speech.emotions import EMOTIONS
from emotive.data.speech.espeak import Synthesizer
from emotive.data.speech.prosody import FEATURE_NAMES, prosodic_features
from emotive.data.speech.texts import TEXTS
from emotive.data.speech.voices import EXTRA_SPEAKERS, KLATT_SPEAKERS, SPEAKERS, speaker_by_id

KLATT_IDS = {s.id for s in KLATT_SPEAKERS}


def _test_jobs(preset):
    return [j for j in synth.plan_corpus(preset, 0)[0] if j['split'] == 'test']


def _texts(jobs):
    return {TEXTS[j['text_index']][0] for j in jobs}


def test_plan_is_the_full_test_split_in_klatt_voices():
    jobs, speaker_split = synth.plan_corpus('heldout_voices', 0)
    full = _test_jobs('full')
    assert len(jobs) == len(full) == 1680 and len({j['id'] for j in jobs}) == len(jobs)
    assert _texts(jobs) == _texts(full) == _texts(_test_jobs('wide'))  # the held-out texts
    assert {j['split'] for j in jobs} == {'test'} and set(speaker_split.values()) == {'test'}
    assert {j['speaker'] for j in jobs} == set(speaker_split) == KLATT_IDS
    assert all('+klatt' in speaker_by_id(j['speaker']).voice for j in jobs)

    def design(rows):  # what each clip asks for, apart from the voice
        return Counter((j['text_index'], j['emotion'], j['intensity'], j['condition'])
                       for j in rows)

    assert design(jobs) == design(full)
    assert (Counter(speaker_by_id(j['speaker']).sex for j in jobs)
            == Counter(speaker_by_id(j['speaker']).sex for j in full))
    per_emotion = Counter(j['emotion'] for j in jobs)
    assert {per_emotion[e] for e in EMOTIONS[1:]} == {2 * per_emotion['neutral']}  # balanced
    # Each Klatt speaker says each of its texts in all 15 emotion-intensities.
    said = Counter((j['speaker'], j['text_index'], j['condition']) for j in jobs)
    assert set(said.values()) == {15}
    assert synth.plan_corpus('heldout_voices', 0) == (jobs, speaker_split)


def _klatt_source(variant: str) -> int:
    """The glottal source an eSpeak variant file sets with `klatt N` (0: none, harmonic)."""
    text = (Path(espeakng_loader.get_data_path()) / 'voices' / '!v' / variant).read_text()
    found = re.search(r'^\s*klatt\s+(\d+)', text, re.M)
    return int(found.group(1)) if found else 0


def test_no_training_preset_uses_a_heldout_voice():
    for preset in synth.PRESETS:
        _, speaker_split = synth.plan_corpus(preset, 0)
        assert not set(speaker_split) & KLATT_IDS, preset
    trained = {s.voice.partition('+')[2] for s in SPEAKERS + EXTRA_SPEAKERS}
    heldout = {s.voice.partition('+')[2] for s in KLATT_SPEAKERS}
    assert heldout == {'klatt', 'klatt2', 'klatt3', 'klatt4'} and not heldout & trained
    assert {_klatt_source(v) for v in heldout} == {1, 2, 3, 4}
    assert not {_klatt_source(v) for v in trained} & {1, 2, 3, 4}  # no training glottal source
    assert len({s.voice for s in KLATT_SPEAKERS}) == len(KLATT_SPEAKERS)
    assert Counter((s.voice.partition('+')[2], s.sex) for s in KLATT_SPEAKERS) == {
        (v, sex): 2 for v in heldout for sex in ('female', 'male')}
    engine = Synthesizer()
    for speaker in KLATT_SPEAKERS:
        engine.check_voice(speaker.voice)


def test_klatt_sources_sound_different_from_each_other_and_the_corpus_voices():
    engine = Synthesizer()
    text = 'Twelve small boxes sat by the door.'
    klatt = {v: engine.synth(text, f'en-us+{v}', seed=1)
             for v in ('klatt', 'klatt2', 'klatt3', 'klatt4')}
    for a, x in klatt.items():
        for b, y in klatt.items():
            if a < b:  # the same timing, another glottal source: other samples
                assert x.size == y.size and np.std(x / np.std(x) - y / np.std(y)) > 0.5, (a, b)

    def spectrum(x):  # the long-term log spectrum, 64 bands
        frames = np.lib.stride_tricks.sliding_window_view(x, 512)[::256] * np.hanning(512)
        power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)[1:257]
        return 10 * np.log10(power.reshape(64, 4).mean(axis=1) + 1e-12)

    harmonic = spectrum(engine.synth(text, 'en-us+m1', seed=1))  # the corpus's synthesiser
    for v, x in klatt.items():
        assert np.mean(np.abs(spectrum(x) - harmonic)) > 1.5, v


def test_female_klatt_speakers_have_a_shorter_tract_and_higher_pitch():
    text = 'Twelve small boxes sat by the door.'
    male = synth.render(text, 'klt01', 'neutral', 1, seed=3)
    female = synth.render(text, 'klt02', 'neutral', 1, seed=3)
    f0 = FEATURE_NAMES.index('f0_mean_st')
    rise = prosodic_features(female, 16000)[f0] - prosodic_features(male, 16000)[f0]
    assert rise > 4.0, rise  # semitones
    assert 0.8 < female.size / male.size < 1.25  # spoken slower to keep the speaking rate


@pytest.fixture(scope='module')
def small_build(tmp_path_factory):
    out = tmp_path_factory.mktemp('heldout')
    summary = synth.build_corpus(out / 'a', 'heldout_voices', seed=0, workers=1,
                                 progress=False, limit=12)
    return out, summary


def test_small_build_is_reproducible_klatt_and_test_only(small_build, tmp_path):
    out, summary = small_build
    rows = [json.loads(line) for line in (out / 'a' / 'metadata.jsonl').read_text().splitlines()]
    assert summary['preset'] == 'heldout_voices' and summary['clips'] == len(rows) == 12
    assert {r['split'] for r in rows} == {'test'} and summary['splits']['train']['clips'] == 0
    assert {r['speaker'] for r in rows} <= KLATT_IDS and len({r['condition'] for r in rows}) > 1
    assert {r['text'] for r in rows} <= _texts(_test_jobs('full'))
    for r in rows:
        assert speaker_by_id(r['speaker']).sex == r['sex'] and r['seconds'] > 0.5
    synth.build_corpus(tmp_path / 'b', 'heldout_voices', seed=0, workers=1, progress=False,
                       limit=12)
    assert ((out / 'a' / 'metadata.jsonl').read_text()
            == (tmp_path / 'b' / 'metadata.jsonl').read_text())
    for r in rows:
        assert (out / 'a' / r['path']).read_bytes() == (tmp_path / 'b' / r['path']).read_bytes()


def test_tfds_build_takes_a_test_split_only(small_build, tmp_path):
    out, _ = small_build
    report = builders.build('emotive_speech', out / 'a', tmp_path / 'data', progress=False,
                            verbose=False)
    assert report['kept'] == 12 and report['rejected'] == 0
    assert report['kept_per_split'] == {'test': 12}
    assert set(tfds.data_source('emotive_speech', data_dir=str(tmp_path / 'data'))) == {'test'}
    opened = open_split(tmp_path / 'data', 'emotive_speech', 'test')
    assert len(opened.source) == 12 and set(opened.speakers) <= KLATT_IDS


def test_synth_help_names_the_preset(capsys):
    with pytest.raises(SystemExit):
        cli.main(['data', 'synth', '--help'])
    assert 'heldout_voices' in capsys.readouterr().out
