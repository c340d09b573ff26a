"""One module per trainable thing; each has `make_task(cfg) -> Task`.

A config's `task` field names its family in `emotive.registry.FAMILIES`, whose `task` entry
is the module. A new task is a module here and one entry there.
"""

from __future__ import annotations

from emotive import registry
from emotive.errors import UserError
from emotive.train.task import Task

TASKS = tuple(registry.FAMILIES)


def make_task(cfg) -> Task:
    if cfg.task not in registry.FAMILIES:
        raise UserError(f"unknown task '{cfg.task}'; available: {', '.join(sorted(TASKS))}")
    return registry.module(cfg.task, "task").make_task(cfg)


def report_after_training(cfg, summary: dict) -> str | None:
    """The task's own words on a finished run (e.g. loss against a baseline), if it has any."""
    report = getattr(registry.module(cfg.task, "task"), "report_after_training", None)
    return report(cfg, summary) if report is not None else None
