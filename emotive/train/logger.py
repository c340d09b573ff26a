"""Metrics to TensorBoard event files and JSONL, and a progress bar; process 0 writes."""

from __future__ import annotations

import json
import math
import pathlib
import time

import jax
import numpy as np
from tqdm import tqdm


class MetricLogger:
    """Writes scalars to `workdir/tb` (TensorBoard) and `workdir/metrics.jsonl`."""

    def __init__(self, workdir: pathlib.Path, *, total_steps: int, start_step: int = 0,
                 enabled: bool | None = None, progress: bool = True):
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self.workdir = workdir
        self.jsonl_path = workdir / "metrics.jsonl"
        self.tb_dir = workdir / "tb"
        self._writer = None
        self._jsonl = None
        self._bar = None
        if self.enabled:
            from tensorboardX import SummaryWriter  # lazily: only the writing process needs it

            self._writer = SummaryWriter(str(self.tb_dir))
            self._jsonl = open(self.jsonl_path, "a")
            if progress:
                self._bar = tqdm(total=total_steps, initial=start_step, unit="step",
                                 dynamic_ncols=True, mininterval=1.0)

    def write(self, step: int, metrics: dict, prefix: str = "train") -> None:
        if not self.enabled:
            return
        scalars = {k: float(np.asarray(v)) for k, v in metrics.items()}
        for key, value in scalars.items():
            if math.isfinite(value):
                self._writer.add_scalar(f"{prefix}/{key}", value, step)
        record = {"step": step, "split": prefix, "time": time.time(), **scalars}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        if self._bar is not None and prefix == "train":
            shown = {k: f"{scalars[k]:.4g}" for k in ("loss", "lr") if k in scalars}
            self._bar.set_postfix(shown, refresh=False)

    def message(self, text: str) -> None:
        if self.enabled:
            (self._bar.write if self._bar is not None else print)(text)

    def advance(self, steps: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(steps)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._writer is not None:
            self._writer.close()
            self._jsonl.close()
