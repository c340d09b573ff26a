"""Tests for emotive.codecs.motion.skeleton and clip: tables, lookups, resampling, sync."""

import numpy as np
import pytest

from emotive.codecs.motion import rotations
from emotive.codecs.motion.bvh import BEAT_JOINT_NAMES, beat_skeleton
from emotive.codecs.motion.clip import (Motion, check_finite_frames, check_sync, reorder_joints,
                                        resample_motion, resample_times)
from emotive.codecs.motion.skeleton import SMPLX, SMPLX_JOINT_NAMES, SMPLX_PARENTS, Skeleton
from emotive.errors import UserError


def test_smplx_tables():
    assert len(SMPLX_JOINT_NAMES) == len(set(SMPLX_JOINT_NAMES)) == 55
    assert SMPLX_JOINT_NAMES[:3] == ("pelvis", "left_hip", "right_hip")
    assert SMPLX_JOINT_NAMES[22:25] == ("jaw", "left_eye_smplhf", "right_eye_smplhf")
    assert SMPLX_JOINT_NAMES[25] == "left_index1" and SMPLX_JOINT_NAMES[39] == "left_thumb3"
    assert SMPLX_JOINT_NAMES[40] == "right_index1" and SMPLX_JOINT_NAMES[54] == "right_thumb3"
    named = {SMPLX_JOINT_NAMES[j]: SMPLX_JOINT_NAMES[p] for j, p in enumerate(SMPLX_PARENTS)
             if p >= 0}
    assert named["left_wrist"] == "left_elbow" and named["jaw"] == "head"
    assert named["left_collar"] == "spine3" and named["head"] == "neck"
    assert named["right_thumb1"] == "right_wrist" and named["right_thumb3"] == "right_thumb2"
    assert all(0 <= p < j for j, p in enumerate(SMPLX_PARENTS) if j)
    assert SMPLX.index("left_wrist") == 20 and SMPLX.children(20)[0] == 25
    # The two sides mirror each other in x.
    left, right = SMPLX.index("left_elbow"), SMPLX.index("right_elbow")
    np.testing.assert_allclose(SMPLX.offsets[left] * [-1, 1, 1], SMPLX.offsets[right])


def test_beat_tables():
    skeleton = beat_skeleton()
    assert skeleton.num_joints == len(set(BEAT_JOINT_NAMES)) == 75
    assert BEAT_JOINT_NAMES[:9] == ("Hips", "Spine", "Spine1", "Spine2", "Spine3", "Neck",
                                    "Neck1", "Head", "HeadEnd")
    assert BEAT_JOINT_NAMES[-1] == "LeftToeBaseEnd"
    assert skeleton.names[skeleton.parents[skeleton.index("LeftShoulder")]] == "Spine3"
    assert skeleton.names[skeleton.parents[skeleton.index("RightHandRing1")]] == "RightHandRing"
    assert skeleton.names[skeleton.parents[skeleton.index("RightUpLeg")]] == "Hips"
    assert len(skeleton.end_sites) == 2 * 5 + 1 + 2   # fingertips, head, toes


def test_unknown_joint_and_bad_tables():
    with pytest.raises(UserError, match="no joint named 'elbow'"):
        SMPLX.index("elbow")
    with pytest.raises(UserError, match="before it"):
        Skeleton(["a", "b", "c"], [-1, 2, 0], np.zeros((3, 3)), name="bad.bvh")
    with pytest.raises(UserError, match="twice"):
        Skeleton(["a", "a"], [-1, 0], np.zeros((2, 3)))
    with pytest.raises(UserError, match="root"):
        Skeleton(["a", "b"], [0, -1], np.zeros((2, 3)))
    with pytest.raises(UserError, match=r"offsets of shape \(2, 2\)"):
        Skeleton(["a", "b"], [-1, 0], np.zeros((2, 2)))


def _spinning_motion(frames, fps):
    """A root moving along x by frame index and turning about z by 3 degrees a frame."""
    skeleton = Skeleton(["root", "tip"], [-1, 0], [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    angle = np.deg2rad(3.0) * np.arange(frames)
    aa = np.zeros((frames, 2, 3))
    aa[:, 0, 2] = angle
    root = np.stack([np.arange(frames, dtype=float), np.zeros(frames), np.ones(frames)], 1)
    return Motion(skeleton, root, rotations.axis_angle_to_matrix(aa), fps)


def test_resample_divisible_rate_keeps_every_fourth_frame():
    motion = _spinning_motion(121, 120.0)
    low = resample_motion(motion, 30.0)
    assert low.num_frames == 31 and low.fps == 30.0
    np.testing.assert_array_equal(low.rotations, motion.rotations[::4])
    np.testing.assert_array_equal(low.root_positions, motion.root_positions[::4])


def test_resample_interpolates_between_frames():
    motion = _spinning_motion(121, 120.0)
    i, w = resample_times(121, 120.0, 50.0)
    assert i[1] == 2 and abs(w[1] - 0.4) < 1e-12   # 1/50 s is old frame 2.4
    mid = resample_motion(motion, 50.0)
    assert mid.num_frames == 51
    np.testing.assert_allclose(mid.root_positions[:, 0], np.arange(51) * 2.4, atol=1e-9)
    # Slerp between rotations about z turns the angle linearly: frame k at 2.4 k * 3 degrees.
    want = np.zeros((51, 3))
    want[:, 2] = np.deg2rad(np.arange(51) * 2.4 * 3.0)
    np.testing.assert_allclose(mid.rotations[:, 0], rotations.axis_angle_to_matrix(want),
                               atol=1e-12)
    up = resample_motion(motion, 240.0)
    assert up.num_frames == 241
    np.testing.assert_allclose(up.root_positions[1::2, 0], np.arange(120) + 0.5, atol=1e-12)


def test_reorder_joints():
    motion = _spinning_motion(3, 30.0)
    tip_first = Skeleton(["root", "a", "b"], [-1, 0, 0], np.eye(3))
    rots = np.broadcast_to(np.eye(3), (3, 3, 3, 3)).copy()
    rots[:, 2] = motion.rotations[:, 0]
    swapped = reorder_joints(Motion(tip_first, motion.root_positions, rots, 30.0),
                             ["root", "b", "a"])
    assert swapped.names == ("root", "b", "a") and swapped.parents == (-1, 0, 0)
    np.testing.assert_array_equal(swapped.rotations[:, 1], motion.rotations[:, 0])
    np.testing.assert_array_equal(swapped.offsets[1], [0, 0, 1])
    with pytest.raises(UserError, match="must be the root"):
        reorder_joints(motion, ["tip", "root"])


def test_check_sync_returns_the_gap_and_never_cuts():
    assert check_sync(300, 30.0, 160000, 16000, name="a.npz") == pytest.approx(0.0)
    assert check_sync(303, 30.0, 160000, 16000, name="a.npz") == pytest.approx(0.1)
    with pytest.raises(UserError) as e:
        check_sync(330, 30.0, 160000, 16000, name="take_1.npz")
    message = str(e.value)
    assert message.startswith("take_1.npz:") and "+1.000 s" in message and "\n" not in message


def test_check_finite_names_the_first_frame():
    x = np.zeros((6, 4))
    x[4, 1] = np.inf
    x[5, 0] = np.nan
    with pytest.raises(UserError, match="poses holds NaN or Inf at frame 4"):
        check_finite_frames(x, name="f.npz", what="poses")
