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
- Beats. Audio onsets (`metrics.motion_beats.audio_onsets(method="energy")`, the rise of
  the log energy) trigger beat gestures with an emotion- and speaker-dependent probability:
  one arm (or both) moves along one of the speaker's gesture templates and back, an
  asymmetric raised cosine whose apex (a speed minimum: a motion beat) falls on the onset
  (+-20 ms jitter). While speech is active both forearms rise into gesture space, the
  dominant one more.
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
- Speaker style, deterministic from the speaker id (`styles.speaker_style`): handedness, how
  often the other or both hands join, rest pose (arm abduction, elbow bend, lean, head tilt,
  stance), gesture rate and size, nod size, and a personal repertoire of 3-5 gesture
  templates.
- Face: jawOpen and the lower lip follow the RMS envelope (no phoneme timings: the stored
  corpus has none; the envelope carries the syllable rhythm), funnel/pucker vary slowly with
  it, blinks are a Poisson process (rate by emotion), eyes make small saccades.
- Stochastic: each take draws its own gestures, jitter, sway, blinks and noise from
  seed(seed, clip id, take), so one audio has several valid motions, and a build is
  byte-identical for a seed whatever the worker count.

Splits are the speech corpus's own (speaker- and text-disjoint); each record keeps its clip's
split. The layout mirrors BEAT2's npz so the same readers serve both.

The jobs live beside this module: cues.py (audio onsets, pitch accents, envelope), styles.py
(emotion and speaker settings), body.py and face.py (one take's tracks), corpus_files.py
(face npz, reading a built corpus). This module plans the takes, writes them and trains the
FGD autoencoder; `add_arguments`/`run` are the `emotive data motion` command.
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

from emotive.codecs.motion.skeleton import SMPLX
from emotive.codecs.motion.smplx_npz import SmplxClip, write_smplx_npz
from emotive.data.motion.body import body_motion
from emotive.data.motion.corpus_files import load_body_6d, write_face_npz
from emotive.data.motion.cues import FPS, AudioCues, analyse_audio
from emotive.data.motion.face import face_motion
from emotive.data.motion.styles import EmotionMotion, SpeakerStyle, emotion_motion, speaker_style
from emotive.data.speech import emotions as emo
from emotive.errors import UserError
from emotive.metrics.motion_fgd import fit_feature_extractor, motion_windows

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
    """One motion for one clip's cues, in a speaker's style and an emotion: the body, then
    the face, drawing from `rng` in that order (the order is part of what a seed gives)."""
    poses, trans, beats, nods = body_motion(cues, style, em, rng, fps)
    face, flame_jaw, blinks = face_motion(cues, style, em, rng, fps)
    poses[:, SMPLX.names.index("jaw")] = flame_jaw
    return Take(poses, trans, face.astype(np.float32), flame_jaw.astype(np.float32), beats,
                nods, blinks)


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


def _train_fgd(out: Path, records: list[dict], preset: MotionPreset, seed: int,
               steps: int | None) -> dict:
    train = [r for r in records if r["split"] == "train"]
    if len(train) > preset.fgd_takes:
        train = [train[i] for i in np.linspace(0, len(train) - 1, preset.fgd_takes).astype(int)]
    windows = motion_windows([load_body_6d(out / r["body"]) for r in train], stride=8)
    extractor = fit_feature_extractor(
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


def format_summary(summary: dict) -> str:
    """The build summary (build_motion_corpus's return) as a few lines for the terminal."""
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
    """`emotive data motion`: builds the corpus from the parsed options, prints its summary."""
    if args.fgd_steps is not None and args.fgd_steps < 0:
        raise UserError(f"--fgd-steps must be 0 or more, got {args.fgd_steps}")
    summary = build_motion_corpus(args.speech, args.out, preset=args.preset, seed=args.seed,
                                  workers=args.workers or None, progress=not args.no_progress,
                                  fgd=args.fgd_steps != 0, fgd_steps=args.fgd_steps)
    print(format_summary(summary))
    return 0
