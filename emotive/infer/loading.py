"""Load a trained model of any single-group task from its checkpoint, for inference.

    loaded = load_trained("runs/ser-tiny", task="ser")   # newest step of the run
    out = loaded.model(audio_BxT, lengths_B)              # the task's nnx model, eval mode

The task's own `make_model` builds the module abstractly (no memory), then the saved
parameters (group "model") and non-parameter variables (`rest`: batch-norm statistics,
carried state) are read into it. Optimiser state is never read. A checkpoint of another
task, a damaged one or one of a different config gives a one-line UserError.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
from flax import nnx

from emotive import configs
from emotive.configs import base
from emotive.errors import UserError
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
