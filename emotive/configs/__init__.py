"""Experiment configs: one module per experiment, each with a PRESETS dict of factories.

`load(name, preset, overrides)` is the one way the CLI and tests get a config.
"""

from __future__ import annotations

from emotive import registry
from emotive.configs import base
from emotive.errors import UserError

# Every family's config, by name (the one table is emotive.registry.FAMILIES).
EXPERIMENTS = tuple(registry.FAMILIES)


def presets(name: str) -> dict:
    if name not in registry.FAMILIES:
        raise UserError(f"unknown config '{name}'; available: {', '.join(sorted(EXPERIMENTS))}")
    return registry.module(name, "config").PRESETS


def load(name: str, preset: str = "tiny", overrides: list[str] | None = None):
    """Returns the validated config `name`/`preset` with `key=value` overrides applied."""
    table = presets(name)
    if preset not in table:
        raise UserError(f"unknown preset '{preset}' for config '{name}'; "
                        f"available: {', '.join(table)}")
    return base.apply_overrides(table[preset](), list(overrides or []))
