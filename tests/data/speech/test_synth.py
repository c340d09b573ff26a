"""The synthetic emotional speech corpus: layout, splits, determinism, and that emotions are audible.

The tiny corpus is built once per module (about 15-30 s on two cores).
"""

import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
from scipy.optimize import minimize

from emotive.data.speech import synth
from emotive.data.speech.emotions import CONDITIONS, EMOTIONS, affect_targets, intensities
from emotive.data.speech.espeak import Synthesizer
from emotive.data.speech.prosody import FEATURE_NAMES, prosodic_features
from emotive.data.speech.texts import TEXTS
from emotive.data.speech.voices import SPEAKERS
from emotive.errors import UserError

FIELDS = {'id', 'path', 'split', 'phones', 'speaker', 'sex', 'accent', 'emotion', 'intensity', 'arousal',
          'dominance', 'valence', 'condition', 'text', 'text_kind', 'seconds', 'sample_rate'}


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp('corpus')
    summary = synth.build_corpus(out, preset='tiny', seed=0, workers=2, progress=False)
    rows = [json.loads(line) for line in (out / 'metadata.jsonl').read_text().splitlines()]
    print(f"\ntiny corpus: {summary['clips']} clips, {summary['hours'] * 60:.1f} min of audio, "
          f"built in {summary['build_seconds']:.1f} s")
    return out, summary, rows


def test_counts_and_summary(corpus):
    out, summary, rows = corpus
    assert summary == json.loads((out / 'corpus.json').read_text())
    assert summary['clips'] == len(rows) == len(list((out / 'wavs').rglob('*.wav')))
    assert 300 <= len(rows) <= 600
    assert len({r['id'] for r in rows}) == len(rows)
    assert sum(s['clips'] for s in summary['splits'].values()) == len(rows)
    assert summary['per_emotion'] == dict(sorted(Counter(r['emotion'] for r in rows).items()))
    assert set(summary['per_condition']) == set(CONDITIONS)


def test_metadata_fields(corpus):
    out, _, rows = corpus
    for r in rows:
        assert set(r) == FIELDS
        assert (out / r['path']).is_file() and r['path'].startswith(f"wavs/{r['split']}/")
        assert r['intensity'] in intensities(r['emotion'])
        assert (r['arousal'], r['dominance'], r['valence']) == affect_targets(r['emotion'], r['intensity'])
        assert all(0.0 <= r[k] <= 1.0 for k in ('arousal', 'dominance', 'valence'))
        assert r['text_kind'] in ('sentence', 'neutral', 'nonsense') and r['sample_rate'] == 16000
    assert Counter(r['text_kind'] for r in rows).keys() == {'sentence', 'neutral', 'nonsense'}
    assert Counter(r['intensity'] for r in rows).most_common(1)[0][0] == 2  # mostly strong


def test_all_emotions_and_speakers_present(corpus):
    _, _, rows = corpus
    assert {r['emotion'] for r in rows} == set(EMOTIONS)
    assert len({r['speaker'] for r in rows}) >= 12
    assert {r['sex'] for r in rows} == {'female', 'male'}
    for split in synth.SPLITS:
        assert {r['emotion'] for r in rows if r['split'] == split} == set(EMOTIONS)


def test_splits_disjoint_by_speaker_and_text(corpus):
    _, _, rows = corpus
    speakers = {s: {r['speaker'] for r in rows if r['split'] == s} for s in synth.SPLITS}
    texts = {s: {r['text'] for r in rows if r['split'] == s} for s in synth.SPLITS}
    assert speakers['test'] and speakers['validation'] and speakers['train']
    assert not speakers['test'] & (speakers['train'] | speakers['validation'])
    assert not speakers['validation'] & speakers['train']
    assert not texts['test'] & (texts['train'] | texts['validation'])
    assert not texts['validation'] & texts['train']


def test_wavs_are_16k_mono_pcm16_with_sane_levels(corpus):
    out, _, rows = corpus
    for r in rows:
        info = sf.info(out / r['path'])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, 'PCM_16')
        assert info.frames == round(r['seconds'] * 16000)
        assert 0.5 < r['seconds'] < 20
    for r in rows[::7]:
        x, _ = sf.read(out / r['path'], dtype='float32')
        rms_db = 20 * np.log10(np.sqrt(np.mean(x ** 2)))
        assert -55 < rms_db < -8 and np.abs(x).max() <= 1.0


def test_same_seed_gives_identical_bytes(corpus, tmp_path):
    out, _, _ = corpus
    a = synth.build_corpus(tmp_path / 'a', 'tiny', seed=0, workers=1, progress=False, limit=10)
    synth.build_corpus(tmp_path / 'b', 'tiny', seed=0, workers=1, progress=False, limit=10)
    meta_a = (tmp_path / 'a' / 'metadata.jsonl').read_text()
    assert meta_a == (tmp_path / 'b' / 'metadata.jsonl').read_text()
    rows = [json.loads(line) for line in meta_a.splitlines()]
    assert a['clips'] == len(rows) == 10 and len({r['condition'] for r in rows}) > 1
    for r in rows:
        wav = (tmp_path / 'a' / r['path']).read_bytes()
        assert wav == (tmp_path / 'b' / r['path']).read_bytes()
        assert wav == (out / r['path']).read_bytes()  # the two-process build made the same clip


def test_other_seed_changes_the_plan():
    jobs0, split0 = synth.plan_corpus('tiny', 0)
    jobs1, split1 = synth.plan_corpus('tiny', 1)
    assert [j['id'] for j in jobs0] != [j['id'] for j in jobs1] or split0 != split1


def _logistic_regression(x, y, classes, l2=1e-2):
    """Multinomial logistic regression on standardised features; returns (W [D, K], b [K])."""
    n, d = x.shape

    def loss_and_grad(w):
        weights, bias = w[:d * classes].reshape(d, classes), w[d * classes:]
        z = x @ weights + bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.mean(np.log(p[np.arange(n), y] + 1e-12)) + l2 * np.sum(weights ** 2)
        g = p
        g[np.arange(n), y] -= 1
        g /= n
        return loss, np.concatenate([(x.T @ g + 2 * l2 * weights).ravel(), g.sum(axis=0)])

    w = minimize(loss_and_grad, np.zeros(d * classes + classes), jac=True, method='L-BFGS-B',
                 options={'maxiter': 1000}).x
    return w[:d * classes].reshape(d, classes), w[d * classes:]


def test_emotions_are_acoustically_distinct_on_unseen_speakers(corpus):
    out, _, rows = corpus
    clean = [r for r in rows if r['condition'] == 'clean']
    feats = np.stack([prosodic_features(sf.read(out / r['path'], dtype='float32')[0], 16000)
                      for r in clean])
    assert feats.shape[1] == len(FEATURE_NAMES) and np.isfinite(feats).all()
    labels = np.array([EMOTIONS.index(r['emotion']) for r in clean])
    split = np.array([r['split'] for r in clean])
    train, test = split == 'train', split == 'test'
    mean, std = feats[train].mean(axis=0), feats[train].std(axis=0) + 1e-6
    z = (feats - mean) / std
    weights, bias = _logistic_regression(z[train], labels[train], len(EMOTIONS))
    accuracy = float(np.mean((z[test] @ weights + bias).argmax(axis=1) == labels[test]))
    print(f'\nheld-out-speaker emotion accuracy from {len(FEATURE_NAMES)} prosodic features, '
          f'linear classifier: {accuracy:.3f} on {test.sum()} clips (chance 0.125)')
    assert accuracy >= 0.5


def test_refuses_bad_out_dirs(tmp_path, capsys):
    a_file = tmp_path / 'file.txt'
    a_file.write_text('not a corpus')
    with pytest.raises(UserError, match='is a file'):
        synth.build_corpus(a_file, 'tiny', progress=False, limit=1)
    with pytest.raises(UserError, match='not a corpus'):
        synth.build_corpus(tmp_path, 'tiny', progress=False, limit=1)
    with pytest.raises(UserError, match='unknown corpus preset'):
        synth.build_corpus(tmp_path / 'new', 'huge', progress=False)
    assert synth.main(['--preset', 'tiny', '--out', str(a_file)]) == 2
    assert 'is a file' in capsys.readouterr().err


def test_rebuilds_over_an_old_corpus(tmp_path):
    synth.build_corpus(tmp_path, 'tiny', seed=3, workers=1, progress=False, limit=2)
    summary = synth.build_corpus(tmp_path, 'tiny', seed=4, workers=1, progress=False, limit=3)
    assert summary['clips'] == 3 == len(list((tmp_path / 'wavs').rglob('*.wav')))


def test_affect_targets_move_away_from_neutral_with_intensity():
    assert affect_targets('neutral', 1) == (0.5, 0.5, 0.5)
    for emotion in EMOTIONS[1:]:
        mild, strong = np.array(affect_targets(emotion, 1)), np.array(affect_targets(emotion, 2))
        assert np.all(np.abs(strong - 0.5) >= np.abs(mild - 0.5)) and np.any(strong != 0.5)
    a, d, v = affect_targets('angry', 2)
    assert a > 0.8 and d > 0.8 and v < 0.2
    with pytest.raises(UserError):
        affect_targets('neutral', 2)


def test_texts_and_voices():
    kinds = Counter(kind for _, kind in TEXTS)
    assert kinds['sentence'] >= 300 and kinds['neutral'] >= 40 and kinds['nonsense'] >= 40
    assert len({t for t, _ in TEXTS}) == len(TEXTS)
    assert all(t.isascii() and 3 <= len(t.split()) <= 25 for t, _ in TEXTS)
    assert {t[-1] for t, _ in TEXTS} == {'.', '?', '!'}
    engine = Synthesizer()
    assert len(SPEAKERS) >= 12 and len({s.voice for s in SPEAKERS}) == len(SPEAKERS)
    for speaker in SPEAKERS:
        engine.check_voice(speaker.voice)


def test_synthesizer_validates_and_repeats_itself():
    engine = Synthesizer()
    a = engine.synth('Twelve small boxes.', 'en-us+f2', rate=200, pitch=60)
    engine.synth('Something else in between.', 'en+m3')
    assert a.dtype == np.float32 and 0.5 < a.size / 16000 < 3
    assert np.array_equal(a, engine.synth('Twelve small boxes.', 'en-us+f2', rate=200, pitch=60))
    with pytest.raises(UserError, match='out of range'):
        engine.synth('hello', rate=5)
    with pytest.raises(UserError, match='variant'):
        engine.synth('hello', 'en+nobody')
    with pytest.raises(UserError, match='empty'):
        engine.synth('   ')


def test_pitch_tracker_on_a_known_tone():
    t = np.arange(16000) / 16000
    tone = 0.3 * np.sign(np.sin(2 * np.pi * 150 * t))
    feats = dict(zip(FEATURE_NAMES, prosodic_features(tone, 16000)))
    assert abs(feats['f0_mean_st'] - 12 * np.log2(1.5)) < 0.1
    assert feats['voiced_fraction'] > 0.9


def test_phone_timings_follow_the_audio(corpus):
    """Every clip carries eSpeak's phones, moved through the time changes after eSpeak: in
    time order, inside the clip, and the speech (the loud part) lies between the first
    phone and the final pause."""
    out, _, rows = corpus
    for r in rows:
        starts = [at for _, at in r['phones']]
        audio, _ = sf.read(out / r['path'], dtype='float32')
        assert starts == sorted(starts) and 0 <= starts[0] and starts[-1] <= audio.size
        assert r['phones'][-1][0] == '_' and sum(name != '_' for name, _ in r['phones']) >= 2
        loud = np.flatnonzero(np.abs(audio) > 0.3 * np.abs(audio).max())
        if r['condition'] == 'clean':  # (reverb and noise blur where speech ends)
            assert starts[0] - 800 <= loud[0] and loud[-1] <= starts[-1] + 800


def test_rendering_with_phones_gives_the_same_samples():
    """A jittery emotion on a voice whose tract is resampled: same audio either way, and
    the timings shift against the plain eSpeak events by the time changes only."""
    from emotive.data.speech.voices import KLATT_SPEAKERS

    speaker = next(s for s in KLATT_SPEAKERS if s.tract_scale != 1.0)
    plain = synth.render('The quick brown fox.', speaker.id, 'fearful', 2, seed=3)
    x, phones = synth.render('The quick brown fox.', speaker.id, 'fearful', 2, seed=3,
                             with_phones=True)
    np.testing.assert_array_equal(plain, x)
    assert [n for n, _ in phones][:3] == ['ð', 'ə', 'k'] and phones[-1][1] <= x.size


def test_jitter_moves_a_position_to_the_first_output_sample_reading_at_or_after_it():
    from emotive.data.speech import emotions as emo

    x = np.random.default_rng(1).standard_normal(8000)
    positions = np.array([0, 1, 999, 4000, 7999])
    y, moved = emo.apply_emotion(x, 16000, 'fearful', 2, np.random.default_rng(0), positions)
    np.testing.assert_array_equal(y, emo.apply_emotion(x, 16000, 'fearful', 2,
                                                       np.random.default_rng(0)))
    # the warp is the first draw of apply_emotion: redraw it and check each answer
    t = emo.jitter_warp(x.size, 16000, emo.PRESETS['fearful'].jitter, np.random.default_rng(0))
    assert t is not None and np.all(np.diff(t) > 0) and moved[0] == 0
    for p, i in zip(positions, moved):
        assert i == t.size or t[i] >= p
        assert i == 0 or t[i - 1] < p
    # add_jitter is the same warp applied to the samples
    np.testing.assert_array_equal(emo.add_jitter(x, 16000, 0.04, np.random.default_rng(2)),
                                  np.interp(emo.jitter_warp(x.size, 16000, 0.04,
                                                            np.random.default_rng(2)),
                                            np.arange(x.size), x))
    # no jitter (neutral): positions stay where they are
    _, same = emo.apply_emotion(x, 16000, 'neutral', 2, np.random.default_rng(0), positions)
    np.testing.assert_array_equal(same, positions)


def test_phones_of_a_resampled_jittery_voice_sit_on_the_speech_and_ignore_the_reverb():
    """A Klatt voice with tract_scale 1.22 (resampled) speaking fearfully (jitter): starts in
    time order inside the audio, the loud part between the first phone and the final pause,
    and 'distance' (reverb tail, noise) neither changes the timings nor the speech samples'
    positions: its final pause starts before its reverb tail."""
    from emotive.data.speech.voices import KLATT_SPEAKERS

    speaker = next(s for s in KLATT_SPEAKERS if s.tract_scale != 1.0)
    text = 'The quick brown fox jumps over the lazy dog.'
    clean, phones = synth.render(text, speaker.id, 'fearful', 2, 'clean', seed=5,
                                 with_phones=True)
    far, far_phones = synth.render(text, speaker.id, 'fearful', 2, 'distance', seed=5,
                                   with_phones=True)
    np.testing.assert_array_equal(far, synth.render(text, speaker.id, 'fearful', 2,
                                                    'distance', seed=5))
    assert far_phones == phones and far.size > clean.size  # the tail only appends
    starts = [at for _, at in phones]
    assert starts == sorted(starts) and 0 <= starts[0] and starts[-1] <= clean.size
    assert phones[-1][0] == '_' and [n for n, _ in phones[:3]] == ['ð', 'ə', 'k']
    loud = np.flatnonzero(np.abs(clean) > 0.3 * np.abs(clean).max())
    assert starts[0] - 800 <= loud[0] and loud[-1] <= starts[-2] + 800
