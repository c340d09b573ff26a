"""TFDS builders for real motion corpora: BEAT2 (speech + SMPL-X + FLAME) and AMASS (SMPL-X).

    emotive data build beat2 --src BEAT2/beat_english_v2.0.0 --out DATA_DIR
    emotive data build amass --src AMASS --out DATA_DIR

beat2  a BEAT2 language folder: smplxflame_30/ID.npz (SMPL-X poses T x 165, trans, betas 300,
       expressions T x 100, mocap_frame_rate 30), wave16k/ID.wav and train_test_split.csv
       (columns id,type; type train, val, test or additional). val -> 'validation';
       'additional' takes join 'train' (EMAGE's additional data) unless additional=False, when
       they are skipped and counted. Speaker: the first two fields of the id ("2_scott").
amass  an AMASS SMPL-X download: DATASET/SUBJECT/*.npz (*_stageii.npz, or any npz with poses or
       AMASS's split pose keys; shape files such as shape.npz and *_stagei.npz are skipped).
       Motion only; resampled to `fps` (30 by default, linear translation, slerped rotations;
       each file's conversion is listed in the report). Splits by dataset folder, the split
       VPoser and most AMASS work use: validation HumanEva, MPI_HDM05, SFU, MPI_mosh; test
       Transitions_mocap, SSM_synced; every other folder train. Speaker: DATASET/SUBJECT.

Features: id, poses [T, 165] float32 axis-angle, trans [T, 3], betas [B], fps, num_frames,
speaker; beat2 adds audio (int16 16 kHz), sample_rate, expressions [T, 100] (zeros and
has_expressions False when a file has none) and sync_offset_s (motion minus audio seconds).

Audio/motion offsets are checked on import (`codecs.motion.clip.check_sync`, tolerance
`sync_tolerance_s`, 0.1 s by default): a take whose lengths disagree beyond it is rejected as
`out_of_sync` in the build report with both durations, never cut to fit. Every other bad file
(wrong keys, NaN poses, a wrong joint count, a wrong frame rate, unreadable audio, no audio or
no motion for an id) is rejected with its reason; nothing is dropped without an entry in
`build_report.json` (`emotive.data.builders.tfds_io.BuildReport`).
"""

from __future__ import annotations

import csv
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from emotive.codecs.motion.clip import check_sync, resample_motion
from emotive.codecs.motion.smplx_npz import SmplxClip, read_smplx_npz
from emotive.configs.common import SAMPLE_RATE
from emotive.data.builders import tfds_io
from emotive.data.builders.base import SPLITS, SourceBuilder, wrong_root
from emotive.errors import UserError

BEAT2_SPLITS = {"train": "train", "val": "validation", "test": "test", "additional": "train"}
AMASS_SPLITS = {"HumanEva": "validation", "MPI_HDM05": "validation", "SFU": "validation",
                "MPI_mosh": "validation", "Transitions_mocap": "test", "SSM_synced": "test"}
EXPRESSION_DIM = 100
# read_smplx_npz's one-line messages -> reason codes, checked in order.
_MOTION_REASONS = (("frame rate", "wrong_frame_rate"), ("missing keys", "wrong_keys"),
                   ("NaN or Inf", "nan_or_inf"), ("SMPL-X axis-angle", "wrong_joint_count"),
                   ("shape", "wrong_shape"), ("no frames", "empty"))


def _motion_reason(message: str) -> str:
    return next((code for text, code in _MOTION_REASONS if text in message), "bad_motion")


def _motion_features(audio: bool) -> dict:
    f = tfds.features
    out = {"id": f.Text(), "speaker": f.Text(),
           "poses": f.Tensor(shape=(None, 165), dtype=np.float32, encoding="bytes"),
           "trans": f.Tensor(shape=(None, 3), dtype=np.float32, encoding="bytes"),
           "betas": f.Tensor(shape=(None,), dtype=np.float32, encoding="bytes"),
           "fps": f.Scalar(dtype=np.float32), "num_frames": f.Scalar(dtype=np.int32)}
    if audio:
        out.update({
            "audio": f.Tensor(shape=(None,), dtype=np.int16, encoding="bytes"),
            "sample_rate": f.Scalar(dtype=np.int32),
            "expressions": f.Tensor(shape=(None, EXPRESSION_DIM), dtype=np.float32,
                                    encoding="bytes"),
            "has_expressions": f.Scalar(dtype=np.bool_),
            "sync_offset_s": f.Scalar(dtype=np.float32)})
    return out


class _MotionBuilder(SourceBuilder, skip_registration=True):
    """Shared part: the report, the splits of `_candidates()`, motion reading with reasons."""

    HAS_AUDIO = False
    MIN_SECONDS = 0.0

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, description=self.DESCRIPTION,
                                     features=tfds.features.FeaturesDict(
                                         _motion_features(self.HAS_AUDIO)))

    def _split_generators(self, dl_manager):
        del dl_manager
        candidates = self._candidates()
        if not candidates:
            found = self._report.to_dict()
            why = ", ".join(f"{reason} {len(items)}" for key in ("rejected_by_reason",
                                                                 "skipped_by_reason")
                            for reason, items in found[key].items())
            raise UserError(f"--src {self._src} has no usable take ({why or 'no files'}); "
                            "check the layout")
        return {split: self._generate_examples([c for c in candidates if c.split == split])
                for split in SPLITS if any(c.split == split for c in candidates)}

    def _read_motion(self, path: pathlib.Path, expect_fps: float | None) -> SmplxClip | None:
        try:
            return read_smplx_npz(path, expect_fps=expect_fps)
        except UserError as e:
            self._report.reject(path, _motion_reason(str(e)), str(e))
            return None

    def _example(self, clip: tfds_io.Clip, motion: SmplxClip) -> dict:
        frames = motion.num_frames
        return {"id": clip.key, "speaker": clip.labels["speaker"],
                "poses": np.asarray(motion.poses, np.float32).reshape(frames, 165),
                "trans": np.asarray(motion.trans, np.float32),
                "betas": np.asarray(motion.betas, np.float32),
                "fps": np.float32(motion.fps), "num_frames": np.int32(frames)}


class Beat2(_MotionBuilder, skip_registration=True):
    """BEAT2 (EMAGE, Liu et al. 2024): speech, SMPL-X body and FLAME face at 30 fps."""

    name = "beat2"
    DESCRIPTION = "BEAT2 speech and SMPL-X + FLAME motion (30 fps), its own train/val/test split."
    HAS_AUDIO = True

    def __init__(self, *, additional: bool = True, sync_tolerance_s: float = 0.1, **kwargs):
        self._additional = additional
        self._tolerance = sync_tolerance_s
        super().__init__(**kwargs)

    def _split_rows(self) -> dict[str, str]:
        path = self._src / "train_test_split.csv"
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"id", "type"} <= set(reader.fieldnames):
                raise UserError(f"{path}: expected columns id,type; found "
                                f"{reader.fieldnames}")
            rows = {}
            for n, row in enumerate(reader, 2):
                key, kind = (row.get("id") or "").strip(), (row.get("type") or "").strip()
                if kind not in BEAT2_SPLITS or not key:
                    self._report.reject(path, "bad_split_row", f"{path}: line {n}: type "
                                        f"{kind!r} is not one of {', '.join(BEAT2_SPLITS)}")
                elif kind == "additional" and not self._additional:
                    self._report.skip(self._src / "smplxflame_30" / f"{key}.npz", "additional")
                else:
                    rows[key] = BEAT2_SPLITS[kind]
        return rows

    def _candidates(self):
        def is_root(p):
            return (p / "smplxflame_30").is_dir() and (p / "train_test_split.csv").is_file()

        if not is_root(self._src):
            raise wrong_root(self._src, is_root, "smplxflame_30/ and train_test_split.csv",
                              "BEAT2/beat_english_v2.0.0")
        rows = self._split_rows()
        motion_dir, wave_dir = self._src / "smplxflame_30", self._src / "wave16k"
        for npz in sorted(motion_dir.glob("*.npz")):
            if npz.stem not in rows:
                self._report.skip(npz, "not_in_split_file")
        clips = []
        for key, split in rows.items():
            npz, wav = motion_dir / f"{key}.npz", wave_dir / f"{key}.wav"
            if not npz.is_file():
                self._report.reject(npz, "missing_motion", f"{npz}: listed in "
                                    "train_test_split.csv but not there")
            elif not wav.is_file():
                self._report.reject(wav, "missing_audio", f"{wav}: {key} has motion but no "
                                    "wave16k/ audio")
            else:
                parts = key.split("_")
                clips.append(tfds_io.Clip(key, npz, split, {
                    "speaker": "_".join(parts[:2]) if len(parts) > 1 else key, "wav": wav}))
        return clips

    def _generate_examples(self, clips):
        for clip in clips:
            motion = self._read_motion(clip.path, 30.0)
            if motion is None:
                continue
            wav = clip.labels["wav"]
            audio = tfds_io.read_clip(wav, self._report, min_seconds=self._min_seconds,
                                      max_seconds=self._max_seconds)
            if audio is None:
                continue
            try:
                offset = check_sync(motion.num_frames, motion.fps, audio.size, SAMPLE_RATE,
                                    self._tolerance, name=str(clip.path))
            except UserError as e:
                self._report.reject(clip.path, "out_of_sync", str(e))
                continue
            expressions = motion.expressions
            has = expressions is not None
            if has and expressions.shape[1] != EXPRESSION_DIM:
                self._report.reject(clip.path, "wrong_shape", f"{clip.path}: expressions has "
                                    f"{expressions.shape[1]} columns, expected {EXPRESSION_DIM}")
                continue
            if not has:
                expressions = np.zeros((motion.num_frames, EXPRESSION_DIM))
                self._report.warnings["no_expressions"].append(
                    {"file": self._report.rel(clip.path), "message": "no expressions key"})
            self._report.kept[clip.split] += 1
            self._report.kept_seconds[clip.split] += audio.size / SAMPLE_RATE
            yield clip.key, {**self._example(clip, motion), "audio": audio,
                             "sample_rate": SAMPLE_RATE,
                             "expressions": np.asarray(expressions, np.float32),
                             "has_expressions": has, "sync_offset_s": np.float32(offset)}


class Amass(_MotionBuilder, skip_registration=True):
    """AMASS SMPL-X (Mahmood et al. 2019): mocap datasets fitted to SMPL-X, motion only."""

    name = "amass"
    DESCRIPTION = "AMASS SMPL-X motion resampled to one rate, splits by dataset (VPoser's)."

    def __init__(self, *, fps: float = 30.0, **kwargs):
        if not fps > 0:
            raise UserError(f"fps must be positive, got {fps}")
        self._fps = float(fps)
        super().__init__(**kwargs)

    def _candidates(self):
        files = sorted(self._src.rglob("*.npz"))

        def is_root(p):
            return any(len(q.relative_to(p).parts) >= 3 for q in p.rglob("*.npz"))

        if not files or not is_root(self._src):
            raise wrong_root(self._src, is_root, "DATASET/SUBJECT/*.npz files", "AMASS")
        clips = []
        for npz in files:
            parts = npz.relative_to(self._src).parts
            if len(parts) < 3:
                self._report.skip(npz, "not_in_dataset_subject_folder")
            elif npz.stem in ("shape", "neutral_stagei") or npz.stem.endswith("_stagei"):
                self._report.skip(npz, "shape_file")
            else:
                key = "/".join(parts[:-1] + (npz.stem,))
                clips.append(tfds_io.Clip(key, npz, AMASS_SPLITS.get(parts[0], "train"),
                                          {"speaker": f"{parts[0]}/{parts[1]}"}))
        return clips

    def _generate_examples(self, clips):
        for clip in clips:
            motion = self._read_motion(clip.path, None)
            if motion is None:
                continue
            if abs(motion.fps - self._fps) > 1e-6:
                resampled = resample_motion(motion.to_motion(), self._fps)
                self._report.converted[f"{motion.fps:g} fps -> {self._fps:g} fps"].append(
                    self._report.rel(clip.path))
                motion = SmplxClip.from_motion(resampled, betas=motion.betas)
            self._report.kept[clip.split] += 1
            self._report.kept_seconds[clip.split] += motion.num_frames / motion.fps
            yield clip.key, self._example(clip, motion)
