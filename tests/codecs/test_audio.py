"""Tests for emotive.codecs.audio: librosa parity of the features, and file loading edge cases."""

import functools

import jax
import numpy as np
import pytest
import soundfile as sf

from emotive.codecs import audio
from emotive.errors import UserError

librosa = pytest.importorskip("librosa")


def _noise(shape, seed=0):
    """Speech-like test signal: noise plus a tone, float32, well inside [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(shape[-1]) / 16000
    return (0.1 * rng.standard_normal(shape) + 0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _rel_err(got, want):
    return float(np.max(np.abs(np.asarray(got) - want)) / np.max(np.abs(want)))


# ----------------------------------------------------------------------------------------------
# Features
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_fft,hop,win_length", [(1280, 320, None), (512, 128, None),
                                                  (400, 160, None), (512, 128, 400)])
def test_stft_matches_librosa(n_fft, hop, win_length):
    x_BxT = _noise((2, 4001))
    got = np.asarray(audio.stft(x_BxT, n_fft, hop, win_length=win_length))
    want = librosa.stft(x_BxT, n_fft=n_fft, hop_length=hop, win_length=win_length,
                        window="hann", center=True, pad_mode="reflect")
    assert got.shape == want.shape == (2, n_fft // 2 + 1, 1 + 4001 // hop)
    assert got.dtype == np.complex64
    assert _rel_err(got, want) < 1e-4
    assert _rel_err(np.abs(got), np.abs(want)) < 1e-4


def test_stft_accepts_1d_and_no_center():
    x = _noise((3000,))
    got = np.asarray(audio.stft(x, 512, 128, center=False))
    want = librosa.stft(x, n_fft=512, hop_length=128, center=False)
    assert got.shape == want.shape
    assert _rel_err(got, want) < 1e-4


# 26 HTK bands on a 64-point FFT leave some bands empty; librosa warns, we only need to match it.
@pytest.mark.filterwarnings("ignore:Empty filters detected")
@pytest.mark.parametrize("htk", [False, True])
def test_mel_filterbank_matches_librosa(htk):
    cases = [(16000, 1024, 80, 0.0, None), (24000, 1280, 100, 20.0, 8000.0),
             (16000, 64, 26, 0.0, 8000.0)]
    for sr, n_fft, n_mels, fmin, fmax in cases:
        got = audio.mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk=htk)
        want = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk)
        assert got.shape == want.shape == (n_mels, n_fft // 2 + 1)
        assert _rel_err(got, want) < 1e-4
    got = audio.mel_filterbank(16000, 1024, 80, norm=None, htk=htk)
    want = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=80, norm=None, htk=htk)
    assert _rel_err(got, want) < 1e-4


def test_mel_spectrogram_matches_librosa():
    x_BxT = _noise((2, 8000))
    got = np.asarray(audio.mel_spectrogram(x_BxT, 16000, 1024, 256, 80, power=2.0))
    want = librosa.feature.melspectrogram(y=x_BxT, sr=16000, n_fft=1024, hop_length=256,
                                          n_mels=80, center=True, pad_mode="reflect", power=2.0)
    assert got.shape == (2, 1 + 8000 // 256, 80)
    assert _rel_err(got, np.swapaxes(want, -1, -2)) < 1e-4


def test_log_mel_is_clamped_natural_log():
    x_BxT = _noise((2, 8000))
    x_BxT[:, :3000] = 0.0
    mel = np.asarray(audio.mel_spectrogram(x_BxT, 16000, 1024, 256, 80, power=1.0))
    log_mel = np.asarray(audio.log_mel_spectrogram(x_BxT, 16000, 1024, 256, 80))
    np.testing.assert_allclose(log_mel, np.log(np.maximum(mel, 1e-5)), rtol=1e-5, atol=1e-5)
    assert log_mel.min() == pytest.approx(np.log(1e-5), rel=1e-6)


def test_log_mel_gradient_is_finite_on_silence():
    x = np.zeros((1, 4000), np.float32)
    grad = jax.grad(lambda x: audio.log_mel_spectrogram(x, 16000, 512, 128, 40).sum()
                    + audio.mel_spectrogram(x, 16000, 512, 128, 40, power=1.0).sum())(x)
    assert np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize("n_fft,hop,length", [(1280, 320, 16000), (1024, 256, 16001),
                                              (1024, 256, 9999), (400, 160, 4321)])
def test_istft_reconstructs_and_matches_librosa(n_fft, hop, length):
    x_BxT = _noise((2, length))
    spec = audio.stft(x_BxT, n_fft, hop)
    y = np.asarray(audio.istft(spec, hop, length=length))
    assert y.shape == x_BxT.shape and y.dtype == np.float32
    assert np.max(np.abs(y - x_BxT)) < 1e-5
    want = librosa.istft(np.asarray(spec), hop_length=hop, n_fft=n_fft, length=length)
    assert np.max(np.abs(y - want)) < 1e-5
    # Without `length`, the layout librosa returns: hop * (frames - 1) samples.
    y_free = np.asarray(audio.istft(spec, hop))
    want_free = librosa.istft(np.asarray(spec), hop_length=hop, n_fft=n_fft)
    assert y_free.shape == want_free.shape
    assert np.max(np.abs(y_free - want_free)) < 1e-5


def test_features_jit_to_same_answer():
    x_BxT = _noise((2, 6400))
    stft_jit = jax.jit(audio.stft, static_argnames=("n_fft", "hop", "win_length", "center"))
    spec = audio.stft(x_BxT, 1280, 320)
    np.testing.assert_allclose(stft_jit(x_BxT, n_fft=1280, hop=320), spec, atol=1e-4)
    istft_jit = jax.jit(functools.partial(audio.istft, hop=320, length=6400))
    np.testing.assert_allclose(istft_jit(spec), audio.istft(spec, 320, length=6400), atol=1e-6)
    log_mel_jit = jax.jit(functools.partial(audio.log_mel_spectrogram, sample_rate=16000,
                                            n_fft=1024, hop=256, n_mels=80))
    np.testing.assert_allclose(log_mel_jit(x_BxT),
                               audio.log_mel_spectrogram(x_BxT, 16000, 1024, 256, 80), atol=1e-4)


def test_hann_window_matches_scipy():
    import scipy.signal
    want = scipy.signal.get_window("hann", 64)
    np.testing.assert_allclose(audio.hann_window(64), want, atol=1e-7)
    np.testing.assert_allclose(audio.hann_window(63, periodic=False),
                               scipy.signal.windows.hann(63, sym=True), atol=1e-7)


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def _sine(freq, sr, seconds, amp=0.5, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def test_load_48k_stereo_to_16k_mono(tmp_path):
    path = tmp_path / "stereo.wav"
    left, right = _sine(440, 48000, 0.5), _sine(660, 48000, 0.5, amp=0.2)
    sf.write(path, np.stack([left, right], axis=1), 48000, subtype="PCM_16")
    x = audio.load_audio(path, 16000)
    assert x.dtype == np.float32 and x.ndim == 1 and x.shape == (8000,)
    rms_db = 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    assert rms_db == pytest.approx(-23.0, abs=0.1)
    raw = audio.load_audio(path, 16000, normalize_loudness=False)
    want = (left + right)[::3] / 2
    # Away from the filter's edge effects, the mono mix survives resampling.
    assert np.max(np.abs(raw[100:-100] - want[100:-100])) < 2e-3


def test_resampling_keeps_frequency_and_amplitude(tmp_path):
    path = tmp_path / "sine.flac"
    sf.write(path, _sine(1000, 48000, 1.0, amp=0.5), 48000, subtype="PCM_24")
    x = audio.load_audio(path, 16000, normalize_loudness=False)
    assert x.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    assert np.argmax(spectrum) * 16000 / x.size == pytest.approx(1000.0, abs=1.0)
    assert np.max(np.abs(x[200:-200])) == pytest.approx(0.5, abs=5e-3)


@pytest.mark.parametrize("subtype,fmt,suffix,tol", [("PCM_U8", "WAV", "wav", 1e-2),
                                                    ("PCM_24", "WAV", "wav", 1e-5),
                                                    ("FLOAT", "WAV", "wav", 1e-6),
                                                    ("PCM_16", "OGG", "ogg", None)])
def test_load_formats(tmp_path, subtype, fmt, suffix, tol):
    path = tmp_path / f"tone_{subtype}.{suffix}"
    x = _sine(300, 16000, 0.5)
    sf.write(path, x, 16000, subtype="VORBIS" if fmt == "OGG" else subtype, format=fmt)
    y = audio.load_audio(path, 16000, normalize_loudness=False)
    assert y.shape == x.shape and y.dtype == np.float32
    if tol is not None:
        assert np.max(np.abs(y - x)) < tol


def _expect_rejected(path, match):
    with pytest.raises(UserError, match=match) as info:
        audio.load_audio(path)
    message = str(info.value)
    assert path.name in message and "\n" not in message


def test_rejects_empty(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros((0,), np.float32), 16000)
    _expect_rejected(path, "no audio samples")


def test_rejects_silent(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    _expect_rejected(path, "silent")


def test_rejects_too_short(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, _sine(440, 48000, 0.05), 48000)
    _expect_rejected(path, "too short")


def test_rejects_too_long(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, _sine(440, 16000, 2.0), 16000)
    with pytest.raises(UserError, match="too long"):
        audio.load_audio(path, max_seconds=1.0)
    assert audio.load_audio(path, max_seconds=3.0).shape == (32000,)


def test_rejects_nan(tmp_path):
    path = tmp_path / "nan.wav"
    x = _sine(440, 16000, 0.5)
    x[1000] = np.nan
    sf.write(path, x, 16000, subtype="FLOAT")
    _expect_rejected(path, "NaN")


@pytest.mark.parametrize("suffix,subtype", [("wav", "PCM_16"), ("wav", "FLOAT"), ("flac", "PCM_16"),
                                            ("ogg", "VORBIS")])
def test_rejects_truncated(tmp_path, suffix, subtype):
    whole = tmp_path / f"whole.{suffix}"
    sf.write(whole, _noise((16000,)), 16000, subtype=subtype)
    data = whole.read_bytes()
    path = tmp_path / f"truncated.{suffix}"
    path.write_bytes(data[: len(data) // 2])
    _expect_rejected(path, "truncated|corrupt")


def test_rejects_random_bytes_and_missing(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    _expect_rejected(path, "corrupt")
    _expect_rejected(tmp_path / "missing.wav", "no such file")
    _expect_rejected(tmp_path, "no such file")


def test_check_waveform_in_memory():
    audio.check_waveform(_sine(440, 16000, 0.2), 16000, name="clip", min_seconds=0.1)
    with pytest.raises(UserError, match="clip: contains NaN"):
        audio.check_waveform(np.full(4000, np.inf, np.float32), 16000, name="clip")
    with pytest.raises(UserError, match="clip: silent"):
        audio.check_waveform(np.full(4000, 1e-5, np.float32), 16000, name="clip")
    with pytest.raises(UserError, match="clip: too short"):
        audio.check_waveform(_sine(440, 16000, 0.05), 16000, name="clip", min_seconds=0.1)


def test_clipped_loads_but_is_reported(tmp_path):
    path = tmp_path / "clipped.wav"
    x = np.clip(_sine(200, 16000, 0.5, amp=3.0), -1.0, 1.0)
    sf.write(path, x, 16000, subtype="PCM_16")
    issues = []
    y = audio.load_audio(path, 16000, issues=issues)
    assert np.max(np.abs(y)) <= 0.99 + 1e-6
    assert len(issues) == 1 and issues[0].startswith("clipped:")
    assert audio.inspect_audio(sf.read(path, dtype="float32")[0], 16000)[0].startswith("clipped:")
    assert audio.inspect_audio(_sine(200, 16000, 0.5), 16000) == []


def test_loudness_normalisation_limits_peaks():
    spiky = np.zeros(16000, np.float32)
    spiky[::1000] = 0.5
    y = audio.normalize_rms(spiky, -23.0)
    assert np.max(np.abs(y)) == pytest.approx(0.99, rel=1e-5)


def test_save_audio_round_trip(tmp_path):
    path = tmp_path / "nested" / "dir" / "out.wav"
    x = _sine(440, 16000, 0.25, amp=1.5)
    audio.save_audio(path, x, 16000)
    info = sf.info(path)
    assert info.subtype == "PCM_16" and info.samplerate == 16000
    y, _ = sf.read(path, dtype="float32")
    np.testing.assert_allclose(y, np.clip(x, -1, 1), atol=1e-4)
    with pytest.raises(UserError, match="NaN"):
        audio.save_audio(tmp_path / "bad.wav", np.full(10, np.nan), 16000)
