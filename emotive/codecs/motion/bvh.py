"""BVH motion files (BEAT's body format): read any well-formed BVH, write one back.

    motion = read_bvh("2_scott_0_1_1.bvh")                   # Motion at the file's rate
    motion_30 = read_bvh(path, fps=30, expect_joints=BEAT_JOINT_NAMES)   # resampled, checked
    write_bvh("out.bvh", motion)                              # the file's own channel layout
    write_bvh("gen.bvh", Motion(beat_skeleton(), root_Tx3, rot_Tx75x3x3, fps=BEAT_FPS))

A BVH file is a HIERARCHY (ROOT / JOINT blocks with an OFFSET, CHANNELS and children; "End
Site" blocks for tips) and a MOTION section ("Frames: N", "Frame Time: dt", then N lines of
channel values). Rotation channels are Euler angles in degrees, composed in the order listed
(intrinsic: "Zrotation Xrotation Yrotation" is R = Rz @ Rx @ Ry, see rotations.py); position
channels on the root are its translation, added to its OFFSET. The reader turns every joint's
rotation into a matrix, so a Motion does not depend on the file's Euler order, and keeps the
channel layout in `Motion.channels` so `write_bvh` can reproduce the file. Supported: one ROOT,
3 or no position channels on the root only, 3 or no rotation channels per joint (any order).

BEAT (v0.2 names; v0.1 files spell them RArm1, RHandM1, RFootF, ...): 120 fps, centimetres,
75 joints, the root with 6 channels (Xposition Yposition Zposition Zrotation Xrotation
Yrotation) and every other joint 3 (Zrotation Xrotation Yrotation), 228 values a frame:

    Hips
      Spine Spine1 Spine2 Spine3 Neck Neck1 Head HeadEnd               (a chain)
      per side (Right, then Left) on Spine3:
        Shoulder Arm ForeArm Hand                                      (a chain)
        on Hand: HandMiddle1-4; HandRing, HandRing1-4; HandPinky, HandPinky1-4;
                 HandIndex, HandIndex1-4; HandThumb1-4                 (chains)
      per side (Right, then Left) on Hips:
        UpLeg Leg Foot ForeFoot ToeBase ToeBaseEnd                     (a chain)

9 + 2 x 27 + 2 x 6 = 75. `beat_skeleton()` gives that tree with hand-written plausible offsets
(cm, y up, facing +z, the body's left at +x; not BEAT's own, which vary per actor): use it to
write generated motion, or read a BEAT file for its real offsets.
"""

from __future__ import annotations

import math
import pathlib
from typing import Sequence

import numpy as np

from emotive.codecs.motion import rotations
from emotive.codecs.motion.clip import (Motion, check_finite_frames, reorder_joints,
                                        require_file, resample_motion, snap_fps)
from emotive.codecs.motion.skeleton import Skeleton, mirror_offsets
from emotive.errors import UserError

__all__ = ["BEAT_FPS", "BEAT_JOINT_NAMES", "BEAT_PARENTS", "BEAT_ROOT_CHANNELS",
           "BEAT_JOINT_CHANNELS", "beat_skeleton", "read_bvh", "write_bvh"]

BEAT_FPS = 120.0
BEAT_ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation",
                      "Yrotation")
BEAT_JOINT_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")


def _chain(names: Sequence[str], parent: str) -> list[tuple[str, str]]:
    """(joint, parent) pairs of a chain hanging from `parent`."""
    return list(zip(names, (parent, *names[:-1])))


def _beat_tree() -> list[tuple[str, str | None]]:
    tree: list[tuple[str, str | None]] = [("Hips", None)]
    tree += _chain(["Spine", "Spine1", "Spine2", "Spine3", "Neck", "Neck1", "Head", "HeadEnd"],
                   "Hips")
    for side in ("Right", "Left"):
        hand = f"{side}Hand"
        tree += _chain([f"{side}Shoulder", f"{side}Arm", f"{side}ForeArm", hand], "Spine3")
        tree += _chain([f"{hand}Middle{k}" for k in range(1, 5)], hand)
        for finger in ("Ring", "Pinky", "Index"):       # these three have a metacarpal joint
            tree += _chain([f"{hand}{finger}"] + [f"{hand}{finger}{k}" for k in range(1, 5)],
                           hand)
        tree += _chain([f"{hand}Thumb{k}" for k in range(1, 5)], hand)
    for side in ("Right", "Left"):
        tree += _chain([f"{side}{part}" for part in
                        ("UpLeg", "Leg", "Foot", "ForeFoot", "ToeBase", "ToeBaseEnd")], "Hips")
    return tree


_BEAT_TREE = _beat_tree()
BEAT_JOINT_NAMES: tuple[str, ...] = tuple(name for name, _ in _BEAT_TREE)
BEAT_PARENTS: tuple[int, ...] = tuple(-1 if parent is None else BEAT_JOINT_NAMES.index(parent)
                                      for _, parent in _BEAT_TREE)

# Rest offsets in cm of the centre line and the right side (-x); the left side is the mirror.
_BEAT_OFFSETS = mirror_offsets({
    "Hips": (0.0, 0.0, 0.0), "Spine": (0.0, 10.0, -1.0), "Spine1": (0.0, 9.0, 0.0),
    "Spine2": (0.0, 9.0, 0.0), "Spine3": (0.0, 9.0, 0.0), "Neck": (0.0, 11.0, 1.0),
    "Neck1": (0.0, 5.0, 0.5), "Head": (0.0, 5.0, 0.5), "HeadEnd": (0.0, 18.0, 0.0),
    "RightShoulder": (-3.0, 8.0, 0.5), "RightArm": (-14.0, 0.0, 0.0),
    "RightForeArm": (-28.0, 0.0, 0.0), "RightHand": (-25.0, 0.0, 0.0),
    "RightHandMiddle1": (-9.5, 0.0, 0.3), "RightHandMiddle2": (-4.5, 0.0, 0.0),
    "RightHandMiddle3": (-3.0, 0.0, 0.0), "RightHandMiddle4": (-2.5, 0.0, 0.0),
    "RightHandRing": (-3.0, 0.0, -1.0), "RightHandRing1": (-6.0, 0.0, -1.0),
    "RightHandRing2": (-4.0, 0.0, 0.0), "RightHandRing3": (-2.8, 0.0, 0.0),
    "RightHandRing4": (-2.3, 0.0, 0.0),
    "RightHandPinky": (-3.0, -0.3, -2.0), "RightHandPinky1": (-5.0, 0.0, -1.5),
    "RightHandPinky2": (-3.2, 0.0, 0.0), "RightHandPinky3": (-2.2, 0.0, 0.0),
    "RightHandPinky4": (-2.0, 0.0, 0.0),
    "RightHandIndex": (-3.0, 0.0, 1.2), "RightHandIndex1": (-6.3, 0.0, 1.0),
    "RightHandIndex2": (-4.0, 0.0, 0.0), "RightHandIndex3": (-2.5, 0.0, 0.0),
    "RightHandIndex4": (-2.2, 0.0, 0.0),
    "RightHandThumb1": (-2.5, -0.5, 2.5), "RightHandThumb2": (-3.0, -0.5, 2.0),
    "RightHandThumb3": (-3.2, 0.0, 1.2), "RightHandThumb4": (-2.6, 0.0, 0.8),
    "RightUpLeg": (-9.0, -2.0, 0.0), "RightLeg": (0.0, -42.0, 0.0),
    "RightFoot": (0.0, -41.0, -1.0), "RightForeFoot": (0.0, -5.0, 8.0),
    "RightToeBase": (0.0, -2.0, 6.0), "RightToeBaseEnd": (0.0, 0.0, 5.0),
}, ("Right", "Left"))


def beat_skeleton() -> Skeleton:
    """The 75-joint BEAT tree with plausible offsets (cm) and an End Site on every leaf."""
    offsets = np.array([_BEAT_OFFSETS[n] for n in BEAT_JOINT_NAMES], dtype=np.float64)
    leaves = [j for j in range(len(BEAT_JOINT_NAMES)) if j not in BEAT_PARENTS]
    # Each tip continues its last bone by 1 cm (the head's top, fingertips, toe tips).
    ends = tuple((j, tuple(np.round(offsets[j] / np.linalg.norm(offsets[j]), 6))) for j in leaves)
    return Skeleton(BEAT_JOINT_NAMES, BEAT_PARENTS, offsets, name="BEAT", end_sites=ends)


# ----------------------------------------------------------------------------------------------
# Channels
# ----------------------------------------------------------------------------------------------

_CHANNEL_NAMES = {f"{axis}{kind}".lower(): f"{axis}{kind}"
                  for axis in "XYZ" for kind in ("position", "rotation")}


def _layout(channels: Sequence[str], *, is_root: bool) -> tuple[list[int], str]:
    """(position axes in channel order, Euler order of the rotation channels, "" if none).

    Raises ValueError with a reason when the channels are not a layout this module supports.
    """
    positions = [ch for ch in channels if ch.endswith("position")]
    rots = "".join(ch[0] for ch in channels if ch.endswith("rotation"))
    if positions and not is_root:
        raise ValueError("position channels on a non-root joint are not supported (per-joint "
                         "translation); re-export with rotation-only channels below the root")
    if len(positions) not in (0, 3) or len({ch[0] for ch in positions}) != len(positions):
        raise ValueError(f"the root needs 3 distinct position channels or none, got {positions}")
    if len(rots) not in (0, 3) or len(set(rots)) != len(rots):
        raise ValueError(f"a joint needs 3 distinct rotation channels or none, got {list(rots)}")
    return ["XYZ".index(ch[0]) for ch in positions], rots


def _default_channels(skeleton: Skeleton) -> tuple[tuple[str, ...], ...]:
    return tuple(BEAT_ROOT_CHANNELS if j == 0 else BEAT_JOINT_CHANNELS
                 for j in range(skeleton.num_joints))


def _channel_columns(channels: Sequence[Sequence[str]]):
    """Column indices of the frame values: rotations by Euler order, and the root position.

    Returns ({order: (joints [n], columns [n, 3])}, position columns [3] or None).
    """
    by_order: dict[str, tuple[list[int], list[list[int]]]] = {}
    position_cols = None
    col = 0
    for j, joint_channels in enumerate(channels):
        axes, order = _layout(joint_channels, is_root=j == 0)
        cols = list(range(col, col + len(joint_channels)))
        if axes:
            position_cols = [0, 0, 0]
            for c, ch in zip(cols, joint_channels):
                if ch.endswith("position"):
                    position_cols["XYZ".index(ch[0])] = c
        if order:
            joints, rot_cols = by_order.setdefault(order, ([], []))
            joints.append(j)
            rot_cols.append([c for c, ch in zip(cols, joint_channels) if ch.endswith("rotation")])
        col += len(joint_channels)
    return {k: (np.array(j), np.array(c)) for k, (j, c) in by_order.items()}, position_cols


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


class _Hierarchy:
    """Recursive-descent parser of the HIERARCHY tokens [(token, line number)]."""

    def __init__(self, tokens: list[tuple[str, int]], *, name: str, end_line: int):
        self.tokens, self.pos, self.name, self.end_line = tokens, 0, name, end_line
        self.names: list[str] = []
        self.parents: list[int] = []
        self.offsets: list[tuple[float, float, float]] = []
        self.channels: list[tuple[str, ...]] = []
        self.end_sites: list[tuple[int, tuple[float, float, float]]] = []

    def fail(self, message: str, line: int | None = None):
        if line is None:
            line = self.tokens[self.pos][1] if self.pos < len(self.tokens) else self.end_line
        raise UserError(f"{self.name}: line {line}: {message}; the BVH hierarchy is malformed")

    def next(self, what: str) -> tuple[str, int]:
        if self.pos >= len(self.tokens):
            self.fail(f"expected {what}, found the end of the hierarchy")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def expect(self, word: str) -> int:
        token, line = self.next(repr(word))
        if token != word:
            self.fail(f"expected {word!r}, found {token!r}", line)
        return line

    def number(self, what: str) -> float:
        token, line = self.next(what)
        try:
            return float(token)
        except ValueError:
            self.fail(f"expected {what}, found {token!r}", line)

    def offset(self) -> tuple[float, float, float]:
        self.expect("OFFSET")
        return tuple(self.number("an OFFSET number") for _ in range(3))

    def parse(self) -> None:
        self.expect("HIERARCHY")
        self.expect("ROOT")
        self.joint(parent=-1)
        if self.pos < len(self.tokens):
            token, line = self.tokens[self.pos]
            reason = ("a second ROOT (only one skeleton per file is supported)"
                      if token == "ROOT" else repr(token))
            self.fail(f"expected MOTION after the root's closing brace, found {reason}", line)

    def joint(self, parent: int) -> None:
        name, line = self.next("a joint name")
        if name in self.names:
            self.fail(f"joint name {name!r} appears twice", line)
        index = len(self.names)
        self.names.append(name)
        self.parents.append(parent)
        self.expect("{")
        self.offsets.append(self.offset())
        channels: tuple[str, ...] = ()
        if self.pos < len(self.tokens) and self.tokens[self.pos][0] == "CHANNELS":
            _, line = self.next("CHANNELS")
            count = self.number("a channel count")
            if count != int(count) or count < 0:
                self.fail(f"channel count must be a whole number, found {count:g}", line)
            raw = [self.next("a channel name")[0] for _ in range(int(count))]
            unknown = [ch for ch in raw if ch.lower() not in _CHANNEL_NAMES]
            if unknown:
                self.fail(f"unknown channel {unknown[0]!r} on joint {name!r}", line)
            channels = tuple(_CHANNEL_NAMES[ch.lower()] for ch in raw)
            try:
                _layout(channels, is_root=parent == -1)
            except ValueError as e:
                self.fail(f"joint {name!r}: {e}", line)
        self.channels.append(channels)
        while True:
            token, line = self.next("JOINT, End Site or '}'")
            if token == "}":
                return
            if token == "JOINT":
                self.joint(parent=index)
            elif token == "End":
                self.expect("Site")
                self.expect("{")
                self.end_sites.append((index, self.offset()))
                self.expect("}")
            else:
                self.fail(f"expected JOINT, End Site or '}}' in joint {name!r}, found {token!r}",
                          line)


def _header_value(line_no: int, line: str, key: str, *, name: str) -> str:
    if not line.strip().startswith(key):
        raise UserError(f"{name}: line {line_no}: expected '{key} ...', found "
                        f"{line.strip()[:40]!r}; the BVH MOTION section is malformed")
    return line.strip()[len(key):].strip()


def read_bvh(path, fps: float | None = None, *, expect_joints: Sequence[str] | None = None
             ) -> Motion:
    """Reads a BVH file into a Motion (float64), resampled to `fps` when given.

    Joints come in the file's order (depth first), or in the order of `expect_joints` (e.g.
    BEAT_JOINT_NAMES), which requires exactly those joints.
    Raises UserError naming the file (and the line, for a malformed file) when it is missing,
    malformed, truncated, holds NaN/Inf values or has other joints than expected.
    """
    path = require_file(path)
    name = str(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="strict").splitlines()
    except (UnicodeDecodeError, OSError) as e:
        raise UserError(f"{name}: not a readable text BVH file ({type(e).__name__}); "
                        "re-export it") from None
    motion_at = next((n for n, line in enumerate(lines) if line.strip() == "MOTION"), None)
    if motion_at is None:
        raise UserError(f"{name}: no MOTION section; the file is truncated or not a BVH file")
    tokens = [(tok, n + 1) for n, line in enumerate(lines[:motion_at]) for tok in line.split()]
    tree = _Hierarchy(tokens, name=name, end_line=motion_at + 1)
    tree.parse()
    skeleton = Skeleton(tree.names, tree.parents, np.array(tree.offsets), name=name,
                        end_sites=tuple(tree.end_sites))
    if expect_joints is not None and set(expect_joints) != set(skeleton.names):
        missing = [j for j in expect_joints if j not in skeleton.names]
        extra = [j for j in skeleton.names if j not in expect_joints]
        raise UserError(f"{name}: has {skeleton.num_joints} joints, expected "
                        f"{len(expect_joints)} (missing {missing[:5]}, unexpected {extra[:5]}); "
                        "is this the right skeleton?")

    rest = [(n + 1, line) for n, line in enumerate(lines[motion_at + 1:], start=motion_at + 1)
            if line.strip()]
    if len(rest) < 2:
        raise UserError(f"{name}: the MOTION section lacks 'Frames:' and 'Frame Time:' lines")
    declared = _header_value(*rest[0], "Frames:", name=name)
    frame_time = _header_value(*rest[1], "Frame Time:", name=name)
    try:
        num_frames, dt = int(declared), float(frame_time)
    except ValueError:
        raise UserError(f"{name}: line {rest[0][0]}: 'Frames: {declared}' / 'Frame Time: "
                        f"{frame_time}' are not numbers; the BVH MOTION section is malformed"
                        ) from None
    if not (dt > 0 and math.isfinite(dt)):
        raise UserError(f"{name}: line {rest[1][0]}: Frame Time must be positive, got {dt}")
    data = rest[2:]
    width = sum(len(c) for c in tree.channels)
    rows = [line.split() for _, line in data]
    for (line_no, _), row in zip(data, rows):
        if len(row) != width:
            raise UserError(f"{name}: line {line_no}: {len(row)} values, expected {width} "
                            "(one per channel); the file is truncated or malformed")
    if len(rows) != num_frames or num_frames == 0:
        raise UserError(f"{name}: declares {num_frames} frames but holds {len(rows)}; "
                        "the file is truncated or its frame count is wrong")
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError:
        for (line_no, _), row in zip(data, rows):
            try:
                [float(v) for v in row]
            except ValueError:
                raise UserError(f"{name}: line {line_no}: a value is not a number; the BVH "
                                "MOTION section is malformed") from None
        raise
    check_finite_frames(values, name=name, what="channel values")

    groups, position_cols = _channel_columns(tree.channels)
    rots = np.broadcast_to(np.eye(3), (num_frames, skeleton.num_joints, 3, 3)).copy()
    for order, (joints, cols) in groups.items():
        rots[:, joints] = rotations.euler_to_matrix(values[:, cols], order)
    root = values[:, position_cols] if position_cols else np.zeros((num_frames, 3))
    motion = Motion(skeleton, root, rots, snap_fps(1.0 / dt), channels=tuple(tree.channels))
    if expect_joints is not None:
        motion = reorder_joints(motion, expect_joints)
    return motion if fps is None else resample_motion(motion, float(fps))


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


def _hierarchy_lines(skeleton: Skeleton, channels, decimals: int) -> list[str]:
    ends: dict[int, list[tuple[float, float, float]]] = {}
    for j, offset in skeleton.end_sites:
        ends.setdefault(j, []).append(offset)

    def vec(v) -> str:
        return " ".join(f"{float(x):.{decimals}f}" for x in v)

    lines = ["HIERARCHY"]

    def joint(j: int, depth: int) -> None:
        pad = "\t" * depth
        lines.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {skeleton.names[j]}")
        lines.append(pad + "{")
        lines.append(f"{pad}\tOFFSET {vec(skeleton.offsets[j])}")
        if channels[j]:
            lines.append(f"{pad}\tCHANNELS {len(channels[j])} {' '.join(channels[j])}")
        children = skeleton.children(j)
        for child in children:
            joint(child, depth + 1)
        # A leaf needs an End Site to be a well-formed BVH; a zero one when the skeleton has none.
        for end in ends.get(j, [] if children else [(0.0, 0.0, 0.0)]):
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {vec(end)}",
                          f"{pad}\t}}"])
        lines.append(pad + "}")

    joint(0, 0)
    return lines


def _depth_first(skeleton: Skeleton) -> list[str]:
    order, stack = [], [0]
    while stack:
        j = stack.pop()
        order.append(skeleton.names[j])
        stack.extend(reversed(skeleton.children(j)))
    return order


def write_bvh(path, motion: Motion, *, decimals: int = 6) -> None:
    """Writes `motion` as a BVH file in its `channels` layout (the BEAT layout when None).

    Joints are written depth first (a BVH file's only order; BEAT's skeleton already is), so
    read an SMPL-X-ordered motion back with `expect_joints=SMPLX_JOINT_NAMES`. Values are
    written with `decimals` places (1e-6 degrees and units by default); creates parent
    directories. ValueError if the layout cannot hold the motion (root positions but
    no position channels).
    """
    path = pathlib.Path(path)
    motion = reorder_joints(motion, _depth_first(motion.skeleton))   # the file's joint order
    skeleton = motion.skeleton
    channels = motion.channels if motion.channels is not None else _default_channels(skeleton)
    groups, position_cols = _channel_columns(channels)
    if position_cols is None and np.any(motion.root_positions != 0):
        raise ValueError("the root has no position channels, so its positions would be lost")
    width = sum(len(c) for c in channels)
    values = np.zeros((motion.num_frames, width))
    for order, (joints, cols) in groups.items():
        values[:, cols] = rotations.matrix_to_euler(motion.rotations[:, joints], order)
    if position_cols is not None:
        values[:, position_cols] = motion.root_positions
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(_hierarchy_lines(skeleton, channels, decimals)) + "\n")
        f.write(f"MOTION\nFrames: {motion.num_frames}\nFrame Time: {1.0 / motion.fps:.12g}\n")
        np.savetxt(f, values, fmt=f"%.{decimals}f", delimiter=" ")
