"""Face representations: ARKit-52 blendshape weights and FLAME expression + jaw parameters.

    ARKIT_NAMES[ARKIT_INDEX["jawOpen"]]          # "jawOpen" (index 17)
    face = FaceWeights(weights_Tx52, fps=60.0)   # ARKit order; face_io reads and writes files
    flame = FlameFace(expression_Tx100, jaw_Tx3, fps=25.0)
    jaw_Tx3 = arkit_to_flame_jaw(face.weights)   # a rough, documented linear map

ARKit-52 is Apple's list of blendshape locations in the order Apple documents them (eyes,
jaw, mouth, brows, cheeks, nose, tongue); weights are in [0, 1]. Files spell the names in
camelCase (BEAT JSON, Apple) or PascalCase (Live Link Face CSV); readers match them ignoring
case. FLAME-style faces (EMOTE) carry 100 expression coefficients and a 3-value jaw
axis-angle per frame.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from emotive.codecs.motion.rotations import array_namespace

__all__ = ["ARKIT_NAMES", "ARKIT_INDEX", "NUM_ARKIT", "FLAME_EXPRESSION_DIM", "FLAME_JAW_DIM",
           "FaceWeights", "FlameFace", "arkit_to_flame_jaw", "flame_jaw_to_arkit",
           "JAW_OPEN_RAD", "JAW_SIDE_RAD"]

_EYE = ("eyeBlink", "eyeLookDown", "eyeLookIn", "eyeLookOut", "eyeLookUp", "eyeSquint",
        "eyeWide")

ARKIT_NAMES: tuple[str, ...] = (
    *(f"{n}Left" for n in _EYE), *(f"{n}Right" for n in _EYE),
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
NUM_ARKIT = len(ARKIT_NAMES)
ARKIT_INDEX: dict[str, int] = {n: i for i, n in enumerate(ARKIT_NAMES)}

FLAME_EXPRESSION_DIM = 100
FLAME_JAW_DIM = 3

# The linear jaw map's full-scale angles (radians): jawOpen = 1 opens the jaw ~23 degrees about
# +x (y up, facing +z, so the chin moves down); jawLeft = 1 turns it ~6 degrees about +y (the
# chin towards the face's left, +x). jawForward has no rotation and is dropped.
JAW_OPEN_RAD = 0.4
JAW_SIDE_RAD = 0.1


@dataclasses.dataclass(frozen=True, eq=False)
class FaceWeights:
    """ARKit-52 weights [T, 52] in `ARKIT_NAMES` order, with what the file said about time.

    `fps` is the frame rate when known (given, or from a time column); `times` [T] seconds
    when the file had them; `timecodes` a Live Link Face CSV's Timecode strings, kept verbatim;
    `extras` other numeric columns kept aside by name (head and eye rotations).
    """

    weights: np.ndarray
    fps: float | None = None
    times: np.ndarray | None = None
    timecodes: tuple[str, ...] | None = None
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        weights = np.asarray(self.weights)
        object.__setattr__(self, "weights", weights)
        if weights.ndim != 2 or weights.shape[1] != NUM_ARKIT:
            raise ValueError(f"weights must be [T, {NUM_ARKIT}], got {weights.shape}")
        frames = weights.shape[0]
        if self.times is not None:
            object.__setattr__(self, "times", np.asarray(self.times, np.float64))
            if self.times.shape != (frames,):
                raise ValueError(f"times must be [{frames}], got {self.times.shape}")
        if self.timecodes is not None and len(self.timecodes) != frames:
            raise ValueError(f"{len(self.timecodes)} timecodes for {frames} frames")
        for key, value in self.extras.items():
            if np.shape(value) != (frames,):
                raise ValueError(f"extra column {key!r} must be [{frames}], got {np.shape(value)}")

    @property
    def num_frames(self) -> int:
        return self.weights.shape[0]

    def frame_times(self) -> np.ndarray:
        """Seconds of each frame: `times`, else frame / fps; ValueError if neither is known."""
        if self.times is not None:
            return self.times
        if self.fps is None:
            raise ValueError("this face track has neither times nor fps")
        return np.arange(self.num_frames) / self.fps


@dataclasses.dataclass(frozen=True, eq=False)
class FlameFace:
    """FLAME-style face: `expression` [T, 100] coefficients and `jaw` [T, 3] axis-angle."""

    expression: np.ndarray
    jaw: np.ndarray
    fps: float

    def __post_init__(self):
        frames = np.shape(self.expression)[0]
        if np.shape(self.expression) != (frames, FLAME_EXPRESSION_DIM):
            raise ValueError(f"expression must be [T, {FLAME_EXPRESSION_DIM}], got "
                             f"{np.shape(self.expression)}")
        if np.shape(self.jaw) != (frames, FLAME_JAW_DIM):
            raise ValueError(f"jaw must be [T={frames}, 3], got {np.shape(self.jaw)}")

    def to_array(self):
        """[T, 103]: the expression, then the jaw (the order EMOTE-style models use)."""
        xp = array_namespace(self.expression, self.jaw)
        return xp.concatenate([self.expression, self.jaw], axis=-1)

    @classmethod
    def from_array(cls, params_Tx103, fps: float) -> "FlameFace":
        return cls(params_Tx103[:, :FLAME_EXPRESSION_DIM], params_Tx103[:, FLAME_EXPRESSION_DIM:],
                   fps)


def arkit_to_flame_jaw(weights_x52):
    """A FLAME jaw axis-angle [..., 3] from ARKit weights [..., 52] (numpy or JAX).

    Linear and approximate: x = jawOpen * JAW_OPEN_RAD, y = (jawLeft - jawRight) * JAW_SIDE_RAD,
    z = 0. Enough to drive a FLAME mouth from ARKit data or to compare jaw opening across the
    two representations; not a fitted retargeting.
    """
    xp = array_namespace(weights_x52)
    w = xp.asarray(weights_x52)
    opening = w[..., ARKIT_INDEX["jawOpen"]] * JAW_OPEN_RAD
    side = (w[..., ARKIT_INDEX["jawLeft"]] - w[..., ARKIT_INDEX["jawRight"]]) * JAW_SIDE_RAD
    return xp.stack([opening, side, xp.zeros_like(opening)], axis=-1)


def flame_jaw_to_arkit(jaw_x3):
    """(jawOpen, jawLeft, jawRight) weights [..., 3] in [0, 1] from a FLAME jaw [..., 3].

    The inverse of `arkit_to_flame_jaw` on its range (clipped to [0, 1]); rotation about z and
    a closing (negative) x rotation have no ARKit counterpart and are dropped.
    """
    xp = array_namespace(jaw_x3)
    jaw = xp.asarray(jaw_x3)
    opening = xp.clip(jaw[..., 0] / JAW_OPEN_RAD, 0.0, 1.0)
    side = jaw[..., 1] / JAW_SIDE_RAD
    return xp.stack([opening, xp.clip(side, 0.0, 1.0), xp.clip(-side, 0.0, 1.0)], axis=-1)
