"""Tests for emotive.codecs.motion.smplx_npz: BEAT2 and AMASS layouts, round trips, bad files."""

import numpy as np
import pytest

from emotive.codecs.motion import rotations
from emotive.codecs.motion.skeleton import SMPLX
from emotive.codecs.motion.smplx_npz import (AMASS_POSE_KEYS, SmplxClip, join_poses,
                                             read_smplx_npz, split_poses, write_smplx_npz)
from emotive.errors import UserError


def _beat2_arrays(frames=8, seed=0):
    rng = np.random.default_rng(seed)
    return {"poses": rng.normal(size=(frames, 165)) * 0.3, "trans": rng.normal(size=(frames, 3)),
            "betas": rng.normal(size=300), "expressions": rng.normal(size=(frames, 100)),
            "mocap_frame_rate": np.array(30), "gender": np.array("neutral"),
            "model": np.array("smplx2020")}


def _raises_naming(path, match, **kwargs):
    with pytest.raises(UserError, match=match) as e:
        read_smplx_npz(path, **kwargs)
    message = str(e.value)
    assert message.startswith(str(path)) and "\n" not in message
    return message


def test_beat2_read_and_round_trip(tmp_path):
    arrays = _beat2_arrays()
    src = tmp_path / "2_scott_0_1_1.npz"
    np.savez(src, **arrays)
    clip = read_smplx_npz(src, expect_fps=30)
    assert clip.poses.shape == (8, 55, 3) and clip.fps == 30.0 and clip.gender == "neutral"
    np.testing.assert_array_equal(clip.poses.reshape(8, 165), arrays["poses"])
    np.testing.assert_array_equal(clip.trans, arrays["trans"])
    np.testing.assert_array_equal(clip.betas, arrays["betas"])
    np.testing.assert_array_equal(clip.expressions, arrays["expressions"])
    out = tmp_path / "out" / "again.npz"
    write_smplx_npz(out, clip)
    with np.load(out) as written:
        assert set(written.files) == {"poses", "trans", "betas", "expressions",
                                      "mocap_frame_rate", "gender"}
        assert written["poses"].shape == (8, 165)
    again = read_smplx_npz(out)
    for field in ("poses", "trans", "betas", "expressions"):
        np.testing.assert_allclose(getattr(again, field), getattr(clip, field), atol=1e-5)
    assert again.fps == clip.fps and again.gender == clip.gender


def test_pose_layout_splits_by_body_part():
    poses = np.arange(2 * 165, dtype=float).reshape(2, 165)
    parts = split_poses(poses)
    assert {k: v.shape[1] for k, v in parts.items()} == {
        "global": 3, "body": 63, "jaw": 3, "eyes": 6, "left_hand": 45, "right_hand": 45}
    # Joint j's axis-angle is columns 3j:3j+3: the jaw is joint 22, the left hand starts at 25.
    np.testing.assert_array_equal(parts["jaw"], poses[:, 3 * SMPLX.index("jaw"):][:, :3])
    np.testing.assert_array_equal(parts["left_hand"][:, :3],
                                  poses[:, 3 * SMPLX.index("left_index1"):][:, :3])
    np.testing.assert_array_equal(join_poses(parts), poses)


def test_amass_split_keys_and_old_frame_rate_key(tmp_path):
    rng = np.random.default_rng(1)
    frames = 5
    split = {key: rng.normal(size=(frames, width)) for key, width in AMASS_POSE_KEYS.items()}
    path = tmp_path / "amass.npz"
    np.savez(path, trans=np.zeros((frames, 3)), betas=np.zeros(16), mocap_framerate=120.0,
             **split)
    clip = read_smplx_npz(path)
    assert clip.fps == 120.0 and clip.expressions is None and clip.gender is None
    flat = clip.poses.reshape(frames, 165)
    np.testing.assert_array_equal(flat[:, :3], split["root_orient"])
    np.testing.assert_array_equal(flat[:, 66:69], split["pose_jaw"])
    np.testing.assert_array_equal(flat[:, 69:75], split["pose_eye"])
    np.testing.assert_array_equal(flat[:, 75:], split["pose_hand"])


def test_motion_conversion_round_trip(tmp_path):
    arrays = _beat2_arrays(seed=2)
    clip = SmplxClip(arrays["poses"].reshape(8, 55, 3), arrays["trans"], arrays["betas"], 30.0)
    motion = clip.to_motion()
    assert motion.skeleton is SMPLX and motion.rotations.shape == (8, 55, 3, 3)
    np.testing.assert_allclose(motion.rotations,
                               rotations.axis_angle_to_matrix(clip.poses), atol=1e-12)
    back = SmplxClip.from_motion(motion, betas=clip.betas)
    np.testing.assert_allclose(back.poses, clip.poses, atol=1e-5)
    path = tmp_path / "from_motion.npz"
    write_smplx_npz(path, back)
    np.testing.assert_allclose(read_smplx_npz(path).poses, clip.poses, atol=1e-5)


def test_missing_and_unreadable_files(tmp_path):
    _raises_naming(tmp_path / "none.npz", "no such file")
    text = tmp_path / "notes.npz"
    text.write_text("not an archive")
    _raises_naming(text, "not an npz archive")


def test_wrong_key_sets_name_missing_and_found(tmp_path):
    path = tmp_path / "keys.npz"
    np.savez(path, poses=np.zeros((4, 165)), betas=np.zeros(10))
    message = _raises_naming(path, r"missing keys \['trans'\]")
    assert "found ['betas', 'poses']" in message
    partial = tmp_path / "partial.npz"
    np.savez(partial, trans=np.zeros((4, 3)), root_orient=np.zeros((4, 3)),
             pose_body=np.zeros((4, 63)), mocap_frame_rate=30)
    _raises_naming(partial, r"missing keys \['pose_jaw', 'pose_eye', 'pose_hand'\]")
    neither = tmp_path / "neither.npz"
    np.savez(neither, trans=np.zeros((4, 3)))
    _raises_naming(neither, r"missing keys \['poses'\]; found \['trans'\]")


@pytest.mark.parametrize("change,match", [
    ({"poses": np.zeros((8, 156))}, r"poses has shape \(8, 156\), expected \(T, 165\)"),
    ({"trans": np.zeros((7, 3))}, r"trans has shape \(7, 3\), expected \(8, 3\)"),
    ({"expressions": np.zeros((6, 100))}, r"expressions has shape \(6, 100\)"),
])
def test_wrong_shapes(tmp_path, change, match):
    path = tmp_path / "shape.npz"
    np.savez(path, **{**_beat2_arrays(), **change})
    _raises_naming(path, match)


def test_non_finite_poses_name_the_first_frame(tmp_path):
    arrays = _beat2_arrays()
    arrays["poses"][3, 70] = np.nan
    arrays["poses"][6, 0] = np.inf
    path = tmp_path / "nan.npz"
    np.savez(path, **arrays)
    _raises_naming(path, "poses holds NaN or Inf at frame 3")


def test_frame_rate_missing_or_unexpected(tmp_path):
    arrays = _beat2_arrays()
    del arrays["mocap_frame_rate"]
    path = tmp_path / "nofps.npz"
    np.savez(path, **arrays)
    _raises_naming(path, "no frame rate")
    assert read_smplx_npz(path, expect_fps=30).fps == 30.0   # the caller vouches for the rate
    wrong = tmp_path / "fps60.npz"
    np.savez(wrong, **{**_beat2_arrays(), "mocap_frame_rate": np.array(60.0)})
    _raises_naming(wrong, "frame rate is 60 fps, expected 30", expect_fps=30)
