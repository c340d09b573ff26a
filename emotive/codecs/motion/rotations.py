"""Rotation conversions: axis-angle, matrices, 6D, unit quaternions, Euler angles (BVH).

    R_Tx55x3x3 = axis_angle_to_matrix(poses_Tx165.reshape(-1, 55, 3))
    d6_Tx55x6 = matrix_to_rotation_6d(R_Tx55x3x3)         # the model's representation
    aa = rotation_6d_to_axis_angle(d6_Tx55x6)              # back to a file's axis-angle
    R = euler_to_matrix(degrees_Tx3, "ZXY")                # BVH: R = Rz(a0) @ Rx(a1) @ Ry(a2)
    degrees_Tx3 = matrix_to_euler(R, "ZXY")

Every function takes arrays with any leading dims and works on the last one or two (sizes are
static, so all of them jit). One implementation serves two callers: given JAX arrays (or tracers
under jit) it computes with jax.numpy; given numpy arrays it computes with numpy and keeps
float64, so file round trips (BVH degrees, npz axis-angle) stay exact to far below 1e-5.
Matrices act on column vectors (v' = R @ v); `R @ offset` turns a child's offset into the
parent's frame. Each 0/0 limit (angle 0, the 6D and quaternion normalisations) is replaced by
its series or a floor on the norm inside `where`, so values and gradients stay finite.

Conventions:
- axis-angle [..., 3]: axis * angle in radians (SMPL-X, AMASS, BEAT2 `poses`).
- 6D [..., 6] (Zhou et al. 2019): the first two COLUMNS of R, (R[:, 0], R[:, 1]); back by
  Gram-Schmidt. (PyTorch3D takes rows instead; its 6D vectors are the transposes' columns.)
- quaternion [..., 4]: (w, x, y, z), returned with w >= 0.
- Euler: degrees, intrinsic, in the order the channels are listed (BVH "Zrotation Xrotation
  Yrotation" is order "ZXY": R = Rz(a0) @ Rx(a1) @ Ry(a2)); the middle angle comes back in
  [-90, 90], the others in (-180, 180].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["array_namespace", "axis_angle_to_matrix", "matrix_to_axis_angle",
           "matrix_to_rotation_6d", "rotation_6d_to_matrix", "axis_angle_to_rotation_6d",
           "rotation_6d_to_axis_angle", "matrix_to_quaternion", "quaternion_to_matrix",
           "axis_angle_to_quaternion", "quaternion_to_axis_angle", "slerp", "euler_to_matrix",
           "matrix_to_euler", "check_euler_order"]

_AXES = "XYZ"
# Below this squared angle sin(t)/t and friends use their series (error ~ t^4, below float64).
_SMALL_ANGLE2 = 1e-8
# |cos(middle angle)| below this counts as gimbal lock: the third angle is set to 0.
_GIMBAL = 1e-6


def array_namespace(*arrays):
    """jax.numpy if any argument is a JAX array or tracer, else numpy."""
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def _float(x, xp):
    x = xp.asarray(x)
    if not xp.issubdtype(x.dtype, xp.floating):
        x = x.astype(xp.float64 if xp is np else xp.float32)
    return x


def _normalize(v, xp, floor=1e-12):
    return v / xp.sqrt(xp.maximum(xp.sum(v * v, axis=-1, keepdims=True), floor))


def _skew(v, xp):
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    zero = xp.zeros_like(x)
    return xp.stack([xp.stack([zero, -z, y], -1),
                     xp.stack([z, zero, -x], -1),
                     xp.stack([-y, x, zero], -1)], -2)


# ----------------------------------------------------------------------------------------------
# Axis-angle, quaternions, matrices
# ----------------------------------------------------------------------------------------------


def axis_angle_to_matrix(aa):
    """Rodrigues: axis-angle [..., 3] -> rotation matrices [..., 3, 3]."""
    xp = array_namespace(aa)
    aa = _float(aa, xp)
    t2 = xp.sum(aa * aa, axis=-1)[..., None, None]
    small = t2 < _SMALL_ANGLE2
    t = xp.sqrt(xp.where(small, 1.0, t2))
    # R = I + a K + b K^2 with K the (unnormalised) cross-product matrix of aa.
    a = xp.where(small, 1.0 - t2 / 6.0, xp.sin(t) / t)
    b = xp.where(small, 0.5 - t2 / 24.0, 2.0 * xp.sin(t / 2.0) ** 2 / (t * t))
    k = _skew(aa, xp)
    return xp.eye(3, dtype=aa.dtype) + a * k + b * (k @ k)


def axis_angle_to_quaternion(aa):
    """Axis-angle [..., 3] -> unit quaternions (w, x, y, z) [..., 4]."""
    xp = array_namespace(aa)
    aa = _float(aa, xp)
    t2 = xp.sum(aa * aa, axis=-1, keepdims=True)
    small = t2 < _SMALL_ANGLE2
    t = xp.sqrt(xp.where(small, 1.0, t2))
    half_sinc = xp.where(small, 0.5 - t2 / 48.0, xp.sin(t / 2.0) / t)   # sin(t/2) / t
    w = xp.where(small, 1.0 - t2 / 8.0, xp.cos(t / 2.0))
    return xp.concatenate([w, aa * half_sinc], axis=-1)


def quaternion_to_axis_angle(q):
    """Quaternions (w, x, y, z) [..., 4] -> axis-angle [..., 3] with angle in [0, pi]."""
    xp = array_namespace(q)
    q = _float(q, xp)
    q = xp.where(q[..., :1] < 0, -q, q)
    w, v = q[..., :1], q[..., 1:]
    n2 = xp.sum(v * v, axis=-1, keepdims=True)
    small = n2 < _SMALL_ANGLE2
    n = xp.sqrt(xp.where(small, 1.0, n2))
    w_small = xp.where(small, w, 1.0)   # near angle 0, w is close to 1
    # angle / |v| with angle = 2 atan2(|v|, w); its series near |v| = 0 is 2/w - 2|v|^2/(3w^3).
    scale = xp.where(small, 2.0 / w_small - 2.0 * n2 / (3.0 * w_small ** 3),
                     2.0 * xp.arctan2(n, w) / n)
    return v * scale


def quaternion_to_matrix(q):
    """Quaternions (w, x, y, z) [..., 4], normalised first -> rotation matrices [..., 3, 3]."""
    xp = array_namespace(q)
    q = _normalize(_float(q, xp), xp)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return xp.stack([
        xp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        xp.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        xp.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def matrix_to_quaternion(r):
    """Rotation matrices [..., 3, 3] -> unit quaternions (w, x, y, z) [..., 4], w >= 0.

    Shepperd's method: of the four ways to read q off R, use the one dividing by the largest
    component, so angles near pi are as accurate as angles near 0.
    """
    xp = array_namespace(r)
    r = _float(r, xp)
    m00, m01, m02 = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
    m10, m11, m12 = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
    m20, m21, m22 = r[..., 2, 0], r[..., 2, 1], r[..., 2, 2]
    # (2w)^2, (2x)^2, (2y)^2, (2z)^2
    sq = xp.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                   1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    # Row i is 4 * q_i * q: each row equals q up to a positive scale where q_i > 0.
    rows = xp.stack([
        xp.stack([sq[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
        xp.stack([m21 - m12, sq[..., 1], m10 + m01, m02 + m20], -1),
        xp.stack([m02 - m20, m10 + m01, sq[..., 2], m12 + m21], -1),
        xp.stack([m10 - m01, m20 + m02, m21 + m12, sq[..., 3]], -1),
    ], -2)
    best = xp.argmax(sq, axis=-1)[..., None, None]
    q = xp.take_along_axis(rows, best, axis=-2)[..., 0, :]
    q = _normalize(q, xp)
    return xp.where(q[..., :1] < 0, -q, q)


def matrix_to_axis_angle(r):
    """Rotation matrices [..., 3, 3] -> axis-angle [..., 3] (angle in [0, pi])."""
    return quaternion_to_axis_angle(matrix_to_quaternion(r))


def slerp(q0, q1, t):
    """Spherical interpolation of unit quaternions [..., 4] at fractions t [...] in [0, 1].

    Takes the shorter arc (q and -q are one rotation). The angle between q0 and q1 comes from
    atan2(|q1 - q0|, |q1 + q0|), accurate at every size; below 1e-4 rad the weights take
    their limits (1 - t, t).
    """
    xp = array_namespace(q0, q1, t)
    q0, q1 = _float(q0, xp), _float(q1, xp)
    t = _float(t, xp)[..., None]
    q1 = xp.where(xp.sum(q0 * q1, axis=-1, keepdims=True) < 0, -q1, q1)

    def norm(v):
        return xp.sqrt(xp.maximum(xp.sum(v * v, axis=-1, keepdims=True), 1e-30))

    theta = 2.0 * xp.arctan2(norm(q1 - q0), norm(q1 + q0))
    small = theta < 1e-4
    sin_theta = xp.where(small, 1.0, xp.sin(theta))
    w0 = xp.where(small, 1.0 - t, xp.sin((1.0 - t) * theta) / sin_theta)
    w1 = xp.where(small, t, xp.sin(t * theta) / sin_theta)
    return _normalize(w0 * q0 + w1 * q1, xp)


# ----------------------------------------------------------------------------------------------
# 6D
# ----------------------------------------------------------------------------------------------


def matrix_to_rotation_6d(r):
    """Rotation matrices [..., 3, 3] -> 6D [..., 6]: the first column, then the second."""
    xp = array_namespace(r)
    r = _float(r, xp)
    return xp.concatenate([r[..., :, 0], r[..., :, 1]], axis=-1)


def rotation_6d_to_matrix(d6):
    """6D [..., 6] (any two non-parallel 3-vectors) -> rotation matrices [..., 3, 3].

    Gram-Schmidt: b1 = a1 / |a1|, b2 = the unit part of a2 orthogonal to b1, b3 = b1 x b2;
    R = [b1 b2 b3] as columns. An exact rotation's 6D comes back as that rotation.
    """
    xp = array_namespace(d6)
    d6 = _float(d6, xp)
    b1 = _normalize(d6[..., :3], xp)
    a2 = d6[..., 3:]
    b2 = _normalize(a2 - xp.sum(b1 * a2, axis=-1, keepdims=True) * b1, xp)
    b3 = xp.cross(b1, b2)
    return xp.stack([b1, b2, b3], axis=-1)


def axis_angle_to_rotation_6d(aa):
    """Axis-angle [..., 3] -> 6D [..., 6]."""
    return matrix_to_rotation_6d(axis_angle_to_matrix(aa))


def rotation_6d_to_axis_angle(d6):
    """6D [..., 6] -> axis-angle [..., 3]."""
    return matrix_to_axis_angle(rotation_6d_to_matrix(d6))


# ----------------------------------------------------------------------------------------------
# Euler angles (BVH)
# ----------------------------------------------------------------------------------------------


def check_euler_order(order: str) -> tuple[int, int, int]:
    """Axis indices of an order string of three distinct letters from "XYZ" ("ZXY" -> 2, 0, 1).

    Raises ValueError otherwise (file readers check their channels before calling).
    """
    if len(order) != 3 or set(order) != set(_AXES):
        raise ValueError(f"Euler order must be a permutation of 'XYZ', got {order!r}")
    return tuple(_AXES.index(a) for a in order)


def _axis_rotation(axis: int, angle, xp):
    c, s = xp.cos(angle), xp.sin(angle)
    one, zero = xp.ones_like(c), xp.zeros_like(c)
    rows = {
        0: [[one, zero, zero], [zero, c, -s], [zero, s, c]],
        1: [[c, zero, s], [zero, one, zero], [-s, zero, c]],
        2: [[c, -s, zero], [s, c, zero], [zero, zero, one]],
    }[axis]
    return xp.stack([xp.stack(row, -1) for row in rows], -2)


def euler_to_matrix(degrees, order: str):
    """Intrinsic Euler angles in degrees [..., 3], listed in `order` -> matrices [..., 3, 3].

    R = R_order[0](degrees[..., 0]) @ R_order[1](degrees[..., 1]) @ R_order[2](degrees[..., 2]),
    which is how BVH composes a joint's rotation channels in the order they are listed.
    """
    xp = array_namespace(degrees)
    radians = xp.deg2rad(_float(degrees, xp))
    i, j, k = check_euler_order(order)
    return (_axis_rotation(i, radians[..., 0], xp) @ _axis_rotation(j, radians[..., 1], xp)
            @ _axis_rotation(k, radians[..., 2], xp))


def matrix_to_euler(r, order: str):
    """Rotation matrices [..., 3, 3] -> intrinsic Euler angles in degrees [..., 3] in `order`.

    The inverse of `euler_to_matrix`: the middle angle in [-90, 90], the outer two in
    (-180, 180]. At gimbal lock (middle angle +-90) only their sum or difference is defined;
    the third angle is then 0.
    """
    xp = array_namespace(r)
    r = _float(r, xp)
    i, j, k = check_euler_order(order)
    # +1 for cyclic orders (XYZ, YZX, ZXY), -1 for the others.
    s = 1.0 if (j - i) % 3 == 1 else -1.0
    cos_b = xp.sqrt(r[..., i, i] ** 2 + r[..., i, j] ** 2)
    b = xp.arctan2(s * r[..., i, k], cos_b)
    locked = cos_b < _GIMBAL
    a = xp.where(locked, xp.arctan2(s * r[..., k, j], r[..., j, j]),
                 xp.arctan2(-s * r[..., j, k], r[..., k, k]))
    c = xp.where(locked, 0.0, xp.arctan2(-s * r[..., i, j], r[..., i, i]))
    return xp.rad2deg(xp.stack([a, b, c], axis=-1))
