"""One module per trainable thing; each has `make_task(cfg) -> Task`.

`TASKS` maps a config's `task` field to its module. Add a line for a new task.
"""

from __future__ import annotations

import importlib

from emotive.errors import UserError
from emotive.train.task import Task

TASKS = {
    "toy_lm": "emotive.train.tasks.toy_lm",
    "codec": "emotive.train.tasks.codec",
    "speaker": "emotive.train.tasks.speaker",
    "asr": "emotive.train.tasks.asr",
    "ser": "emotive.train.tasks.ser",
    "student": "emotive.train.tasks.student",
    "tts": "emotive.train.tasks.tts",
}


def make_task(cfg) -> Task:
    if cfg.task not in TASKS:
        raise UserError(f"unknown task '{cfg.task}'; available: {', '.join(sorted(TASKS))}")
    return importlib.import_module(TASKS[cfg.task]).make_task(cfg)


def report_after_training(cfg, summary: dict) -> str | None:
    """The task's own words on a finished run (e.g. loss against a baseline), if it has any."""
    module = importlib.import_module(TASKS[cfg.task])
    report = getattr(module, "report_after_training", None)
    return report(cfg, summary) if report is not None else None
