"""Checkpoints: one orbax CheckpointManager for train state, input-iterator state and config.

Each step directory holds `state` (parameters, optimiser state, step, rng),
`data` (the grain iterator's position, one file per process) and `config`
(the resolved config as JSON). Reading a checkpoint for inference goes through
`restore_params`, so infer/ never needs the trainer.
"""

from __future__ import annotations

import json
import logging
import pathlib
import shutil
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

from emotive.errors import UserError

log = logging.getLogger(__name__)


class Checkpointer:
    """Saves every `every` steps (async), keeps the last `keep`, restores the newest readable."""

    def __init__(self, directory: str | pathlib.Path, *, keep: int = 3, async_save: bool = True):
        self.directory = pathlib.Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=async_save)
        self.manager = ocp.CheckpointManager(
            self.directory, options=options,
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "data": grain.checkpoint.CheckpointHandler(),
                           "config": ocp.JsonCheckpointHandler()})

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, data_iter: Any, config: dict) -> None:
        items = {"state": ocp.args.StandardSave(state), "config": ocp.args.JsonSave(config)}
        if data_iter is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iter)
        self.manager.save(step, args=ocp.args.Composite(**items), force=True)

    def restore(self, abstract_state: Any, data_iter: Any) -> tuple[int, Any] | None:
        """Restores the newest readable checkpoint into `abstract_state`'s structure/shardings.

        A checkpoint that fails to read (truncated, corrupt) is reported in one line and
        the one before it is tried. Returns (step, state), or None when there is none.
        """
        for step in reversed(self.steps()):
            items = {"state": ocp.args.StandardRestore(abstract_state)}
            if data_iter is not None:
                items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
            try:
                restored = self.manager.restore(step, args=ocp.args.Composite(**items))
            except Exception as exc:  # noqa: BLE001 - any read failure means "try the previous one"
                reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                aside = self._move_aside(step)
                print(f"checkpoint step {step} in {self.directory} is unreadable ({reason}); "
                      f"moved it to {aside.name} and trying the previous one", flush=True)
                continue
            return step, restored["state"]
        return None

    def _move_aside(self, step: int) -> pathlib.Path:
        """Renames an unreadable step folder so a resumed run can write that step again."""
        source = self.directory / str(step)
        target = self.directory / f"{step}.unreadable"
        if jax.process_index() == 0 and source.exists():
            if target.exists():
                shutil.rmtree(target)
            source.rename(target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"emotive_move_aside_{step}")
        self.manager.reload()
        return target

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def latest_step_dir(directory: str | pathlib.Path) -> pathlib.Path:
    """The newest step directory under a run's `checkpoints/` (or the directory itself)."""
    path = pathlib.Path(directory)
    if not path.exists():
        raise UserError(f"checkpoint directory {path} does not exist; pass a run's workdir "
                        "or its checkpoints/ folder")
    for candidate in (path, path / "checkpoints"):
        steps = [p for p in candidate.iterdir() if p.is_dir() and p.name.isdigit()] \
            if candidate.is_dir() else []
        if steps:
            return max(steps, key=lambda p: int(p.name))
    if (path / "state").is_dir():
        return path
    raise UserError(f"no checkpoint found under {path}; expected step folders like "
                    f"{path}/checkpoints/1000 written by `emotive train`")


def read_config(step_dir: pathlib.Path) -> dict:
    """The resolved config saved beside a checkpoint, as a dict."""
    path = step_dir / "config" / "metadata"
    if not path.exists():
        candidates = list((step_dir / "config").glob("*")) if (step_dir / "config").is_dir() else []
        if not candidates:
            raise UserError(f"checkpoint {step_dir} has no config; was it written by emotive?")
        path = candidates[0]
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"checkpoint config {path} is unreadable ({exc}); the checkpoint is "
                        "damaged, use an earlier step") from None


def restore_params(step_dir: pathlib.Path, abstract_params: Any) -> Any:
    """Reads only `params` of a saved train state, shaped and sharded like `abstract_params`.

    `abstract_params` is a pytree of jax.ShapeDtypeStruct (with .sharding where wanted),
    e.g. {"model": ...} for a single-group task. Optimiser state is never read.
    """
    return restore_subset(step_dir, {"params": abstract_params})["params"]


def restore_subset(step_dir: pathlib.Path, item: dict) -> dict:
    """Reads the parts of a saved train state named by `item` (e.g. {"params": ..., "rest":
    ...}), each a pytree of jax.ShapeDtypeStruct; UserError if the checkpoint does not fit."""
    state_dir = (pathlib.Path(step_dir) / "state").absolute()  # orbax wants absolute paths
    if not state_dir.is_dir():
        raise UserError(f"checkpoint {step_dir} has no state folder; it is incomplete")
    try:
        return ocp.PyTreeCheckpointer().restore(
            state_dir, args=ocp.args.PyTreeRestore(
                item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
                partial_restore=True))
    except (ValueError, KeyError, FileNotFoundError) as exc:
        reason = str(exc).splitlines()[0][:200]
        raise UserError(f"checkpoint {step_dir} does not fit this model ({reason}); check that "
                        "--ckpt points at a checkpoint of the same config") from None
