"""The one predictor base: a trained model, split once, run jitted over padded batches.

    class Recognizer(Predictor):
        tasks = ("asr",)
        def transcribe(self, audio_BxT, lengths_B=None):
            ids_BxS, slots_B = self.apply(_best_path, audio_BxT, lengths_B)
            ...

    rec = Recognizer.load("runs/asr-base")     # newest checkpoint of an `asr` run

`apply(fn, x_BxT, lengths_B)` pads the time axis of a batch to a bucket length (a few
lengths per unit, see `bucket_length`), passes the valid lengths along (every model here
masks padding, so a padded row gives the row's own result), and runs the module-level pure
function `fn(model, x_BxT, lengths_B)` under one jit keyed on (fn, graph definition): two
predictors of one architecture share compiled programs, and jit sees a handful of shapes
instead of one per clip.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any, Callable, ClassVar

import jax
import numpy as np
from flax import nnx

from emotive.configs.common import SAMPLE_RATE
from emotive.infer.loading import load_trained

DOUBLINGS = 5  # unit, 2, 4, 8, 16 units; then whole multiples of 32 units


def bucket_length(n: int, unit: int, doublings: int = DOUBLINGS) -> int:
    """The padded length for `n` steps: the smallest unit * 2^k (k < doublings) that holds
    it, else a whole multiple of unit * 2^doublings."""
    size = unit
    for _ in range(doublings):
        if n <= size:
            return size
        size *= 2
    return -(-n // size) * size


def pad_rows(rows, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """1-D arrays -> (zero-padded float32 [B, max(length, longest)], lengths int32 [B])."""
    lengths = np.array([r.shape[0] for r in rows], np.int32)
    batch = np.zeros((len(rows), max(int(lengths.max(initial=0)), length or 0)), np.float32)
    for i, r in enumerate(rows):
        batch[i, :r.shape[0]] = r
    return batch, lengths


@functools.partial(jax.jit, static_argnums=(0, 1))
def _apply(fn, graphdef, state, *arrays):
    return fn(nnx.merge(graphdef, state), *arrays)


class Predictor:
    """A trained model (config, nnx module in eval mode, training step) with jitted calls.

    Subclasses name the tasks whose checkpoints they read (`tasks`) and the padding unit of
    their time axis (`unit`, in steps of their input: samples, or codec frames).
    """

    tasks: ClassVar[tuple[str, ...]] = ()
    unit: ClassVar[int] = SAMPLE_RATE // 2

    def __init__(self, cfg: Any, model: nnx.Module, step: int = 0, step_dir=None):
        self.cfg, self.model, self.step, self.step_dir = cfg, model, step, step_dir
        self._graphdef, self._state = nnx.split(model)

    @classmethod
    def load(cls, ckpt, tasks: tuple[str, ...] | None = None):
        """The newest checkpoint under `ckpt` (a run dir, its checkpoints/ or a step dir, or
        a release bundle) of one of `tasks` (default: the class's); UserError for another
        task's checkpoint."""
        # orbax wants an absolute path; a relative --ckpt is common on the command line.
        trained = load_trained(pathlib.Path(ckpt).absolute(), task=tuple(tasks or cls.tasks))
        return cls(trained.cfg, trained.model, trained.step, trained.step_dir)

    @property
    def task(self) -> str:
        return self.cfg.task

    @property
    def num_params(self) -> int:
        return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self._state.filter(nnx.Param)))

    def run(self, fn: Callable, *arrays):
        """fn(model, *arrays) under jit, as it is (no padding)."""
        return _apply(fn, self._graphdef, self._state, *arrays)

    def apply(self, fn: Callable, x_BxT, lengths_B=None, dtype=np.float32):
        """fn(model, x padded [B, bucket], lengths int32 [B]) under jit; `lengths_B` defaults
        to whole rows."""
        x_BxT = np.asarray(x_BxT, dtype)
        b, t = x_BxT.shape[:2]
        lengths_B = np.full(b, t, np.int32) if lengths_B is None else np.asarray(lengths_B,
                                                                                 np.int32)
        pad = bucket_length(max(t, 1), self.unit) - t
        x_BxT = np.pad(x_BxT, ((0, 0), (0, pad)) + ((0, 0),) * (x_BxT.ndim - 2))
        return self.run(fn, x_BxT, lengths_B)
