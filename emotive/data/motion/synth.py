"""The embedded emotional motion corpus: body and face tracks planted on the speech corpus.

    emotive data motion --preset tiny|full --speech SPEECH --out MOTION [--seed S] [--workers N]

For every clip of a speech corpus made by `emotive data synth` (SPEECH/metadata.jsonl), this
writes `takes` motions (tiny 1, full 2), each driven by the clip's own audio and labels:

    MOTION/smplx/<split>/<clip_id>-k<take>.npz   body, BEAT2 layout (smplx_npz): poses T x 165
                                                 axis-angle (55 SMPL-X joints), trans T x 3,
                                                 betas (300 zeros), mocap_frame_rate 30
    MOTION/face/<split>/<clip_id>-k<take>.npz    face: weights T x 52 (ARKit order), names,
                                                 jaw T x 3 (FLAME jaw axis-angle), fps 30
    MOTION/metadata.jsonl                        one record per take (split, speaker, emotion,
                                                 intensity, text, audio path, counts, ...)
    MOTION/corpus.json                           the summary build_motion_corpus returns
    MOTION/fgd_autoencoder.npz                   the FGD feature extractor, trained with a
                                                 fixed seed on the train split's bodies

T = round(audio seconds x 30), so motion and audio agree to half a frame (check_sync).

What is planted (all of it known, so metrics and models can be checked against it):
- Beats. Audio onsets (`metrics.motion.audio_onsets(method="energy")`, the rise of the log
  energy) trigger beat gestures with an emotion- and speaker-dependent probability: one arm
  (or both) moves along one of the speaker's gesture templates and back, an asymmetric raised
  cosine whose apex (a speed minimum: a motion beat) falls on the onset (+-20 ms jitter).
  While speech is active both forearms rise into gesture space, the dominant one more.
- Pitch accents (F0 and energy prominence from `prosody`'s pitch tracker) get head nods, a
  brow raise, and a stronger beat.
- Emotion (8, `emotions.EMOTIONS`, scaled by intensity as the speech is: 0.6 at intensity 1)
  sets gesture amplitude and speed (pulse widths, sway rate), posture (spine lean, head
  pitch and yaw, shoulder shrug, arm width), tension (finger curl, tremor) and the face (brows,
  mouth corners, eyes, nose, jaw scale, blink rate): sad is slumped, slow and small; angry
  leans in, wide, sharp and tense with fists; fearful hunches, shrugs and trembles, gaze
  darting; surprised leans back with the head up and brows raised; happy is upright, wide and
  quick and smiles; calm is slow, small and relaxed; disgusted turns the head away, nose
  sneered; neutral sits in the middle.
- Speaker style, deterministic from the speaker id (`speaker_style`): handedness, how often
  the other or both hands join, rest pose (arm abduction, elbow bend, lean, head tilt, stance),
  gesture rate and size, nod size, and a personal repertoire of 3-5 gesture templates.
- Face: jawOpen and the lower lip follow the RMS envelope (no phoneme timings: the stored
  corpus has none; the envelope carries the syllable rhythm), funnel/pucker vary slowly with
  it, blinks are a Poisson process (rate by emotion), eyes make small saccades.
- Stochastic: each take draws its own gestures, jitter, sway, blinks and noise from
  seed(seed, clip id, take), so one audio has several valid motions, and a build is
  byte-identical for a seed whatever the worker count.

Splits are the speech corpus's own (speaker- and text-disjoint); each record keeps its clip's
split. The layout mirrors BEAT2's npz so the same readers serve both.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import shutil
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.ndimage import gaussian_filter1d

from emotive.codecs.motion import rotations
from emotive.codecs.motion.face import ARKIT_INDEX, ARKIT_NAMES, NUM_ARKIT, arkit_to_flame_jaw
from emotive.codecs.motion.skeleton import SMPLX
from emotive.codecs.motion.smplx_npz import SmplxClip, read_smplx_npz, write_smplx_npz
from emotive.data.speech import emotions as emo
from emotive.data.speech import prosody
from emotive.errors import UserError
from emotive.metrics import motion as motion_metrics

FPS = 30.0
SPLITS = ("train", "validation", "test")
BETAS = 300   # BEAT2's shape width (all zero: the neutral body)


@dataclasses.dataclass(frozen=True)
class MotionPreset:
    """takes: motions per speech clip; fgd_steps / fgd_takes: the FGD autoencoder's training
    steps and the most train-split takes it reads."""

    takes: int
    fgd_steps: int
    fgd_takes: int


PRESETS = {"tiny": MotionPreset(1, 300, 400), "full": MotionPreset(2, 600, 2000)}


# ----------------------------------------------------------------------------------------------
# Emotion and speaker parameters
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Audio analysis
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AudioCues:
    """What drives one clip's motion, at the motion's frame rate.

    envelope [T] in [0, 1] (RMS in dB over the clip's top 35 dB); activity [T] in [0, 1]
    (speech present, smoothed); pitch [T] semitones about the clip's mean (0 unvoiced);
    onsets / accents: times (s) with strengths in [0, 1].
    """

    num_frames: int
    envelope: np.ndarray
    activity: np.ndarray
    pitch: np.ndarray
    onsets: np.ndarray
    onset_strength: np.ndarray
    accents: np.ndarray
    accent_strength: np.ndarray


def num_motion_frames(num_samples: int, sample_rate: int, fps: float = FPS) -> int:
    """Motion frames for audio of `num_samples`: round(seconds x fps), at least 2."""
    return max(2, int(round(num_samples / sample_rate * fps)))


def analyse_audio(x: np.ndarray, sr: int, fps: float = FPS) -> AudioCues:
    """The cues of a mono waveform `x` (float, [-1, 1])."""
    x = np.asarray(x, np.float64)
    num = num_motion_frames(x.size, sr, fps)
    frame_t = np.arange(num) / fps
    env = motion_metrics.audio_envelope(x, sr, fps, num)
    env_db = 20 * np.log10(env + 1e-6)
    envelope = np.clip((env_db - (env_db.max() - 35.0)) / 35.0, 0.0, 1.0)
    activity = gaussian_filter1d((envelope > 0.3).astype(float), 3.0)
    activity = np.clip(activity * 1.6, 0.0, 1.0)

    # Pitch accents: prominence of F0 and energy over voiced 10 ms hops (prosody's tracker).
    hop = sr // 100
    win = int(0.025 * sr)
    frames = prosody.frame_windows(x, win, hop)
    db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-10)
    f0, strength = prosody.pitch_track(x, sr, hop)
    n = min(db.size, f0.size)
    db, f0, strength = db[:n], f0[:n], strength[:n]
    voiced = (db > db.max() - 30.0) & (strength >= prosody.VOICING_THRESHOLD)
    st = 12 * np.log2(np.maximum(f0, 1.0) / 100.0)
    voiced = prosody.drop_pitch_outliers(st, voiced)
    hop_t = (np.arange(n) * hop + win / 2) / sr
    accents, accent_strength = np.zeros(0), np.zeros(0)
    pitch = np.zeros(num)
    if voiced.sum() >= 5:
        mean, spread = st[voiced].mean(), max(st[voiced].std(), 0.5)
        db_mean, db_spread = db[voiced].mean(), max(db[voiced].std(), 1.0)
        prom = np.where(voiced, (st - mean) / spread + 0.5 * (db - db_mean) / db_spread, -np.inf)
        picks = []
        for i in np.argsort(-prom):
            if prom[i] < 0.6:
                break
            is_peak = prom[i] == prom[max(0, i - 15):i + 16].max()
            if is_peak and all(abs(i - j) >= 40 for j in picks):   # 150 ms peak, 400 ms apart
                picks.append(int(i))
        picks.sort()
        accents = hop_t[picks]
        accent_strength = np.clip(prom[picks] / 2.0, 0.3, 1.0)
        held = np.interp(hop_t, hop_t[voiced], st[voiced] - mean)
        pitch = gaussian_filter1d(np.interp(frame_t, hop_t, np.where(voiced, held, 0.0)), 1.5)

    onsets = motion_metrics.audio_onsets(x, sr, method="energy")
    ahead = np.minimum(np.round((onsets + 0.05) * fps).astype(int), num - 1)
    onset_strength = envelope[ahead] if onsets.size else np.zeros(0)
    return AudioCues(num, envelope, activity, pitch, onsets, onset_strength, accents,
                     accent_strength)


# ----------------------------------------------------------------------------------------------
# Motion
# ----------------------------------------------------------------------------------------------

_J = {name: i for i, name in enumerate(SMPLX.names)}
_FINGER_JOINTS = [j for j, name in enumerate(SMPLX.names) if name.startswith("left_")
                  and any(f in name for f in ("index", "middle", "pinky", "ring", "thumb"))]


def _noise(rng: np.random.Generator, num: int, fps: float, hz: float) -> np.ndarray:
    """Unit-variance noise [num] low-passed to about `hz` (scaled by the filter's own gain,
    not the clip's spread: a slow drift stays small over a short clip)."""
    sigma = fps / (2 * np.pi * hz)
    pad = int(3 * sigma) + 1
    x = gaussian_filter1d(rng.standard_normal(num + 2 * pad), sigma)[pad:pad + num]
    return x * np.sqrt(2.0 * np.sqrt(np.pi) * max(sigma, 0.5))


def _pulse(t: np.ndarray, centre: float, before: float, after: float) -> np.ndarray:
    """An asymmetric raised cosine: 0 outside [centre - before, centre + after], 1 at centre
    (its apex, where the speed is zero)."""
    u = np.where(t < centre, (t - centre) / before, (t - centre) / after)
    return np.where(np.abs(u) < 1.0, 0.5 * (1.0 + np.cos(np.pi * u)), 0.0)


def _blinks(rng: np.random.Generator, t: np.ndarray, rate: float, duration: float
            ) -> tuple[np.ndarray, int]:
    out = np.zeros_like(t)
    when = rng.uniform(0.1, 0.6)
    count = 0
    while when < t[-1]:
        out = np.maximum(out, _pulse(t, when, 0.4 * duration, 0.6 * duration))
        count += 1
        when += max(0.6, rng.exponential(1.0 / max(rate, 1e-3)))
    return out, count


@dataclasses.dataclass
class Take:
    """One generated motion: SMPL-X poses [T, 55, 3] axis-angle, trans [T, 3], ARKit face
    weights [T, 52], FLAME jaw [T, 3], and counts of what was planted."""

    poses: np.ndarray
    trans: np.ndarray
    face: np.ndarray
    jaw: np.ndarray
    beats: int
    nods: int
    blinks: int


def synth_take(cues: AudioCues, style: SpeakerStyle, em: EmotionMotion,
               rng: np.random.Generator, fps: float = FPS) -> Take:
    """One motion for one clip's cues, in a speaker's style and an emotion."""
    num = cues.num_frames
    t = np.arange(num) / fps
    speed = em.speed
    amp = em.amplitude * style.gesture_size
    euler = np.zeros((num, SMPLX.num_joints, 3))   # degrees, intrinsic XYZ, per joint

    def side(joint: str, x, y, z, which: str = "both"):
        """Adds left-side angles to left_<joint> and their mirror image to right_<joint>."""
        x, y, z = (np.broadcast_to(np.asarray(v, np.float64), t.shape) for v in (x, y, z))
        if which in ("both", "left"):
            euler[:, _J[f"left_{joint}"]] += np.stack([x, y, z], -1)
        if which in ("both", "right"):   # mirrored in x: (ax, ay, az) -> (ax, -ay, -az)
            euler[:, _J[f"right_{joint}"]] += np.stack([x, -y, -z], -1)

    dominant = style.handedness
    other = "left" if dominant == "right" else "right"

    # Rest pose and posture: arms down (abduction about z), elbows bent, emotion posture.
    rest_abd = -(72.0 - em.width - style.abduction)
    side("shoulder", -4.0, 0.0, rest_abd)
    side("elbow", 0.0, -(style.elbow + 12.0 * em.tension), 0.0)
    side("collar", 0.0, -0.4 * max(em.shrug, 0.0), em.shrug)
    curl = 12.0 + 50.0 * em.tension
    for k, j in enumerate(_FINGER_JOINTS):
        name = SMPLX.names[j][len("left_"):]
        scale = 0.5 if name.startswith("thumb") else (1.0, 1.2, 0.8)[int(name[-1]) - 1]
        side(name, 0.0, 0.0, -curl * scale)
    side("hip", 0.0, 0.0, style.stance)

    # Gesture space: forearms rise while speaking (the dominant arm more), eased by speed.
    act = gaussian_filter1d(cues.activity, max(1.0, 4.0 / speed))
    for hand, share in ((dominant, 1.0), (other, 0.5)):
        side("shoulder", -10.0 * amp * share * act, 0.0, 0.0, hand)
        side("elbow", 0.0, -28.0 * amp * share * act, 0.0, hand)

    # Beats on onsets: a template from the repertoire, apex on the onset.
    width = 0.2 / speed
    beats = 0
    accent_near = (np.abs(cues.onsets[:, None] - cues.accents[None, :]).min(1) < 0.12
                   if cues.accents.size and cues.onsets.size else np.zeros(cues.onsets.size, bool))
    for onset, strength, accented in zip(cues.onsets, cues.onset_strength, accent_near):
        if rng.random() > min(1.0, em.beat_rate * style.gesture_rate + 0.3 * accented):
            continue
        g = style.repertoire[rng.choice(len(style.repertoire), p=style.weights)]
        if g.hands == "both":
            hands = ("left", "right")
        else:
            hands = (other,) if rng.random() < style.other_hand else (dominant,)
        size = min(2.2, amp * (0.5 + 0.5 * strength) * (1.3 if accented else 1.0)
                   * rng.lognormal(0, 0.2))
        p = _pulse(t, onset + rng.normal(0.0, 0.02), 0.7 * width, 1.3 * width) * size
        for hand in hands:
            side("shoulder", -g.forward * p, g.twist * p, g.abduction * p, hand)
            side("elbow", 0.0, -g.flexion * p, 0.0, hand)
            side("wrist", 0.0, 0.0, g.wrist * p, hand)
        sign = 1.0 if dominant == "left" else -1.0
        euler[:, _J["spine3"], 1] += sign * 3.0 * p
        euler[:, _J["spine2"], 0] += 1.5 * em.tension * p
        beats += 1

    # Torso: posture, breathing, slow sway; legs compensate the weight shift.
    breath = 0.8 * np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 2 * np.pi))
    lean = em.lean + style.lean
    for joint, share in (("spine1", 0.35), ("spine2", 0.35), ("spine3", 0.3)):
        euler[:, _J[joint], 0] += share * lean
    euler[:, _J["spine3"], 0] += breath
    euler[:, _J["spine2"], 1] += 2.5 * amp * _noise(rng, num, fps, 0.3 * speed)
    sway = 0.012 * _noise(rng, num, fps, 0.15 * speed)
    compensation = -np.degrees(np.arcsin(np.clip(sway / 0.85, -1, 1)))
    for leg in ("left", "right"):
        euler[:, _J[f"{leg}_hip"], 2] += compensation
        euler[:, _J[f"{leg}_ankle"], 2] -= compensation
    euler[:, _J["pelvis"], 1] += 2.0 * _noise(rng, num, fps, 0.1 * speed)
    trans = np.stack([sway, np.zeros(num), 0.005 * _noise(rng, num, fps, 0.1)], -1)

    # Head: posture, nods on accents, pitch follows F0, slow (or darting) gaze turns, tremor.
    head_pitch = em.head_pitch + style.head_pitch - 0.35 * amp * cues.pitch
    nods = 0
    for accent, strength in zip(cues.accents, cues.accent_strength):
        head_pitch = head_pitch + style.nod * min(amp, 1.6) * strength * _pulse(
            t, accent + rng.normal(0.0, 0.02), 0.6 * width * 1.5, 1.4 * width * 1.5)
        nods += 1
    dart = 5.0 * em.tremor * _noise(rng, num, fps, 1.5)
    head_yaw = em.head_yaw + 4.0 * amp * _noise(rng, num, fps, 0.3 * speed) + dart
    euler[:, _J["neck"], 0] += 0.4 * head_pitch
    euler[:, _J["head"], 0] += 0.6 * head_pitch
    euler[:, _J["neck"], 1] += 0.4 * head_yaw
    euler[:, _J["head"], 1] += 0.6 * head_yaw
    euler[:, _J["head"], 2] += style.head_roll + 1.5 * _noise(rng, num, fps, 0.2)
    if em.tremor > 0:
        for joint in ("elbow", "wrist"):
            side(joint, 0.0, em.tremor * _noise(rng, num, fps, 9.0), 0.0)
        euler[:, _J["head"], 0] += 0.5 * em.tremor * _noise(rng, num, fps, 9.0)
    tense = 0.3 + 1.2 * em.tension
    side("wrist", tense * _noise(rng, num, fps, 2.0), 0.0, tense * _noise(rng, num, fps, 2.0))

    # Face.
    face = np.zeros((num, NUM_ARKIT))
    for name, weight in em.face.items():
        face[:, ARKIT_INDEX[name]] += weight
    for name in ("mouthSmileLeft", "mouthSmileRight"):
        face[:, ARKIT_INDEX[name]] += style.smile
    face[:, ARKIT_INDEX["browInnerUp"]] += style.brow
    env = gaussian_filter1d(cues.envelope, 0.8)
    jaw = em.jaw * (0.02 + 0.55 * env ** 1.6) * (1.0 + 0.1 * _noise(rng, num, fps, 3.0))
    face[:, ARKIT_INDEX["jawOpen"]] += jaw
    vowel = 0.5 + 0.5 * np.tanh(_noise(rng, num, fps, 2.0))
    face[:, ARKIT_INDEX["mouthFunnel"]] += 0.25 * env * vowel
    face[:, ARKIT_INDEX["mouthPucker"]] += 0.2 * env * (1.0 - vowel)
    for s in ("Left", "Right"):
        face[:, ARKIT_INDEX[f"mouthLowerDown{s}"]] += 0.35 * env
        face[:, ARKIT_INDEX[f"mouthUpperUp{s}"]] += 0.1 * env
    face[:, ARKIT_INDEX["mouthClose"]] += 0.15 * (1.0 - env) * cues.activity
    brow = np.zeros(num)
    for accent, strength in zip(cues.accents, cues.accent_strength):
        brow += 0.25 * min(amp, 1.5) * strength * _pulse(t, accent, 0.15, 0.35)
    for name in ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"):
        face[:, ARKIT_INDEX[name]] += brow
    blink, blinks = _blinks(rng, t, em.blink_rate, 0.22 / np.sqrt(speed))
    for s in ("Left", "Right"):
        face[:, ARKIT_INDEX[f"eyeBlink{s}"]] += blink
    look = _noise(rng, num, fps, 0.8 + em.tremor)      # + gaze to the face's left
    for name, amount in (("eyeLookOutLeft", look), ("eyeLookInRight", look),
                         ("eyeLookInLeft", -look), ("eyeLookOutRight", -look)):
        face[:, ARKIT_INDEX[name]] += 0.15 * np.maximum(amount, 0.0)
    face = np.clip(face, 0.0, 1.0)
    flame_jaw = arkit_to_flame_jaw(face)

    matrices = rotations.euler_to_matrix(euler, "XYZ")
    poses = rotations.matrix_to_axis_angle(matrices)
    poses[:, _J["jaw"]] = flame_jaw
    return Take(poses, trans, face.astype(np.float32), flame_jaw.astype(np.float32), beats,
                nods, blinks)


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def write_face_npz(path, weights_Tx52, jaw_Tx3, fps: float = FPS) -> None:
    """Writes a face track: weights [T, 52] (ARKit order), names, jaw [T, 3], fps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, weights=np.asarray(weights_Tx52, np.float32), names=np.asarray(ARKIT_NAMES),
                 jaw=np.asarray(jaw_Tx3, np.float32), fps=np.asarray(float(fps)))


def read_face_npz(path) -> tuple[np.ndarray, np.ndarray, float]:
    """(weights [T, 52], FLAME jaw [T, 3], fps) of a face npz; UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such face file; check the path")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except Exception as e:
        raise UserError(f"{path}: not a readable face npz ({type(e).__name__})") from None
    missing = [k for k in ("weights", "jaw", "fps") if k not in data]
    if missing:
        raise UserError(f"{path}: missing keys {missing}; found {sorted(data)}; a face track "
                        "needs weights (T x 52), jaw (T x 3) and fps")
    weights, jaw = np.asarray(data["weights"]), np.asarray(data["jaw"])
    if weights.ndim != 2 or weights.shape[1] != NUM_ARKIT or jaw.shape != (len(weights), 3):
        raise UserError(f"{path}: weights {weights.shape} and jaw {jaw.shape}; expected "
                        f"(T, {NUM_ARKIT}) and (T, 3)")
    if not (np.isfinite(weights).all() and np.isfinite(jaw).all()):
        raise UserError(f"{path}: holds NaN or Inf; fix or drop the file")
    return weights, jaw, float(data["fps"])


def _read_speech(speech_dir: Path) -> list[dict]:
    meta = speech_dir / "metadata.jsonl"
    if not meta.is_file():
        raise UserError(f"--speech {speech_dir} has no metadata.jsonl; make the speech corpus "
                        f"with `emotive data synth --preset tiny --out {speech_dir}`")
    rows = []
    for n, line in enumerate(meta.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise UserError(f"{meta}: line {n} is not JSON; rebuild the speech corpus") from None
        missing = [k for k in ("id", "path", "split", "speaker", "emotion", "intensity")
                   if k not in row]
        if missing or row.get("split") not in SPLITS or row.get("emotion") not in emo.EMOTIONS:
            why = f"missing {missing}" if missing else "an unknown split or emotion"
            raise UserError(f"{meta}: line {n} has {why}; rebuild the speech corpus")
        rows.append(row)
    if not rows:
        raise UserError(f"{meta}: lists no clips; rebuild the speech corpus")
    return rows


def _prepare_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a new or empty directory")
    if out.is_dir() and any(out.iterdir()):
        if not (out / "corpus.json").is_file() or not (out / "smplx").is_dir():
            raise UserError(f"--out {out} is a non-empty directory that is not a motion "
                            "corpus; pass a new or empty directory")
        for name in ("smplx", "face"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("metadata.jsonl", "corpus.json", "fgd_autoencoder.npz"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


_WORKER: dict = {}


def _init_worker(speech_dir: str, out_dir: str, takes: int, seed: int) -> None:
    _WORKER.update(speech=Path(speech_dir), out=Path(out_dir), takes=takes, seed=seed)


def _make_clip(row: dict) -> list[dict]:
    """Every take of one speech clip: writes its files, returns their metadata records."""
    speech, out = _WORKER["speech"], _WORKER["out"]
    wav = speech / row["path"]
    try:
        x, sr = sf.read(wav, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise UserError(f"{wav}: unreadable audio ({e}); rebuild the speech corpus") from None
    x = x.mean(axis=1)
    cues = analyse_audio(x, sr)
    style = speaker_style(row["speaker"])
    em = emotion_motion(row["emotion"], int(row["intensity"]))
    records = []
    for take in range(_WORKER["takes"]):
        take_id = f"{row['id']}-k{take}"
        seed = zlib.crc32(f"{_WORKER['seed']}/{take_id}".encode())
        motion = synth_take(cues, style, em, np.random.default_rng([seed, 0x30]))
        body = Path("smplx") / row["split"] / f"{take_id}.npz"
        face = Path("face") / row["split"] / f"{take_id}.npz"
        write_smplx_npz(out / body, SmplxClip(motion.poses, motion.trans, np.zeros(BETAS), FPS,
                                              gender="neutral"))
        write_face_npz(out / face, motion.face, motion.jaw)
        records.append(dict(
            id=take_id, clip=row["id"], take=take, split=row["split"], speaker=row["speaker"],
            emotion=row["emotion"], intensity=int(row["intensity"]),
            condition=row.get("condition", "clean"), text=row.get("text", ""),
            text_kind=row.get("text_kind", ""), audio=row["path"], body=body.as_posix(),
            face=face.as_posix(), frames=cues.num_frames, fps=FPS, seconds=x.size / sr,
            sync_offset_s=round(cues.num_frames / FPS - x.size / sr, 5),
            onsets=int(cues.onsets.size), accents=int(cues.accents.size), beats=motion.beats,
            nods=motion.nods, blinks=motion.blinks, handedness=style.handedness, seed=seed))
    return records


def load_body_6d(path) -> np.ndarray:
    """6D rotations [T, 55, 6] of a body npz (read through smplx_npz)."""
    clip = read_smplx_npz(path, expect_fps=FPS)
    return rotations.axis_angle_to_rotation_6d(clip.poses).astype(np.float32)


def _train_fgd(out: Path, records: list[dict], preset: MotionPreset, seed: int,
               steps: int | None) -> dict:
    train = [r for r in records if r["split"] == "train"]
    if len(train) > preset.fgd_takes:
        train = [train[i] for i in np.linspace(0, len(train) - 1, preset.fgd_takes).astype(int)]
    windows = motion_metrics.motion_windows([load_body_6d(out / r["body"]) for r in train],
                                            stride=8)
    extractor = motion_metrics.fit_feature_extractor(
        windows, seed=seed, steps=preset.fgd_steps if steps is None else steps)
    extractor.save(out / "fgd_autoencoder.npz")
    return {"path": "fgd_autoencoder.npz", **extractor.protocol()}


def build_motion_corpus(speech_dir, out_dir, preset: str = "tiny", seed: int = 0,
                        workers: int | None = 1, progress: bool = True,
                        limit: int | None = None, fgd: bool = True,
                        fgd_steps: int | None = None) -> dict:
    """Writes the motion corpus for the speech corpus in `speech_dir`; returns its summary
    (also OUT/corpus.json). workers: processes (None = all cores); limit: only this many
    speech clips, spread evenly (quick checks); fgd: train the FGD autoencoder at the end
    (fgd_steps: its steps, default the preset's)."""
    if preset not in PRESETS:
        raise UserError(f"unknown motion preset {preset!r}; use one of {', '.join(PRESETS)}")
    if seed < 0:
        raise UserError(f"--seed must be 0 or more, got {seed}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    start = time.perf_counter()
    cfg = PRESETS[preset]
    speech, out = Path(speech_dir), Path(out_dir)
    if not speech.is_dir():
        raise UserError(f"--speech {speech} is not a directory; pass a corpus made by "
                        "`emotive data synth`")
    rows = _read_speech(speech)
    if limit is not None and limit < len(rows):
        rows = [rows[i] for i in np.unique(np.linspace(0, len(rows) - 1, limit).astype(int))]
    _prepare_out_dir(out)
    workers = min(workers or os.cpu_count() or 1, len(rows))
    init = (str(speech.resolve()), str(out), cfg.takes, seed)

    from tqdm import tqdm
    bar = tqdm(total=len(rows), unit="clip", desc=f"motion {preset}", disable=not progress)
    records = []
    if workers == 1:
        _init_worker(*init)
        for row in rows:
            records += _make_clip(row)
            bar.update()
    else:
        methods = multiprocessing.get_all_start_methods()
        method = "forkserver" if "forkserver" in methods else "spawn"
        with multiprocessing.get_context(method).Pool(workers, _init_worker, init) as pool:
            for recs in pool.imap(_make_clip, rows, chunksize=8):
                records += recs
                bar.update()
    bar.close()
    with open(out / "metadata.jsonl", "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    motion_seconds = time.perf_counter() - start
    fgd_info = _train_fgd(out, records, cfg, seed, fgd_steps) if fgd else None

    def count(key, rows=records):
        return {str(k): v for k, v in sorted(Counter(r[key] for r in rows).items())}

    splits = {}
    for split in SPLITS:
        rows_s = [r for r in records if r["split"] == split]
        splits[split] = dict(takes=len(rows_s), clips=len({r["clip"] for r in rows_s}),
                             speakers=sorted({r["speaker"] for r in rows_s}),
                             texts=len({r["text"] for r in rows_s}),
                             hours=round(sum(r["seconds"] for r in rows_s) / 3600, 4))
    summary = dict(
        preset=preset, seed=seed, limit=limit, speech_dir=str(speech.resolve()), fps=FPS,
        takes_per_clip=cfg.takes, clips=len(rows), takes=len(records), splits=splits,
        per_emotion=count("emotion"), per_speaker=count("speaker"),
        max_sync_offset_s=max(abs(r["sync_offset_s"]) for r in records),
        speaker_styles={s: speaker_style(s).to_dict()
                        for s in sorted({r["speaker"] for r in records})},
        fgd_autoencoder=fgd_info, motion_seconds=round(motion_seconds, 2),
        build_seconds=round(time.perf_counter() - start, 2))
    (out / "corpus.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def read_motion_corpus(motion_dir) -> tuple[dict, list[dict]]:
    """(summary, records) of a motion corpus; UserError naming what is missing."""
    root = Path(motion_dir)
    for name in ("corpus.json", "metadata.jsonl"):
        if not (root / name).is_file():
            raise UserError(f"{root / name}: no such file; make the corpus with `emotive data "
                            f"motion --speech SPEECH --out {root}`")
    summary = json.loads((root / "corpus.json").read_text())
    records = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()
               if line.strip()]
    return summary, records


def emotion_clip_set(records: list[dict], *, take: int = 0) -> dict[str, dict]:
    """One record per emotion, all of one speaker and text (intensity 2 where the emotion
    has it): the first (speaker, text) in the corpus that has all eight. {} if none has."""
    groups: dict[tuple, dict[str, dict]] = {}
    for r in records:
        if r["take"] != take or r.get("condition", "clean") != "clean":
            continue
        if r["intensity"] == max(emo.intensities(r["emotion"])):
            groups.setdefault((r["speaker"], r["text"]), {})[r["emotion"]] = r
    for group in groups.values():
        if len(group) == len(emo.EMOTIONS):
            return {e: group[e] for e in emo.EMOTIONS}
    return {}


def format_summary(summary: dict) -> str:
    lines = [f"motion corpus: preset={summary['preset']} seed={summary['seed']} "
             f"clips={summary['clips']} takes={summary['takes']} built in "
             f"{summary['build_seconds']:.1f} s (motion {summary['motion_seconds']:.1f} s)"]
    for split, info in summary["splits"].items():
        lines.append(f"  {split:<10} {info['takes']:>6} takes {info['hours']:>7.3f} h  "
                     f"{len(info['speakers'])} speakers  {info['texts']} texts")
    lines.append("  emotion    " + ", ".join(f"{k}={v}" for k, v in summary["per_emotion"].items()))
    lines.append(f"  sync       max |motion - audio| {summary['max_sync_offset_s'] * 1000:.1f} ms")
    if summary.get("fgd_autoencoder"):
        f = summary["fgd_autoencoder"]
        lines.append(f"  fgd        {f['path']} ({f['trained_steps']} steps, loss "
                     f"{f['first_loss']} -> {f['final_loss']}, sha256 {f['sha256_16']})")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the `data motion` options to an argparse parser."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny",
                        help="tiny: one motion per speech clip; full: two (default tiny)")
    parser.add_argument("--speech", required=True,
                        help="a speech corpus made by `emotive data synth` (its metadata.jsonl)")
    parser.add_argument("--out", required=True, help="output directory (new, empty, or an old "
                        "motion corpus)")
    parser.add_argument("--seed", type=int, default=0, help="seed for every random choice")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes (default 1; 0 = all cores)")
    parser.add_argument("--fgd-steps", type=int, default=None,
                        help="training steps of the FGD autoencoder (default: the preset's, "
                             "tiny 300, full 600; 0 = do not train one)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    if args.fgd_steps is not None and args.fgd_steps < 0:
        raise UserError(f"--fgd-steps must be 0 or more, got {args.fgd_steps}")
    summary = build_motion_corpus(args.speech, args.out, preset=args.preset, seed=args.seed,
                                  workers=args.workers or None, progress=not args.no_progress,
                                  fgd=args.fgd_steps != 0, fgd_steps=args.fgd_steps)
    print(format_summary(summary))
    return 0
