"""Scale on paper: parameters, per-device memory and FLOPs of a train step, from shapes only.

    report = scale_report(cfg, devices=jax.devices())
    print(format_report(report))

Nothing the size of a parameter is ever allocated: the model is built with
`nnx.eval_shape`, the optimiser state with `jax.eval_shape`, and the train step
is lowered from ShapeDtypeStructs that carry their shardings, then compiled. The
compiled executable reports XLA's own per-device memory and FLOP estimates,
which sit beside the analytic (MaxText-style) FLOP count of the task.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from emotive.errors import UserError
from emotive.models.sharding import use_mesh
from emotive.train.mesh import make_mesh, replicated, state_shardings
from emotive.train.optim import adamw, lr_schedule
from emotive.train.state import Model, batch_shardings, make_train_step, split_abstract
from emotive.train.tasks import make_task

# Parameter path prefixes -> report labels, first match wins; other top-level
# modules are reported under their own name.
COMPONENTS = (
    (("embed",), "embedding"),
    (("body", "blocks"), "layers"),
    (("body", "final_norm"), "final norm"),
    (("head",), "head"),
)

SCAN_NOTE = ("XLA's cost analysis counts a loop body once, so with model.scan_layers=true "
             "its figure covers one layer of the stack")


def _component(path: tuple) -> str:
    for prefix, label in COMPONENTS:
        if tuple(path[:len(prefix)]) == prefix:
            return label
    return str(path[0])


def param_counts(model: Model) -> dict[str, int]:
    """Parameter counts of an abstract model: {"total": n, "embedding": n, "layers": n, ...}.

    Takes the `Model` from `split_abstract` (shapes only); with several parameter
    groups the components are prefixed by the group name.
    """
    counts: dict[str, int] = {}
    multi = len(model.groups) > 1
    for group, state in zip(model.groups, model.abstract_states):
        for path, variable in nnx.to_flat_state(state):
            label = _component(path)
            label = f"{group}/{label}" if multi else label
            counts[label] = counts.get(label, 0) + math.prod(variable.shape)
    # Report in model order (embedding, layers, final norm, head), then anything else.
    order = {label: i for i, (_, label) in enumerate(COMPONENTS)}
    ranked = sorted(counts, key=lambda k: (order.get(k.rpartition("/")[2], len(order)), k))
    return {"total": sum(counts.values()), **{k: counts[k] for k in ranked}}


def abstract_train_state(model: Model, optimizers: dict, mesh: Mesh) -> tuple[dict, dict]:
    """The train state as ShapeDtypeStructs, and its NamedShardings on `mesh`.

    Returns (state, shardings), both shaped like `init_state`'s
    {"step", "params", "opt", "rest"}; optimiser moments are sharded like the
    parameters they follow and optimiser scalars are replicated, as in `init_state`.
    """
    params, param_sh, opt, opt_sh = {}, {}, {}, {}
    for group, state in zip(model.groups, model.abstract_states):
        params[group] = state.to_pure_dict()
        param_sh[group] = state_shardings(state, mesh).to_pure_dict()
        opt[group] = jax.eval_shape(optimizers[group].init, params[group])
        opt_sh[group] = optax.tree_map_params(
            optimizers[group], lambda _, sharding: sharding, opt[group], param_sh[group],
            transform_non_params=lambda _: replicated(mesh))
    rest_state = model.abstract_states[-1]
    state = {"step": jax.ShapeDtypeStruct((), jnp.int32), "params": params, "opt": opt,
             "rest": rest_state.to_pure_dict()}
    shardings = {"step": replicated(mesh), "params": param_sh, "opt": opt_sh,
                 "rest": state_shardings(rest_state, mesh).to_pure_dict()}
    return state, shardings


def bytes_per_device(tree: Any, shardings: Any) -> int:
    """Bytes one device holds of `tree` (ShapeDtypeStructs) under `shardings` (same structure)."""
    total = 0
    for leaf, sharding in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings)):
        shard = sharding.shard_shape(leaf.shape) if isinstance(sharding, NamedSharding) \
            else leaf.shape
        total += math.prod(shard) * np.dtype(leaf.dtype).itemsize
    return total


def bytes_total(tree: Any) -> int:
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def _memory(compiled) -> dict[str, int]:
    try:
        stats = compiled.memory_analysis()
    except Exception:  # not every backend implements it; the rest of the report stands
        return {}
    if stats is None:
        return {}
    out = {"argument": stats.argument_size_in_bytes, "output": stats.output_size_in_bytes,
           "alias": stats.alias_size_in_bytes, "temporary": stats.temp_size_in_bytes,
           "generated_code": stats.generated_code_size_in_bytes}
    # Donated inputs alias their outputs, so they are counted once.
    out["peak_estimate"] = out["argument"] + out["output"] - out["alias"] + out["temporary"]
    return out


def _xla_flops(compiled) -> float | None:
    try:
        cost = compiled.cost_analysis()
    except Exception:  # not every backend implements it; the analytic count still stands
        return None
    if isinstance(cost, (list, tuple)):  # older JAX: one dict per program
        cost = cost[0] if cost else None
    if not cost or "flops" not in cost:
        return None
    return float(cost["flops"])


def scale_report(cfg: Any, devices=None, batch_size: int | None = None, seed: int = 0) -> dict:
    """Compiles one train step of `cfg` on a mesh of `devices` from shapes only.

    Takes a validated experiment config (its `mesh` section gives the mesh
    shape), the devices (default all), and the global batch (default one row per
    data-parallel device). Returns a JSON-ready dict: mesh, batch, seq_len,
    param counts per component, bytes per device of parameters and optimiser
    state, the compiled per-device memory, FLOPs per step (analytic and XLA's)
    and the lowering and compile seconds.
    """
    mesh = make_mesh(cfg.mesh, devices)
    data_parallel = mesh.shape["data"] * mesh.shape["fsdp"]
    accum = cfg.optim.grad_accum
    batch_size = data_parallel * accum if batch_size is None else batch_size
    if batch_size < 1 or batch_size % (data_parallel * accum):
        raise UserError(f"batch {batch_size} must be a positive multiple of the data-parallel "
                        f"devices ({data_parallel}) times optim.grad_accum ({accum})")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=batch_size))
    task = make_task(cfg)
    model, _ = split_abstract(task, seed)
    steps = cfg.train.steps
    optimizers = dict(task.optimizers or {g: adamw(cfg.optim, steps) for g in task.groups})
    schedules = {g: lr_schedule(cfg.optim, steps) for g in task.groups}
    state, shardings = abstract_train_state(model, optimizers, mesh)

    # One real batch gives the shapes and dtypes; it is small next to the model.
    local = next(task.data.train(0, 1))
    batch = {k: jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype) for k, v in local.items()}
    batch_sh = batch_shardings(local, mesh)
    first = np.asarray(next(iter(local.values())))
    seq_len = int(first.shape[1]) if first.ndim > 1 else 1

    step_fn = jax.jit(make_train_step(task, model, optimizers, schedules, seed, accum),
                      in_shardings=(shardings, batch_sh),
                      out_shardings=(shardings, replicated(mesh)), donate_argnums=(0,))
    start = time.perf_counter()
    with use_mesh(mesh):
        lowered = step_fn.lower(state, batch)
    lower_s = time.perf_counter() - start
    start = time.perf_counter()
    # The executable is never run, and memory and FLOPs come from the HLO-level buffer
    # assignment and cost model, which LLVM's optimisation level leaves alone: skipping
    # it halves the compile time and changes none of the numbers.
    compiled = lowered.compile({"xla_backend_optimization_level": 0})
    compile_s = time.perf_counter() - start

    counts = param_counts(model)
    model_cfg = getattr(cfg, "model", None)
    num_layers = getattr(model_cfg, "num_layers", 0)
    if num_layers and "layers" in counts:  # list one layer right after the stack
        with_layer = {}
        for label, n in counts.items():
            with_layer[label] = n
            if label == "layers":
                with_layer["per_layer"] = n // num_layers
        counts = with_layer
    xla_per_device = _xla_flops(compiled)
    analytic = float(task.flops_per_step) or None  # 0: the task has no analytic count
    flops = {"analytic_per_step": analytic,
             "analytic_per_device": None if analytic is None else analytic / mesh.size,
             "xla_per_device": xla_per_device,
             "xla_all_devices": None if xla_per_device is None else xla_per_device * mesh.size}
    if model_cfg is not None and getattr(model_cfg, "scan_layers", False):
        flops["note"] = SCAN_NOTE
    return {
        "mesh": {k: int(v) for k, v in mesh.shape.items()},
        "devices": int(mesh.size),
        "platform": mesh.devices.flat[0].platform,
        "batch": batch_size,
        "seq_len": seq_len,
        "tokens_per_step": batch_size * seq_len,
        "params": counts,
        "bytes_per_device": {
            "params": bytes_per_device(state["params"], shardings["params"]),
            "optimizer": bytes_per_device(state["opt"], shardings["opt"]),
        },
        "bytes_all_devices": {"params": bytes_total(state["params"]),
                              "optimizer": bytes_total(state["opt"])},
        "memory_per_device": _memory(compiled),
        "flops": flops,
        "lower_seconds": round(lower_s, 2),
        "compile_seconds": round(compile_s, 2),
    }


def _count(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{int(n):,} ({n / scale:.3f}{unit})"
    return f"{int(n):,}"


def _bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def _flops(n: float | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / 1e12:,.2f} TFLOP" if n >= 1e11 else f"{n / 1e9:,.3f} GFLOP"


def format_report(report: dict, title: str = "") -> str:
    """The report of `scale_report` as a two-column text table."""
    rows: list[tuple[str, str]] = []
    mesh = " ".join(f"{k}={v}" for k, v in report["mesh"].items())
    rows.append(("mesh", f"{mesh} ({report['devices']} {report['platform']} devices)"))
    rows.append(("batch x seq_len", f"{report['batch']} x {report['seq_len']} = "
                 f"{report['tokens_per_step']:,} tokens per step"))
    counts = report["params"]
    rows.append(("parameters", _count(counts["total"])))
    for label, n in counts.items():
        if label != "total":
            rows.append((f"  {label.replace('_', ' ')}", _count(n)))
    per_dev, total = report["bytes_per_device"], report["bytes_all_devices"]
    rows.append(("params bytes / device", f"{_bytes(per_dev['params'])} "
                 f"(of {_bytes(total['params'])})"))
    rows.append(("optimizer bytes / device", f"{_bytes(per_dev['optimizer'])} "
                 f"(of {_bytes(total['optimizer'])})"))
    memory = report["memory_per_device"]
    if memory:
        for key in ("argument", "output", "alias", "temporary", "generated_code",
                    "peak_estimate"):
            rows.append((f"compiled {key.replace('_', ' ')} / device", _bytes(memory[key])))
    else:
        rows.append(("compiled memory / device", "n/a (backend gives no memory analysis)"))
    flops = report["flops"]
    rows.append(("FLOPs / step (analytic)", _flops(flops["analytic_per_step"])))
    rows.append(("FLOPs / device (analytic)", _flops(flops["analytic_per_device"])))
    rows.append(("FLOPs / device (XLA)", _flops(flops["xla_per_device"])))
    rows.append(("FLOPs / step (XLA, all devices)", _flops(flops["xla_all_devices"])))
    rows.append(("lower + compile", f"{report['lower_seconds']:.1f} s + "
                 f"{report['compile_seconds']:.1f} s"))
    width = max(len(k) for k, _ in rows)
    lines = [title] if title else []
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    if memory:
        lines.append(f"note: memory is the XLA:{report['platform'].upper()} compiler's plan for "
                     "these shapes; GPU and TPU compilers fuse and schedule differently")
    if "note" in flops:
        lines.append(f"note: {flops['note']}")
    return "\n".join(lines)
