"""Motion metrics on known answers: FGD (0 for identical sets, growing with noise), beat
alignment (falls as motion is shifted against its onsets), L1 diversity, jerk, foot sliding,
lip sync, LVE, bootstrap intervals, the emotion probe, and each result's protocol."""

import numpy as np
import pytest

from emotive.codecs.motion import kinematics, rotations
from emotive.codecs.motion.face import ARKIT_INDEX
from emotive.codecs.motion.skeleton import SMPLX
from emotive.errors import UserError
from emotive.metrics.bootstrap import bootstrap_ci
from emotive.metrics.lip_sync import audio_envelope, jaw_envelope_correlation, lve_blendshapes
from emotive.metrics.motion_beats import audio_onsets, beat_alignment
from emotive.metrics.motion_body import foot_sliding, jerk, l1_diversity
from emotive.metrics.motion_fgd import (FEATURE_DIM, MotionFeatureExtractor, fgd,
                                        fit_feature_extractor, frechet_distance, motion_windows)
from emotive.metrics.motion_probe import EmotionProbe, motion_features

FPS = 30.0


def rest_positions(num_frames: int) -> np.ndarray:
    pos, _ = kinematics.forward_kinematics(np.broadcast_to(np.eye(3), (num_frames, 55, 3, 3)),
                                           np.zeros((num_frames, 3)), SMPLX)
    return np.asarray(pos, np.float64)


def smooth_rotations(rng, clips: int, frames: int) -> list[np.ndarray]:
    """6D rotations [T, 55, 6] of smooth random joint motions."""
    t = np.arange(frames)[:, None, None] / FPS
    out = []
    for _ in range(clips):
        freq = rng.uniform(0.3, 2.0, (1, 55, 3))
        phase = rng.uniform(0, 2 * np.pi, (1, 55, 3))
        aa = 0.3 * np.sin(2 * np.pi * freq * t + phase)
        out.append(rotations.axis_angle_to_rotation_6d(aa).astype(np.float32))
    return out


def test_frechet_distance_known_answers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    q, _ = np.linalg.qr(x - x.mean(0))
    a = q * np.sqrt(399)                     # centred, sample covariance exactly I
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    shift = np.array([1.0, -2.0, 0, 0, 0.5, 0])
    assert frechet_distance(a, a + shift) == pytest.approx(shift @ shift, rel=1e-6)
    # Scaling one coordinate by 3 adds (sqrt(v) - sqrt(9 v))^2 = 4 v for its variance v.
    b = a.copy()
    b[:, 0] *= 3
    var = np.var(a[:, 0], ddof=1)
    assert frechet_distance(a, b) == pytest.approx(4 * var, rel=1e-4)


@pytest.fixture(scope="module")
def windows():
    rng = np.random.default_rng(1)
    return motion_windows(smooth_rotations(rng, 12, 64), stride=8)


@pytest.mark.parametrize("trained", [False, True])
def test_fgd_is_zero_on_itself_and_grows_with_noise(windows, trained):
    extractor = (fit_feature_extractor(windows, seed=0, steps=25) if trained
                 else MotionFeatureExtractor.init(seed=0))
    if trained:
        assert extractor.info["final_loss"] < extractor.info["first_loss"]
    real = extractor.features(windows)
    assert real.shape == (len(windows), FEATURE_DIM)
    same = fgd(real, real, extractor=extractor)
    assert same["value"] < 1e-6 * max(1.0, np.trace(np.cov(real, rowvar=False)))
    assert same["protocol"]["extractor"]["sha256_16"] == extractor.digest()
    rng = np.random.default_rng(2)
    noise = rng.normal(size=windows.shape).astype(np.float32)
    values = [fgd(real, extractor.features(windows + s * noise))["value"]
              for s in (0.01, 0.03, 0.1, 0.3)]
    assert all(b > a for a, b in zip(values, values[1:])), values
    assert values[0] > same["value"]


def test_feature_extractor_save_load_round_trip(tmp_path, windows):
    extractor = MotionFeatureExtractor.init(seed=3)
    extractor.save(tmp_path / "fx.npz")
    loaded = MotionFeatureExtractor.load(tmp_path / "fx.npz")
    assert loaded.digest() == extractor.digest()
    np.testing.assert_array_equal(loaded.features(windows[:4]), extractor.features(windows[:4]))
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(UserError, match="bad.npz"):
        MotionFeatureExtractor.load(tmp_path / "bad.npz")
    with pytest.raises(UserError, match="missing.npz"):
        MotionFeatureExtractor.load(tmp_path / "missing.npz")


def beat_motion(onsets_s, frames: int, shift_s: float = 0.0) -> np.ndarray:
    """The rest pose, upper body oscillating so that its speed has minima half a period apart,
    on the onsets (moved by shift_s), plus a steady drift so no minimum is a full stop."""
    t = np.arange(frames) / FPS
    period = 2 * np.diff(onsets_s).mean()
    pos = rest_positions(frames)
    osc = 0.1 * np.cos(2 * np.pi * (t - onsets_s[0] - shift_s) / period)
    pos[:, :, 0] += osc[:, None]
    pos[:, :, 2] += (0.03 * t)[:, None]
    return pos


def test_beat_alignment_falls_as_motion_shifts():
    onsets = np.arange(0.5, 9.5, 1.0)
    frames = 300
    values = [beat_alignment(beat_motion(onsets, frames, s), FPS, onsets, drop_s=0.0)
              for s in (0.0, 0.1, 0.2, 0.3, 0.45)]
    scores = [v["value"] for v in values]
    assert scores[0] > 0.95
    assert all(b < a for a, b in zip(scores, scores[1:])), scores
    protocol = values[0]["protocol"]
    assert protocol["sigma_s"] == 0.3 and protocol["order"] == 7
    assert protocol["joints"] == [3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]
    assert protocol["threshold"] == 0.1 and protocol["drop_s"] == 0.0


def test_beat_alignment_drop_and_still_motion():
    onsets = np.arange(0.5, 9.5, 1.0)
    # EMAGE's 2 s drop: the onsets at 0.5 and 1.5 s (and after 8 s) no longer count.
    dropped = beat_alignment(beat_motion(onsets, 300), FPS, onsets)
    assert dropped["onsets"] == 6 and dropped["protocol"]["drop_s"] == 2.0
    short = beat_alignment(beat_motion(onsets, 90), FPS, onsets)
    assert np.isnan(short["value"])          # a 3 s clip has nothing left after the drop
    still = beat_alignment(rest_positions(300), FPS, onsets, drop_s=0.0)
    assert still["value"] == 0.0 and still["beats"] == 0   # no motion, no beats


def test_audio_onsets_energy_finds_bursts():
    sr = 16000
    x = np.zeros(3 * sr)
    times = (0.3, 0.9, 1.6, 2.4)
    rng = np.random.default_rng(0)
    for t0 in times:
        i = int(t0 * sr)
        x[i:i + int(0.15 * sr)] = 0.3 * np.sin(2 * np.pi * 200 * np.arange(int(0.15 * sr)) / sr)
    x += 1e-4 * rng.normal(size=x.size)
    found = audio_onsets(x, sr, method="energy")
    assert len(found) == len(times)
    assert np.abs(found - np.asarray(times)).max() < 0.03
    with pytest.raises(ValueError):
        audio_onsets(x, sr, method="spectral")


def test_l1_diversity_jerk_foot_sliding_known_answers():
    pos = rest_positions(10)
    assert l1_diversity(pos)["value"] == pytest.approx(0.0, abs=1e-12)
    moved = pos.copy()
    moved[::2, 5, 0] += 0.2      # one coordinate alternates by 0.2: |x - mean| = 0.1
    assert l1_diversity(moved)["value"] == pytest.approx(0.1)
    assert l1_diversity([moved[:5], moved[5:]])["value"] == pytest.approx(0.1)

    t = np.arange(20) / FPS
    cubic = rest_positions(20) + (2.0 * t ** 3)[:, None, None] * np.array([1.0, 0, 0])
    result = jerk(cubic, FPS)
    assert result["value"] == pytest.approx(12.0, rel=1e-6)    # d3/dt3 of 2 t^3
    assert result["protocol"]["units"] == "m/s^3"

    still = rest_positions(30)
    assert foot_sliding(still, FPS)["value"] == pytest.approx(0.0, abs=1e-9)
    sliding = still.copy()
    sliding[:, :, 2] += (0.5 * np.arange(30) / FPS)[:, None]   # everything glides at 0.5 m/s
    sliding_value = foot_sliding(sliding, FPS)
    # The ankles are 5.5 cm above the feet (no contact weight); the feet slide at full weight.
    assert sliding_value["value"] == pytest.approx(0.5 * 0.5, rel=1e-6)
    assert sliding_value["protocol"]["contact_height_m"] == 0.05
    lifted = sliding.copy()
    lifted[:, :, 1] += np.linspace(0, 1, 30)[:, None]          # rising: the feet leave the floor
    assert foot_sliding(lifted, FPS)["value"] < sliding_value["value"]


def test_lip_sync_correlation_and_lve():
    sr, frames = 16000, 90
    t = np.arange(frames * sr // 30) / sr
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    audio = envelope * np.sin(2 * np.pi * 150 * t)
    env_frames = audio_envelope(audio, sr, FPS, frames)
    jaw = env_frames * 0.8
    assert jaw_envelope_correlation(jaw, audio, sr, FPS)["value"] > 0.99
    assert jaw_envelope_correlation(jaw[::-1], audio, sr, FPS)["value"] < 0.5

    gt = np.random.default_rng(0).uniform(0, 1, (frames, 52))
    assert lve_blendshapes(gt, gt)["value"] == 0.0
    pred = gt.copy()
    pred[:, ARKIT_INDEX["jawOpen"]] += 0.1
    pred[:, ARKIT_INDEX["eyeBlinkLeft"]] += 0.9        # not a mouth shape: ignored
    result = lve_blendshapes(pred, gt)
    assert result["value"] == pytest.approx(0.01)
    assert "jawOpen" in result["protocol"]["blendshapes"]
    assert "eyeBlinkLeft" not in result["protocol"]["blendshapes"]


def test_bootstrap_ci():
    constant = bootstrap_ci([0.5] * 20)
    assert constant["value"] == constant["low"] == constant["high"] == 0.5
    rng = np.random.default_rng(0)
    small = bootstrap_ci(rng.normal(1.0, 1.0, 20), seed=1)
    large = bootstrap_ci(rng.normal(1.0, 1.0, 2000), seed=1)
    assert small["low"] < small["value"] < small["high"]
    assert large["high"] - large["low"] < small["high"] - small["low"]
    assert large["low"] < 1.0 < large["high"]
    with_nan = bootstrap_ci([1.0, float("nan"), 3.0], protocol={"metric": "x"})
    assert with_nan["n"] == 2 and with_nan["dropped_nan"] == 1 and with_nan["value"] == 2.0
    assert with_nan["protocol"] == {"metric": "x"}
    values = rng.normal(size=30)
    assert bootstrap_ci(values, seed=5) == bootstrap_ci(values, seed=5)


def test_emotion_probe_separates_clusters():
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    centres = rng.normal(0, 3, (3, 5))
    y = np.repeat(classes, 40)
    x = centres[np.repeat(np.arange(3), 40)] + rng.normal(size=(120, 5))
    probe = EmotionProbe.fit(x[::2], y[::2])
    result = probe.accuracy(x[1::2], y[1::2])
    assert result["value"] > 0.95
    assert set(result["per_class_recall"]) == set(classes)
    assert "logistic" in result["protocol"]["model"]
    features = motion_features(rest_positions(20), FPS)
    assert features.shape == (22 * 3 * 2 + 22 * 2,)
