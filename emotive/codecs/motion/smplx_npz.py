"""SMPL-X motion in npz files: BEAT2 (`smplxflame_30/*.npz`) and AMASS SMPL-X, read and written.

    clip = read_smplx_npz("2_scott_0_1_1.npz", expect_fps=30)
    clip.poses                        # [T, 55, 3] axis-angle in SMPL-X joint order (float64)
    motion = clip.to_motion()         # Motion on the SMPL-X skeleton (rotation matrices)
    write_smplx_npz("out.npz", SmplxClip.from_motion(motion, betas=clip.betas))

Keys read:
- `poses` [T, 165] axis-angle, 55 joints x 3 in SMPL-X order; the columns group as
  POSE_SLICES: global 0:3, body 3:66, jaw 66:69, eyes 69:75, left hand 75:120, right hand
  120:165. AMASS's split keys (`root_orient` 3, `pose_body` 63, `pose_jaw` 3, `pose_eye` 6,
  `pose_hand` 90 = left then right) are used when `poses` is absent.
- `trans` [T, 3] root translation (metres), `betas` [B] shape (BEAT2 300, AMASS 16; optional),
  `expressions` [T, E] (FLAME-style, E = 100 in BEAT2; optional), `gender` (optional).
- the frame rate: `mocap_frame_rate`, or `mocap_framerate` in older AMASS files.
Other keys (`model`, `surface_model_type`, ...) are ignored. Files are read without pickle.
Written files use the BEAT2 layout (`poses`, `trans`, `betas`, `expressions` when present,
`mocap_frame_rate`, `gender` when known).
"""

from __future__ import annotations

import dataclasses
import pathlib
import zipfile

import numpy as np

from emotive.codecs.motion import rotations
from emotive.codecs.motion.clip import Motion, check_finite_frames, check_fps, require_file
from emotive.codecs.motion.skeleton import SMPLX, SMPLX_JOINT_NAMES, Skeleton
from emotive.errors import UserError

__all__ = ["POSE_SLICES", "POSE_WIDTH", "AMASS_POSE_KEYS", "SmplxClip", "read_smplx_npz",
           "write_smplx_npz", "split_poses", "join_poses"]

NUM_JOINTS = len(SMPLX_JOINT_NAMES)
POSE_WIDTH = 3 * NUM_JOINTS   # 165
POSE_SLICES: dict[str, slice] = {
    "global": slice(0, 3), "body": slice(3, 66), "jaw": slice(66, 69), "eyes": slice(69, 75),
    "left_hand": slice(75, 120), "right_hand": slice(120, 165),
}
# AMASS's split keys and widths, in the order they concatenate into `poses`.
AMASS_POSE_KEYS: dict[str, int] = {"root_orient": 3, "pose_body": 63, "pose_jaw": 3,
                                   "pose_eye": 6, "pose_hand": 90}
_FPS_KEYS = ("mocap_frame_rate", "mocap_framerate")


def split_poses(poses_xP) -> dict:
    """`poses` [..., 165] -> {part: [..., width]} by POSE_SLICES (numpy or JAX)."""
    return {part: poses_xP[..., s] for part, s in POSE_SLICES.items()}


def join_poses(parts: dict):
    """The inverse of `split_poses`: {part: [..., width]} -> [..., 165]."""
    xp = rotations.array_namespace(*parts.values())
    return xp.concatenate([parts[part] for part in POSE_SLICES], axis=-1)


@dataclasses.dataclass(frozen=True, eq=False)
class SmplxClip:
    """One SMPL-X clip: `poses` [T, 55, 3] axis-angle, `trans` [T, 3], `betas` [B], `fps`,
    optional `expressions` [T, E] and `gender`."""

    poses: np.ndarray
    trans: np.ndarray
    betas: np.ndarray
    fps: float
    expressions: np.ndarray | None = None
    gender: str | None = None

    def __post_init__(self):
        frames = np.shape(self.poses)[0]
        if np.shape(self.poses) != (frames, NUM_JOINTS, 3):
            raise ValueError(f"poses must be [T, {NUM_JOINTS}, 3], got {np.shape(self.poses)}")
        if np.shape(self.trans) != (frames, 3):
            raise ValueError(f"trans must be [T={frames}, 3], got {np.shape(self.trans)}")
        if self.expressions is not None and np.shape(self.expressions)[:1] != (frames,):
            raise ValueError(f"expressions must be [T={frames}, E], got "
                             f"{np.shape(self.expressions)}")

    @property
    def num_frames(self) -> int:
        return self.poses.shape[0]

    def to_motion(self, skeleton: Skeleton = SMPLX) -> Motion:
        """A Motion on `skeleton` (55 joints in SMPL-X order): matrices from the axis-angles."""
        return Motion(skeleton, self.trans, rotations.axis_angle_to_matrix(self.poses), self.fps)

    @classmethod
    def from_motion(cls, motion: Motion, *, betas=None, expressions=None,
                    gender: str | None = None) -> "SmplxClip":
        """The clip of a 55-joint SMPL-X-ordered Motion (axis-angles from its matrices)."""
        if motion.names != SMPLX_JOINT_NAMES:
            raise ValueError("from_motion needs the 55 SMPL-X joints in SMPL-X order; "
                             "use clip.reorder_joints first")
        return cls(rotations.matrix_to_axis_angle(motion.rotations), motion.root_positions,
                   np.zeros(0) if betas is None else np.asarray(betas), motion.fps,
                   expressions=expressions, gender=gender)


def _load(path: pathlib.Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    if not is_zip:
        raise UserError(f"{path}: not an npz archive (a zip of named arrays); save it with "
                        "np.savez")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise UserError(f"{path}: stores pickled objects, which are not read; re-save its "
                            "arrays with plain dtypes") from None
        raise UserError(f"{path}: not a readable npz file ({e}); re-export it") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{path}: not a readable npz file ({type(e).__name__}); "
                        "re-export it") from None


def _check_keys(data: dict, name: str) -> None:
    """UserError listing the missing and the found keys unless poses (or AMASS's split pose
    keys) and trans are all there."""
    missing = []
    if "poses" not in data:
        split_missing = [key for key in AMASS_POSE_KEYS if key not in data]
        if split_missing:
            some_split = len(split_missing) < len(AMASS_POSE_KEYS)
            missing += split_missing if some_split else ["poses"]
    if "trans" not in data:
        missing.append("trans")
    if missing:
        raise UserError(f"{name}: missing keys {missing}; found {sorted(data)}; a SMPL-X motion "
                        "file needs poses (or AMASS's root_orient, pose_body, pose_jaw, "
                        "pose_eye, pose_hand) and trans")


def _poses(data: dict, name: str) -> np.ndarray:
    """[T, 165] from `poses` or from AMASS's split keys; UserError on a wrong width."""
    if "poses" in data:
        poses = np.asarray(data["poses"], np.float64)
        if poses.ndim != 2 or poses.shape[1] != POSE_WIDTH:
            raise UserError(f"{name}: poses has shape {poses.shape}, expected (T, {POSE_WIDTH}) "
                            f"SMPL-X axis-angle ({NUM_JOINTS} joints x 3); SMPL (72) or SMPL-H "
                            "(156) files need converting first")
        return poses
    parts = []
    for key, width in AMASS_POSE_KEYS.items():
        part = np.asarray(data[key], np.float64)
        if part.ndim != 2 or part.shape[1] != width:
            raise UserError(f"{name}: {key} has shape {part.shape}, expected (T, {width})")
        parts.append(part)
    if len({p.shape[0] for p in parts}) != 1:
        raise UserError(f"{name}: the pose keys disagree on the frame count "
                        f"({[p.shape[0] for p in parts]}); the file is inconsistent")
    return np.concatenate(parts, axis=1)


def read_smplx_npz(path, *, expect_fps: float | None = None) -> SmplxClip:
    """Reads a BEAT2 or AMASS SMPL-X npz into an SmplxClip (float64 arrays).

    `expect_fps`: the rate the caller needs; a file at another rate is an error, and a file
    without a rate key is taken to be at it. UserError naming the file for: a missing or
    unreadable file, a wrong key set (listing missing and found keys), wrong shapes, NaN/Inf
    (naming the first frame), and a missing or unexpected frame rate.
    """
    path = require_file(path)
    name = str(path)
    data = _load(path)
    _check_keys(data, name)
    poses = _poses(data, name)
    frames = poses.shape[0]
    trans = np.asarray(data["trans"], np.float64)
    if trans.shape != (frames, 3):
        raise UserError(f"{name}: trans has shape {trans.shape}, expected ({frames}, 3) to match "
                        "the poses")
    if frames == 0:
        raise UserError(f"{name}: holds no frames; drop the file")
    check_finite_frames(poses, name=name, what="poses")
    check_finite_frames(trans, name=name, what="trans")

    expressions = None
    if "expressions" in data:
        expressions = np.asarray(data["expressions"], np.float64)
        if expressions.ndim != 2 or expressions.shape[0] != frames:
            raise UserError(f"{name}: expressions has shape {expressions.shape}, expected "
                            f"({frames}, E) to match the poses")
        check_finite_frames(expressions, name=name, what="expressions")
    betas = np.asarray(data.get("betas", np.zeros(0)), np.float64).reshape(-1)

    fps_key = next((key for key in _FPS_KEYS if key in data), None)
    if fps_key is None:
        if expect_fps is None:
            raise UserError(f"{name}: no frame rate (mocap_frame_rate or mocap_framerate); "
                            "add the key or pass the rate you know the file has")
        fps = float(expect_fps)
    else:
        fps = float(np.asarray(data[fps_key]).reshape(()))
        if not fps > 0:
            raise UserError(f"{name}: {fps_key} is {fps}; it must be a positive frame rate")
        check_fps(fps, expect_fps, name=name)
    gender = None
    if "gender" in data and np.asarray(data["gender"]).size == 1:
        value = np.asarray(data["gender"]).reshape(()).item()
        gender = value.decode() if isinstance(value, bytes) else str(value)
    return SmplxClip(poses.reshape(frames, NUM_JOINTS, 3), trans, betas, fps,
                     expressions=expressions, gender=gender)


def write_smplx_npz(path, clip: SmplxClip) -> None:
    """Writes `clip` in the BEAT2 layout (uncompressed npz); creates parent directories."""
    path = pathlib.Path(path)
    arrays = {"poses": np.asarray(clip.poses).reshape(clip.num_frames, POSE_WIDTH),
              "trans": np.asarray(clip.trans), "betas": np.asarray(clip.betas),
              "mocap_frame_rate": np.asarray(clip.fps)}
    if clip.expressions is not None:
        arrays["expressions"] = np.asarray(clip.expressions)
    if clip.gender is not None:
        arrays["gender"] = np.asarray(clip.gender)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
