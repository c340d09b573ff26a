"""The generic trainer: any Task, any mesh, checkpointed, logged, resumable.

    summary = train(cfg, workdir, resume=False)

`_start` builds everything once (mesh, task, sharded state, resume, input iterator,
compiled step); then each step runs the step (inside the profiling window, if any), checks
the loss is finite, and logs, evaluates and checkpoints when due, each a named piece below.

Exit conditions: completes `train.steps`; SIGTERM (preemption) saves a final
checkpoint and raises `Preempted`; a non-finite loss raises `NonFiniteLoss`
naming the step, leaving the last good checkpoint as the newest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import pathlib
import signal
import time
from typing import Any, Callable, Iterator

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from emotive.configs import base
from emotive.errors import UserError
from emotive.models.layers import dtype_of
from emotive.models.sharding import use_mesh
from emotive.train import flops as flops_lib
from emotive.train.checkpoint import Checkpointer
from emotive.train.logger import MetricLogger
from emotive.train.mesh import make_mesh, param_report, replicated, state_shardings
from emotive.train.optim import adamw, lr_schedule
from emotive.train.state import (abstract_state, batch_shardings, global_batch, init_state,
                                  make_eval_step, make_train_step, split_abstract)
from emotive.train.task import Task
from emotive.train.tasks import make_task

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: the scheduler should requeue the job
EXIT_NONFINITE = 3


class Preempted(Exception):
    """SIGTERM arrived; a final checkpoint was written."""


class NonFiniteLoss(Exception):
    """The loss became NaN or Inf; the message names the step."""


def prepare_workdir(workdir: str | pathlib.Path, resume: bool) -> pathlib.Path:
    path = pathlib.Path(workdir)
    if path.exists() and not path.is_dir():
        raise UserError(f"workdir {path} is a file; pass a directory path with --workdir")
    ckpt_dir = path / "checkpoints"
    has_ckpts = ckpt_dir.is_dir() and any(p.name.isdigit() for p in ckpt_dir.iterdir())
    if has_ckpts and not resume:
        raise UserError(f"workdir {path} already holds checkpoints; pass --resume to continue "
                        "that run, or choose a new --workdir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create workdir {path} ({exc.strerror}); choose another "
                        "--workdir") from None
    return path


class _SigtermFlag:
    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def train(cfg: Any, workdir: str | pathlib.Path, *, resume: bool = False,
          progress: bool = True, devices=None) -> dict:
    """Trains `cfg` (a validated experiment config) in `workdir`; returns a summary dict."""
    workdir = prepare_workdir(workdir, resume)
    tcfg = cfg.train
    run = _start(cfg, workdir, resume, devices)
    peak, peak_source = flops_lib.peak_tflops(tcfg.peak_tflops, _compute_dtype(cfg))
    logger = MetricLogger(workdir, total_steps=tcfg.steps, start_step=run.start, progress=progress)
    logger.message(f"logging to {logger.jsonl_path} and TensorBoard {logger.tb_dir}; "
                   f"checkpoints in {workdir / 'checkpoints'}")
    train_step = _profiled(run.step, tcfg, workdir / "profile")
    meter = _Throughput(run.task, peak * run.mesh.size)
    check_finite = _FiniteCheck(run.ckpt)
    due = functools.partial(_due, last=tcfg.steps)
    config_json = base.to_dict(cfg)
    summary: dict = {"workdir": str(workdir), "start_step": run.start}
    state, batches = run.state, itertools.chain([run.first], run.data_iter)
    with _SigtermFlag() as sigterm, _closing(logger, run.ckpt):
        for step, local in zip(range(run.start, tcfg.steps), batches):
            state, metrics = train_step(step, state, local)
            meter.add(local)
            done = step + 1
            stop = sigterm.raised  # read once: the step that stops is the step that saves
            save = run.ckpt is not None and (due(done, tcfg.ckpt_every) or stop)
            check_finite(metrics, done, now=save or due(done, tcfg.log_every))
            if due(done, tcfg.log_every):
                summary["train"] = _log_train(logger, done, metrics, meter)
            if run.eval_step is not None and due(done, tcfg.eval_every):
                summary["eval"] = _log_eval(logger, done, _evaluate(run, state, tcfg.eval_batches))
            if save:
                run.ckpt.save(done, state, run.data_iter, config_json)
            logger.advance()
            if stop:
                raise _preempted(done, workdir, run.ckpt)
    summary.update(final_step=tcfg.steps, peak_tflops=peak, peak_source=peak_source,
                   metrics_file=str(logger.jsonl_path), tensorboard_dir=str(logger.tb_dir),
                   checkpoint_dir=str(workdir / "checkpoints"))
    summary["state"] = state
    return summary


@dataclasses.dataclass
class _Run:
    """What `_start` builds once and the loop works with."""

    task: Task
    mesh: Mesh
    state: Any  # the train state, restored when resuming
    step: Callable  # (state, process-local batch) -> (state, metrics), compiled
    eval_step: Callable | None  # jitted (state, global batch) -> metrics; None: no eval
    data_iter: Iterator  # the checkpointable train iterator, already past `first`
    first: dict  # the first batch: the step is compiled for its shapes and trains on it
    ckpt: Checkpointer | None  # None when train.ckpt_every=0
    start: int  # the first step to run


def _start(cfg: Any, workdir: pathlib.Path, resume: bool, devices) -> _Run:
    """The mesh, task, sharded state (restored when resuming), train iterator and compiled
    steps; prints the parameter report (process 0)."""
    tcfg = cfg.train
    mesh = make_mesh(cfg.mesh, devices)
    data_parallel = mesh.shape["data"] * mesh.shape["fsdp"]
    if tcfg.batch_size % (data_parallel * cfg.optim.grad_accum):
        raise UserError(f"train.batch_size={tcfg.batch_size} must be divisible by the "
                        f"data-parallel devices ({data_parallel}) times optim.grad_accum "
                        f"({cfg.optim.grad_accum})")
    task = make_task(cfg)
    say = print if jax.process_index() == 0 else (lambda *a, **k: None)

    model, _ = split_abstract(task, tcfg.seed)
    optimizers = dict(task.optimizers or {g: adamw(cfg.optim, tcfg.steps) for g in task.groups})
    state, shardings = init_state(task, model, optimizers, mesh, tcfg.seed)
    for line in param_report(*_params_and_shardings(model, mesh), mesh)[0]:
        say(line)

    data_iter = task.data.train(jax.process_index(), jax.process_count())
    ckpt = Checkpointer(workdir / "checkpoints", keep=tcfg.keep_ckpts,
                        async_save=tcfg.async_ckpt) if tcfg.ckpt_every > 0 else None
    start = 0
    if resume and ckpt is not None:
        restored = ckpt.restore(abstract_state(shardings, state), data_iter)
        if restored is not None:
            start, state = restored
            say(f"resumed from step {start} in {ckpt.directory}")

    first = next(data_iter)
    train_fn = make_train_step(task, model, optimizers,
                               {g: lr_schedule(cfg.optim, tcfg.steps) for g in task.groups},
                               tcfg.seed, cfg.optim.grad_accum)
    step = _compile(train_fn, state, shardings, first, mesh, say)
    eval_step = None
    if task.eval_fn is not None and task.data.eval is not None and tcfg.eval_every > 0:
        eval_step = jax.jit(make_eval_step(task, model))
    return _Run(task, mesh, state, step, eval_step, data_iter, first, ckpt, start)


def _compile(train_fn, state, shardings, first: dict, mesh: Mesh, say) -> Callable:
    """`train_fn` jitted with explicit shardings (the state donated) and compiled for the
    shapes of `first`, as a function of (state, process-local batch)."""
    jitted = jax.jit(train_fn, in_shardings=(shardings, batch_shardings(first, mesh)),
                     out_shardings=(shardings, replicated(mesh)), donate_argnums=(0,))
    t0 = time.perf_counter()
    with use_mesh(mesh):
        compiled = jitted.lower(state, global_batch(first, mesh)).compile()
    say(f"compiled train step in {time.perf_counter() - t0:.1f}s")

    def step(state, local: dict):
        with use_mesh(mesh):
            return compiled(state, global_batch(local, mesh))
    return step


def _profiled(step_fn: Callable, tcfg, directory: pathlib.Path) -> Callable:
    """step_fn as (step, state, batch) -> (state, metrics), tracing the steps
    [profile_start, profile_start + profile_steps) to `directory` (none when start < 0)."""
    first, last = tcfg.profile_start, tcfg.profile_start + tcfg.profile_steps - 1

    def run(step: int, state, local: dict):
        if first >= 0 and step == first:
            jax.profiler.start_trace(str(directory))
        state, metrics = step_fn(state, local)
        if first >= 0 and step == last:
            jax.block_until_ready(state)
            jax.profiler.stop_trace()
        return state, metrics
    return run


def _due(done: int, every: int, *, last: int) -> bool:
    """Whether something done every `every` steps, and after the last one, is due now."""
    return done % every == 0 or done == last


@contextlib.contextmanager
def _closing(logger: MetricLogger, ckpt: Checkpointer | None):
    """However the loop ends: closes the logger, then finishes and closes the checkpoints."""
    try:
        yield
    finally:
        logger.close()
        if ckpt is not None:
            ckpt.close()


def _log_train(logger: MetricLogger, step: int, metrics: dict, meter: _Throughput) -> dict:
    """Writes the step's metrics and the throughput since the last log; returns them."""
    host = {k: float(v) for k, v in jax.device_get(metrics).items()}
    host.update(meter.read_and_reset())
    logger.write(step, host)
    return host


def _log_eval(logger: MetricLogger, step: int, results: dict) -> dict:
    """Writes and prints an evaluation's results; returns them."""
    logger.write(step, results, prefix="eval")
    logger.message(f"step {step}: eval " + ", ".join(f"{k} {v:.4g}" for k, v in results.items()))
    return results


def _preempted(step: int, workdir: pathlib.Path, ckpt: Checkpointer | None) -> Preempted:
    saved = (f"saved a checkpoint in {workdir / 'checkpoints'}; rerun with --resume"
             if ckpt is not None else "checkpoints are off (train.ckpt_every=0)")
    return Preempted(f"SIGTERM at step {step}: {saved}")


def _compute_dtype(cfg: Any):
    """The model's compute dtype (float32 for configs without one), for the peak FLOP/s."""
    return dtype_of(getattr(getattr(cfg, "model", None), "dtype", "float32"))


class _Throughput:
    """Work done since the last log: steps/s, tokens or examples/s, TFLOP/s and MFU."""

    def __init__(self, task, peak_tflops_all_devices: float):
        self.task = task
        self.peak = peak_tflops_all_devices
        self.units, self.steps, self.start = 0, 0, time.perf_counter()

    def add(self, local_batch: dict) -> None:
        count = (self.task.count_units(local_batch) if self.task.count_units
                 else len(next(iter(local_batch.values()))))
        self.units += count * jax.process_count()  # every process holds an equal share
        self.steps += 1

    def read_and_reset(self) -> dict:
        elapsed = time.perf_counter() - self.start
        out = {f"{self.task.throughput_unit}_per_s": self.units / elapsed,
               "steps_per_s": self.steps / elapsed}
        if self.task.flops_per_step:
            out["tflops"] = self.task.flops_per_step * self.steps / elapsed / 1e12
            out["mfu"] = out["tflops"] / self.peak
        self.units, self.steps, self.start = 0, 0, time.perf_counter()
        return out


class _FiniteCheck:
    """Stops the run on a NaN or Inf loss or gradient norm, naming the step.

    Every step checks the previous step's metrics, ready by now, so the check never stalls
    the device pipeline; a step about to be logged or checkpointed is checked at once
    (`now`), so a non-finite state is never saved."""

    def __init__(self, ckpt: Checkpointer | None):
        self.ckpt = ckpt
        self.previous = None

    def __call__(self, metrics: dict, step: int, *, now: bool) -> None:
        if self.previous is not None:
            _check_finite(self.previous, step - 1, self.ckpt)
        self.previous = metrics
        if now:
            _check_finite(metrics, step, self.ckpt)


def _check_finite(metrics: dict, step: int, ckpt: Checkpointer | None) -> None:
    """Raises NonFiniteLoss if a loss or gradient norm of `step` is NaN or Inf."""
    loss_keys = [k for k in metrics if k.startswith(("loss", "grad_norm"))]
    values = jax.device_get({k: metrics[k] for k in loss_keys})
    bad = {k: float(v) for k, v in values.items() if not np.isfinite(v)}
    if bad:
        last = ckpt.steps()[-1] if ckpt is not None and ckpt.steps() else None
        keep = f"the last good checkpoint is step {last}" if last else "no checkpoint was written"
        raise NonFiniteLoss(f"non-finite loss at step {step} ({bad}); stopped, {keep}; "
                            "lower optim.lr or check the data")


def _evaluate(run: _Run, state, max_batches: int) -> dict:
    """The eval metrics averaged over up to `max_batches` batches of a fresh eval iterator."""
    it = run.task.data.eval(jax.process_index(), jax.process_count())
    totals, count = {}, 0
    with use_mesh(run.mesh):
        for _, local in zip(range(max_batches), it):
            metrics = jax.device_get(run.eval_step(state, global_batch(local, run.mesh)))
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            count += 1
    return {k: v / max(count, 1) for k, v in totals.items()}


def _params_and_shardings(model, mesh):
    """All groups' abstract parameters and their shardings, for the start-up report."""
    params = nnx.State({g: s for g, s in zip(model.groups, model.abstract_states)})
    return params, nnx.State({g: state_shardings(s, mesh)
                              for g, s in zip(model.groups, model.abstract_states)})
