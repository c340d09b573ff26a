"""Reading and writing a motion corpus's files.

    write_face_npz(path, weights_Tx52, jaw_Tx3)   /   weights, jaw, fps = read_face_npz(path)
    rot6d_Tx55x6 = load_body_6d(path)            # a body npz (BEAT2 layout) as 6D rotations
    summary, records = read_motion_corpus(MOTION)
    emotion_clip_set(records)                    # one take per emotion, same speaker and text

A face npz holds weights T x 52 (ARKit order), names, jaw T x 3 (FLAME jaw axis-angle) and
fps; bodies are BEAT2-layout npz files read through `codecs.motion.smplx_npz`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from emotive.codecs.motion import rotations
from emotive.codecs.motion.face import ARKIT_NAMES, NUM_ARKIT
from emotive.codecs.motion.smplx_npz import read_smplx_npz
from emotive.data.motion.cues import FPS
from emotive.data.speech import emotions as emo
from emotive.errors import UserError

__all__ = ["write_face_npz", "read_face_npz", "load_body_6d", "read_motion_corpus",
           "emotion_clip_set"]


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


def load_body_6d(path) -> np.ndarray:
    """6D rotations [T, 55, 6] of a body npz (read through smplx_npz)."""
    clip = read_smplx_npz(path, expect_fps=FPS)
    return rotations.axis_angle_to_rotation_6d(clip.poses).astype(np.float32)


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

