"""Tests for emotive.codecs.motion.bvh: BEAT round trip, a hand-written file, resampling, errors."""

import numpy as np
import pytest

from emotive.codecs.motion import rotations
from emotive.codecs.motion.bvh import (BEAT_FPS, BEAT_JOINT_NAMES, beat_skeleton, read_bvh,
                                       write_bvh)
from emotive.codecs.motion.clip import Motion
from emotive.codecs.motion.skeleton import SMPLX, SMPLX_JOINT_NAMES
from emotive.errors import UserError

# Two joints; the child lists its rotations X, Y, Z (not BEAT's Z, X, Y) and ends in a tip.
SMALL_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0.0 90.0 0.0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Spine
  {
    OFFSET 0.0 10.0 0.0
    CHANNELS 3 Xrotation Yrotation Zrotation
    End Site
    {
      OFFSET 0.0 5.0 0.0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.033333
1.0 2.0 3.0 0.0 0.0 0.0 90.0 0.0 0.0
1.5 2.0 3.0 90.0 0.0 0.0 0.0 0.0 0.0
"""


def _random_motion(skeleton, frames, fps, seed=0):
    rng = np.random.default_rng(seed)
    degrees = rng.uniform(-179, 179, size=(frames, skeleton.num_joints, 3))
    degrees[..., 1] = rng.uniform(-89, 89, size=(frames, skeleton.num_joints))
    root = rng.normal(size=(frames, 3)) * 50.0 + [0.0, 95.0, 0.0]
    return Motion(skeleton, root, rotations.euler_to_matrix(degrees, "ZXY"), fps), degrees


def _raises_naming(path, match, fn, *args, **kwargs):
    with pytest.raises(UserError, match=match) as e:
        fn(path, *args, **kwargs)
    message = str(e.value)
    assert message.startswith(str(path)) and "\n" not in message
    return message


def test_beat_round_trip(tmp_path):
    motion, degrees = _random_motion(beat_skeleton(), 12, BEAT_FPS)
    path = tmp_path / "beat.bvh"
    write_bvh(path, motion)
    text = path.read_text().splitlines()
    assert text[text.index("MOTION") + 1] == "Frames: 12"
    assert len(text[text.index("MOTION") + 3].split()) == 6 + 3 * 74   # 228 values a frame
    back = read_bvh(path, expect_joints=BEAT_JOINT_NAMES)
    assert back.names == BEAT_JOINT_NAMES and back.parents == motion.parents
    assert back.fps == 120.0 and back.num_frames == 12
    np.testing.assert_allclose(back.offsets, motion.offsets, atol=1e-5)
    np.testing.assert_allclose(back.root_positions, motion.root_positions, atol=1e-5)
    np.testing.assert_allclose(rotations.matrix_to_euler(back.rotations, "ZXY"), degrees,
                               atol=1e-5)
    assert [j for j, _ in back.skeleton.end_sites] == [j for j, _ in motion.skeleton.end_sites]


def test_smplx_order_survives_the_depth_first_file(tmp_path):
    motion, _ = _random_motion(SMPLX, 3, 30.0, seed=1)
    path = tmp_path / "smplx.bvh"
    write_bvh(path, motion)
    assert read_bvh(path).names[:3] == ("pelvis", "left_hip", "left_knee")   # file order
    back = read_bvh(path, expect_joints=SMPLX_JOINT_NAMES)
    assert back.parents == SMPLX.parents
    np.testing.assert_allclose(back.rotations, motion.rotations, atol=1e-6)
    np.testing.assert_allclose(back.offsets, SMPLX.offsets, atol=1e-6)


def test_hand_written_file_and_its_own_layout(tmp_path):
    path = tmp_path / "small.bvh"
    path.write_text(SMALL_BVH)
    motion = read_bvh(path)
    assert motion.names == ("Hips", "Spine") and motion.fps == pytest.approx(30.0003, abs=1e-3)
    np.testing.assert_allclose(motion.offsets, [[0, 90, 0], [0, 10, 0]])
    assert motion.skeleton.end_sites == ((1, (0.0, 5.0, 0.0)),)
    np.testing.assert_allclose(motion.root_positions, [[1, 2, 3], [1.5, 2, 3]])
    rx90 = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]
    rz90 = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    np.testing.assert_allclose(motion.rotations[0], [np.eye(3), rx90], atol=1e-12)
    np.testing.assert_allclose(motion.rotations[1], [rz90, np.eye(3)], atol=1e-12)
    out = tmp_path / "again.bvh"
    write_bvh(out, motion)
    assert "CHANNELS 3 Xrotation Yrotation Zrotation" in out.read_text()
    again = read_bvh(out)
    assert again.channels == motion.channels
    np.testing.assert_allclose(again.rotations, motion.rotations, atol=1e-9)
    np.testing.assert_allclose(again.root_positions, motion.root_positions, atol=1e-9)


def test_read_resampled_120_to_30(tmp_path):
    motion, degrees = _random_motion(beat_skeleton(), 121, BEAT_FPS, seed=2)
    path = tmp_path / "take.bvh"
    write_bvh(path, motion)
    low = read_bvh(path, fps=30)
    assert low.fps == 30.0 and low.num_frames == 31
    # Every 4th frame, exactly as written (to the file's 6 decimals).
    np.testing.assert_allclose(low.root_positions, motion.root_positions[::4], atol=1e-5)
    np.testing.assert_allclose(rotations.matrix_to_euler(low.rotations, "ZXY"), degrees[::4],
                               atol=1e-5)


@pytest.mark.parametrize("edit,match", [
    (lambda s: s.replace("  JOINT Spine\n  {", "  JOINT Spine\n  OFFSET"),
     r"line 7: expected '\{'"),
    (lambda s: s.replace("Yrotation\n  JOINT", "Wrotation\n  JOINT"), "line 5: unknown channel"),
    (lambda s: s.replace("CHANNELS 3 X", "CHANNELS 6 Xposition Yposition Zposition X"),
     "line 9: joint 'Spine': position channels on a non-root"),
    (lambda s: s.replace("MOTION\n", ""), "no MOTION section"),
    (lambda s: s.replace("90.0 0.0 0.0\n1.5", "90.0 0.0\n1.5"), "line 19: 8 values, expected 9"),
    (lambda s: s.replace("Frames: 2", "Frames: 3"), "declares 3 frames but holds 2"),
    (lambda s: s.replace("1.5 2.0", "1.5 nan"), "NaN or Inf at frame 1"),
    (lambda s: s.replace("1.5 2.0", "1.5 x"), "line 20: a value is not a number"),
    (lambda s: s.replace("Frame Time: 0.033333", "Frame Time: 0"), "Frame Time must be positive"),
    (lambda s: s.replace("    End Site", "    End Sight"), "line 10: expected 'Site'"),
])
def test_malformed_files(tmp_path, edit, match):
    path = tmp_path / "bad.bvh"
    path.write_text(edit(SMALL_BVH))
    _raises_naming(path, match, read_bvh)


def test_missing_file_and_wrong_joints(tmp_path):
    _raises_naming(tmp_path / "none.bvh", "no such file", read_bvh)
    path = tmp_path / "small.bvh"
    path.write_text(SMALL_BVH)
    message = _raises_naming(path, "has 2 joints, expected 75", read_bvh,
                             expect_joints=BEAT_JOINT_NAMES)
    assert "missing ['Spine1'" in message
