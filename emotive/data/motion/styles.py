"""How an emotion and a speaker move: the corpus's emotion and speaker settings.

    em = emotion_motion("sad", 2)        # EmotionMotion: amplitude, speed, posture, tension, face
    style = speaker_style("p01")         # SpeakerStyle: handedness, rest pose, repertoire, ...

Emotion (8, `emotions.EMOTIONS`, scaled by intensity as the speech is: 0.6 at intensity 1)
sets gesture amplitude and speed, posture, tension and the face; a speaker's style is drawn
from its id alone, so a speaker moves alike in every corpus, seed and split.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from emotive.data.speech import emotions as emo

__all__ = ["EmotionMotion", "EMOTION_MOTION", "emotion_motion", "Gesture", "SpeakerStyle",
           "speaker_style"]


@dataclasses.dataclass(frozen=True)
class EmotionMotion:
    """Body and face settings of one emotion at intensity 2 (angles in degrees).

    amplitude: gesture size factor; speed: tempo factor (pulse widths divide by it); lean:
    spine flexion (+ forward); head_pitch (+ down); head_yaw (+ to the left); shrug: collar
    raise; width: arm abduction (+ wider); tension: 0-1 (finger curl, muscle noise); tremor:
    8-10 Hz shake (degrees); beat_rate: share of onsets that get a beat; blink_rate: Hz;
    jaw: jaw opening factor; face: ARKit base weights.
    """

    amplitude: float
    speed: float
    lean: float
    head_pitch: float
    head_yaw: float
    shrug: float
    width: float
    tension: float
    tremor: float
    beat_rate: float
    blink_rate: float
    jaw: float
    face: dict


_FACE = {
    "neutral": {},
    "calm": {"mouthSmileLeft": .18, "mouthSmileRight": .18, "eyeBlinkLeft": .12,
             "eyeBlinkRight": .12, "browInnerUp": .05},
    "happy": {"mouthSmileLeft": .75, "mouthSmileRight": .75, "cheekSquintLeft": .45,
              "cheekSquintRight": .45, "eyeSquintLeft": .35, "eyeSquintRight": .35,
              "browOuterUpLeft": .2, "browOuterUpRight": .2, "mouthDimpleLeft": .2,
              "mouthDimpleRight": .2},
    "sad": {"browInnerUp": .65, "mouthFrownLeft": .55, "mouthFrownRight": .55,
            "eyeLookDownLeft": .35, "eyeLookDownRight": .35, "mouthShrugLower": .3,
            "eyeBlinkLeft": .2, "eyeBlinkRight": .2, "mouthPressLeft": .15,
            "mouthPressRight": .15},
    "angry": {"browDownLeft": .75, "browDownRight": .75, "eyeSquintLeft": .4,
              "eyeSquintRight": .4, "noseSneerLeft": .3, "noseSneerRight": .3,
              "mouthPressLeft": .35, "mouthPressRight": .35, "mouthFrownLeft": .25,
              "mouthFrownRight": .25, "jawForward": .2},
    "fearful": {"browInnerUp": .75, "browOuterUpLeft": .35, "browOuterUpRight": .35,
                "eyeWideLeft": .6, "eyeWideRight": .6, "mouthStretchLeft": .5,
                "mouthStretchRight": .5, "mouthFrownLeft": .15, "mouthFrownRight": .15},
    "surprised": {"browInnerUp": .7, "browOuterUpLeft": .8, "browOuterUpRight": .8,
                  "eyeWideLeft": .75, "eyeWideRight": .75, "jawOpen": .15,
                  "mouthFunnel": .15},
    "disgusted": {"noseSneerLeft": .65, "noseSneerRight": .55, "mouthUpperUpLeft": .45,
                  "mouthUpperUpRight": .35, "browDownLeft": .4, "browDownRight": .4,
                  "eyeSquintLeft": .3, "eyeSquintRight": .3, "mouthFrownLeft": .3,
                  "mouthFrownRight": .3, "mouthLeft": .15},
}

#                     amp  speed  lean  head  yaw  shrug width tense trem beat blink  jaw
_EMOTION_ROWS = {
    "neutral":   (1.00, 1.00,   0.0,  0.0,  0.0,  0.0,  0.0, .30, 0.0, .55, .30, 1.00),
    "calm":      (0.60, 0.65,  -3.0,  3.0,  0.0, -2.0, -4.0, .05, 0.0, .35, .20, 0.80),
    "happy":     (1.35, 1.30,  -4.0, -6.0,  0.0,  0.0, 10.0, .25, 0.0, .80, .35, 1.15),
    "sad":       (0.40, 0.55,  16.0, 16.0,  0.0, -5.0, -7.0, .10, 0.0, .30, .15, 0.65),
    "angry":     (1.80, 1.70,   8.0,  4.0,  0.0,  7.0, 16.0, .95, 0.0, .90, .25, 1.35),
    "fearful":   (0.80, 1.50,  -5.0,  6.0,  0.0, 11.0, -9.0, .75, 1.2, .60, .65, 0.85),
    "surprised": (1.40, 1.25,  -9.0, -11.0, 0.0,  5.0, 11.0, .40, 0.0, .70, .10, 1.30),
    "disgusted": (0.85, 0.85,  -5.0,  5.0, 14.0,  2.0, -3.0, .55, 0.0, .45, .30, 0.75),
}
EMOTION_MOTION: dict[str, EmotionMotion] = {
    name: EmotionMotion(*row, face=_FACE[name]) for name, row in _EMOTION_ROWS.items()}
assert set(EMOTION_MOTION) == set(emo.EMOTIONS)


def emotion_motion(emotion: str, intensity: int) -> EmotionMotion:
    """An emotion's settings at an intensity: neutral plus intensity_scale x the offset."""
    emo.check_emotion(emotion, intensity)
    s = emo.intensity_scale(intensity)
    base, target = EMOTION_MOTION["neutral"], EMOTION_MOTION[emotion]
    values = {f.name: getattr(base, f.name) + s * (getattr(target, f.name) - getattr(base, f.name))
              for f in dataclasses.fields(EmotionMotion) if f.name != "face"}
    return EmotionMotion(**values, face={k: s * v for k, v in target.face.items()})


@dataclasses.dataclass(frozen=True)
class Gesture:
    """One repertoire entry: per-beat offsets (degrees) of shoulder forward swing, shoulder
    abduction, upper-arm twist, elbow flexion and wrist flexion; hands: 'dominant', 'both'."""

    forward: float
    abduction: float
    twist: float
    flexion: float
    wrist: float
    hands: str


@dataclasses.dataclass(frozen=True)
class SpeakerStyle:
    """A speaker's motion style (degrees unless stated), deterministic from the speaker id."""

    speaker: str
    handedness: str          # 'right' or 'left'
    other_hand: float        # probability that a beat uses the other hand
    abduction: float         # rest arm abduction offset
    elbow: float             # rest elbow flexion
    lean: float
    head_roll: float
    head_pitch: float
    stance: float            # hip abduction
    gesture_rate: float      # factor on the emotion's beat rate
    gesture_size: float      # factor on the emotion's amplitude
    nod: float               # nod size on an accent
    repertoire: tuple[Gesture, ...]
    weights: tuple[float, ...]
    smile: float             # face: personal smile offset
    brow: float              # face: personal brow raise offset

    def to_dict(self) -> dict:
        """The style as JSON-ready values (floats rounded to 3 places), for corpus.json."""
        d = dataclasses.asdict(self)
        d["repertoire"] = [dataclasses.asdict(g) for g in self.repertoire]
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()}


def speaker_style(speaker: str) -> SpeakerStyle:
    """The style of `speaker`, drawn from a generator seeded by the id alone (so a speaker
    moves alike in every corpus, seed and split)."""
    rng = np.random.default_rng([zlib.crc32(speaker.encode()), 0x57])
    count = int(rng.integers(3, 6))
    repertoire = tuple(Gesture(
        forward=float(rng.uniform(5, 18)), abduction=float(rng.uniform(-4, 10)),
        twist=float(rng.uniform(-15, 15)), flexion=float(rng.uniform(-8, 24)),
        wrist=float(rng.uniform(-15, 15)), hands="both" if rng.random() < 0.25 else "dominant")
        for _ in range(count))
    weights = rng.dirichlet(np.full(count, 2.0))
    return SpeakerStyle(
        speaker=speaker, handedness="left" if rng.random() < 0.25 else "right",
        other_hand=float(rng.uniform(0.05, 0.3)), abduction=float(rng.uniform(-3, 3)),
        elbow=float(rng.uniform(8, 28)), lean=float(rng.uniform(-2, 2)),
        head_roll=float(rng.uniform(-3, 3)), head_pitch=float(rng.uniform(-2, 2)),
        stance=float(rng.uniform(2, 6)), gesture_rate=float(rng.uniform(0.8, 1.15)),
        gesture_size=float(rng.uniform(0.85, 1.15)), nod=float(rng.uniform(3, 7)),
        repertoire=repertoire, weights=tuple(float(w) for w in weights),
        smile=float(rng.uniform(-0.05, 0.1)), brow=float(rng.uniform(0, 0.1)))
