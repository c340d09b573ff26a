"""Face files: ARKit-52 CSV (Live Link Face or plain) and BEAT's face JSON, read and written.

    face = read_arkit_csv("take.csv", fps=60)        # FaceWeights: weights [T, 52] ARKit order
    write_arkit_csv("out.csv", face)                 # plain: time + 52 camelCase columns
    write_arkit_csv("out.csv", face, live_link=True) # Timecode, BlendShapeCount, PascalCase
    face = read_beat_face_json("2_scott_0_1_1.json", expect_fps=60)
    write_beat_face_json("out.json", face)

CSV: one header row, then one row per frame. Either Live Link Face's layout (`Timecode`,
`BlendShapeCount`, the 52 names in PascalCase, then head and eye rotations `HeadYaw` ...
`RightEyeRoll`, which are kept aside in `extras`), or 52 name columns with an optional `time`
column (seconds). Names match ignoring case, in any column order; an unknown or a missing
blendshape column is an error. Timecodes are kept verbatim (they count frames of the
timecode rate, not seconds), so give `fps` for a Live Link file.

BEAT JSON (60 fps): {"names": [52 names], "frames": [{"time": t, "weights": [52]}, ...]}.
BEAT's loaders (EMAGE, DiffSHEG) take 51 values a frame; a file whose names are the 52 less
tongueOut is accepted and tongueOut reads as 0. Other keys in a frame (e.g. "rotation") are
ignored.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib

import numpy as np

from emotive.codecs.motion.clip import check_finite_frames, check_fps, require_file, snap_fps
from emotive.codecs.motion.face import ARKIT_NAMES, NUM_ARKIT, FaceWeights
from emotive.errors import UserError

__all__ = ["BEAT_FACE_FPS", "LIVE_LINK_EXTRAS", "read_arkit_csv", "write_arkit_csv",
           "read_beat_face_json", "write_beat_face_json"]

BEAT_FACE_FPS = 60.0
LIVE_LINK_EXTRAS = tuple(f"{part}{angle}" for part in ("Head", "LeftEye", "RightEye")
                         for angle in ("Yaw", "Pitch", "Roll"))
_BY_LOWER = {n.lower(): i for i, n in enumerate(ARKIT_NAMES)}
_EXTRAS_LOWER = {n.lower(): n for n in LIVE_LINK_EXTRAS}
# The one name a file may lack (51-value BEAT files have no tongue); it reads as 0.
_OPTIONAL = ("tongueOut",)


def _pascal(name: str) -> str:
    return name[0].upper() + name[1:]


def _times_fps(times: np.ndarray | None, fps: float | None, *, name: str) -> float | None:
    """The frame rate from `times` (median step), checked against `fps` when both are known."""
    if times is None or len(times) < 2:
        return fps
    steps = np.diff(times)
    if not np.all(steps > 0):
        bad = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise UserError(f"{name}: time does not increase at frame {bad}; fix the time column")
    found = snap_fps(1.0 / float(np.median(steps)))
    check_fps(found, fps, name=name)
    return found if fps is None else fps


def _column_map(names: list[str], *, name: str, where: str) -> list[int]:
    """The ARKit index of each name; UserError for unknown, duplicate or missing names."""
    indices = [_BY_LOWER.get(n.strip().lower()) for n in names]
    unknown = [n for n, i in zip(names, indices) if i is None]
    if unknown:
        raise UserError(f"{name}: unknown {where} {unknown[:5]}; expected the 52 ARKit "
                        "blendshape names (e.g. eyeBlinkLeft, jawOpen)")
    found = [i for i in indices if i is not None]
    if len(set(found)) != len(found):
        dup = next(ARKIT_NAMES[i] for i in found if found.count(i) > 1)
        raise UserError(f"{name}: blendshape {dup!r} appears twice in the {where}")
    missing = [n for i, n in enumerate(ARKIT_NAMES) if i not in found and n not in _OPTIONAL]
    if missing:
        raise UserError(f"{name}: missing blendshape {where} {missing[:5]}"
                        f"{' and more' if len(missing) > 5 else ''}; the file needs all 52 ARKit "
                        "names")
    return indices


def _place(values_TxN: np.ndarray, indices: list[int]) -> np.ndarray:
    weights = np.zeros((values_TxN.shape[0], NUM_ARKIT))
    weights[:, indices] = values_TxN
    return weights


# ----------------------------------------------------------------------------------------------
# ARKit CSV
# ----------------------------------------------------------------------------------------------


def read_arkit_csv(path, fps: float | None = None) -> FaceWeights:
    """Reads an ARKit-52 CSV (Live Link Face or plain) into FaceWeights (float64).

    `fps`: the frame rate when the file has no `time` column (else it is checked against it).
    UserError naming the file for: missing file, no header or no rows, unknown, duplicate or
    missing blendshape columns, a row of the wrong length or with a non-number (naming the
    line), NaN/Inf (naming the frame), time that does not increase or disagrees with `fps`.
    """
    path = require_file(path)
    name = str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{name}: not a readable CSV text file ({type(e).__name__}); "
                        "re-export it") from None
    if not header:
        raise UserError(f"{name}: empty; an ARKit CSV needs a header row and one row a frame")
    header = [h.strip() for h in header]
    lower = [h.lower() for h in header]
    special = {"timecode", "blendshapecount", "time"}
    blend_cols = [c for c, h in enumerate(lower) if h not in special and h not in _EXTRAS_LOWER]
    extra_cols = [c for c, h in enumerate(lower) if h in _EXTRAS_LOWER]
    indices = _column_map([header[c] for c in blend_cols], name=name, where="columns")
    if not rows:
        raise UserError(f"{name}: has a header but no frames")
    for line, row in rows:
        if len(row) != len(header):
            raise UserError(f"{name}: line {line}: {len(row)} cells, expected {len(header)} "
                            "(one per header column)")
    numeric = blend_cols + extra_cols + ([lower.index("time")] if "time" in lower else [])
    values = np.empty((len(rows), len(numeric)))
    for k, (line, row) in enumerate(rows):
        try:
            values[k] = [float(row[c]) for c in numeric]
        except ValueError:
            raise UserError(f"{name}: line {line}: a value is not a number; fix the row") from None
    check_finite_frames(values, name=name, what="the blendshape values")
    blend = values[:, :len(blend_cols)]
    extras = {_EXTRAS_LOWER[lower[c]]: values[:, len(blend_cols) + k]
              for k, c in enumerate(extra_cols)}
    times = values[:, -1] if "time" in lower else None
    timecodes = (tuple(row[lower.index("timecode")].strip() for _, row in rows)
                 if "timecode" in lower else None)
    return FaceWeights(_place(blend, indices), fps=_times_fps(times, fps, name=name),
                       times=times, timecodes=timecodes, extras=extras)


def _timecode(frame: int, fps: float) -> str:
    """HH:MM:SS:FF.mmm for frame `frame` at `fps` (the Live Link Face layout)."""
    rate = max(1, round(fps))
    seconds, ff = divmod(frame, rate)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}.000"


def write_arkit_csv(path, face: FaceWeights, *, live_link: bool = False) -> None:
    """Writes `face` as a CSV; creates parent directories.

    Plain (default): a `time` column when times or fps are known, then the 52 camelCase names.
    `live_link`: Timecode (the face's own, else made from fps), BlendShapeCount (the number of
    columns after it), the 52 names in PascalCase, then `extras` in Live Link order.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]]
    if live_link:
        extras = [n for n in LIVE_LINK_EXTRAS if n in face.extras]
        if face.timecodes is not None:
            codes = list(face.timecodes)
        elif face.fps is not None:
            codes = [_timecode(t, face.fps) for t in range(face.num_frames)]
        else:
            raise ValueError("a Live Link CSV needs timecodes or an fps to make them")
        header = ["Timecode", "BlendShapeCount", *map(_pascal, ARKIT_NAMES), *extras]
        count = str(NUM_ARKIT + len(extras))
        rows = [[codes[t], count, *(repr(float(v)) for v in face.weights[t]),
                 *(repr(float(face.extras[n][t])) for n in extras)]
                for t in range(face.num_frames)]
    else:
        has_time = face.times is not None or face.fps is not None
        times = face.frame_times() if has_time else None
        header = (["time"] if has_time else []) + list(ARKIT_NAMES)
        rows = [([repr(float(times[t]))] if has_time else [])
                + [repr(float(v)) for v in face.weights[t]] for t in range(face.num_frames)]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


# ----------------------------------------------------------------------------------------------
# BEAT face JSON
# ----------------------------------------------------------------------------------------------


def read_beat_face_json(path, expect_fps: float | None = BEAT_FACE_FPS) -> FaceWeights:
    """Reads a BEAT face JSON into FaceWeights (float64, ARKit order).

    The rate comes from the frames' `time` values and must match `expect_fps` (60, BEAT's
    rate; None accepts any); without times the file is taken to be at `expect_fps`.
    UserError naming the file for: missing file, invalid JSON (with its line), a wrong
    structure, unknown or missing names, a frame with the wrong number of weights (naming the
    frame), NaN/Inf, or a rate other than expected.
    """
    path = require_file(path)
    name = str(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{name}: line {e.lineno}: invalid JSON ({e.msg}); re-export it") from None
    except UnicodeDecodeError:
        raise UserError(f"{name}: not a UTF-8 text file; is this a BEAT face JSON?") from None
    if not (isinstance(doc, dict) and isinstance(doc.get("names"), list)
            and isinstance(doc.get("frames"), list)):
        raise UserError(f"{name}: expected an object with 'names' (a list) and 'frames' (a list "
                        "of {'time', 'weights'}); is this a BEAT face JSON?")
    names = [str(n) for n in doc["names"]]
    indices = _column_map(names, name=name, where="names")
    frames = doc["frames"]
    if not frames:
        raise UserError(f"{name}: has no frames")
    values = np.empty((len(frames), len(names)))
    times = np.empty(len(frames))
    has_time = [isinstance(fr, dict) and isinstance(fr.get("time"), (int, float))
                for fr in frames]
    for k, frame in enumerate(frames):
        weights = frame.get("weights") if isinstance(frame, dict) else None
        if not isinstance(weights, list) or len(weights) != len(names):
            got = len(weights) if isinstance(weights, list) else "no"
            raise UserError(f"{name}: frame {k} has {got} weights, expected {len(names)} "
                            "(one per name)")
        try:
            values[k] = [float(w) for w in weights]
        except (TypeError, ValueError):
            raise UserError(f"{name}: frame {k}: a weight is not a number") from None
        times[k] = float(frame["time"]) if has_time[k] else math.nan
    check_finite_frames(values, name=name, what="the weights")
    if any(has_time) and not all(has_time):
        first = has_time.index(False)
        raise UserError(f"{name}: frame {first} has no 'time' but others do; fix the file")
    times_or_none = times if all(has_time) else None
    fps = _times_fps(times_or_none, expect_fps, name=name)
    return FaceWeights(_place(values, indices), fps=fps, times=times_or_none)


def write_beat_face_json(path, face: FaceWeights) -> None:
    """Writes `face` as a BEAT face JSON (all 52 names; times from `times` or fps)."""
    path = pathlib.Path(path)
    times = face.frame_times()
    doc = {"names": list(ARKIT_NAMES),
           "frames": [{"time": float(times[t]), "weights": [float(v) for v in face.weights[t]]}
                      for t in range(face.num_frames)]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
