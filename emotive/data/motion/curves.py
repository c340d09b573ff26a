"""Time curves shared by the body and the face: low-passed noise and the beat pulse."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

__all__ = ["noise", "pulse"]


def noise(rng: np.random.Generator, num: int, fps: float, hz: float) -> np.ndarray:
    """Unit-variance noise [num] low-passed to about `hz` (scaled by the filter's own gain,
    not the clip's spread: a slow drift stays small over a short clip)."""
    sigma = fps / (2 * np.pi * hz)
    pad = int(3 * sigma) + 1
    x = gaussian_filter1d(rng.standard_normal(num + 2 * pad), sigma)[pad:pad + num]
    return x * np.sqrt(2.0 * np.sqrt(np.pi) * max(sigma, 0.5))


def pulse(t: np.ndarray, centre: float, before: float, after: float) -> np.ndarray:
    """An asymmetric raised cosine: 0 outside [centre - before, centre + after], 1 at centre
    (its apex, where the speed is zero)."""
    u = np.where(t < centre, (t - centre) / before, (t - centre) / after)
    return np.where(np.abs(u) < 1.0, 0.5 * (1.0 + np.cos(np.pi * u)), 0.0)
