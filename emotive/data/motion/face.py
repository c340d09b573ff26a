"""Face motion of one take: ARKit-52 weights and the FLAME jaw.

    weights_Tx52, jaw_Tx3, blinks = face_motion(cues, style, em, rng)

The emotion sets base weights (brows, mouth corners, eyes, nose), the jaw scale and the
blink rate; jawOpen and the lower lip follow the RMS envelope (no phoneme timings: the stored
corpus has none; the envelope carries the syllable rhythm), funnel/pucker vary slowly with
it, pitch accents raise the brows, blinks are a Poisson process, eyes make small saccades.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from emotive.codecs.motion.face import ARKIT_INDEX, NUM_ARKIT, arkit_to_flame_jaw
from emotive.data.motion.cues import FPS, AudioCues
from emotive.data.motion.curves import pulse, noise
from emotive.data.motion.styles import EmotionMotion, SpeakerStyle

__all__ = ["face_motion"]


def _blinks(rng: np.random.Generator, t: np.ndarray, rate: float, duration: float
            ) -> tuple[np.ndarray, int]:
    out = np.zeros_like(t)
    when = rng.uniform(0.1, 0.6)
    count = 0
    while when < t[-1]:
        out = np.maximum(out, pulse(t, when, 0.4 * duration, 0.6 * duration))
        count += 1
        when += max(0.6, rng.exponential(1.0 / max(rate, 1e-3)))
    return out, count


def face_motion(cues: AudioCues, style: SpeakerStyle, em: EmotionMotion,
                rng: np.random.Generator, fps: float = FPS) -> tuple[np.ndarray, np.ndarray, int]:
    """(ARKit weights [T, 52] in [0, 1], FLAME jaw [T, 3], blinks) of one clip's cues, in a
    speaker's style and an emotion (float64)."""
    num = cues.num_frames
    t = np.arange(num) / fps
    speed = em.speed
    amp = em.amplitude * style.gesture_size
    face = np.zeros((num, NUM_ARKIT))
    for name, weight in em.face.items():
        face[:, ARKIT_INDEX[name]] += weight
    for name in ("mouthSmileLeft", "mouthSmileRight"):
        face[:, ARKIT_INDEX[name]] += style.smile
    face[:, ARKIT_INDEX["browInnerUp"]] += style.brow
    env = gaussian_filter1d(cues.envelope, 0.8)
    jaw = em.jaw * (0.02 + 0.55 * env ** 1.6) * (1.0 + 0.1 * noise(rng, num, fps, 3.0))
    face[:, ARKIT_INDEX["jawOpen"]] += jaw
    vowel = 0.5 + 0.5 * np.tanh(noise(rng, num, fps, 2.0))
    face[:, ARKIT_INDEX["mouthFunnel"]] += 0.25 * env * vowel
    face[:, ARKIT_INDEX["mouthPucker"]] += 0.2 * env * (1.0 - vowel)
    for s in ("Left", "Right"):
        face[:, ARKIT_INDEX[f"mouthLowerDown{s}"]] += 0.35 * env
        face[:, ARKIT_INDEX[f"mouthUpperUp{s}"]] += 0.1 * env
    face[:, ARKIT_INDEX["mouthClose"]] += 0.15 * (1.0 - env) * cues.activity
    brow = np.zeros(num)
    for accent, strength in zip(cues.accents, cues.accent_strength):
        brow += 0.25 * min(amp, 1.5) * strength * pulse(t, accent, 0.15, 0.35)
    for name in ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"):
        face[:, ARKIT_INDEX[name]] += brow
    blink, blinks = _blinks(rng, t, em.blink_rate, 0.22 / np.sqrt(speed))
    for s in ("Left", "Right"):
        face[:, ARKIT_INDEX[f"eyeBlink{s}"]] += blink
    look = noise(rng, num, fps, 0.8 + em.tremor)      # + gaze to the face's left
    for name, amount in (("eyeLookOutLeft", look), ("eyeLookInRight", look),
                         ("eyeLookInLeft", -look), ("eyeLookOutRight", -look)):
        face[:, ARKIT_INDEX[name]] += 0.15 * np.maximum(amount, 0.0)
    face = np.clip(face, 0.0, 1.0)
    flame_jaw = arkit_to_flame_jaw(face)
    return face, flame_jaw, blinks
