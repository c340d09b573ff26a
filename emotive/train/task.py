"""A task is data: what the generic trainer needs to train one trainable thing.

A task names its model factory, its batches, and one loss per parameter group.
Most tasks have one group ("model"). A GAN has two ("generator", then
"discriminator"), each with its own optimiser: the trainer updates the groups in
order within a step, each loss seeing the others' latest parameters.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Mapping

import jax
import numpy as np
import optax
from flax import nnx

Batch = Mapping[str, np.ndarray]
Metrics = dict[str, jax.Array]
# (model, batch, rng) -> (scalar loss, metrics); runs inside jit.
LossFn = Callable[[nnx.Module, Batch, jax.Array], tuple[jax.Array, Metrics]]


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Input iterators of a task for one process.

    `train(process_index, process_count)` returns a checkpointable grain iterator of
    process-local numpy batches (a slice of the global batch); `eval` likewise,
    started fresh for each evaluation.
    """

    train: Callable[[int, int], Iterator[Batch]]
    eval: Callable[[int, int], Iterator[Batch]] | None = None


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    make_model: Callable[[nnx.Rngs], nnx.Module]
    data: DataSpec
    # Parameter group name -> loss. Groups are updated in this order.
    losses: Mapping[str, LossFn]
    # Parameter group name -> nnx filter selecting its parameters. Default: all nnx.Param.
    param_filters: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"model": nnx.Param})
    # Parameter group name -> optimiser; built by the trainer from config when absent.
    optimizers: Mapping[str, optax.GradientTransformation] | None = None
    # (model, batch) -> metrics, for periodic eval (inside jit).
    eval_fn: Callable[[nnx.Module, Batch], Metrics] | None = None
    # Training FLOPs of one global batch, for achieved TFLOP/s and MFU.
    flops_per_step: float = 0.0
    # Work items in a batch for throughput ("tokens" or "examples") and how to count them.
    throughput_unit: str = "examples"
    count_units: Callable[[Batch], int] | None = None

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self.losses)
