"""The released module's weights, streamed leaf by leaf from a training checkpoint into a
bundle's safetensors files (format: emotive.infer.bundle).

Only the released module's parameters and non-parameter variables are restored (no
optimiser or iterator state), sharded over all devices when there are several processes,
then gathered to the host one tensor at a time (`process_allgather` per leaf; `device_get`
on one process) and written as it arrives, so the host holds one tensor, never a second copy
of the model. Every process takes part in the gathers (they are collective); only the one
given a folder writes.
"""

from __future__ import annotations

import math
import pathlib

import jax
import numpy as np

from emotive.infer import bundle
from emotive.train.checkpoint import restore_subset


def _source_paths(family: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Where the released module's params and rest sit in the saved train state."""
    if family == "codec":
        return ("params", "generator", "codec"), ("rest", "codec")
    return ("params", "model"), ("rest",)


def _nest(path: tuple[str, ...], tree) -> dict:
    for key in reversed(path):
        tree = {key: tree}
    return tree


def _pluck(tree, path: tuple[str, ...]):
    for key in path:
        tree = tree[key]
    return tree


def _release_mesh():
    """All devices on one axis: each leaf is sharded where it divides (multi-host only)."""
    from emotive.configs.common import MeshConfig
    from emotive.train.mesh import make_mesh

    return make_mesh(MeshConfig(data=1, fsdp=-1, tensor=1))


def _targets(state, mesh):
    """ShapeDtypeStructs of an abstract nnx.State (with shardings on `mesh`)."""
    shapes = state.to_pure_dict()
    if mesh is None:
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), shapes)
    from emotive.train.mesh import state_shardings

    shardings = state_shardings(state, mesh).to_pure_dict()
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        shapes, shardings)


def _to_host(x) -> np.ndarray:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True)).reshape(x.shape)
    return np.asarray(jax.device_get(x))


def write_weights(root: pathlib.Path | None, step_dir: pathlib.Path, cfg, *, dtype: str,
                  shard_bytes: int | None, step: int, sharded: bool | None = None) -> dict:
    """Streams the released module's tensors from the checkpoint into `root` (None: a
    process other than 0, which gathers but writes nothing); returns counts and bytes.
    `sharded` (default: with several processes) restores over all devices first."""
    family = cfg.task
    _, params, rest = bundle.abstract_parts(cfg)
    sharded = jax.process_count() > 1 if sharded is None else sharded
    mesh = _release_mesh() if sharded else None
    params_at, rest_at = _source_paths(family)
    item = _nest(params_at[1:], _targets(params, mesh))
    item = {"params": item}
    rest_targets = _targets(rest, mesh)
    if jax.tree.leaves(rest_targets):
        item["rest"] = _nest(rest_at[1:], rest_targets)
    restored = restore_subset(step_dir, item)
    leaves = dict(bundle.flat_keys(bundle.PARAMS, _pluck(restored, params_at)))
    if "rest" in item:
        leaves.update(bundle.flat_keys(bundle.REST, _pluck(restored, rest_at)))
    del restored  # `leaves` holds the only references; each is dropped once written

    def stored_code(key, leaf) -> str:
        floating = np.issubdtype(np.dtype(leaf.dtype), np.floating)
        if dtype == "bfloat16" and floating and key.startswith(bundle.PARAMS + "/"):
            return "BF16"
        return bundle.dtype_code(leaf.dtype)

    entries = [(key, tuple(leaf.shape), stored_code(key, leaf)) for key, leaf in
               sorted(leaves.items())]
    codes = {key: code for key, _, code in entries}

    def fetch(key):
        host = _to_host(leaves.pop(key))
        return host.astype(bundle.DTYPES[codes[key]]) if root is not None else None

    metadata = {"format": "pt", "task": family, "step": str(step), "dtype": dtype}
    bundle.write_shards(root, entries, fetch, metadata, shard_bytes)
    params_entries = [(s, c) for k, s, c in entries if k.startswith(bundle.PARAMS + "/")]
    return {"parameters": sum(math.prod(s) for s, _ in params_entries),
            "bytes": sum(bundle.nbytes(s, c) for s, c in params_entries)}
