"""FSQ: every code round-trips through its index, rounding is straight-through, usage metrics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emotive.codecs.fsq import DEFAULT_LEVELS, FSQ, XCODEC2_LEVELS, codebook_usage
from emotive.errors import UserError


@pytest.mark.parametrize("levels", [DEFAULT_LEVELS, XCODEC2_LEVELS, (3, 2, 7)])
def test_every_index_round_trips_and_codes_are_distinct(levels):
    fsq = FSQ(levels)
    idx = jnp.arange(fsq.codebook_size)
    codes = fsq.indices_to_codes(idx)
    assert codes.shape == (fsq.codebook_size, len(levels))
    np.testing.assert_array_equal(fsq.codes_to_indices(codes), idx)
    assert float(jnp.min(codes)) == -1.0 and float(jnp.max(codes)) <= 1.0
    # Each dim takes exactly levels[d] distinct values.
    for d, n in enumerate(levels):
        assert len(np.unique(np.asarray(codes[:, d]))) == n


@pytest.mark.parametrize("levels", [DEFAULT_LEVELS, XCODEC2_LEVELS])
def test_quantize_lands_on_the_grid_and_reaches_every_level(levels):
    fsq = FSQ(levels)
    z = jnp.linspace(-12.0, 12.0, 4001)[:, None] * jnp.ones((1, fsq.dim))
    codes = fsq.quantize(z)
    idx = fsq.codes_to_indices(codes)
    np.testing.assert_allclose(fsq.indices_to_codes(idx), codes, atol=1e-6)
    for d, n in enumerate(levels):  # saturating inputs reach both ends, nothing beyond
        assert len(np.unique(np.asarray(codes[:, d]))) == n
    np.testing.assert_allclose(fsq.quantize(jnp.zeros((1, fsq.dim))), 0.0, atol=1e-7)


def test_straight_through_gradient_is_the_bound_derivative():
    fsq = FSQ(DEFAULT_LEVELS)
    z = jax.random.normal(jax.random.key(0), (5, fsq.dim))
    _, half_width, _ = fsq._arrays()
    grad_q = jax.grad(lambda z: jnp.sum(fsq.quantize(z)))(z)
    grad_b = jax.grad(lambda z: jnp.sum(fsq.bound(z) / half_width))(z)
    np.testing.assert_allclose(grad_q, grad_b, rtol=1e-6)
    assert float(jnp.min(jnp.abs(grad_q))) > 0  # rounding alone would give zero gradients


def test_usage_and_perplexity():
    k = 16
    uniform = codebook_usage(jnp.arange(k), k)
    assert float(uniform["usage"]) == 1.0
    np.testing.assert_allclose(uniform["perplexity"], k, rtol=1e-5)
    np.testing.assert_allclose(uniform["entropy_bits"], 4.0, rtol=1e-5)
    one = codebook_usage(jnp.full((3, 7), 5), k)
    assert float(one["usage"]) == 1 / k
    np.testing.assert_allclose(one["perplexity"], 1.0, rtol=1e-6)
    # Masked positions do not count: two codes used, equally often.
    idx = jnp.array([[1, 2, 9, 9], [1, 2, 3, 3]])
    mask = jnp.array([[1, 1, 0, 0], [1, 1, 0, 0]], bool)
    masked = jax.jit(codebook_usage, static_argnums=1)(idx, k, mask)
    assert float(masked["usage"]) == 2 / k
    np.testing.assert_allclose(masked["perplexity"], 2.0, rtol=1e-5)


def test_bad_levels_are_user_errors():
    with pytest.raises(UserError, match="ints >= 2"):
        FSQ((8, 1))
    with pytest.raises(UserError, match="int32"):
        FSQ((1000,) * 4)
