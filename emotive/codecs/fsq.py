"""Finite scalar quantization (FSQ, Mentzer et al. 2023): a codebook with no parameters.

Each of the D latent dims is squashed into a bounded range and rounded to one of `levels[d]`
values, so the implicit codebook is the grid of prod(levels) points. With levels
(8, 8, 8, 5, 5, 5) that is 64,000 codes (the FSQ paper's recommendation for about 2^16);
X-codec2 uses (4,) * 8 = 65,536. Gradients pass through the rounding unchanged
(straight-through), so there is no commitment loss and no codebook collapse to fight.

    fsq = FSQ((8, 8, 8, 5, 5, 5))
    codes_BxNxD = fsq.quantize(z_BxNxD)          # values in [-1, 1], on the grid
    idx_BxN = fsq.codes_to_indices(codes_BxNxD)  # int32 in [0, fsq.codebook_size)
    fsq.indices_to_codes(idx_BxN)                # == codes_BxNxD

Even level counts have no grid point at 0, so the squashed range is shifted by half a step
(the paper's `offset`): dim d rounds to the integers -L//2 .. (L-1)//2 before scaling.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from emotive.configs.codec import DEFAULT_LEVELS, XCODEC2_LEVELS
from emotive.errors import UserError

__all__ = ["DEFAULT_LEVELS", "XCODEC2_LEVELS", "FSQ", "check_levels", "codebook_usage",
           "round_ste"]
# Keeps tanh's bound strictly inside the outermost rounding interval: without it the
# saturated value could round one step past the last level.
_EPS = 1e-3


def check_levels(levels: Sequence[int]) -> tuple[int, ...]:
    """Returns `levels` as a tuple after checking each is an int >= 2; raises UserError."""
    levels = tuple(int(v) for v in levels)
    if not levels or any(v < 2 for v in levels):
        raise UserError(f"FSQ levels must be a non-empty list of ints >= 2, got {levels}; "
                        "e.g. 8,8,8,5,5,5")
    if math.prod(levels) > 2**31 - 1:
        raise UserError(f"FSQ levels {levels} give {math.prod(levels)} codes, more than int32 "
                        "indices hold; use fewer or smaller levels")
    return levels


def round_ste(x: jax.Array) -> jax.Array:
    """Rounds to the nearest integer in the forward pass; identity gradient (straight-through)."""
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


@dataclasses.dataclass(frozen=True)
class FSQ:
    """The quantizer for one tuple of per-dim level counts (static; no parameters)."""

    levels: tuple[int, ...] = DEFAULT_LEVELS

    def __post_init__(self):
        object.__setattr__(self, "levels", check_levels(self.levels))

    @property
    def dim(self) -> int:
        return len(self.levels)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def _arrays(self):
        levels = np.asarray(self.levels, np.float32)
        half_width = np.floor(levels / 2)  # integer grid is -half_width .. levels-1-half_width
        # Mixed radix: index = sum_d digit_d * prod(levels[:d]).
        basis = np.cumprod([1] + list(self.levels[:-1])).astype(np.int64)
        return levels, half_width, basis

    def bound(self, z: jax.Array) -> jax.Array:
        """Squashes z [..., D] so dim d rounds to exactly levels[d] integers; float32 [..., D].

        Odd L: tanh(z) * (L-1)/2 covers (-(L-1)/2, (L-1)/2). Even L: the range is shifted
        down by 0.5 to (-L/2, L/2 - 1) so its L integers sit symmetrically in the open range;
        the arctanh shift keeps bound(0) = 0.
        """
        levels, _, _ = self._arrays()
        half_l = (levels - 1) * (1 - _EPS) / 2
        offset = np.where(levels % 2 == 0, 0.5, 0.0)
        shift = np.arctanh(offset / half_l)
        return jnp.tanh(z.astype(jnp.float32) + shift) * half_l - offset

    def quantize(self, z: jax.Array) -> jax.Array:
        """z [..., D] -> grid codes [..., D] in [-1, 1], with straight-through gradients."""
        _, half_width, _ = self._arrays()
        return round_ste(self.bound(z)) / half_width

    def codes_to_indices(self, codes: jax.Array) -> jax.Array:
        """Grid codes [..., D] (from `quantize`) -> int32 indices [...] in [0, codebook_size)."""
        _, half_width, basis = self._arrays()
        digits = jnp.round(codes * half_width + half_width).astype(jnp.int32)
        return jnp.sum(digits * basis.astype(np.int32), axis=-1).astype(jnp.int32)

    def indices_to_codes(self, indices: jax.Array) -> jax.Array:
        """int indices [...] -> grid codes float32 [..., D] (the inverse of codes_to_indices)."""
        levels, half_width, basis = self._arrays()
        digits = (jnp.asarray(indices)[..., None] // basis.astype(np.int32)) \
            % levels.astype(np.int32)
        return (digits.astype(jnp.float32) - half_width) / half_width

    def all_codes(self) -> jax.Array:
        """Every grid point in index order, float32 [codebook_size, D]."""
        return self.indices_to_codes(jnp.arange(self.codebook_size))


def codebook_usage(indices: jax.Array, codebook_size: int,
                   mask: jax.Array | None = None) -> dict[str, jax.Array]:
    """Usage statistics of code `indices` (int [...]) over the valid positions of `mask`.

    Returns float32 scalars: `usage`, the fraction of the codebook used at least once;
    `perplexity`, exp of the entropy of the code histogram (the effective number of codes
    used; at most min(count, codebook_size)); and `entropy_bits`, that entropy in bits.
    Jittable: the histogram is a scatter-add into [codebook_size].
    """
    flat = jnp.reshape(indices, (-1,))
    weights = (jnp.ones(flat.shape, jnp.float32) if mask is None
               else jnp.reshape(mask, (-1,)).astype(jnp.float32))
    counts = jnp.zeros((codebook_size,), jnp.float32).at[flat].add(weights)
    probs = counts / jnp.maximum(counts.sum(), 1.0)
    entropy = -jnp.sum(jnp.where(probs > 0, probs * jnp.log(jnp.where(probs > 0, probs, 1.0)),
                                 0.0))
    return {"usage": jnp.mean((counts > 0).astype(jnp.float32)),
            "perplexity": jnp.exp(entropy),
            "entropy_bits": entropy / np.log(2.0)}
