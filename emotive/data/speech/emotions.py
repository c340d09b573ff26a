"""Emotion presets and acoustic conditions for the synthetic speech corpus.

An emotion is rendered in two stages. First, prosody: offsets to the
speaker's eSpeak pitch, pitch range, speaking rate and pause length. Second,
signal processing where eSpeak's prosody alone is too weak to carry the
emotion: spectral tilt (angry brighter, sad and calm darker), breathiness
(speech-shaped noise for calm and sad), tremolo and pitch jitter (fearful),
roughness (disgusted), soft clipping (the pressed voice of anger) and level.

Every value below is the offset at intensity 2; intensity 1 applies
`intensity_scale(1)` (0.6) of it. Neutral exists only at intensity 1.

Prosody and processing at intensity 2 (pitch and range on eSpeak's 0..100
scale, rate in words per minute, gap in 10 ms units, tilt in dB per octave
around 1 kHz, breath as a noise-to-speech RMS ratio):

    emotion    pitch range rate  gain gap  tilt breath tremolo jitter rough drive
    neutral       0     0    0    0    0    0     0      0      0      0     0
    calm         -6   -22  -30   -4    2   -2    .12     0      0      0     0
    happy       +16   +30  +25   +2    0  +1.5    0      0      0      0     0
    sad         -12   -30  -60   -7    6   -4    .25     0    .010     0     0
    angry        +8   +22  +35   +7    0   +4     0      0      0      0    .6
    fearful     +24   -15  +50   -2    0   +1    .08    .35   .040     0     0
    surprised   +30   +45  -10   +3    0   +1     0      0      0      0     0
    disgusted   -10   +10  -35   -1    3   -1    .05     0      0     .45    0

Affect targets (arousal, dominance, valence) in [0, 1], 0.5 being neutral,
follow the usual placement of these categories in the circumplex of affect;
at intensity 1 each moves 60% of the way from 0.5:

    emotion    arousal dominance valence
    neutral      .50     .50      .50
    calm         .25     .45      .65
    happy        .75     .65      .85
    sad          .20     .25      .15
    angry        .90     .85      .15
    fearful      .80     .20      .15
    surprised    .85     .50      .65
    disgusted    .55     .70      .20

The targets describe the intended emotion only; the acoustic condition does
not change them, which is what makes 'distance' and 'shout' a robustness test
(in the spirit of the BERSt benchmark).

Conditions: 'clean' leaves the clip alone; 'distance' attenuates it, adds
synthetic room reverberation (an exponentially decaying noise impulse
response) and a little background noise; 'shout' raises level, pitch and
vocal effort (brighter spectrum) and compresses with mild clipping.
"""

from dataclasses import dataclass

import numpy as np
from scipy.fft import irfft, next_fast_len, rfft, rfftfreq
from scipy.signal import fftconvolve, lfilter

from emotive.errors import UserError

EMOTIONS = ('neutral', 'calm', 'happy', 'sad', 'angry', 'fearful', 'surprised', 'disgusted')
CONDITIONS = ('clean', 'distance', 'shout')


@dataclass(frozen=True)
class EmotionPreset:
    """One emotion at intensity 2: prosody offsets, processing amounts and affect targets."""

    name: str
    pitch: float
    pitch_range: float
    rate: float
    gain_db: float
    word_gap: float
    tilt_db_per_octave: float
    breath: float
    tremolo: float
    jitter: float
    roughness: float
    drive: float
    arousal: float
    dominance: float
    valence: float


PRESETS: dict[str, EmotionPreset] = {p.name: p for p in (
    #             name        pitch range rate  gain gap  tilt breath trem  jit   rough drive  A    D    V
    EmotionPreset('neutral',      0,    0,   0,    0,  0,    0,  0.0,  0.0,  0.0,   0.0,  0.0, .50, .50, .50),
    EmotionPreset('calm',        -6,  -22, -30,   -4,  2,   -2,  0.12, 0.0,  0.0,   0.0,  0.0, .25, .45, .65),
    EmotionPreset('happy',       16,   30,  25,    2,  0,  1.5,  0.0,  0.0,  0.0,   0.0,  0.0, .75, .65, .85),
    EmotionPreset('sad',        -12,  -30, -60,   -7,  6,   -4,  0.25, 0.0,  0.010, 0.0,  0.0, .20, .25, .15),
    EmotionPreset('angry',        8,   22,  35,    7,  0,    4,  0.0,  0.0,  0.0,   0.0,  0.6, .90, .85, .15),
    EmotionPreset('fearful',     24,  -15,  50,   -2,  0,    1,  0.08, 0.35, 0.040, 0.0,  0.0, .80, .20, .15),
    EmotionPreset('surprised',   30,   45, -10,    3,  0,    1,  0.0,  0.0,  0.0,   0.0,  0.0, .85, .50, .65),
    EmotionPreset('disgusted',  -10,   10, -35,   -1,  3,   -1,  0.05, 0.0,  0.0,   0.45, 0.0, .55, .70, .20),
)}


def intensities(emotion: str) -> tuple[int, ...]:
    """Return the intensities an emotion is rendered at: (1,) for neutral, else (1, 2)."""
    check_emotion(emotion)
    return (1,) if emotion == 'neutral' else (1, 2)


def check_emotion(emotion: str, intensity: int | None = None) -> None:
    """Raise UserError for an unknown emotion or an intensity it does not have."""
    if emotion not in PRESETS:
        raise UserError(f"unknown emotion {emotion!r}; use one of {', '.join(EMOTIONS)}")
    if intensity is not None and intensity not in ((1,) if emotion == 'neutral' else (1, 2)):
        raise UserError(f'emotion {emotion!r} has no intensity {intensity}; '
                        f"use 1{'' if emotion == 'neutral' else ' or 2'}")


def intensity_scale(intensity: int) -> float:
    """Return the fraction of a preset's offsets applied at this intensity (1 -> 0.6, 2 -> 1.0)."""
    return {1: 0.6, 2: 1.0}[intensity]


def affect_targets(emotion: str, intensity: int) -> tuple[float, float, float]:
    """Return (arousal, dominance, valence) in [0, 1] for an emotion at an intensity."""
    check_emotion(emotion, intensity)
    p, s = PRESETS[emotion], intensity_scale(intensity)
    return tuple(round(0.5 + s * (v - 0.5), 4) for v in (p.arousal, p.dominance, p.valence))


# Condition offsets to eSpeak prosody: shouting raises pitch and range and slows
# speech a little (syllables are stretched when shouting).
_CONDITION_PROSODY = {
    'clean': dict(pitch=0, pitch_range=0, rate=0),
    'distance': dict(pitch=0, pitch_range=0, rate=0),
    'shout': dict(pitch=12, pitch_range=10, rate=-12),
}


def espeak_settings(speaker, emotion: str, intensity: int, condition: str,
                    rng: np.random.Generator) -> dict[str, int]:
    """Return Synthesizer.synth keyword values (rate, pitch, pitch_range, volume, word_gap).

    speaker: a voices.Speaker; rng draws a small per-clip variation so that
    repeated renderings of one emotion are not identical.
    """
    check_condition(condition)
    p, s, c = PRESETS[emotion], intensity_scale(intensity), _CONDITION_PROSODY[condition]
    pitch = speaker.pitch + s * p.pitch + c['pitch'] + rng.uniform(-2, 2)
    prange = speaker.pitch_range + s * p.pitch_range + c['pitch_range'] + rng.uniform(-3, 3)
    rate = (speaker.rate + s * p.rate + c['rate']) * rng.uniform(0.96, 1.04)
    gap = s * p.word_gap
    return dict(rate=int(np.clip(round(rate), 80, 450)), pitch=int(np.clip(round(pitch), 0, 100)),
                pitch_range=int(np.clip(round(prange), 0, 100)), volume=100,
                word_gap=int(round(gap)))


def check_condition(condition: str) -> None:
    """Raise UserError for an unknown acoustic condition."""
    if condition not in CONDITIONS:
        raise UserError(f"unknown condition {condition!r}; use one of {', '.join(CONDITIONS)}")


# ---------------------------------------------------------------- processing

def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2) + 1e-12))


def _smooth_noise(n: int, sr: int, cutoff_hz: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise band-limited below cutoff_hz (a slowly wandering random signal)."""
    a = np.exp(-2 * np.pi * cutoff_hz / sr)
    # Two cascaded one-pole low-passes: smooth enough for modulation signals.
    y = lfilter([(1 - a) ** 2], [1, -2 * a, a * a], rng.standard_normal(n + sr // 4))[sr // 4:]
    return y / (np.std(y) + 1e-12)


def tilt(x: np.ndarray, sr: int, db_per_octave: float) -> np.ndarray:
    """Tilt the spectrum by db_per_octave around 1 kHz (positive = brighter); keep the RMS."""
    if db_per_octave == 0 or x.size == 0:
        return x
    n = next_fast_len(x.size, real=True)
    f = rfftfreq(n, 1 / sr)
    gain_db = np.clip(db_per_octave * np.log2(np.maximum(f, 100.0) / 1000.0), -30, 30)
    y = irfft(rfft(x, n) * 10 ** (gain_db / 20), n)[:x.size]
    return y * (_rms(x) / _rms(y))


def envelope(x: np.ndarray, sr: int, window_s: float = 0.02) -> np.ndarray:
    """Return the amplitude envelope: a moving average of |x| over window_s seconds."""
    w = max(1, int(window_s * sr))
    return np.convolve(np.abs(x), np.ones(w) / w, mode='same')


def add_breath(x: np.ndarray, sr: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Mix in aspiration-like noise that follows the speech envelope (breathy voice)."""
    if ratio <= 0:
        return x
    noise = tilt(rng.standard_normal(x.size), sr, 2.0) * envelope(x, sr)  # aspiration is high-pitched
    noise *= ratio * _rms(x) / _rms(noise)
    return (1 - 0.5 * ratio) * x + noise


def add_tremolo(x: np.ndarray, sr: int, depth: float, rng: np.random.Generator) -> np.ndarray:
    """Amplitude tremolo at about 8-10 Hz with a wandering rate (a shaky voice)."""
    if depth <= 0:
        return x
    hz = rng.uniform(8.0, 10.0) * (1 + 0.15 * _smooth_noise(x.size, sr, 2.0, rng))
    phase = 2 * np.pi * np.cumsum(hz) / sr + rng.uniform(0, 2 * np.pi)
    return x * (1 + depth * np.sin(phase)) / (1 + depth)


def jitter_warp(n: int, sr: int, amount: float, rng: np.random.Generator) -> np.ndarray | None:
    """The time warp of add_jitter for n samples: output sample i reads input position t[i]
    (increasing); None when amount <= 0 (no warp, nothing drawn)."""
    if amount <= 0:
        return None
    speed = 1 + amount * _smooth_noise(n, sr, 12.0, rng)
    t = np.cumsum(speed) - speed[0]
    return t[t <= n - 1]


def add_jitter(x: np.ndarray, sr: int, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Wobble pitch (and timing) by a random fraction `amount` via a smoothly varying time warp."""
    t = jitter_warp(x.size, sr, amount, rng)
    return x if t is None else np.interp(t, np.arange(x.size), x)


def add_roughness(x: np.ndarray, sr: int, depth: float, rng: np.random.Generator) -> np.ndarray:
    """Fast irregular amplitude modulation (30-70 Hz band): a harsh, creaky quality."""
    if depth <= 0:
        return x
    m = _smooth_noise(x.size, sr, 70.0, rng) - _smooth_noise(x.size, sr, 30.0, rng)
    m /= np.std(m) + 1e-12
    return x * np.clip(1 + depth * m, 0.0, None) / (1 + 0.5 * depth)


def compress(x: np.ndarray, drive: float) -> np.ndarray:
    """Soft-clip with a tanh whose knee sits `drive`-dependent above the RMS; keep the RMS."""
    if drive <= 0 or x.size == 0:
        return x
    knee = _rms(x) * (4.0 - 2.5 * min(drive, 1.0))
    y = knee * np.tanh(x / knee)
    return y * (_rms(x) / _rms(y))


def gain(x: np.ndarray, db: float) -> np.ndarray:
    """Scale by db decibels."""
    return x * 10 ** (db / 20)


def apply_emotion(x: np.ndarray, sr: int, emotion: str, intensity: int,
                  rng: np.random.Generator, positions=None):
    """Apply an emotion's signal processing (not its prosody) to speech x [T]; return float64 [T'].

    positions: sample positions in x (e.g. phoneme starts); then returns (x', the positions
    moved by the jitter's time warp, the only step that changes time) instead.
    """
    p, s = PRESETS[emotion], intensity_scale(intensity)
    x = np.asarray(x, np.float64)
    t = jitter_warp(x.size, sr, s * p.jitter, rng)
    if t is not None:
        x = np.interp(t, np.arange(x.size), x)
    if positions is not None:
        positions = np.asarray(positions, np.int64)
        if t is not None:  # the first output sample that reads at or after the position
            positions = np.minimum(np.searchsorted(t, positions), t.size)
    x = add_tremolo(x, sr, s * p.tremolo, rng)
    x = add_roughness(x, sr, s * p.roughness, rng)
    x = tilt(x, sr, s * p.tilt_db_per_octave)
    x = add_breath(x, sr, s * p.breath, rng)
    x = compress(x, s * p.drive)
    x = gain(x, s * p.gain_db + rng.uniform(-1.0, 1.0))
    return x if positions is None else (x, positions)


def reverberate(x: np.ndarray, sr: int, rt60_s: float, drr_db: float,
                rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room response: a direct path plus exponentially decaying noise.

    rt60_s: time for the tail to decay by 60 dB; drr_db: direct-to-reverberant
    energy ratio (lower = farther away). Returns x [T + tail], tail <= 0.4 s.
    """
    t = np.arange(int(rt60_s * sr)) / sr
    tail = rng.standard_normal(t.size) * np.exp(-6.91 * t / rt60_s)
    tail = tilt(tail, sr, -1.5)  # walls absorb high frequencies more
    tail[: int(0.004 * sr)] = 0.0  # first reflections arrive a few ms after the direct sound
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail ** 2))
    ir = tail
    ir[0] = 1.0
    return fftconvolve(x, ir)[: x.size + int(0.4 * sr)]


def apply_condition(x: np.ndarray, sr: int, condition: str, rng: np.random.Generator) -> np.ndarray:
    """Apply an acoustic condition ('clean', 'distance', 'shout') to x [T]; return float64 [T']."""
    check_condition(condition)
    x = np.asarray(x, np.float64)
    if condition == 'distance':
        x = reverberate(x, sr, rng.uniform(0.4, 0.9), rng.uniform(-4.0, 2.0), rng)
        x = tilt(x, sr, -1.0)  # air absorption and a cheap far-field microphone
        x = gain(x, rng.uniform(-16.0, -10.0))
        hum = tilt(rng.standard_normal(x.size), sr, -3.0)  # pinkish room noise
        snr_db = rng.uniform(15.0, 25.0)
        x = x + hum * (_rms(x) / 10 ** (snr_db / 20) / _rms(hum))
    elif condition == 'shout':
        x = tilt(x, sr, 3.0)  # vocal effort raises the high-frequency energy
        x = compress(gain(x, rng.uniform(8.0, 11.0)), 0.8)
        ceiling = 0.7 * np.abs(x).max()  # mild clipping of the loudest peaks, as in an overdriven recording
        x = np.clip(x, -ceiling, ceiling)
    return x


def limit(x: np.ndarray, ceiling: float = 0.98) -> np.ndarray:
    """Soft-limit peaks above `ceiling` (leaves quieter samples untouched); return float32."""
    x = np.asarray(x, np.float64)
    over = np.abs(x) > 0.8 * ceiling
    if over.any():
        knee = 0.8 * ceiling
        head = ceiling - knee
        mag = np.abs(x[over]) - knee
        x[over] = np.sign(x[over]) * (knee + head * np.tanh(mag / head))
    return x.astype(np.float32)
