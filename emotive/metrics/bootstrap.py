"""Confidence intervals for per-clip metric values.

    bootstrap_ci(per_clip_values, protocol=metric["protocol"])   # {"value", "low", "high", ...}
"""

from __future__ import annotations

import numpy as np

__all__ = ["bootstrap_ci"]


def bootstrap_ci(values_N, *, level: float = 0.95, resamples: int = 1000, seed: int = 0,
                 protocol: dict | None = None) -> dict:
    """Mean of per-clip values with a percentile bootstrap interval (clips resampled with
    replacement; NaNs dropped and counted). `protocol` (a metric's) is kept beside it."""
    v = np.asarray(values_N, np.float64).reshape(-1)
    nan = int(np.isnan(v).sum())
    v = v[~np.isnan(v)]
    out = {"value": float(v.mean()) if v.size else float("nan"), "n": int(v.size),
           "dropped_nan": nan, "level": level,
           "bootstrap": {"resamples": resamples, "seed": seed, "method": "percentile"}}
    if v.size == 0:
        out.update(low=float("nan"), high=float("nan"))
    else:
        rng = np.random.default_rng(seed)
        means = v[rng.integers(0, v.size, (resamples, v.size))].mean(axis=1)
        alpha = (1.0 - level) / 2
        out.update(low=float(np.quantile(means, alpha)), high=float(np.quantile(means, 1 - alpha)))
    if protocol is not None:
        out["protocol"] = protocol
    return out
