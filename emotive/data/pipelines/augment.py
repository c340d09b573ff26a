"""Training-time audio augmentations of the recognisers: host-side numpy/scipy, seeded.

Each kind has a deterministic transform whose effect the tests check, and a `random_<kind>
(audio_T, rng, cfg)` that draws its parameters from `rng` within `cfg`'s ranges:

    speed   change_speed(audio, factor)                resample: duration and pitch together
    pitch   shift_pitch(audio, semitones)              resample + phase-vocoder stretch back
    vtlp    warp_vocal_tract(audio, alpha, boundary)   formants warped, harmonics kept
    reverb  reverberate(audio, room_impulse(...))      synthetic room, length and level kept
    noise   add_noise(audio, coloured_noise(...), snr) white / pink / brown at an SNR
    eq      filter_bands(audio, band_limits(...) + biquads)   telephone band, cutoffs, peaks
    gain    change_gain(audio, db)                     level with soft clipping

`augment(audio_T, cfg, rng)` applies each kind with its probability (`AugmentConfig`), in the
order of AUGMENTATIONS; `augment_crop` cuts a training crop around it, since speed changes
the length. Audio is float32 [T] at 16 kHz in [-1, 1] (int16 is scaled first). Everything
depends only on the audio and the rng, so a pipeline that seeds the rng by (seed, global
position) gives a resumed run the very batches it would have seen.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import scipy.signal
from scipy.fft import irfft, rfft, rfftfreq

from emotive.configs.augment import AUGMENTATIONS, AugmentConfig
from emotive.configs.common import SAMPLE_RATE

# The STFT of pitch and vtlp: 32 ms Hann windows. The pitch shift's phase vocoder hops
# N_FFT / 8 (4 ms), so it reads a frequency unambiguously up to 4 bins from a bin's centre
# and the whole main lobe of a Hann-windowed sine (+-2 bins) stays coherent (at N_FFT / 4
# its edge bins wrap: a sine stretched 1.19x came out 1.6 dB quieter, against 0.7 dB at
# N_FFT / 8); vtlp only rescales magnitudes and hops N_FFT / 4 (8 ms), at half the cost.
N_FFT, STRETCH_HOP, VTLP_HOP = 512, 64, 128
# Periodic (its square sums evenly); float32 throughout: half the time of float64.
_WINDOW = scipy.signal.get_window("hann", N_FFT).astype(np.float32)
_LPC_ORDER = 18  # all-pole envelope of each frame: about one pole pair per kHz, plus tilt
_MAX_LOG_GAIN = 3.0  # vtlp changes no bin by more than e^3 (26 dB): valleys stay valleys
TELEPHONE_HZ = (300.0, 3400.0)
SOFT_CLIP_KNEE = 0.9  # change_gain is the identity below this and never exceeds 1 above it
NOISE_COLOURS = ("white", "pink", "brown")
DEFAULT = AugmentConfig()


def as_float(audio_T: np.ndarray) -> np.ndarray:
    """float32 [T] in [-1, 1]: int16 scaled by 1/32768, floats as they are."""
    audio_T = np.asarray(audio_T)
    if audio_T.dtype == np.int16:
        return audio_T.astype(np.float32) / 32768.0
    return audio_T.astype(np.float32)


# ------------------------------------------------------------------------------ the STFT
def _stft(x_T: np.ndarray, hop: int) -> np.ndarray:
    """Hann-windowed frames every `hop` of x zero-padded by N_FFT - hop on each side, so
    every sample is covered by N_FFT / hop frames: complex64 [M, N_FFT // 2 + 1]."""
    pad = N_FFT - hop
    n = x_T.size + 2 * pad
    n += (-(n - N_FFT)) % hop
    padded = np.zeros(n, np.float32)
    padded[pad:pad + x_T.size] = x_T
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::hop]
    return rfft(frames * _WINDOW, axis=-1)


def _istft(spec_MxF: np.ndarray, length: int, hop: int) -> np.ndarray:
    """Weighted overlap-add of `_stft` frames: float32 [length] (zeros past the frames;
    where fewer frames than N_FFT / hop overlap, as at the end of a stretch, it fades out)."""
    frames = irfft(spec_MxF, n=N_FFT, axis=-1) * _WINDOW
    m, r = frames.shape[0], N_FFT // hop
    out = np.zeros((m + r - 1, hop), np.float32)
    norm = np.zeros((m + r - 1, hop), np.float32)
    blocks, weights = frames.reshape(m, r, hop), np.square(_WINDOW).reshape(r, hop)
    for k in range(r):  # frame j's k-th hop lands on output hop j + k
        out[k:k + m] += blocks[:, k]
        norm[k:k + m] += weights[k]
    # Dividing by half the full overlap at least keeps a lone window's tail from blowing up.
    y = (out / np.maximum(norm, 0.5 * weights.sum(axis=0))).ravel()[N_FFT - hop:]
    return np.pad(y[:length], (0, max(0, length - y.size)))


def _time_stretch(x_T: np.ndarray, length: int) -> np.ndarray:
    """x played in `length` samples with its frequencies kept (a phase vocoder: magnitudes
    interpolated between frames, each bin's phase advanced by its measured frequency)."""
    spec = _stft(x_T, STRETCH_HOP)
    mag_in, phase_in = np.abs(spec), np.angle(spec)
    rate = x_T.size / max(length, 1)
    steps = np.arange(0, spec.shape[0] - 1, rate)
    i = steps.astype(np.int64)
    frac = (steps - i).astype(np.float32)[:, None]
    mag = (1 - frac) * mag_in[i] + frac * mag_in[i + 1]
    # Each bin's phase advances by its measured frequency: the expected advance of its
    # centre plus the deviation, wrapped. Advances are taken mod 2 pi so that the running
    # sum stays small enough for float32.
    expected = (2 * np.pi * STRETCH_HOP / N_FFT * np.arange(spec.shape[1])).astype(np.float32)
    deviation = phase_in[i + 1] - phase_in[i] - expected
    advance = np.mod(deviation - 2 * np.pi * np.round(deviation / (2 * np.pi)) + expected,
                     2 * np.pi)
    phase = phase_in[0] + np.concatenate(
        [np.zeros((1, spec.shape[1]), np.float32), np.cumsum(advance[:-1], axis=0)])
    spec_out = np.empty(mag.shape, np.complex64)  # cos + i sin: 8x faster than complex exp
    spec_out.real, spec_out.imag = mag * np.cos(phase), mag * np.sin(phase)
    return _istft(spec_out, length, STRETCH_HOP)


# ----------------------------------------------------------------------- the transforms
def change_speed(audio_T: np.ndarray, factor: float) -> np.ndarray:
    """`audio_T` played `factor` times faster (> 1: shorter and higher): about T / factor
    samples, every frequency times factor (polyphase resampling with an anti-alias filter;
    the factor is rounded to a ratio of integers up to 100)."""
    ratio = Fraction(1.0 / factor).limit_denominator(100)
    if ratio == 1:
        return np.asarray(audio_T, np.float32).copy()
    out = scipy.signal.resample_poly(audio_T, ratio.numerator, ratio.denominator)
    return out.astype(np.float32)


def shift_pitch(audio_T: np.ndarray, semitones: float) -> np.ndarray:
    """Every frequency times 2^(semitones / 12), the length kept: resampled, then stretched
    back to T samples by a phase vocoder."""
    if semitones == 0 or audio_T.size == 0:
        return np.asarray(audio_T, np.float32).copy()
    faster = change_speed(audio_T, 2.0 ** (semitones / 12.0))
    return _time_stretch(faster, audio_T.size).astype(np.float32)


def vtlp_source_hz(freq_hz: np.ndarray, alpha: float, boundary_hz: float) -> np.ndarray:
    """Where the warp of Jaitly & Hinton (2013) takes each output frequency from: f -> alpha f
    up to boundary * min(alpha, 1) / alpha, then the straight line that ends at Nyquist."""
    nyquist = SAMPLE_RATE / 2
    knee = boundary_hz * min(alpha, 1.0) / alpha  # source frequency of the bend
    warped_knee = alpha * knee
    upper = knee + (freq_hz - warped_knee) * (nyquist - knee) / (nyquist - warped_knee)
    return np.where(freq_hz <= warped_knee, freq_hz / alpha, upper)


def _log_envelope(spec_MxF: np.ndarray) -> np.ndarray:
    """Each frame's log all-pole (LPC) envelope [M, F], up to a per-frame constant: the
    autocorrelation from the power spectrum, Levinson-Durbin over all frames at once."""
    r = irfft(np.square(np.abs(spec_MxF)).astype(np.float64), n=N_FFT,
             axis=-1)[:, :_LPC_ORDER + 1]
    r[:, 0] = r[:, 0] * (1 + 1e-6) + 1e-12  # a little white floor: silence stays solvable
    a = np.zeros((r.shape[0], _LPC_ORDER + 1))
    a[:, 0] = 1.0
    err = r[:, 0].copy()
    for i in range(1, _LPC_ORDER + 1):
        k = -(r[:, i] + np.sum(a[:, 1:i] * r[:, i - 1:0:-1], axis=1)) / err
        a[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, i - 1:0:-1]
        a[:, i] = k
        err = err * (1 - np.square(k))
    return -np.log(np.abs(rfft(a, n=N_FFT, axis=-1)) + 1e-12)


def warp_vocal_tract(audio_T: np.ndarray, alpha: float,
                     boundary_hz: float = DEFAULT.vtlp_boundary_hz) -> np.ndarray:
    """Vocal-tract length perturbation: each frame's spectral envelope (all-pole, so the
    formants) moves to alpha times its frequencies (`vtlp_source_hz`); the fine structure,
    so the harmonics and the pitch, stays. Same length."""
    if alpha == 1 or audio_T.size == 0:
        return np.asarray(audio_T, np.float32).copy()
    spec = _stft(np.asarray(audio_T, np.float32), VTLP_HOP)
    envelope = _log_envelope(spec)
    bins = vtlp_source_hz(rfftfreq(N_FFT, 1 / SAMPLE_RATE), alpha, boundary_hz) \
        * N_FFT / SAMPLE_RATE
    low = np.clip(np.floor(bins).astype(np.int64), 0, spec.shape[1] - 2)
    frac = np.clip(bins - low, 0.0, 1.0)
    warped = (1 - frac) * envelope[:, low] + frac * envelope[:, low + 1]
    gain = np.clip(warped - envelope, -_MAX_LOG_GAIN, _MAX_LOG_GAIN).astype(np.float32)
    return _istft(spec * np.exp(gain), audio_T.size, VTLP_HOP)


def room_impulse(rng: np.random.Generator, rt60: float, wet: float) -> np.ndarray:
    """A synthetic room impulse response float64 [max(2, rt60 * 16 kHz)]: a direct path
    (energy 1 - wet) then Gaussian noise decaying 60 dB over `rt60` seconds (energy wet)."""
    n = max(2, int(rt60 * SAMPLE_RATE))
    t = np.arange(1, n) / SAMPLE_RATE
    tail = rng.standard_normal(n - 1) * np.exp(-3.0 * math.log(10.0) * t / rt60)
    tail *= math.sqrt(wet / np.sum(np.square(tail)))
    return np.concatenate([[math.sqrt(1.0 - wet)], tail])


def reverberate(audio_T: np.ndarray, impulse: np.ndarray) -> np.ndarray:
    """`audio_T` convolved with a room `impulse`, cut to T samples (the tail past the end is
    dropped) and scaled back to the input's RMS, so a room is not also a level change."""
    if audio_T.size == 0:
        return np.asarray(audio_T, np.float32).copy()
    x = np.asarray(audio_T, np.float64)
    y = scipy.signal.fftconvolve(x, impulse)[:x.size]
    before, after = np.sqrt(np.mean(np.square(x))), np.sqrt(np.mean(np.square(y)))
    return (y * (before / after if after > 0 else 1.0)).astype(np.float32)


def coloured_noise(rng: np.random.Generator, n: int, colour: str) -> np.ndarray:
    """Gaussian noise float64 [n] with power spectrum flat (white), 1/f (pink) or 1/f^2
    (brown), flat below 20 Hz and without DC."""
    white = rng.standard_normal(n)
    if colour == "white" or n < 2:
        return white
    exponent = {"pink": 0.5, "brown": 1.0}[colour]  # of the amplitude spectrum
    spec = rfft(white) * np.maximum(rfftfreq(n, 1 / SAMPLE_RATE), 20.0) ** -exponent
    spec[0] = 0.0
    return irfft(spec, n)


def add_noise(audio_T: np.ndarray, noise_T: np.ndarray, snr_db: float) -> np.ndarray:
    """`audio_T` plus `noise_T` scaled so that mean power of audio / of the added noise is
    `snr_db` (over the whole clip); silence (zero power) stays silent."""
    x = np.asarray(audio_T, np.float64)
    signal, noise = np.mean(np.square(x)) if x.size else 0.0, np.mean(np.square(noise_T))
    if signal == 0 or noise == 0:
        return np.asarray(audio_T, np.float32).copy()
    scale = math.sqrt(signal / (noise * 10.0 ** (snr_db / 10.0)))
    return (x + scale * noise_T).astype(np.float32)


def band_limits(high_pass_hz: float | None, low_pass_hz: float | None,
                order: int = 8) -> np.ndarray:
    """Second-order sections [S, 6] of Butterworth high-pass and/or low-pass filters (8th
    order: about 28 dB down half an octave out, as steep as a channel's band edge)."""
    sections = [np.zeros((0, 6))]
    if high_pass_hz:
        sections.append(scipy.signal.butter(order, high_pass_hz, "highpass", fs=SAMPLE_RATE,
                                            output="sos"))
    if low_pass_hz:
        sections.append(scipy.signal.butter(order, low_pass_hz, "lowpass", fs=SAMPLE_RATE,
                                            output="sos"))
    return np.concatenate(sections)


def biquad(kind: str, freq_hz: float, gain_db: float, q: float = 0.7071) -> np.ndarray:
    """One second-order section [1, 6] of the Audio EQ Cookbook (R. Bristow-Johnson):
    "peak" (gain_db at freq_hz, bandwidth from q), "low_shelf" or "high_shelf" (gain_db
    below / above freq_hz, slope 1)."""
    if kind not in ("peak", "low_shelf", "high_shelf"):
        raise ValueError(f"unknown biquad kind {kind!r}")
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2 * math.pi * freq_hz / SAMPLE_RATE
    cos, sin = math.cos(w0), math.sin(w0)
    if kind == "peak":
        alpha = sin / (2 * q)
        b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cos, 1 - alpha / a]
    else:
        root = math.sqrt(2.0 * a) * sin  # the cookbook's 2 sqrt(A) alpha at slope 1
        s = 1 if kind == "low_shelf" else -1  # a high shelf flips the signs of (A - 1) cos
        b = [a * ((a + 1) - s * (a - 1) * cos + root), s * 2 * a * ((a - 1) - s * (a + 1) * cos),
             a * ((a + 1) - s * (a - 1) * cos - root)]
        den = [(a + 1) + s * (a - 1) * cos + root, -s * 2 * ((a - 1) + s * (a + 1) * cos),
               (a + 1) + s * (a - 1) * cos - root]
    return np.asarray([b + den]) / den[0]


def filter_bands(audio_T: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """`audio_T` through the second-order sections `sos` [S, 6] (causal, same length)."""
    if not len(sos) or audio_T.size == 0:
        return np.asarray(audio_T, np.float32).copy()
    return scipy.signal.sosfilt(sos, np.asarray(audio_T, np.float64)).astype(np.float32)


def soft_clip(audio_T: np.ndarray, knee: float = SOFT_CLIP_KNEE) -> np.ndarray:
    """The identity up to |x| = knee, then a tanh that approaches 1 (in float32 it reaches
    1.0 about 0.9 above the knee): float32, never above 1 in magnitude."""
    x = np.asarray(audio_T, np.float64)
    over = np.abs(x) > knee
    squashed = knee + (1 - knee) * np.tanh((np.abs(x) - knee) / (1 - knee))
    return np.where(over, np.sign(x) * squashed, x).astype(np.float32)


def change_gain(audio_T: np.ndarray, gain_db: float) -> np.ndarray:
    """`audio_T` times 10^(gain_db / 20), soft-clipped near full scale (peaks stay < 1)."""
    return soft_clip(np.asarray(audio_T, np.float64) * 10.0 ** (gain_db / 20.0))


# ------------------------------------------------------------------ random draws, by kind
def random_speed(audio_T, rng, cfg: AugmentConfig = DEFAULT):
    return change_speed(audio_T, rng.uniform(*cfg.speed_range))


def random_pitch(audio_T, rng, cfg: AugmentConfig = DEFAULT):
    return shift_pitch(audio_T, rng.uniform(-cfg.pitch_semitones, cfg.pitch_semitones))


def random_vtlp(audio_T, rng, cfg: AugmentConfig = DEFAULT):
    return warp_vocal_tract(audio_T, rng.uniform(*cfg.vtlp_range), cfg.vtlp_boundary_hz)


def random_reverb(audio_T, rng, cfg: AugmentConfig = DEFAULT):
    rt60, wet = rng.uniform(*cfg.reverb_rt60), rng.uniform(*cfg.reverb_wet)
    return reverberate(audio_T, room_impulse(rng, rt60, wet))


def random_noise(audio_T, rng, cfg: AugmentConfig = DEFAULT):
    colour = NOISE_COLOURS[int(rng.integers(len(NOISE_COLOURS)))]
    snr_db = rng.uniform(*cfg.noise_snr_db)
    return add_noise(audio_T, coloured_noise(rng, audio_T.size, colour), snr_db)


def random_eq(audio_T, rng, cfg: AugmentConfig = DEFAULT):
    """A telephone band or random cutoffs, then 1 to eq_bands random peaks and shelves."""
    telephone, keep_high, keep_low = rng.random(3)
    high, low = rng.uniform(*cfg.highpass_hz), rng.uniform(*cfg.lowpass_hz)
    if telephone < cfg.telephone_share:
        high, low = TELEPHONE_HZ
    else:
        high, low = (high if keep_high < 0.5 else None), (low if keep_low < 0.5 else None)
    sections = [band_limits(high, low)]
    for _ in range(int(rng.integers(1, cfg.eq_bands + 1)) if cfg.eq_bands else 0):
        kind = ("peak", "low_shelf", "high_shelf")[int(rng.integers(3))]
        lo, hi = {"peak": (200.0, 6000.0), "low_shelf": (100.0, 600.0),
                  "high_shelf": (2000.0, 6000.0)}[kind]
        freq = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        sections.append(biquad(kind, freq, rng.uniform(-cfg.eq_gain_db, cfg.eq_gain_db),
                               q=rng.uniform(0.5, 2.0)))
    return filter_bands(audio_T, np.concatenate(sections))


def random_gain(audio_T, rng, cfg: AugmentConfig = DEFAULT):
    return change_gain(audio_T, rng.uniform(*cfg.gain_db))


RANDOM_AUGMENTATIONS = {"speed": random_speed, "pitch": random_pitch, "vtlp": random_vtlp,
                        "reverb": random_reverb, "noise": random_noise, "eq": random_eq,
                        "gain": random_gain}
assert tuple(RANDOM_AUGMENTATIONS) == AUGMENTATIONS


def augment(audio_T: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """`audio_T` (float or int16 [T]) after each kind of AUGMENTATIONS that a uniform draw
    below cfg.probability(kind) picks, in that order: float32 [T'] (T' = T unless speed
    ran). One draw per kind is always taken, so which kinds run does not depend on what
    the others drew."""
    x = as_float(audio_T)
    picks = rng.random(len(AUGMENTATIONS))
    for kind, u in zip(AUGMENTATIONS, picks):
        if u < cfg.probability(kind) and x.size:
            x = RANDOM_AUGMENTATIONS[kind](x, rng, cfg)
    return x


def augment_crop(audio_T: np.ndarray, crop_samples: int, cfg: AugmentConfig,
                 rng: np.random.Generator) -> np.ndarray:
    """An augmented random crop: float32 [<= crop_samples] (shorter only when the clip is).

    A window of about crop_samples * cfg.longest_stretch samples (the whole clip if shorter;
    0.1% more, for change_speed's rounding of the factor) is cut at a random offset and
    augmented, and the result, if longer than the crop (a window slowed down), is cut to
    `crop_samples` at a random offset.
    """
    window = min(audio_T.shape[0], math.ceil(crop_samples * cfg.longest_stretch * 1.001))
    offset = int(rng.integers(0, audio_T.shape[0] - window + 1))
    out = augment(audio_T[offset:offset + window], cfg, rng)
    spare = out.size - crop_samples
    start = int(rng.integers(0, spare + 1)) if spare > 0 else 0
    return out[start:start + crop_samples]
