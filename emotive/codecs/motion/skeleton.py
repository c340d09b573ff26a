"""Skeletons: joint names, a parent table and rest-pose offsets; the SMPL-X body.

    sk = SMPLX                                   # 55 joints, SMPL-X order, metres, y up
    sk.index("left_wrist")                       # 20
    sk.parents[sk.index("left_wrist")]           # 18 (left_elbow)
    Skeleton(names, parents, offsets_Jx3, name="my.bvh")   # checked: UserError if malformed

A `Skeleton` is the static half of a motion: `offsets[j]` is joint j's position in its parent's
frame at rest (for the root: where it sits when the root translation is zero), and every parent
comes before its children, so one pass in index order does forward kinematics
(`kinematics.forward_kinematics`). `end_sites` keeps BVH "End Site" tips (a leaf joint index and
an offset); they carry no rotation and no other code needs them.

`SMPLX` holds plausible offsets of a neutral adult (y up, facing +z, the body's left at +x),
written by hand so no SMPL-X model file is needed. The real model's joints depend on the shape
`betas` (and its pelvis sits about 0.3 m below the model origin), so positions from this
skeleton are for metrics that compare motions on one skeleton, not for rendering a mesh.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from emotive.errors import UserError

__all__ = ["Skeleton", "SMPLX", "SMPLX_JOINT_NAMES", "SMPLX_PARENTS", "smplx_skeleton",
           "check_tables", "mirror_offsets"]


@dataclasses.dataclass(frozen=True, eq=False)
class Skeleton:
    """Joint names, parent indices (-1 for the root) and rest offsets [J, 3].

    Compared and hashed by identity, so one skeleton can be a static argument under jit.
    Construction checks the tables and raises UserError naming `name` (a file path, or the
    skeleton's own name) when they are inconsistent.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    name: str = "skeleton"
    end_sites: tuple[tuple[int, tuple[float, float, float]], ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "parents", tuple(int(p) for p in self.parents))
        object.__setattr__(self, "offsets", np.asarray(self.offsets, dtype=np.float64))
        object.__setattr__(self, "end_sites", tuple(
            (int(j), tuple(float(v) for v in off)) for j, off in self.end_sites))
        check_tables(self.names, self.parents, self.offsets, name=self.name)
        for j, _ in self.end_sites:
            if not 0 <= j < len(self.names):
                raise UserError(f"{self.name}: an end site hangs on joint {j}, but the skeleton "
                                f"has {len(self.names)} joints; fix the end-site table")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, joint: str) -> int:
        """The index of the joint called `joint`; UserError listing a few names if unknown."""
        try:
            return self.names.index(joint)
        except ValueError:
            shown = ", ".join(self.names[:8]) + (", ..." if len(self.names) > 8 else "")
            raise UserError(f"{self.name}: no joint named {joint!r}; its {len(self.names)} "
                            f"joints are {shown}") from None

    def indices(self, joints: Sequence[str]) -> list[int]:
        """`index` of each name in `joints`."""
        return [self.index(j) for j in joints]

    def children(self, joint: int) -> list[int]:
        """Indices of the joints whose parent is `joint`, in index order."""
        return [j for j, p in enumerate(self.parents) if p == joint]


def check_tables(names: Sequence[str], parents: Sequence[int], offsets: np.ndarray, *,
                 name: str = "skeleton") -> None:
    """Raises UserError unless the tables describe one tree with parents before children.

    Checks: as many names as parents as offset rows, offsets [J, 3] and finite, unique names,
    joint 0 the only root (parent -1), and parents[j] < j for every other joint.
    """
    offsets = np.asarray(offsets)
    num = len(names)
    if num == 0:
        raise UserError(f"{name}: the skeleton has no joints")
    if len(parents) != num or offsets.shape != (num, 3):
        raise UserError(f"{name}: {num} joint names, {len(parents)} parents and offsets of "
                        f"shape {offsets.shape}; expected {num} of each and offsets ({num}, 3)")
    if not np.all(np.isfinite(offsets)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(offsets), axis=1))[0])
        raise UserError(f"{name}: joint {names[bad]!r} has a NaN or Inf offset; fix the file")
    seen = set()
    for joint in names:
        if joint in seen:
            raise UserError(f"{name}: joint name {joint!r} appears twice; names must be unique")
        seen.add(joint)
    if parents[0] != -1:
        raise UserError(f"{name}: joint 0 ({names[0]!r}) must be the root (parent -1), "
                        f"has parent {parents[0]}")
    for j in range(1, num):
        if not 0 <= parents[j] < j:
            raise UserError(f"{name}: joint {j} ({names[j]!r}) has parent {parents[j]}; every "
                            "joint but the root needs a parent that comes before it")


def mirror_offsets(offsets: dict[str, tuple[float, float, float]], prefixes: tuple[str, str],
                   ) -> dict[str, tuple[float, float, float]]:
    """Adds the mirror image (x negated) of every entry whose name starts with prefixes[0].

    `prefixes` is (this side, other side), e.g. ("left_", "right_") or ("Right", "Left").
    """
    this, other = prefixes
    out = dict(offsets)
    for joint, (x, y, z) in offsets.items():
        if joint.startswith(this):
            out[other + joint[len(this):]] = (-x, y, z)
    return out


# ----------------------------------------------------------------------------------------------
# SMPL-X
# ----------------------------------------------------------------------------------------------

_FINGERS = ("index", "middle", "pinky", "ring", "thumb")

SMPLX_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "jaw", "left_eye_smplhf", "right_eye_smplhf",
) + tuple(f"{side}_{finger}{k}" for side in ("left", "right") for finger in _FINGERS
          for k in (1, 2, 3))

# The SMPL-X kinematic tree: body (22), jaw and eyes on the head, 3-joint fingers on the wrists.
SMPLX_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,   # left hand
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,   # right hand
)

# Rest offsets (metres, y up, facing +z, the body's left at +x) of the centre line and the left
# side; the right side is the mirror image. Round numbers close to the SMPL-X neutral template.
_SMPLX_OFFSETS = mirror_offsets({
    "pelvis": (0.0, 0.0, 0.0),
    "left_hip": (0.06, -0.09, 0.0),
    "spine1": (0.0, 0.11, -0.02),
    "left_knee": (0.04, -0.38, 0.0),
    "spine2": (0.0, 0.135, 0.0),
    "left_ankle": (-0.01, -0.4, -0.04),
    "spine3": (0.0, 0.055, 0.025),
    "left_foot": (0.02, -0.055, 0.12),
    "neck": (0.0, 0.21, -0.04),
    "left_collar": (0.08, 0.12, -0.035),
    "head": (0.0, 0.065, 0.05),
    "left_shoulder": (0.09, 0.03, -0.01),
    "left_elbow": (0.26, -0.013, -0.025),
    "left_wrist": (0.25, 0.008, -0.003),
    "jaw": (0.0, -0.02, 0.03),
    "left_eye_smplhf": (0.03, 0.06, 0.085),
    "left_index1": (0.095, -0.005, 0.025), "left_index2": (0.035, 0.0, 0.0),
    "left_index3": (0.025, 0.0, 0.0),
    "left_middle1": (0.1, -0.005, 0.002), "left_middle2": (0.035, 0.0, 0.0),
    "left_middle3": (0.027, 0.0, 0.0),
    "left_pinky1": (0.08, -0.01, -0.04), "left_pinky2": (0.02, 0.0, 0.0),
    "left_pinky3": (0.018, 0.0, 0.0),
    "left_ring1": (0.09, -0.008, -0.02), "left_ring2": (0.032, 0.0, 0.0),
    "left_ring3": (0.025, 0.0, 0.0),
    "left_thumb1": (0.025, -0.015, 0.025), "left_thumb2": (0.025, -0.005, 0.02),
    "left_thumb3": (0.025, 0.0, 0.015),
}, ("left_", "right_"))


def smplx_skeleton() -> Skeleton:
    """The 55-joint SMPL-X skeleton with the hand-written neutral offsets (see the module doc)."""
    offsets = np.array([_SMPLX_OFFSETS[n] for n in SMPLX_JOINT_NAMES], dtype=np.float64)
    return Skeleton(SMPLX_JOINT_NAMES, SMPLX_PARENTS, offsets, name="SMPL-X")


SMPLX = smplx_skeleton()
