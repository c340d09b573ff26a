"""`emotive render`: stick-figure GIF and PNG of SMPL-X npz files side by side, face plots, one
PNG per emotion, and the one-line errors (mp4 without ffmpeg, bad files)."""

import numpy as np
import pytest
from PIL import Image

from emotive import cli
from emotive.codecs.motion import render
from emotive.codecs.motion.smplx_npz import SmplxClip, write_smplx_npz
from emotive.data.motion.corpus_files import write_face_npz
from emotive.errors import UserError


def motion_file(path, frames=12, wave=0.0):
    poses = np.zeros((frames, 55, 3))
    poses[:, 16, 2] = -1.2 + wave * np.sin(np.arange(frames) / 3)   # left arm down, waving
    poses[:, 17, 2] = 1.2
    write_smplx_npz(path, SmplxClip(poses, np.zeros((frames, 3)), np.zeros(10), 30.0))
    return path


def test_gif_png_and_face(tmp_path, capsys):
    gt, gen = motion_file(tmp_path / "gt.npz"), motion_file(tmp_path / "gen.npz", wave=0.5)
    face = tmp_path / "face.npz"
    write_face_npz(face, np.random.default_rng(0).uniform(0, 1, (12, 52)), np.zeros((12, 3)))
    out = tmp_path / "cmp.gif"
    assert cli.main(["render", str(gt), str(gen), "--labels", "ground truth,generated",
                     "--out", str(out), "--face", str(face), "--step", "2"]) == 0
    gif = Image.open(out)
    assert gif.n_frames == 6
    assert gif.size[0] > 2 * gif.size[1]            # two motions x two views side by side
    assert (tmp_path / "cmp-face.png").is_file()
    assert "cmp-face.png" in capsys.readouterr().out
    assert cli.main(["render", str(gt), "--out", str(tmp_path / "f.png"), "--frame", "3"]) == 0
    assert Image.open(tmp_path / "f.png").size[0] > 0


def test_emotion_frames(tmp_path):
    items = [(e, render.load_body_positions(motion_file(tmp_path / f"{e}.npz", wave=k * 0.1))[0])
             for k, e in enumerate(("happy", "sad"))]
    paths = render.write_emotion_frames(items, tmp_path / "frames")
    assert [p.name for p in paths] == ["frame-happy.png", "frame-sad.png", "emotions.png"]
    assert all(p.is_file() for p in paths)


def test_errors(tmp_path, monkeypatch):
    gt = motion_file(tmp_path / "gt.npz")
    monkeypatch.setattr(render, "has_ffmpeg", lambda: False)
    with pytest.raises(UserError, match=r"ffmpeg.*gt_video.gif"):
        render.render_motion([("a", render.load_body_positions(gt)[0])],
                             tmp_path / "gt_video.mp4")
    assert cli.main(["render", str(gt), "--out", str(tmp_path / "x.avi")]) == 2
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(UserError, match="bad.npz"):
        render.load_body_positions(tmp_path / "bad.npz")
    assert cli.main(["render", str(gt), str(gt), "--labels", "one", "--out",
                     str(tmp_path / "x.gif")]) == 2
