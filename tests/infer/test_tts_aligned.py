"""Aligned (ELLA-V) TTS end to end on a random model: phoneme-synchronous decoding through the
pipeline, details per sentence, --speed and --seconds as exact frame targets, bad input."""

import numpy as np
import pytest

from emotive.errors import UserError
from emotive.infer.durations import rescale
from emotive.infer.tts import load_pipeline, synthesize

TEXT = ("The cat sat on the mat, and the bird sang in the old tree by the river. "
        "A quiet morning came over the green stone hills.")  # two sentences


@pytest.fixture(scope="module")
def aligned(tiny_aligned_tts_run):
    tts, codec = tiny_aligned_tts_run
    return load_pipeline(tts, codec)


def test_every_phoneme_is_spoken_once_and_details_say_how_long(aligned):
    details = []
    waves = aligned.synthesize(TEXT, emotion="happy", num_samples=2, seed=3,
                               max_phone_seconds=0.06, details=details)
    assert len(waves) == 2 and len(details) == 4  # 2 samples x 2 sentences
    hop = aligned.codec.hop
    for j, wave in enumerate(waves):
        rows = [d for d in details if d["sample"] == j]
        assert all(d["stopped"] and len(d["frames"]) == d["units"] for d in rows)
        assert all(max(d["frames"]) <= 3 for d in rows)  # 0.06 s at 50 frames a second
        frames = sum(sum(d["frames"]) for d in rows)
        assert wave.size == frames * hop + int(0.25 * 16000)  # one pause between sentences
    again = aligned.synthesize(TEXT, emotion="happy", num_samples=2, seed=3,
                               max_phone_seconds=0.06)
    np.testing.assert_array_equal(again[1], waves[1])


@pytest.mark.parametrize("speed", [0.8, 1.25])
def test_speed_scales_the_models_own_durations(aligned, speed):
    free, timed = [], []
    aligned.synthesize(TEXT, seed=1, max_phone_seconds=0.06, details=free)
    aligned.synthesize(TEXT, seed=1, max_phone_seconds=0.06, details=timed, speed=speed)
    for a, b in zip(free, timed):
        assert b["frames"] == rescale(a["frames"], 1 / speed)
    ratio = sum(map(sum, (a["frames"] for a in free))) / sum(map(sum, (b["frames"] for b in timed)))
    assert abs(ratio - speed) / speed < 0.05


def test_seconds_gives_the_asked_length(aligned):
    wave = aligned.synthesize(TEXT, seed=2, max_phone_seconds=0.06, seconds=3.0)[0]
    assert abs(wave.size / 16000 - 3.0) < 2 * aligned.codec.hop / 16000


def test_bad_timing_requests_get_one_line(aligned, tiny_tts_runs):
    with pytest.raises(UserError, match="speed must be a positive"):
        aligned.synthesize(TEXT, speed=0)
    with pytest.raises(UserError, match="too short for"):
        aligned.synthesize(TEXT, seconds=0.1)
    with pytest.raises(UserError, match="speed or seconds, not both"):
        aligned.synthesize(TEXT, speed=2, seconds=3)
    with pytest.raises(UserError, match="voice prompt"):
        aligned.synthesize(TEXT, ref_wav=np.ones(16000, np.float32), ref_text="a cat")
    plain = load_pipeline(*tiny_tts_runs)
    with pytest.raises(UserError, match="need an aligned TTS model"):
        synthesize(plain.lm, plain.codec, "oak table river.", speed=1.5)


def test_eval_reports_timing_and_oracle_durations_are_followed(aligned, monkeypatch, tmp_path):
    """Clips whose eSpeak timings give every unit 2 frames: with --oracle-durations every
    phoneme lasts exactly that (duration error 0); the free model is reported against it."""
    from emotive.codecs.phonemes import PAUSES, WORD
    from emotive.data.speech.emotions import EMOTIONS
    from emotive.evals import tts as tts_eval
    from emotive.infer import codec as codec_module

    vocab = aligned.lm.vocab
    texts = ["Green river.", "Oak table stood here.", "Blue sky."]

    def phones(text):
        units = vocab.phone_units(vocab.encode_text(text))
        return [["_" if u in {WORD, *PAUSES.values()} else vocab.tokenizer.id_to_token(u), 2]
                for u in units]

    rng = np.random.default_rng(0)
    clips = [{"id": f"c{i}", "text": t, "condition": "clean", "intensity": 1,
              "emotion": EMOTIONS.index("happy"), "audio": 0.1 * rng.standard_normal(16000),
              "decoded": 0.1 * rng.standard_normal(16000), "phones": phones(t)}
             for i, t in enumerate(texts)]
    monkeypatch.setattr(codec_module, "iterate_split", lambda *a, **k: iter(clips))

    class Recognizer:
        def transcribe(self, batch, lengths):
            return ["green river"] * len(batch)

    class EmotionModel:
        def predict(self, batch, lengths):
            probs = np.zeros((len(batch), len(EMOTIONS)))
            probs[:, EMOTIONS.index("happy")] = 1.0
            return {"probs": probs}

    reports = [tts_eval.evaluate(aligned.lm, aligned.codec, Recognizer(), EmotionModel(), "x",
                                 limit=24, batch_size=2, oracle_durations=oracle)
               for oracle in (False, True)]
    free, oracle = (r["timing"] for r in reports)
    assert oracle["duration_error_frames"] == 0.0 and oracle["duration_clips"] == 3
    assert free["duration_error_frames"] > 0.0 and 0.0 <= free["forced_eop_rate"] <= 1.0
    assert oracle["no_stop_rate"] == 0.0 and oracle["forced_eop_rate"] == 0.0
    assert "phonemes ended by force" in tts_eval.format_report(reports[0])
