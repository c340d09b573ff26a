"""Load a trained model of any single-group task from its checkpoint, for inference.

    loaded = load_trained("runs/ser-tiny", task="ser")   # newest step of the run
    out = loaded.model(audio_BxT, lengths_B)              # the task's nnx model, eval mode

The task's own `make_model` builds the module abstractly (no memory), then the saved
parameters (group "model") and non-parameter variables (`rest`: batch-norm statistics,
carried state) are read into it. Optimiser state is never read. A checkpoint of another
task, a damaged one or one of a different config gives a one-line UserError.

`ckpt` may also be a release bundle (emotive/infer/bundle/: SHA256SUMS + config.json),
so every predictor's `.load` and every `--ckpt` takes one: its files are verified against
SHA256SUMS and its tensors checked against the model before they are used.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from emotive import configs
from emotive.configs import base
from emotive.errors import UserError
from emotive.infer import bundle
from emotive.train.checkpoint import latest_step_dir, read_config, restore_subset


@dataclasses.dataclass
class Trained:
    """A trained model with its resolved config and training step."""

    cfg: Any
    model: nnx.Module
    step: int
    step_dir: Any


def _config_class(experiment: str):
    """The config dataclass of an experiment, from its first preset."""
    table = configs.presets(experiment)
    return type(next(iter(table.values()))())


def load_trained(ckpt, *, task: str | tuple[str, ...], experiment: str | None = None) -> Trained:
    """Loads the newest checkpoint under `ckpt` (a run dir, its checkpoints/ or a step dir).

    `task` names the task(s) the checkpoint must come from; `experiment` the config module
    (default: the task name).
    """
    from emotive.train.tasks import make_task  # the task builds the model it trained

    tasks = (task,) if isinstance(task, str) else tuple(task)
    if bundle.is_bundle(ckpt):
        return load_bundle(ckpt, tasks)
    step_dir = latest_step_dir(ckpt)
    raw = read_config(step_dir)
    if raw.get("task") not in tasks:
        raise UserError(f"checkpoint {step_dir} is a {raw.get('task')!r} run, not "
                        f"{' or '.join(tasks)}; pass the workdir of `emotive train {tasks[0]}`")
    cfg = base.from_dict(_config_class(experiment or raw["task"]), raw)
    built = make_task(cfg)
    if built.groups != ("model",):
        raise UserError(f"task {raw['task']!r} has parameter groups {built.groups}; "
                        "load_trained reads single-group tasks only")
    abstract = nnx.eval_shape(lambda: built.make_model(nnx.Rngs(0)))
    graphdef, params, rest = nnx.split(abstract, built.param_filters["model"], ...)
    shapes = lambda s: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                                    s.to_pure_dict())
    item = {"params": {"model": shapes(params)}, "rest": shapes(rest)}
    restored = restore_subset(step_dir, item)
    nnx.replace_by_pure_dict(params, restored["params"]["model"])
    nnx.replace_by_pure_dict(rest, restored["rest"])
    model = nnx.merge(graphdef, params, rest)
    model.eval()  # batch norm uses running statistics, dropout is off
    step = int(step_dir.name) if step_dir.name.isdigit() else 0
    return Trained(cfg, model, step, step_dir)


def load_bundle(root, tasks: tuple[str, ...]) -> Trained:
    """A release bundle's model (verified, every tensor checked), in eval mode; `step_dir`
    is the bundle folder and `step` the training step it was released from."""
    root = pathlib.Path(root).absolute()
    cfg, params_dict, rest_dict = bundle.read_bundle(root, task=tasks)
    graphdef, params, rest = bundle.abstract_parts(cfg)
    to_device = lambda tree: jax.tree.map(jnp.asarray, tree)
    nnx.replace_by_pure_dict(params, to_device(params_dict))
    nnx.replace_by_pure_dict(rest, to_device(rest_dict))
    model = nnx.merge(graphdef, params, rest)
    model.eval()
    return Trained(cfg, model, bundle.bundle_step(root), root)
