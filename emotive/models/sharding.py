"""Logical axis names, the one logical-to-mesh rules table, and the activation helper.

Parameters are created with logical axis names (`axes=("embed", "mlp")` metadata
on each nnx.Param). `RULES` maps each logical name onto mesh axes of the
(`data`, `fsdp`, `tensor`) mesh. The same model code then runs on one CPU, on
simulated devices, on a GPU or on a TPU pod: only the mesh changes.

This module sits in the models core (not in train/) because model code calls
`constrain` at block boundaries and models never import train/.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# Logical axis -> mesh axes it may be split over (tried in order, skipped when
# the dimension does not divide or the mesh axis is already used in the spec).
RULES: dict[str, tuple[str, ...]] = {
    # activations
    "batch": ("data", "fsdp"),
    "length": (),
    "act_embed": (),
    "act_heads": ("tensor",),
    "act_kv_heads": ("tensor",),
    "act_mlp": ("tensor",),
    "act_vocab": ("tensor",),
    "cache_length": (),
    # parameters
    "embed": ("fsdp",),
    "vocab": ("tensor",),
    "heads": ("tensor",),
    "kv_heads": ("tensor",),
    "head_dim": (),
    "mlp": ("tensor",),
    "cond": (),
    "channels": ("tensor",),
    "in_channels": (),
    "kernel": (),
    "layers": (),
    "norm": (),
}

_MESH: contextvars.ContextVar[Mesh | None] = contextvars.ContextVar("emotive_mesh", default=None)


@contextlib.contextmanager
def use_mesh(mesh: Mesh) -> Iterator[Mesh]:
    """Makes `mesh` the one `constrain` uses for the enclosed code (tracing included)."""
    token = _MESH.set(mesh)
    try:
        yield mesh
    finally:
        _MESH.reset(token)


def current_mesh() -> Mesh | None:
    return _MESH.get()


def logical_to_spec(axes: Sequence[str | None], shape: Sequence[int] | None = None,
                    mesh: Mesh | None = None) -> PartitionSpec:
    """Maps logical axis names to a PartitionSpec by `RULES`.

    With `shape` and `mesh` given, a mesh axis is used only where it divides the
    dimension, so odd sizes (a 193,800-token vocabulary, 3 output channels) stay
    replicated on that axis instead of failing.
    """
    used: set[str] = set()
    spec = []
    for i, name in enumerate(axes):
        chosen = []
        size = shape[i] if shape is not None else None
        for mesh_axis in RULES.get(name, ()) if name else ():
            if mesh_axis in used:
                continue
            n = mesh.shape[mesh_axis] if mesh is not None else 1
            if mesh is not None and n == 1:
                continue
            if size is not None and mesh is not None:
                divisor = n
                for a in chosen:
                    divisor *= mesh.shape[a]
                if size % divisor:
                    continue
            chosen.append(mesh_axis)
            used.add(mesh_axis)
        spec.append(tuple(chosen) if len(chosen) > 1 else (chosen[0] if chosen else None))
    return PartitionSpec(*spec)


def constrain(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
    """Constrains activation `x` to the sharding its logical `axes` imply (no-op off-mesh)."""
    mesh = current_mesh()
    if mesh is None or mesh.size == 1:
        return x
    spec = logical_to_spec(axes, x.shape, mesh)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
