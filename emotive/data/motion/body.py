"""Body motion of one take: rest pose and posture, beat gestures, torso, legs and head.

    poses_Tx55x3, trans_Tx3, beats, nods = body_motion(cues, style, em, rng)

Beats: audio onsets trigger beat gestures with an emotion- and speaker-dependent
probability: one arm (or both) moves along one of the speaker's gesture templates and back,
an asymmetric raised cosine whose apex (a speed minimum: a motion beat) falls on the onset
(+-20 ms jitter). While speech is active both forearms rise into gesture space, the dominant
one more. Pitch accents get head nods and a stronger beat. The emotion sets posture (spine
lean, head pitch and yaw, shoulder shrug, arm width) and tension (finger curl, tremor).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from emotive.codecs.motion import rotations
from emotive.codecs.motion.skeleton import SMPLX
from emotive.data.motion.cues import FPS, AudioCues
from emotive.data.motion.curves import pulse, noise
from emotive.data.motion.styles import EmotionMotion, SpeakerStyle

__all__ = ["body_motion"]

_J = {name: i for i, name in enumerate(SMPLX.names)}
_FINGER_JOINTS = [j for j, name in enumerate(SMPLX.names) if name.startswith("left_")
                  and any(f in name for f in ("index", "middle", "pinky", "ring", "thumb"))]


def body_motion(cues: AudioCues, style: SpeakerStyle, em: EmotionMotion,
                rng: np.random.Generator, fps: float = FPS
                ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(SMPL-X poses [T, 55, 3] axis-angle (the jaw left at zero), root translation [T, 3],
    beats, nods) of one clip's cues, in a speaker's style and an emotion."""
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
        p = pulse(t, onset + rng.normal(0.0, 0.02), 0.7 * width, 1.3 * width) * size
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
    euler[:, _J["spine2"], 1] += 2.5 * amp * noise(rng, num, fps, 0.3 * speed)
    sway = 0.012 * noise(rng, num, fps, 0.15 * speed)
    compensation = -np.degrees(np.arcsin(np.clip(sway / 0.85, -1, 1)))
    for leg in ("left", "right"):
        euler[:, _J[f"{leg}_hip"], 2] += compensation
        euler[:, _J[f"{leg}_ankle"], 2] -= compensation
    euler[:, _J["pelvis"], 1] += 2.0 * noise(rng, num, fps, 0.1 * speed)
    trans = np.stack([sway, np.zeros(num), 0.005 * noise(rng, num, fps, 0.1)], -1)

    # Head: posture, nods on accents, pitch follows F0, slow (or darting) gaze turns, tremor.
    head_pitch = em.head_pitch + style.head_pitch - 0.35 * amp * cues.pitch
    nods = 0
    for accent, strength in zip(cues.accents, cues.accent_strength):
        head_pitch = head_pitch + style.nod * min(amp, 1.6) * strength * pulse(
            t, accent + rng.normal(0.0, 0.02), 0.6 * width * 1.5, 1.4 * width * 1.5)
        nods += 1
    dart = 5.0 * em.tremor * noise(rng, num, fps, 1.5)
    head_yaw = em.head_yaw + 4.0 * amp * noise(rng, num, fps, 0.3 * speed) + dart
    euler[:, _J["neck"], 0] += 0.4 * head_pitch
    euler[:, _J["head"], 0] += 0.6 * head_pitch
    euler[:, _J["neck"], 1] += 0.4 * head_yaw
    euler[:, _J["head"], 1] += 0.6 * head_yaw
    euler[:, _J["head"], 2] += style.head_roll + 1.5 * noise(rng, num, fps, 0.2)
    if em.tremor > 0:
        for joint in ("elbow", "wrist"):
            side(joint, 0.0, em.tremor * noise(rng, num, fps, 9.0), 0.0)
        euler[:, _J["head"], 0] += 0.5 * em.tremor * noise(rng, num, fps, 9.0)
    tense = 0.3 + 1.2 * em.tension
    side("wrist", tense * noise(rng, num, fps, 2.0), 0.0, tense * noise(rng, num, fps, 2.0))

    matrices = rotations.euler_to_matrix(euler, "XYZ")
    poses = rotations.matrix_to_axis_angle(matrices)
    return poses, trans, beats, nods
