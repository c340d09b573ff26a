"""Lip-sync metrics of a face track: jaw/envelope correlation and LVE on blendshapes.

    jaw_envelope_correlation(jaw_open_T, audio, 16000, 30.0), lve_blendshapes(pred, gt)
    audio_envelope(audio, 16000, 30.0, num_frames)      # RMS at the motion's frame times

Each metric returns {"value", "protocol"}. Protocols:
- Jaw/envelope correlation: Pearson r between jawOpen and the audio RMS envelope sampled at
  the motion's frame times (a 2-frame window around each).
- LVE on blendshapes (vertex-free): per frame, the maximum over mouth blendshapes (ARKit
  jaw* and mouth*) of the squared error (FaceFormer's LVE takes the squared L2 distance of
  the worst lip vertex), averaged over frames.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from emotive.codecs.motion.face import ARKIT_NAMES

__all__ = ["MOUTH_BLENDSHAPES", "audio_envelope", "jaw_envelope_correlation",
           "lve_blendshapes"]

MOUTH_BLENDSHAPES = tuple(i for i, n in enumerate(ARKIT_NAMES) if n.startswith(("jaw", "mouth")))


def audio_envelope(audio_T, sr: int, fps: float, num_frames: int) -> np.ndarray:
    """RMS of the audio in a window of 2 motion frames centred on each frame time [num_frames]."""
    x = np.asarray(audio_T, np.float64).reshape(-1)
    half = int(sr / fps)
    centres = (np.arange(num_frames) / fps * sr).astype(np.int64)
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    lo = np.clip(centres - half, 0, x.size)
    hi = np.clip(centres + half, 0, x.size)
    return np.sqrt((csum[hi] - csum[lo]) / np.maximum(hi - lo, 1))


def _pearson(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def jaw_envelope_correlation(jaw_open_T, audio_T, sr: int, fps: float) -> dict:
    """Pearson r between a jaw-opening track [T] (jawOpen, or FLAME jaw x) and the audio's RMS
    envelope at the motion's frame times."""
    jaw = np.asarray(jaw_open_T, np.float64).reshape(-1)
    env = audio_envelope(audio_T, sr, fps, jaw.size)
    return {"value": _pearson(jaw, env),
            "protocol": {"metric": "jaw/envelope Pearson r", "envelope": "RMS, 2-frame window",
                         "fps": fps, "sample_rate": sr}}


def lve_blendshapes(pred_Tx52, gt_Tx52, *, indices: Sequence[int] = MOUTH_BLENDSHAPES) -> dict:
    """Vertex-free LVE: mean over frames of the max squared error over mouth blendshapes."""
    pred, gt = np.asarray(pred_Tx52, np.float64), np.asarray(gt_Tx52, np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"lve needs equal shapes, got {pred.shape} and {gt.shape}")
    err = np.square(pred[:, list(indices)] - gt[:, list(indices)]).max(axis=1)
    return {"value": float(err.mean()),
            "protocol": {"metric": "LVE on blendshapes", "error": "max squared error per frame",
                         "blendshapes": [ARKIT_NAMES[i] for i in indices]
                         if pred.shape[1] == len(ARKIT_NAMES) else list(indices),
                         "frames": int(len(err))}}
