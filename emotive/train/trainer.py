"""The generic trainer: any Task, any mesh, checkpointed, logged, resumable.

    summary = train(cfg, workdir, resume=False)

Exit conditions: completes `train.steps`; SIGTERM (preemption) saves a final
checkpoint and raises `Preempted`; a non-finite loss raises `NonFiniteLoss`
naming the step, leaving the last good checkpoint as the newest.
"""

from __future__ import annotations

import pathlib
import signal
import time
from typing import Any

import jax
import numpy as np
from flax import nnx

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
    mesh = make_mesh(cfg.mesh, devices)
    data_parallel = mesh.shape["data"] * mesh.shape["fsdp"]
    if tcfg.batch_size % (data_parallel * cfg.optim.grad_accum):
        raise UserError(f"train.batch_size={tcfg.batch_size} must be divisible by the "
                        f"data-parallel devices ({data_parallel}) times optim.grad_accum "
                        f"({cfg.optim.grad_accum})")
    task = make_task(cfg)
    is_main = jax.process_index() == 0
    say = print if is_main else (lambda *a, **k: None)

    model, _ = split_abstract(task, tcfg.seed)
    optimizers = dict(task.optimizers or {g: adamw(cfg.optim, tcfg.steps) for g in task.groups})
    schedules = {g: lr_schedule(cfg.optim, tcfg.steps) for g in task.groups}
    state, shardings = init_state(task, model, optimizers, mesh, tcfg.seed)
    lines, _ = param_report(*_params_and_shardings(model, mesh), mesh)
    for line in lines:
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
    config_json = base.to_dict(cfg)

    first = next(data_iter)
    batch_sh = batch_shardings(first, mesh)
    step_fn = jax.jit(make_train_step(task, model, optimizers, schedules, tcfg.seed,
                                      cfg.optim.grad_accum),
                      in_shardings=(shardings, batch_sh),
                      out_shardings=(shardings, replicated(mesh)), donate_argnums=(0,))
    t0 = time.perf_counter()
    with use_mesh(mesh):
        compiled = step_fn.lower(state, global_batch(first, mesh)).compile()
    say(f"compiled train step in {time.perf_counter() - t0:.1f}s")
    eval_step = None
    if task.eval_fn is not None and task.data.eval is not None and tcfg.eval_every > 0:
        eval_step = jax.jit(make_eval_step(task, model))

    model_cfg = getattr(cfg, "model", None)
    compute_dtype = dtype_of(getattr(model_cfg, "dtype", "float32"))
    peak, peak_source = flops_lib.peak_tflops(tcfg.peak_tflops, compute_dtype)
    logger = MetricLogger(workdir, total_steps=tcfg.steps, start_step=start, progress=progress)
    logger.message(f"logging to {logger.jsonl_path} and TensorBoard {logger.tb_dir}; "
                   f"checkpoints in {workdir / 'checkpoints'}")
    summary: dict = {"workdir": str(workdir), "start_step": start}
    pending = first
    meter = _Throughput(task, peak * mesh.size)
    last_metrics = None
    with _SigtermFlag() as sigterm:
        try:
            for step in range(start, tcfg.steps):
                local = pending if pending is not None else next(data_iter)
                pending = None
                profiling = tcfg.profile_start >= 0
                if profiling and step == tcfg.profile_start:
                    jax.profiler.start_trace(str(workdir / "profile"))
                with use_mesh(mesh):
                    state, metrics = compiled(state, global_batch(local, mesh))
                if profiling and step == tcfg.profile_start + tcfg.profile_steps - 1:
                    jax.block_until_ready(state)
                    jax.profiler.stop_trace()
                meter.add(local)
                done = step + 1
                # Check the previous step's loss without stalling the device pipeline.
                if last_metrics is not None:
                    _check_finite(last_metrics, done - 1, ckpt)
                last_metrics = metrics
                should_save = ckpt is not None and (done % tcfg.ckpt_every == 0
                                                    or done == tcfg.steps or sigterm.raised)
                if done % tcfg.log_every == 0 or done == tcfg.steps or should_save:
                    _check_finite(metrics, done, ckpt)
                if done % tcfg.log_every == 0 or done == tcfg.steps:
                    host = {k: float(v) for k, v in jax.device_get(metrics).items()}
                    host.update(meter.read_and_reset())
                    logger.write(done, host)
                    summary["train"] = host
                if eval_step is not None and (done % tcfg.eval_every == 0 or done == tcfg.steps):
                    summary["eval"] = _evaluate(task, eval_step, state, mesh, tcfg.eval_batches)
                    logger.write(done, summary["eval"], prefix="eval")
                    logger.message(f"step {done}: eval " + ", ".join(
                        f"{k} {v:.4g}" for k, v in summary["eval"].items()))
                if should_save:
                    ckpt.save(done, state, data_iter, config_json)
                logger.advance()
                if sigterm.raised:
                    saved = (f"saved a checkpoint in {workdir / 'checkpoints'}; rerun with --resume"
                             if ckpt is not None else "checkpoints are off (train.ckpt_every=0)")
                    raise Preempted(f"SIGTERM at step {done}: {saved}")
        finally:
            logger.close()
            if ckpt is not None:
                ckpt.close()
    summary.update(final_step=tcfg.steps, peak_tflops=peak, peak_source=peak_source,
                   metrics_file=str(logger.jsonl_path), tensorboard_dir=str(logger.tb_dir),
                   checkpoint_dir=str(workdir / "checkpoints"))
    summary["state"] = state
    return summary



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


def _evaluate(task, eval_step, state, mesh, max_batches: int) -> dict:
    it = task.data.eval(jax.process_index(), jax.process_count())
    totals, count = {}, 0
    with use_mesh(mesh):
        for _, local in zip(range(max_batches), it):
            metrics = jax.device_get(eval_step(state, global_batch(local, mesh)))
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            count += 1
    return {k: v / max(count, 1) for k, v in totals.items()}


def _params_and_shardings(model, mesh):
    """All groups' abstract parameters and their shardings, for the start-up report."""
    params = nnx.State({g: s for g, s in zip(model.groups, model.abstract_states)})
    return params, nnx.State({g: state_shardings(s, mesh)
                              for g, s in zip(model.groups, model.abstract_states)})
