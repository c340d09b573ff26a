"""Tests for emotive.codecs.motion.kinematics: hand-computed chains, batching and jit."""

import jax
import jax.numpy as jnp
import numpy as np

from emotive.codecs.motion import kinematics, rotations
from emotive.codecs.motion.clip import Motion
from emotive.codecs.motion.skeleton import SMPLX, Skeleton

RZ90 = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
RZ180 = np.array([[-1.0, 0, 0], [0, -1, 0], [0, 0, 1]])
RX90 = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])


def test_two_joint_chain_by_hand():
    skeleton = Skeleton(["root", "tip"], [-1, 0], [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    local = np.stack([RZ90, np.eye(3)])
    pos, glob = kinematics.forward_kinematics(local, np.array([0.0, 0.0, 1.0]), skeleton)
    # The root sits at the translation; the tip is the root's +x turned 90 degrees about z: +y.
    np.testing.assert_allclose(pos, [[0, 0, 1], [0, 1, 1]], atol=1e-6)
    np.testing.assert_allclose(glob, np.stack([RZ90, RZ90]), atol=1e-6)


def test_three_joint_chain_by_hand():
    skeleton = Skeleton(["a", "b", "c"], [-1, 0, 1],
                        [[0.0, 0.5, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    local = np.stack([RZ90, RZ90, RX90])
    pos, glob = kinematics.forward_kinematics(local, np.array([2.0, 0.0, 0.0]), skeleton)
    # a: translation + its offset = (2, 0.5, 0); frame Rz90.
    # b: a + Rz90 @ (1, 0, 0) = (2, 1.5, 0); frame Rz90 @ Rz90 = Rz180.
    # c: b + Rz180 @ (2, 0, 0) = (0, 1.5, 0); frame Rz180 @ Rx90 (its own rotation moves no joint).
    np.testing.assert_allclose(pos, [[2, 0.5, 0], [2, 1.5, 0], [0, 1.5, 0]], atol=1e-6)
    np.testing.assert_allclose(glob[2], RZ180 @ RX90, atol=1e-6)


def test_batched_and_jitted_equal_unbatched():
    rng = np.random.default_rng(0)
    aa = rng.normal(size=(2, 3, SMPLX.num_joints, 3)) * 0.5
    local = rotations.axis_angle_to_matrix(aa).astype(np.float32)
    trans = rng.normal(size=(2, 3, 3)).astype(np.float32)
    fk = jax.jit(kinematics.forward_kinematics, static_argnums=2)
    pos, glob = fk(jnp.asarray(local), jnp.asarray(trans), SMPLX)
    assert pos.shape == (2, 3, 55, 3) and glob.shape == (2, 3, 55, 3, 3)
    for b, t in [(0, 0), (1, 2)]:   # eager, one pose at a time
        one_pos, one_glob = kinematics.forward_kinematics(local[b, t], trans[b, t], SMPLX)
        np.testing.assert_allclose(pos[b, t], one_pos, atol=1e-5)
        np.testing.assert_allclose(glob[b, t], one_glob, atol=1e-5)



def test_one_translation_broadcasts_over_a_batch_of_poses():
    skeleton = Skeleton(["root", "tip"], [-1, 0], [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    local = np.stack([np.stack([np.eye(3), np.eye(3)]), np.stack([RZ90, np.eye(3)])])
    pos, glob = kinematics.forward_kinematics(local, np.array([0.0, 0.0, 1.0]), skeleton)
    assert pos.shape == (2, 2, 3) and glob.shape == (2, 2, 3, 3)
    np.testing.assert_allclose(pos[:, 1], [[1, 0, 1], [0, 1, 1]], atol=1e-6)


def test_rest_pose_positions_are_summed_offsets():
    frames = 2
    identity = np.broadcast_to(np.eye(3), (frames, SMPLX.num_joints, 3, 3))
    pos, _ = kinematics.forward_kinematics(identity, np.zeros((frames, 3)), SMPLX)
    wrist = SMPLX.index("left_wrist")
    chain, j = [], wrist
    while j >= 0:
        chain.append(j)
        j = SMPLX.parents[j]
    np.testing.assert_allclose(pos[0, wrist], SMPLX.offsets[chain].sum(axis=0), atol=1e-6)
    assert pos[0, wrist, 0] > 0.5 and pos[0, SMPLX.index("right_wrist"), 0] < -0.5   # left = +x
    assert pos[0, SMPLX.index("head"), 1] > 0.4 > 0.0 > pos[0, SMPLX.index("left_ankle"), 1]


def test_joint_speeds_and_motion_positions():
    skeleton = Skeleton(["root", "tip"], [-1, 0], [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    frames = 4
    root = np.stack([np.arange(frames) * 0.1, np.zeros(frames), np.zeros(frames)], axis=1)
    local = np.broadcast_to(np.eye(3), (frames, 2, 3, 3))
    motion = Motion(skeleton, root, local, fps=30.0)
    pos = kinematics.motion_positions(motion)
    speeds = kinematics.joint_speeds(pos, motion.fps)
    assert speeds.shape == (frames - 1, 2)
    np.testing.assert_allclose(speeds, 3.0, rtol=1e-5)   # 0.1 units a frame at 30 fps
