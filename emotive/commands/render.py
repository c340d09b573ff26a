"""`emotive render`: stick-figure videos and face plots of motion files, without Blender.

    emotive render motion.npz --out m.gif                       # body (BEAT2/AMASS SMPL-X npz)
    emotive render gt.npz gen.npz --labels "ground truth,generated" --out cmp.mp4 --audio a.wav
    emotive render motion.npz --out frame.png [--frame 40]      # one frame
    emotive render motion.npz --face face.npz --out m.gif       # also m-face.png (curves, heat map)
    emotive render MOTION_CORPUS --emotions --out DIR           # one PNG per emotion of one clip

mp4 needs ffmpeg (then --audio is muxed in); without it, write .gif. A face file is a motion
corpus face npz (weights, jaw, fps) or an ARKit CSV (`--face-fps` for a CSV without times).
"""

from __future__ import annotations

import argparse
import pathlib

from emotive.codecs.motion import render
from emotive.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="SMPL-X npz files drawn side by side (or, "
                        "with --emotions, one motion corpus directory)")
    parser.add_argument("--out", required=True, help="OUT.gif, OUT.mp4 or OUT.png (--emotions: "
                        "a directory)")
    parser.add_argument("--labels", default=None, help="comma-separated titles, one per input "
                        "(default: the file names)")
    parser.add_argument("--audio", default=None, help="wav muxed into an mp4 (needs ffmpeg)")
    parser.add_argument("--face", action="append", default=[],
                        help="face track (.npz or ARKit .csv): writes OUT-face.png; repeatable")
    parser.add_argument("--face-fps", type=float, default=None,
                        help="frame rate of a face CSV without a time column")
    parser.add_argument("--frame", type=int, default=None, help="the frame of a .png "
                        "(default the middle)")
    parser.add_argument("--step", type=int, default=1, help="animate every step-th frame")
    parser.add_argument("--emotions", action="store_true",
                        help="inputs is a motion corpus: write frame-EMOTION.png for one clip "
                             "per emotion (one speaker and text) and emotions.png")


def _face(path: pathlib.Path, fps: float | None):
    if path.suffix.lower() == ".csv":
        from emotive.codecs.motion.face_io import read_arkit_csv

        face = read_arkit_csv(path, fps=fps)
        if face.fps is None:
            raise UserError(f"{path}: no time column; pass --face-fps")
        return face.weights, face.fps
    from emotive.data.motion.corpus_files import read_face_npz

    weights, _, rate = read_face_npz(path)
    return weights, rate


def _emotion_frames(args) -> int:
    from emotive.data.motion.corpus_files import emotion_clip_set, read_motion_corpus

    if len(args.inputs) != 1:
        raise UserError("--emotions takes one motion corpus directory")
    root = pathlib.Path(args.inputs[0])
    _, records = read_motion_corpus(root)
    chosen = emotion_clip_set(records)
    if not chosen:
        raise UserError(f"{root}: no speaker says one text in all eight emotions; build the "
                        "corpus from a whole speech corpus (no --limit)")
    items = [(emotion, render.load_body_positions(root / r["body"])[0])
             for emotion, r in chosen.items()]
    paths = render.write_emotion_frames(items, args.out)
    first = next(iter(chosen.values()))
    print(f"wrote {len(paths)} PNGs to {args.out} ({first['speaker']}: {first['text']!r})")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.emotions:
        return _emotion_frames(args)
    out = pathlib.Path(args.out)
    if out.suffix.lower() not in (".gif", ".mp4", ".png"):
        raise UserError(f"--out {out}: write .gif, .mp4 or .png")
    if args.step < 1:
        raise UserError(f"--step must be at least 1, got {args.step}")
    labels = (args.labels.split(",") if args.labels
              else [pathlib.Path(p).stem for p in args.inputs])
    if len(labels) != len(args.inputs):
        raise UserError(f"--labels has {len(labels)} titles for {len(args.inputs)} inputs")
    items, rates = [], set()
    for label, path in zip(labels, args.inputs):
        positions, fps = render.load_body_positions(path)
        items.append((label.strip(), positions))
        rates.add(fps)
    if len(rates) > 1:
        raise UserError(f"the inputs have different frame rates ({sorted(rates)}); resample "
                        "them to one rate first")
    fps = rates.pop()
    if out.suffix.lower() == ".png":
        render.write_frame_png(items, out, frame=args.frame)
    else:
        render.render_motion(items, out, fps=fps, audio=args.audio, step=args.step)
    written = [out]
    for k, face_path in enumerate(args.face):
        weights, rate = _face(pathlib.Path(face_path), args.face_fps)
        name = f"{out.stem}-face{'' if len(args.face) == 1 else f'-{k}'}.png"
        written.append(render.plot_face(weights, rate, out.with_name(name),
                                        title=pathlib.Path(face_path).name))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
