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
