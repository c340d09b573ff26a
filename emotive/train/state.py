"""Train state as pure pytrees, created sharded, and the jitted train and eval steps.

The model is split once into a graph definition and states (one per parameter
group, plus `rest` for non-parameter variables such as batch-norm statistics).
The train state is plain nested dicts of arrays, so orbax saves it and
`jax.jit` shards it with explicit in/out shardings:

    {"step": int32[], "params": {group: tree}, "opt": {group: optax state}, "rest": tree}
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from emotive.models.sharding import use_mesh
from emotive.train.mesh import batch_sharding, replicated, state_shardings
from emotive.train.task import Task


@dataclasses.dataclass
class Model:
    """What the steps need to rebuild the nnx model from pure states."""

    graphdef: Any
    groups: tuple[str, ...]
    abstract_states: tuple[nnx.State, ...]  # one per group, then rest

    def merge(self, params: dict, rest: dict) -> nnx.Module:
        states = [nnx.State(params[g]) for g in self.groups] + [nnx.State(rest)]
        return nnx.merge(self.graphdef, *states)


def split_abstract(task: Task, seed: int) -> tuple[Model, Any]:
    """Builds the model abstractly (no memory) and splits it by the task's parameter groups."""
    abstract = nnx.eval_shape(lambda: task.make_model(nnx.Rngs(seed)))
    filters = [task.param_filters[g] for g in task.groups]
    graphdef, *states = nnx.split(abstract, *filters, ...)
    return Model(graphdef, task.groups, tuple(states)), abstract


def _pure(state: nnx.State) -> dict:
    return state.to_pure_dict()


def init_state(task: Task, model: Model, optimizers: dict, mesh: Mesh, seed: int):
    """Initialises parameters directly into their shardings; returns (state, state_shardings)."""
    param_sh = {g: _pure(state_shardings(s, mesh)) for g, s in zip(model.groups,
                                                                     model.abstract_states)}
    rest_sh = _pure(state_shardings(model.abstract_states[-1], mesh))
    filters = [task.param_filters[g] for g in task.groups]

    def init_params():
        _, *states = nnx.split(task.make_model(nnx.Rngs(seed)), *filters, ...)
        params = {g: _pure(s) for g, s in zip(model.groups, states)}
        return params, _pure(states[-1])

    with use_mesh(mesh):
        params, rest = jax.jit(init_params, out_shardings=(param_sh, rest_sh))()
        opt = {g: jax.jit(optimizers[g].init)(params[g]) for g in model.groups}
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt": opt, "rest": rest}

    def on_mesh(x):  # optimiser moments follow their parameters; scalars are replicated
        s = x.sharding
        return s if isinstance(s, NamedSharding) and s.mesh == mesh else replicated(mesh)

    shardings = jax.tree.map(on_mesh, state)
    return jax.device_put(state, shardings), shardings


def abstract_state(state_or_shardings: Any, like: Any) -> Any:
    """ShapeDtypeStructs carrying shardings: the target orbax restores into."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        like, state_or_shardings)


def _split_micro(batch: dict, n: int) -> dict:
    return jax.tree.map(lambda x: x.reshape((n, x.shape[0] // n) + x.shape[1:]), batch)


def _loss_and_grads(task: Task, model: Model, rest_filter, params: dict, group: str,
                    rest: dict, batch: dict, rng: jax.Array):
    """Group `group`'s loss on `batch` with the other groups' `params` held fixed.

    Returns (loss, aux metrics, rest after the forward pass, gradients of the group)."""

    def loss_of(group_params, rest):
        m = model.merge({**params, group: group_params}, rest)
        loss, aux = task.losses[group](m, batch, rng)
        new_rest = _pure(nnx.state(m, rest_filter)) if rest else rest
        return loss, (aux, new_rest)

    (loss, (aux, rest)), grads = jax.value_and_grad(loss_of, has_aux=True)(params[group], rest)
    return loss, aux, rest, grads


def _accumulated(loss_and_grads, group_params: dict, rest: dict, batch: dict, rng: jax.Array,
                 n: int):
    """`loss_and_grads(rest, micro_batch, rng)` averaged over `n` micro-batches in a scan,
    `rest` carried from one to the next; micro-batch i gets rng folded with i."""
    micro_batches = _split_micro(batch, n)

    def micro(carry, xs):
        grads_acc, rest, loss_acc, aux_acc = carry
        micro_batch, i = xs
        loss, aux, rest, grads = loss_and_grads(rest, micro_batch, jax.random.fold_in(rng, i))
        return (jax.tree.map(jnp.add, grads_acc, grads), rest, loss_acc + loss,
                jax.tree.map(jnp.add, aux_acc, aux)), None

    first = jax.tree.map(lambda x: x[0], micro_batches)
    aux_shapes = jax.eval_shape(functools.partial(loss_and_grads, rest, first, rng))[1]
    carry = (jax.tree.map(jnp.zeros_like, group_params), rest, jnp.zeros((), jnp.float32),
             jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), aux_shapes))
    (grads, rest, loss, aux), _ = jax.lax.scan(micro, carry, (micro_batches, jnp.arange(n)))
    return (loss / n, jax.tree.map(lambda a: a / n, aux), rest,
            jax.tree.map(lambda g: g / n, grads))


def make_train_step(task: Task, model: Model, optimizers: dict, schedules: dict, seed: int,
                    grad_accum: int):
    """Returns train_step(state, batch) -> (state, metrics), pure and jittable.

    The groups are updated in order, each loss seeing the groups before it already updated;
    with several groups the metrics `loss`, `grad_norm` and `lr` carry the group's name."""
    rest_filter = nnx.Not(nnx.Any(*[task.param_filters[g] for g in model.groups]))
    suffix = {g: f"_{g}" if len(model.groups) > 1 else "" for g in model.groups}

    def train_step(state, batch):
        step = state["step"]
        params, opt, rest = dict(state["params"]), dict(state["opt"]), state["rest"]
        metrics = {}
        for gi, group in enumerate(model.groups):
            rng = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), step), gi)
            loss_and_grads = functools.partial(_loss_and_grads, task, model, rest_filter,
                                               params, group)
            if grad_accum == 1:
                loss, aux, rest, grads = loss_and_grads(rest, batch, rng)
            else:
                loss, aux, rest, grads = _accumulated(loss_and_grads, params[group], rest, batch,
                                                      rng, grad_accum)
            updates, opt[group] = optimizers[group].update(grads, opt[group], params[group])
            params[group] = optax.apply_updates(params[group], updates)
            metrics[f"loss{suffix[group]}"] = loss
            metrics[f"grad_norm{suffix[group]}"] = optax.global_norm(grads)
            metrics[f"lr{suffix[group]}"] = schedules[group](step)
            metrics.update(aux)
        new_state = {"step": step + 1, "params": params, "opt": opt, "rest": rest}
        return new_state, metrics

    return train_step


def make_eval_step(task: Task, model: Model):
    def eval_step(state, batch):
        m = model.merge(state["params"], state["rest"])
        return task.eval_fn(m, batch)

    return eval_step


def global_batch(local: dict, mesh: Mesh) -> dict:
    """Process-local numpy batch -> global jax arrays sharded over the batch axes."""
    return {k: jax.make_array_from_process_local_data(batch_sharding(mesh, v.ndim), v)
            for k, v in local.items()}


def batch_shardings(batch: dict, mesh: Mesh) -> dict[str, NamedSharding]:
    return {k: batch_sharding(mesh, v.ndim) for k, v in batch.items()}
