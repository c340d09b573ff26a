"""What drives a clip's motion: its audio cues at the motion's frame rate.

    cues = analyse_audio(x, 16000)       # envelope, activity, pitch, onsets, pitch accents

Beats fall on audio onsets (`metrics.motion_beats.audio_onsets(method="energy")`, the rise of
the log energy); pitch accents are F0 and energy prominence peaks from `prosody`'s pitch
tracker; the envelope (RMS, `metrics.lip_sync.audio_envelope`) drives the jaw.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.ndimage import gaussian_filter1d

from emotive.data.speech import prosody
from emotive.metrics.lip_sync import audio_envelope
from emotive.metrics.motion_beats import audio_onsets

__all__ = ["FPS", "AudioCues", "num_motion_frames", "analyse_audio"]

FPS = 30.0


@dataclasses.dataclass(frozen=True)
class AudioCues:
    """What drives one clip's motion, at the motion's frame rate.

    envelope [T] in [0, 1] (RMS in dB over the clip's top 35 dB); activity [T] in [0, 1]
    (speech present, smoothed); pitch [T] semitones about the clip's mean (0 unvoiced);
    onsets / accents: times (s) with strengths in [0, 1].
    """

    num_frames: int
    envelope: np.ndarray
    activity: np.ndarray
    pitch: np.ndarray
    onsets: np.ndarray
    onset_strength: np.ndarray
    accents: np.ndarray
    accent_strength: np.ndarray


def num_motion_frames(num_samples: int, sample_rate: int, fps: float = FPS) -> int:
    """Motion frames for audio of `num_samples`: round(seconds x fps), at least 2."""
    return max(2, int(round(num_samples / sample_rate * fps)))


def analyse_audio(x: np.ndarray, sr: int, fps: float = FPS) -> AudioCues:
    """The cues of a mono waveform `x` (float, [-1, 1])."""
    x = np.asarray(x, np.float64)
    num = num_motion_frames(x.size, sr, fps)
    frame_t = np.arange(num) / fps
    env = audio_envelope(x, sr, fps, num)
    env_db = 20 * np.log10(env + 1e-6)
    envelope = np.clip((env_db - (env_db.max() - 35.0)) / 35.0, 0.0, 1.0)
    activity = gaussian_filter1d((envelope > 0.3).astype(float), 3.0)
    activity = np.clip(activity * 1.6, 0.0, 1.0)

    # Pitch accents: prominence of F0 and energy over voiced 10 ms hops (prosody's tracker).
    hop = sr // 100
    win = int(0.025 * sr)
    frames = prosody.frame_windows(x, win, hop)
    db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-10)
    f0, strength = prosody.pitch_track(x, sr, hop)
    n = min(db.size, f0.size)
    db, f0, strength = db[:n], f0[:n], strength[:n]
    voiced = (db > db.max() - 30.0) & (strength >= prosody.VOICING_THRESHOLD)
    st = 12 * np.log2(np.maximum(f0, 1.0) / 100.0)
    voiced = prosody.drop_pitch_outliers(st, voiced)
    hop_t = (np.arange(n) * hop + win / 2) / sr
    accents, accent_strength = np.zeros(0), np.zeros(0)
    pitch = np.zeros(num)
    if voiced.sum() >= 5:
        mean, spread = st[voiced].mean(), max(st[voiced].std(), 0.5)
        db_mean, db_spread = db[voiced].mean(), max(db[voiced].std(), 1.0)
        prom = np.where(voiced, (st - mean) / spread + 0.5 * (db - db_mean) / db_spread, -np.inf)
        picks = []
        for i in np.argsort(-prom):
            if prom[i] < 0.6:
                break
            is_peak = prom[i] == prom[max(0, i - 15):i + 16].max()
            if is_peak and all(abs(i - j) >= 40 for j in picks):   # 150 ms peak, 400 ms apart
                picks.append(int(i))
        picks.sort()
        accents = hop_t[picks]
        accent_strength = np.clip(prom[picks] / 2.0, 0.3, 1.0)
        held = np.interp(hop_t, hop_t[voiced], st[voiced] - mean)
        pitch = gaussian_filter1d(np.interp(frame_t, hop_t, np.where(voiced, held, 0.0)), 1.5)

    onsets = audio_onsets(x, sr, method="energy")
    ahead = np.minimum(np.round((onsets + 0.05) * fps).astype(int), num - 1)
    onset_strength = envelope[ahead] if onsets.size else np.zeros(0)
    return AudioCues(num, envelope, activity, pitch, onsets, onset_strength, accents,
                     accent_strength)
