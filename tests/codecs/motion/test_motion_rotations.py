"""Tests for emotive.codecs.motion.rotations: known values, round trips, limits, jit."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emotive.codecs.motion import rotations as rot

# 90 degrees about x, y and z (column-vector convention: R @ v).
RX90 = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
RY90 = np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])
RZ90 = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
ORDERS = ["".join(p) for p in itertools.permutations("XYZ")]


def _random_axis_angle(n, seed=0, max_angle=np.pi - 1e-3):
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    return axis * rng.uniform(0, max_angle, size=(n, 1))


def _random_euler(shape, seed=0):
    rng = np.random.default_rng(seed)
    angles = rng.uniform(-179, 179, size=shape + (3,))
    angles[..., 1] = rng.uniform(-89, 89, size=shape)
    return angles


@pytest.mark.parametrize("axis,want", [(0, RX90), (1, RY90), (2, RZ90)])
def test_90_degrees_about_each_axis(axis, want):
    aa = np.zeros(3)
    aa[axis] = np.pi / 2
    np.testing.assert_allclose(rot.axis_angle_to_matrix(aa), want, atol=1e-12)
    np.testing.assert_allclose(rot.matrix_to_axis_angle(want), aa, atol=1e-12)
    degrees = np.zeros(3)
    degrees[0] = 90.0
    order = "XYZ"[axis] + "XYZ"[(axis + 1) % 3] + "XYZ"[(axis + 2) % 3]
    np.testing.assert_allclose(rot.euler_to_matrix(degrees, order), want, atol=1e-12)
    np.testing.assert_allclose(rot.matrix_to_euler(want, order), degrees, atol=1e-10)
    # The quaternion of 90 degrees about the axis: (cos 45, sin 45 along the axis).
    q = np.zeros(4)
    q[0] = q[1 + axis] = np.sqrt(0.5)
    np.testing.assert_allclose(rot.matrix_to_quaternion(want), q, atol=1e-12)
    np.testing.assert_allclose(rot.quaternion_to_matrix(q), want, atol=1e-12)


def test_axis_angle_round_trip_numpy_and_jax():
    aa = _random_axis_angle(500).reshape(5, 100, 3)
    r = rot.axis_angle_to_matrix(aa)
    assert isinstance(r, np.ndarray) and r.dtype == np.float64 and r.shape == (5, 100, 3, 3)
    np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), r.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    np.testing.assert_allclose(rot.matrix_to_axis_angle(r), aa, atol=1e-10)
    r32 = jax.jit(rot.axis_angle_to_matrix)(jnp.asarray(aa, jnp.float32))
    assert isinstance(r32, jax.Array) and r32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(r32), r, atol=1e-5)
    np.testing.assert_allclose(np.asarray(jax.jit(rot.matrix_to_axis_angle)(r32)), aa, atol=1e-4)


def test_angle_zero_is_exact_and_differentiable():
    np.testing.assert_array_equal(rot.axis_angle_to_matrix(np.zeros(3)), np.eye(3))
    np.testing.assert_array_equal(rot.matrix_to_axis_angle(np.eye(3)), np.zeros(3))
    tiny = np.array([1e-9, -2e-9, 3e-9])
    np.testing.assert_allclose(rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(tiny)), tiny,
                               rtol=1e-6, atol=1e-20)
    for fn in (lambda a: rot.axis_angle_to_matrix(a).sum(),
               lambda a: rot.axis_angle_to_quaternion(a).sum(),
               lambda a: rot.rotation_6d_to_axis_angle(rot.axis_angle_to_rotation_6d(a)).sum()):
        grad = jax.jit(jax.grad(fn))(jnp.zeros(3))
        assert np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize("gap", [0.0, 1e-7, 1e-4])
def test_near_pi(gap):
    axis = np.array([1.0, 2.0, -2.0]) / 3.0
    aa = axis * (np.pi - gap)
    r = rot.axis_angle_to_matrix(aa)
    back = rot.matrix_to_axis_angle(r)
    np.testing.assert_allclose(rot.axis_angle_to_matrix(back), r, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(back), np.pi - gap, atol=1e-9)
    # At pi the axis sign is arbitrary (a and -a are one rotation); otherwise it is kept.
    if gap > 0:
        np.testing.assert_allclose(back, aa, atol=1e-6)


def test_6d_is_the_first_two_columns_and_round_trips():
    r = rot.axis_angle_to_matrix(_random_axis_angle(64, seed=1))
    d6 = rot.matrix_to_rotation_6d(r)
    assert d6.shape == (64, 6)
    np.testing.assert_array_equal(d6[:, :3], r[:, :, 0])
    np.testing.assert_array_equal(d6[:, 3:], r[:, :, 1])
    np.testing.assert_allclose(rot.rotation_6d_to_matrix(d6), r, atol=1e-12)
    aa = _random_axis_angle(64, seed=2)
    np.testing.assert_allclose(rot.rotation_6d_to_axis_angle(rot.axis_angle_to_rotation_6d(aa)),
                               aa, atol=1e-10)


def test_6d_of_any_vectors_is_a_rotation():
    d6 = np.random.default_rng(3).normal(size=(32, 6))
    r = rot.rotation_6d_to_matrix(d6)
    np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), r.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    # Gram-Schmidt keeps the first column's direction.
    np.testing.assert_allclose(r[:, :, 0], d6[:, :3] / np.linalg.norm(d6[:, :3], axis=1,
                                                                      keepdims=True), atol=1e-12)


@pytest.mark.parametrize("order", ORDERS)
def test_euler_round_trip(order):
    degrees = _random_euler((200,), seed=4)
    r = rot.euler_to_matrix(degrees, order)
    np.testing.assert_allclose(rot.matrix_to_euler(r, order), degrees, atol=1e-9)
    # Intrinsic, in the listed order: R = R_a(d0) @ R_b(d1) @ R_c(d2).
    singles = [rot.euler_to_matrix(_single(k, degrees[:, k]), order) for k in range(3)]
    np.testing.assert_allclose(singles[0] @ singles[1] @ singles[2], r, atol=1e-12)


def _single(k, angle):
    """Euler triples that rotate only about the order's k-th axis."""
    out = np.zeros(angle.shape + (3,))
    out[..., k] = angle
    return out


@pytest.mark.parametrize("order", ["ZXY", "XYZ", "YXZ"])
@pytest.mark.parametrize("middle", [90.0, -90.0])
def test_euler_gimbal_lock_keeps_the_matrix(order, middle):
    r = rot.euler_to_matrix(np.array([30.0, middle, 40.0]), order)
    degrees = rot.matrix_to_euler(r, order)
    assert degrees[2] == 0.0 and abs(degrees[1] - middle) < 1e-6
    np.testing.assert_allclose(rot.euler_to_matrix(degrees, order), r, atol=1e-9)


def test_bad_euler_order():
    with pytest.raises(ValueError, match="permutation"):
        rot.euler_to_matrix(np.zeros(3), "XXY")


def test_slerp_halfway_and_endpoints():
    q0 = np.array([1.0, 0, 0, 0])
    q1 = rot.axis_angle_to_quaternion(np.array([0, 0, np.pi / 2]))
    half = rot.slerp(q0, q1, np.array(0.5))
    np.testing.assert_allclose(rot.quaternion_to_axis_angle(half), [0, 0, np.pi / 4], atol=1e-12)
    np.testing.assert_allclose(rot.slerp(q0, q1, np.array(0.0)), q0, atol=1e-12)
    np.testing.assert_allclose(rot.slerp(q0, -q1, np.array(1.0)), q1, atol=1e-12)  # short arc


def test_jit_and_batching_agree_with_numpy():
    aa = _random_axis_angle(24, seed=5).reshape(2, 3, 4, 3)
    jitted = jax.jit(lambda a: rot.matrix_to_rotation_6d(rot.axis_angle_to_matrix(a)))
    got = np.asarray(jitted(jnp.asarray(aa, jnp.float32)))
    np.testing.assert_allclose(got, rot.axis_angle_to_rotation_6d(aa), atol=1e-6)
    euler = jax.jit(lambda r: rot.matrix_to_euler(r, "ZXY"))
    degrees = _random_euler((2, 5), seed=6)
    r = rot.euler_to_matrix(degrees, "ZXY")
    np.testing.assert_allclose(np.asarray(euler(jnp.asarray(r, jnp.float32))), degrees,
                               atol=2e-3)
