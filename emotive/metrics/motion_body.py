"""Per-clip statistics of body motion: L1 diversity, jerk, foot sliding.

    l1_diversity(clips_of_positions), jerk(positions_TxJx3, 30.0), foot_sliding(positions, 30.0)

Each returns {"value", "protocol"}; pass per-clip values to `bootstrap.bootstrap_ci`.
Protocols:
- L1 diversity (EMAGE L1div): joint positions of all frames pooled, [N, J * 3]; the sum over
  coordinates of the mean absolute deviation from the mean pose (metres).
- Jerk: mean norm of the third time derivative of joint positions (m/s^3), over joints and
  frames (finite differences at the clip's fps).
- Foot sliding: horizontal foot speed (m/s) on contact frames, weighted by 2 - 2^(h / H)
  (h the foot's height above the clip's lowest foot point, H = 5 cm; frames with h > H have
  no contact), averaged over the foot joints' frames (SMPL-X ankles and feet, 7, 8, 10, 11).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["FOOT_JOINTS", "l1_diversity", "jerk", "foot_sliding"]

FOOT_JOINTS = (7, 8, 10, 11)   # SMPL-X left/right ankle, left/right foot


def l1_diversity(positions) -> dict:
    """EMAGE L1div of joint positions: clips [T, J, 3] (a list, or one array [N, T, J, 3] or
    [T, J, 3]) pooled frame-wise; sum over coordinates of the mean |x - mean pose|."""
    if isinstance(positions, (list, tuple)):
        frames = np.concatenate([np.asarray(p, np.float64).reshape(len(p), -1) for p in positions])
    else:
        p = np.asarray(positions, np.float64)
        frames = p.reshape(-1, p.shape[-2] * p.shape[-1])
    value = float(np.abs(frames - frames.mean(0)).sum(1).mean())
    return {"value": value, "protocol": {"metric": "L1div (EMAGE)", "units": "metres",
                                         "frames": int(len(frames)),
                                         "coordinates": int(frames.shape[1])}}


def jerk(positions_TxJx3, fps: float) -> dict:
    """Mean norm of the third derivative of joint positions (m/s^3)."""
    p = np.asarray(positions_TxJx3, np.float64)
    value = (float(np.linalg.norm(np.diff(p, 3, axis=0), axis=-1).mean() * fps ** 3)
             if len(p) > 3 else float("nan"))
    return {"value": value, "protocol": {"metric": "jerk", "units": "m/s^3", "fps": fps,
                                         "derivative": "third finite difference",
                                         "joints": int(p.shape[1])}}


def foot_sliding(positions_TxJx3, fps: float, *, feet: Sequence[int] = FOOT_JOINTS,
                 height: float = 0.05, up_axis: int = 1) -> dict:
    """Contact-weighted horizontal foot speed (m/s); see the module doc."""
    p = np.asarray(positions_TxJx3, np.float64)[:, list(feet)]
    h = p[..., up_axis] - p[..., up_axis].min()
    horizontal = [a for a in range(3) if a != up_axis]
    speed = np.linalg.norm(np.diff(p[..., horizontal], axis=0), axis=-1) * fps
    h_mid = 0.5 * (h[1:] + h[:-1])
    weight = np.clip(2.0 - 2.0 ** (h_mid / height), 0.0, None)
    value = float((speed * weight).mean()) if speed.size else float("nan")
    return {"value": value, "protocol": {"metric": "foot sliding", "units": "m/s",
                                         "feet": list(feet), "contact_height_m": height,
                                         "weight": "2 - 2^(h/H)", "fps": fps}}
