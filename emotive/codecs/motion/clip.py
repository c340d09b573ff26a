"""A motion clip (skeleton + per-frame root positions and local rotations) and the checks every
motion reader shares.

    motion = Motion(skeleton, root_positions_Tx3, rotations_TxJx3x3, fps=120.0)
    motion_30 = resample_motion(motion, 30.0)   # linear positions, slerped rotations
    motion = reorder_joints(motion, SMPLX_JOINT_NAMES)   # the same joints in another order
    check_sync(motion.num_frames, motion.fps, len(wav), 16000, name="clip.bvh")  # seconds apart

`rotations[t, j]` is joint j's rotation in its parent's frame (the BVH / SMPL-X convention);
`root_positions[t]` is the root's translation, added to `skeleton.offsets[0]`. Arrays are numpy
(float64 as read from files); models take them through `jnp.asarray`.

The checks raise UserError with a one-line message that starts with the file name:
`require_file`, `check_finite_frames` (names the first bad frame), `check_fps` and `check_sync`
(audio and motion must agree in length: nothing is ever cut to make them fit).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np

from emotive.codecs.motion import rotations
from emotive.codecs.motion.skeleton import Skeleton
from emotive.errors import UserError

__all__ = ["Motion", "reorder_joints", "resample_motion", "resample_times", "require_file",
           "check_finite_frames", "check_fps", "check_sync", "snap_fps"]


@dataclasses.dataclass(frozen=True, eq=False)
class Motion:
    """One clip: `skeleton`, `root_positions` [T, 3], local `rotations` [T, J, 3, 3], `fps`.

    `channels` keeps a BVH file's channel names per joint (e.g. ("Xposition", ..., "Yrotation"))
    so `write_bvh` can write the file back in its own layout; None means the BEAT layout.
    Shapes are checked on construction (ValueError: a bug in the caller, not bad input).
    """

    skeleton: Skeleton
    root_positions: np.ndarray
    rotations: np.ndarray
    fps: float
    channels: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "root_positions", np.asarray(self.root_positions))
        object.__setattr__(self, "rotations", np.asarray(self.rotations))
        object.__setattr__(self, "fps", float(self.fps))
        num_frames, num_joints = self.root_positions.shape[0], self.skeleton.num_joints
        if self.root_positions.shape != (num_frames, 3):
            raise ValueError(f"root_positions must be [T, 3], got {self.root_positions.shape}")
        if self.rotations.shape != (num_frames, num_joints, 3, 3):
            raise ValueError(f"rotations must be [T={num_frames}, J={num_joints}, 3, 3] for "
                             f"this skeleton, got {self.rotations.shape}")
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.channels is not None and len(self.channels) != num_joints:
            raise ValueError(f"channels has {len(self.channels)} entries for {num_joints} joints")

    @property
    def num_frames(self) -> int:
        return self.root_positions.shape[0]

    @property
    def names(self) -> tuple[str, ...]:
        return self.skeleton.names

    @property
    def parents(self) -> tuple[int, ...]:
        return self.skeleton.parents

    @property
    def offsets(self) -> np.ndarray:
        return self.skeleton.offsets

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps


def reorder_joints(motion: Motion, names) -> Motion:
    """`motion` with its joints in the order `names` (the same joints; parents still first).

    UserError (naming the skeleton) for an unknown name, a missing joint, or an order that puts
    a child before its parent.
    """
    old = motion.skeleton
    perm = old.indices(names)
    if len(perm) != old.num_joints or len(set(perm)) != len(perm):
        raise UserError(f"{old.name}: reordering needs each of its {old.num_joints} joints once, "
                        f"got {len(perm)} names ({len(set(perm))} distinct)")
    if perm == list(range(old.num_joints)):
        return motion
    new_index = {j: k for k, j in enumerate(perm)}
    skeleton = Skeleton(
        [old.names[j] for j in perm],
        [-1 if old.parents[j] < 0 else new_index[old.parents[j]] for j in perm],
        old.offsets[perm], name=old.name,
        end_sites=tuple((new_index[j], offset) for j, offset in old.end_sites))
    channels = None if motion.channels is None else tuple(motion.channels[j] for j in perm)
    return Motion(skeleton, motion.root_positions, motion.rotations[:, perm], motion.fps,
                  channels=channels)


# ----------------------------------------------------------------------------------------------
# Resampling
# ----------------------------------------------------------------------------------------------


def resample_times(num_frames: int, fps: float, new_fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Where each new frame falls among the old ones: (index i [N], fraction w [N]).

    New frame k sits at time k / new_fps, between old frames i and i + 1 at fraction w; the
    N new frames cover the old clip's span, N = floor((T - 1) * new_fps / fps) + 1. When the
    rates divide (120 -> 30) every new frame lands exactly on an old one (w = 0).
    """
    ratio = fps / new_fps
    count = int(math.floor((num_frames - 1) / ratio + 1e-9)) + 1
    position = np.arange(count) * ratio
    index = np.minimum(np.floor(position + 1e-9).astype(np.int64), max(num_frames - 2, 0))
    fraction = np.clip(position - index, 0.0, 1.0)
    return index, fraction


def resample_motion(motion: Motion, fps: float) -> Motion:
    """`motion` at `fps`: root positions interpolated linearly, rotations by slerp."""
    if abs(fps - motion.fps) < 1e-9 or motion.num_frames < 2:
        return dataclasses.replace(motion, fps=fps)
    i, w = resample_times(motion.num_frames, motion.fps, fps)
    j = np.minimum(i + 1, motion.num_frames - 1)
    pos = motion.root_positions
    root = pos[i] * (1.0 - w)[:, None] + pos[j] * w[:, None]
    q = rotations.matrix_to_quaternion(motion.rotations)
    q_new = rotations.slerp(q[i], q[j], np.broadcast_to(w[:, None], q[i].shape[:-1]))
    rots = rotations.quaternion_to_matrix(q_new)
    # Frames that land exactly on an old one keep it bit for bit.
    exact = w == 0.0
    rots[exact] = motion.rotations[i[exact]]
    return dataclasses.replace(motion, root_positions=root, rotations=rots, fps=fps)


# ----------------------------------------------------------------------------------------------
# Checks shared by the readers
# ----------------------------------------------------------------------------------------------


def require_file(path) -> pathlib.Path:
    """`path` as a Path; UserError if there is no such file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; check the path")
    return path


def check_finite_frames(x_Tx, *, name: str, what: str) -> None:
    """UserError naming the first frame (row) of `x_Tx` that holds NaN or Inf."""
    x = np.asarray(x_Tx)
    finite = np.isfinite(x).reshape(x.shape[0], -1).all(axis=1) if x.size else np.ones(0, bool)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise UserError(f"{name}: {what} holds NaN or Inf at frame {first} ("
                        f"{int((~finite).sum())} bad frames of {x.shape[0]}); fix or drop the file")


def snap_fps(fps: float, tolerance: float = 1e-4) -> float:
    """`fps`, rounded to the nearest integer when within `tolerance` of it (relative).

    Files store frame times to a few digits (BEAT's "Frame Time: 0.008333" is 120.0048 fps);
    1e-4 snaps that but leaves 29.97 alone.
    """
    nearest = round(fps)
    return float(nearest) if nearest > 0 and abs(fps - nearest) <= tolerance * nearest else fps


def check_fps(found: float, expected: float | None, *, name: str, tolerance: float = 1e-3
              ) -> None:
    """UserError if `expected` is given and `found` differs by more than `tolerance` (relative)."""
    if expected is not None and abs(found - expected) > tolerance * expected:
        raise UserError(f"{name}: frame rate is {found:g} fps, expected {expected:g}; resample "
                        "the file or pass the rate it has")


def check_sync(motion_frames: int, motion_fps: float, audio_samples: int, sample_rate: int,
               tolerance_s: float = 0.1, *, name: str = "motion") -> float:
    """Returns motion duration minus audio duration in seconds; UserError beyond `tolerance_s`.

    Never trims either side: a clip whose motion and audio disagree by more than the tolerance
    is a data problem (a wrong frame rate, a cut take), to fix at the source.
    """
    motion_s = motion_frames / motion_fps
    audio_s = audio_samples / sample_rate
    diff = motion_s - audio_s
    if abs(diff) > tolerance_s:
        raise UserError(f"{name}: motion lasts {motion_s:.3f} s ({motion_frames} frames at "
                        f"{motion_fps:g} fps) but audio {audio_s:.3f} s ({diff:+.3f} s, "
                        f"tolerance {tolerance_s} s); fix the frame rate or re-cut the take")
    return diff
