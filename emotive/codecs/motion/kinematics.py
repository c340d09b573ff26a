"""Forward kinematics in JAX: local rotations + root translation -> global joint positions.

    pos_TxJx3, glob_TxJx3x3 = forward_kinematics(rot_TxJx3x3, root_Tx3, SMPLX)
    fk = jax.jit(forward_kinematics, static_argnums=2)        # the skeleton is static
    speed_TmxJ = joint_speeds(pos_TxJx3, fps=30.0)             # metres (or cm) per second
    pos_TxJx3 = motion_positions(motion)                       # a Motion record's joints

For joint j with parent p:  G_j = G_p @ R_j  and  x_j = x_p + G_p @ offset_j, with the root at
x_0 = root_translation + offset_0 and G_0 = R_0. The skeleton's parents come before their
children, so one Python loop over the J joints (unrolled under jit, J is static) computes all.
Leading dims of the rotations and the translation broadcast against each other.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emotive.codecs.motion.clip import Motion
from emotive.codecs.motion.skeleton import Skeleton

__all__ = ["forward_kinematics", "joint_speeds", "motion_positions"]


def forward_kinematics(rotations_xJx3x3, root_translation_x3, skeleton: Skeleton
                       ) -> tuple[jax.Array, jax.Array]:
    """Global joint positions [..., J, 3] and global rotations [..., J, 3, 3].

    `rotations_xJx3x3` are local (parent-frame) rotation matrices, `root_translation_x3` the
    root's translation in the skeleton's units (metres for SMPL-X, centimetres for BEAT BVH).
    """
    rot = jnp.asarray(rotations_xJx3x3)
    if not jnp.issubdtype(rot.dtype, jnp.floating):
        rot = rot.astype(jnp.float32)
    num_joints = skeleton.num_joints
    if rot.shape[-3:] != (num_joints, 3, 3):
        raise ValueError(f"rotations must end in ({num_joints}, 3, 3) for skeleton "
                         f"{skeleton.name!r}, got {rot.shape}")
    root = jnp.asarray(root_translation_x3, rot.dtype)
    offsets = jnp.asarray(skeleton.offsets, rot.dtype)
    glob = [rot[..., 0, :, :]]
    pos = [root + offsets[0]]
    for j in range(1, num_joints):
        p = skeleton.parents[j]
        glob.append(glob[p] @ rot[..., j, :, :])
        pos.append(pos[p] + jnp.einsum("...ab,b->...a", glob[p], offsets[j]))
    batch = jnp.broadcast_shapes(glob[0].shape[:-2], pos[0].shape[:-1])
    pos = [jnp.broadcast_to(x, batch + (3,)) for x in pos]
    glob = [jnp.broadcast_to(g, batch + (3, 3)) for g in glob]
    return jnp.stack(pos, axis=-2), jnp.stack(glob, axis=-3)


def joint_speeds(positions_xTxJx3, fps: float) -> jax.Array:
    """Speed of every joint between consecutive frames [..., T - 1, J], in units per second."""
    pos = jnp.asarray(positions_xTxJx3)
    return jnp.linalg.norm(jnp.diff(pos, axis=-3), axis=-1) * fps


def motion_positions(motion: Motion) -> jax.Array:
    """Global joint positions [T, J, 3] of a Motion record (float32, in the skeleton's units)."""
    positions, _ = forward_kinematics(jnp.asarray(motion.rotations, jnp.float32),
                                      jnp.asarray(motion.root_positions, jnp.float32),
                                      motion.skeleton)
    return positions
