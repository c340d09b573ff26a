"""The device mesh, parameter shardings from logical axes, and the start-up memory report."""

from __future__ import annotations

import math

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from emotive.configs.common import MeshConfig
from emotive.errors import UserError
from emotive.models.sharding import MESH_AXES, logical_to_spec

# A parameter this large (bytes) that stays replicated over a multi-device mesh is reported.
LARGE_PARAM_BYTES = 1 << 20


def mesh_shape(cfg: MeshConfig, num_devices: int) -> tuple[int, int, int]:
    """Resolves the (data, fsdp, tensor) sizes; one -1 takes the remaining devices."""
    sizes = [cfg.data, cfg.fsdp, cfg.tensor]
    if sizes.count(-1) > 1:
        raise UserError(f"mesh {dict(zip(MESH_AXES, sizes))}: at most one axis may be -1")
    if any(s == 0 or s < -1 for s in sizes):
        raise UserError(f"mesh {dict(zip(MESH_AXES, sizes))}: sizes must be positive or -1")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if num_devices % known:
            raise UserError(f"mesh {dict(zip(MESH_AXES, sizes))} does not divide the "
                            f"{num_devices} devices; pick sizes whose product divides it")
        sizes[sizes.index(-1)] = num_devices // known
    if math.prod(sizes) != num_devices:
        raise UserError(f"mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices "
                        f"but {num_devices} are available; set mesh sizes whose product is "
                        f"{num_devices} (or use -1 on one axis)")
    return tuple(sizes)


def make_mesh(cfg: MeshConfig, devices=None) -> Mesh:
    devices = list(jax.devices() if devices is None else devices)
    shape = mesh_shape(cfg, len(devices))
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES)


def variable_axes(variable: nnx.Variable) -> tuple:
    """Logical axes of a variable; a scanned layer stack adds a leading 'layers' dim."""
    axes = variable.get_metadata().get("axes")
    shape = variable.shape
    if axes is None:
        return (None,) * len(shape)
    if len(shape) == len(axes) + 1:
        return ("layers",) + tuple(axes)
    return tuple(axes)


def state_shardings(state: nnx.State, mesh: Mesh):
    """NamedShardings for every leaf of an nnx.State, from the logical-axes rules."""

    def one(variable):
        if not isinstance(variable, nnx.Variable):
            return NamedSharding(mesh, PartitionSpec())
        spec = logical_to_spec(variable_axes(variable), variable.shape, mesh)
        return variable.replace(NamedSharding(mesh, spec))

    return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def param_report(state: nnx.State, shardings, mesh: Mesh) -> tuple[list[str], list[str]]:
    """Returns (report lines, names of large parameters left unsharded on a multi-device mesh)."""
    total = per_device = 0
    unsharded = []
    flat_state = dict(nnx.to_flat_state(state))
    flat_shard = dict(nnx.to_flat_state(shardings))
    for path, variable in flat_state.items():
        nbytes = int(np.prod(variable.shape)) * np.dtype(variable.dtype).itemsize
        sharding = flat_shard[path]
        sharding = sharding.get_value() if isinstance(sharding, nnx.Variable) else sharding
        spec = sharding.spec
        parts = 1
        for entry in spec:
            for axis in (entry if isinstance(entry, tuple) else (entry,)):
                if axis is not None:
                    parts *= mesh.shape[axis]
        total += nbytes
        per_device += nbytes // parts
        if parts == 1 and mesh.size > 1 and nbytes >= LARGE_PARAM_BYTES:
            unsharded.append(f"{'/'.join(map(str, path))} {tuple(variable.shape)} "
                             f"({nbytes / 2**20:.1f} MiB)")
    lines = [f"mesh {dict(mesh.shape)} over {mesh.size} device(s)",
             f"parameters: {total / 2**20:.2f} MiB in all, {per_device / 2**20:.2f} MiB per device"]
    if unsharded:
        lines.append(f"large parameters left unsharded: {'; '.join(unsharded)}")
    return lines, unsharded


def batch_sharding(mesh: Mesh, ndim: int = 1) -> NamedSharding:
    """Leading dim over the batch-parallel mesh axes, the rest replicated."""
    spec = logical_to_spec(("batch",) + (None,) * (ndim - 1), mesh=mesh)
    return NamedSharding(mesh, spec)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())
