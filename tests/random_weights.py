"""Random weights drawn with numpy for the tests' models: no per-shape RNG compiles, which
cost seconds each on a CPU. Norm scales are ones, matrices N(0, 1/fan_in), vectors
N(0, 0.01); any weights suit tests whose properties hold for every parameter value."""

import jax
import numpy as np
from flax import nnx


def numpy_init(make, seed=0, *, params_only=False, zero=None):
    """Module `make()` with numpy random values in every state leaf, or with `params_only`
    in its nnx.Params only (other state, such as running moments, as `make()` sets it, in
    one jitted call). `zero(path)` True leaves that leaf zero (and draws nothing for it)."""
    rng = np.random.default_rng(seed)

    def fill(path, x):
        if path[-1].key == "scale":
            return np.ones(x.shape, np.float32)
        if zero is not None and zero(path):
            return np.zeros(x.shape, np.float32)
        scale = 0.1 if len(x.shape) < 2 else 1 / np.sqrt(np.prod(x.shape[:-1]))
        return (scale * rng.standard_normal(x.shape)).astype(np.float32)

    def filled(state):
        nnx.replace_by_pure_dict(state, jax.tree_util.tree_map_with_path(
            fill, state.to_pure_dict()))
        return state

    abstract = nnx.eval_shape(make)
    if not params_only:
        graphdef, state = nnx.split(abstract)
        return nnx.merge(graphdef, filled(state))
    graphdef, params, rest = nnx.split(abstract, nnx.Param, ...)
    nnx.replace_by_pure_dict(rest, jax.jit(
        lambda: nnx.split(make(), nnx.Param, ...)[2].to_pure_dict())())
    return nnx.merge(graphdef, filled(params), rest)
