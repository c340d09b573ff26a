"""Renders without Blender: stick figures of SMPL-X bodies, face blendshape plots (matplotlib).

    pos_TxJx3, fps = load_body_positions("take.npz")               # FK on the SMPL-X skeleton
    render_motion([("ground truth", gt), ("generated", gen)], "m.gif", fps=30)  # side by side
    render_motion(..., "m.mp4", audio="clip.wav")                    # needs ffmpeg; audio muxed
    write_frame_png([("happy", pos)], "frame.png", frame=40)
    plot_face(weights_Tx52, 30, "face.png")                          # curves + heat map
    write_emotion_frames([(emotion, pos), ...], OUT_DIR)             # one PNG per emotion + grid

Each motion is drawn from two views, front (x right, y up: the body's left on the viewer's
right, as a camera facing it sees it) and side (z right, facing right), with the body's left
side in blue, the right in red and the centre line black. GIFs use matplotlib's PillowWriter;
MP4 needs ffmpeg on the PATH (UserError suggesting .gif otherwise), and then the audio is
muxed in with `ffmpeg -shortest`.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import tempfile
from typing import Sequence

import numpy as np

from emotive.codecs.motion import kinematics, rotations
from emotive.codecs.motion.face import ARKIT_NAMES
from emotive.codecs.motion.skeleton import SMPLX, Skeleton
from emotive.codecs.motion.smplx_npz import read_smplx_npz
from emotive.errors import UserError

__all__ = ["load_body_positions", "body_positions", "render_motion", "write_frame_png",
           "plot_face", "write_emotion_frames", "has_ffmpeg"]

_VIEWS = {"front": (0, 1), "side": (2, 1)}


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def has_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None


def body_positions(poses_TxJx3, trans_Tx3, skeleton: Skeleton = SMPLX) -> np.ndarray:
    """Joint positions [T, J, 3] (numpy) of axis-angle poses and root translations."""
    pos, _ = kinematics.forward_kinematics(
        rotations.axis_angle_to_matrix(np.asarray(poses_TxJx3, np.float32)),
        np.asarray(trans_Tx3, np.float32), skeleton)
    return np.asarray(pos)


def load_body_positions(path) -> tuple[np.ndarray, float]:
    """(positions [T, 55, 3], fps) of a BEAT2/AMASS SMPL-X npz (UserError naming the file)."""
    clip = read_smplx_npz(path)
    return body_positions(clip.poses, clip.trans), clip.fps


def _bones(skeleton: Skeleton):
    """(child, parent, colour) for every bone."""
    out = []
    for j, p in enumerate(skeleton.parents):
        if p < 0:
            continue
        name = skeleton.names[j]
        colour = "tab:blue" if name.startswith("left") else "tab:red" if name.startswith(
            "right") else "black"
        out.append((j, p, colour, 0.8 if j >= 25 else 2.2))
    return out


def _check_positions(items, name="render"):
    out = []
    for label, pos in items:
        pos = np.asarray(pos, np.float64)
        if pos.ndim != 3 or pos.shape[2] != 3 or pos.shape[0] == 0:
            raise ValueError(f"{label}: positions must be [T, J, 3], got {pos.shape}")
        out.append((str(label), pos))
    if not out:
        raise ValueError(f"{name}: nothing to draw")
    return out


def _figure(items, views, skeleton):
    """Figure, axes and one LineCollection per (motion, view)."""
    plt = _mpl()
    from matplotlib.collections import LineCollection

    bones = _bones(skeleton)
    fig, axes = plt.subplots(1, len(items) * len(views), squeeze=False,
                             figsize=(2.6 * len(items) * len(views), 3.6))
    every = np.concatenate([p.reshape(-1, 3) for _, p in items])
    lo, hi = every.min(0) - 0.1, every.max(0) + 0.1
    centre, half = (lo + hi) / 2, (hi - lo).max() / 2
    collections = []
    for m, (label, _) in enumerate(items):
        for v, view in enumerate(views):
            ax = axes[0, m * len(views) + v]
            a, b = _VIEWS[view]
            ax.set_xlim(centre[a] - half, centre[a] + half)
            ax.set_ylim(centre[b] - half, centre[b] + half)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{label} ({view})" if len(views) > 1 else label, fontsize=9)
            lc = LineCollection([], colors=[c for _, _, c, _ in bones],
                                linewidths=[w for *_, w in bones])
            ax.add_collection(lc)
            collections.append((lc, m, a, b))
    fig.tight_layout()
    return fig, collections, bones


def _update(collections, bones, items, frame):
    for lc, m, a, b in collections:
        pos = items[m][1]
        p = pos[min(frame, len(pos) - 1)]
        lc.set_segments([[(p[j, a], p[j, b]), (p[q, a], p[q, b])] for j, q, _, _ in bones])


def render_motion(items: Sequence[tuple[str, np.ndarray]], out, *, fps: float = 30.0,
                  audio=None, views: Sequence[str] = ("front", "side"),
                  skeleton: Skeleton = SMPLX, step: int = 1) -> pathlib.Path:
    """Animates motions [(label, positions [T, J, 3])] side by side into a .gif or .mp4.

    `step` keeps every step-th frame (the playback rate follows). `audio` (a wav path) is
    muxed into an mp4 with ffmpeg; a gif has no sound. Returns the path written.
    """
    from matplotlib import animation

    out = pathlib.Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise UserError(f"{out}: render writes .gif or .mp4 (or .png for one frame)")
    if suffix == ".mp4" and not has_ffmpeg():
        raise UserError(f"{out}: writing mp4 needs ffmpeg on the PATH, which is not there; "
                        f"write {out.with_suffix('.gif').name} instead")
    if audio is not None and not pathlib.Path(audio).is_file():
        raise UserError(f"{audio}: no such audio file; check --audio")
    items = _check_positions(items)
    fig, collections, bones = _figure(items, views, skeleton)
    frames = range(0, max(len(p) for _, p in items), max(1, step))
    anim = animation.FuncAnimation(fig, lambda f: _update(collections, bones, items, f),
                                   frames=frames, blit=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    rate = fps / max(1, step)
    if suffix == ".gif":
        anim.save(out, writer=animation.PillowWriter(fps=rate))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            silent = pathlib.Path(tmp) / "silent.mp4"
            anim.save(silent, writer=animation.FFMpegWriter(fps=rate))
            if audio is None:
                shutil.move(silent, out)
            else:
                subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(silent), "-i",
                                str(audio), "-c:v", "copy", "-c:a", "aac", "-shortest", str(out)],
                               check=True)
    _mpl().close(fig)
    return out


def write_frame_png(items: Sequence[tuple[str, np.ndarray]], out, *, frame: int | None = None,
                    views: Sequence[str] = ("front", "side"), skeleton: Skeleton = SMPLX
                    ) -> pathlib.Path:
    """One frame (default: the middle one) of each motion, side by side, as a PNG."""
    items = _check_positions(items)
    fig, collections, bones = _figure(items, views, skeleton)
    length = max(len(p) for _, p in items)
    _update(collections, bones, items, length // 2 if frame is None else int(frame))
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    _mpl().close(fig)
    return out


def plot_face(weights_Tx52, fps: float, out, *, title: str = "", curves: int = 8
              ) -> pathlib.Path:
    """The `curves` most varying blendshapes over time, and a heat map of all 52 (PNG)."""
    plt = _mpl()
    w = np.asarray(weights_Tx52, np.float64)
    if w.ndim != 2 or w.shape[1] != len(ARKIT_NAMES):
        raise ValueError(f"weights must be [T, {len(ARKIT_NAMES)}], got {w.shape}")
    t = np.arange(len(w)) / fps
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 9), height_ratios=(1, 2.2))
    for i in np.argsort(-w.std(0))[:curves]:
        top.plot(t, w[:, i], label=ARKIT_NAMES[i], lw=1.2)
    top.set_xlim(0, t[-1] if len(t) > 1 else 1)
    top.set_ylim(0, 1)
    top.set_ylabel("weight")
    top.legend(fontsize=7, ncol=4, loc="upper right")
    top.set_title(title or "ARKit-52 blendshapes", fontsize=10)
    image = bottom.imshow(w.T, aspect="auto", origin="upper", cmap="magma", vmin=0, vmax=1,
                          extent=(0, t[-1] if len(t) > 1 else 1, len(ARKIT_NAMES) - 0.5, -0.5))
    bottom.set_yticks(range(len(ARKIT_NAMES)))
    bottom.set_yticklabels(ARKIT_NAMES, fontsize=5)
    bottom.set_xlabel("seconds")
    fig.colorbar(image, ax=bottom, fraction=0.03)
    fig.tight_layout()
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_emotion_frames(items: Sequence[tuple[str, np.ndarray]], out_dir, *,
                         skeleton: Skeleton = SMPLX) -> list[pathlib.Path]:
    """For [(emotion, positions [T, J, 3])] of one clip's text and speaker, writes
    OUT/frame-<emotion>.png (front and side view of the frame where the wrists are furthest
    from their mean, i.e. a gesture's apex) and OUT/emotions.png (all front views in a row).
    Returns the paths, the grid last."""
    items = _check_positions(items)
    out_dir = pathlib.Path(out_dir)
    wrists = [skeleton.index("left_wrist"), skeleton.index("right_wrist")]
    paths, chosen = [], []
    for label, pos in items:
        reach = np.linalg.norm(pos[:, wrists] - pos[:, :1], axis=-1).sum(1)
        frame = int(np.argmax(reach))
        chosen.append((label, pos[frame:frame + 1]))
        paths.append(write_frame_png([(label, pos)], out_dir / f"frame-{label}.png",
                                     frame=frame, skeleton=skeleton))
    paths.append(write_frame_png(chosen, out_dir / "emotions.png", frame=0, views=("front",),
                                 skeleton=skeleton))
    return paths
