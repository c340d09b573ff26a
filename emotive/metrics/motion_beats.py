"""Beat alignment: audio onsets, motion beats (speed minima) and EMAGE's beat consistency.

    onsets = audio_onsets(audio, 16000)                  # seconds (librosa, as EMAGE)
    beat_alignment(positions_TxJx3, 30.0, onsets, drop_s=0.0)   # {"value", "protocol", ...}

Protocol (EMAGE's `mertic.py` and BEAT): audio onsets (librosa onset_detect at 16 kHz, hop
512, as EMAGE; or our energy-flux detector, `audio_onsets(method="energy")`); motion beats
per joint = local minima of the joint's speed (central differences), argrelextrema order 7 at
30 fps, speed divided by the mean speed (per joint: the clip's own unless `mean_speed` is
given, as EMAGE passes the train set's), minima kept where that ratio is above 0.10; per
joint, the mean over audio onsets of exp(-d^2 / 2 sigma^2), d the distance to the joint's
nearest beat, sigma 0.3 s; the score is the mean over joints [3, 6, 9, 12-21] (spine, neck,
collars, head, shoulders, elbows, wrists). EMAGE drops the first and last 2 s; the corpus's
clips last 1-4 s, so `drop_s` is an argument (stated in the protocol).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.signal import argrelextrema

__all__ = ["UPPER_BODY_JOINTS", "audio_onsets", "central_speeds", "motion_beats",
           "beat_alignment"]

UPPER_BODY_JOINTS = (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)   # EMAGE's list


def audio_onsets(audio_T, sr: int, *, method: str = "librosa") -> np.ndarray:
    """Onset times (seconds) of a mono waveform.

    "librosa": librosa.onset.onset_detect(sr=sr, hop_length=512, units="time"), EMAGE's choice
    (the first call compiles numba code: seconds). "energy": our energy-flux detector (10 ms
    hops, 25 ms windows; the rise of the smoothed log energy, peaks at least 120 ms apart,
    rising by 1.5 dB a hop or more, into frames within 30 dB of the clip's loudest).
    """
    x = np.asarray(audio_T, np.float32).reshape(-1)
    if method == "librosa":
        import librosa

        return np.asarray(librosa.onset.onset_detect(y=x, sr=sr, hop_length=512, units="time"))
    if method != "energy":
        raise ValueError(f"onset method must be 'librosa' or 'energy', got {method!r}")
    hop, size = sr // 100, int(0.025 * sr)
    if x.size < size + hop:
        return np.zeros(0)
    n = 1 + (x.size - size) // hop
    frames = x[np.arange(size)[None, :] + hop * np.arange(n)[:, None]]
    db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-10)
    db = np.maximum(db, db.max() - 50.0)
    smooth = np.convolve(db, np.ones(3) / 3, mode="same")
    flux = np.maximum(np.diff(smooth, prepend=smooth[0]), 0.0)
    loud = np.r_[smooth[3:], np.repeat(smooth[-1:], 3)] > db.max() - 30.0
    onsets, last = [], -np.inf
    for i in range(1, n - 1):
        lo, hi = max(0, i - 5), min(n, i + 6)
        if flux[i] >= 1.5 and flux[i] == flux[lo:hi].max() and loud[i] and i - last >= 12:
            onsets.append(i)
            last = i
    return (np.asarray(onsets, np.float64) * hop + size / 2) / sr


def central_speeds(positions_TxJx3, fps: float) -> np.ndarray:
    """Per-joint speed [T, J]: central differences inside, one-sided at the ends (EMAGE)."""
    p = np.asarray(positions_TxJx3, np.float64)
    if len(p) < 2:
        return np.zeros(p.shape[:2])
    v = np.empty_like(p)
    v[0], v[-1] = (p[1] - p[0]) * fps, (p[-1] - p[-2]) * fps
    v[1:-1] = (p[2:] - p[:-2]) * fps / 2.0
    return np.linalg.norm(v, axis=-1)


def motion_beats(positions_TxJx3, fps: float, *, joints: Sequence[int] = UPPER_BODY_JOINTS,
                 order: int = 7, threshold: float = 0.1, mean_speed=None) -> list[np.ndarray]:
    """Frames of each joint's motion beats: local minima of its normalised speed (see the
    module doc); one int array per entry of `joints`."""
    speed = central_speeds(positions_TxJx3, fps)[:, list(joints)]
    norm = (speed.mean(0) if mean_speed is None
            else np.broadcast_to(np.asarray(mean_speed, np.float64).reshape(-1)[list(joints)]
                                 if np.size(mean_speed) > 1 else mean_speed, (len(joints),)))
    speed = speed / np.maximum(norm, 1e-12)
    beats = []
    for j in range(speed.shape[1]):
        minima = argrelextrema(speed[:, j], np.less, order=order)[0]
        beats.append(minima[speed[minima, j] > threshold])
    return beats


def beat_alignment(positions_TxJx3, fps: float, onsets_s, *, sigma: float = 0.3,
                   order: int = 7, threshold: float = 0.1, drop_s: float = 2.0,
                   joints: Sequence[int] = UPPER_BODY_JOINTS, mean_speed=None,
                   onset_method: str = "given") -> dict:
    """EMAGE beat consistency of one clip against its audio onsets (seconds).

    Frames and onsets within `drop_s` of either end are dropped first (EMAGE: 2 s). Returns
    {"value", "protocol", "onsets", "beats"}; value is NaN when no onset is left.
    """
    pos = np.asarray(positions_TxJx3, np.float64)
    num = len(pos)
    start = int(round(drop_s * fps))
    end = num - start
    protocol = {"metric": "beat_alignment (EMAGE)", "sigma_s": sigma, "order": order,
                "threshold": threshold, "drop_s": drop_s, "joints": list(joints), "fps": fps,
                "speed_normaliser": "clip mean per joint" if mean_speed is None else "given",
                "onsets": onset_method}
    onsets = np.asarray(onsets_s, np.float64).reshape(-1)
    onsets = onsets[(onsets >= start / fps) & (onsets < end / fps)] - start / fps
    if end - start < 2 * order + 1 or onsets.size == 0:
        return {"value": float("nan"), "protocol": protocol, "onsets": int(onsets.size),
                "beats": 0}
    beats = motion_beats(pos[start:end], fps, joints=joints, order=order, threshold=threshold,
                         mean_speed=mean_speed)
    scores = []
    for frames in beats:
        if frames.size == 0:
            scores.append(0.0)
            continue
        d = np.abs(onsets[:, None] - frames[None, :] / fps).min(axis=1)
        scores.append(float(np.mean(np.exp(-d ** 2 / (2 * sigma ** 2)))))
    return {"value": float(np.mean(scores)), "protocol": protocol, "onsets": int(onsets.size),
            "beats": int(sum(b.size for b in beats))}
