"""Experiment configs: one module per experiment, each with a PRESETS dict of factories.

`load(name, preset, overrides)` is the one way the CLI and tests get a config.
"""

from __future__ import annotations

import importlib

from emotive.configs import base
from emotive.errors import UserError

# Experiment name -> module under emotive.configs. Add a line here for a new experiment.
EXPERIMENTS = {
    "toy_lm": "emotive.configs.toy_lm",
    "codec": "emotive.configs.codec",
    "speaker": "emotive.configs.speaker",
    "asr": "emotive.configs.asr",
    "ser": "emotive.configs.ser",
    "student": "emotive.configs.student",
    "tts": "emotive.configs.tts",
}


def presets(name: str) -> dict:
    if name not in EXPERIMENTS:
        raise UserError(f"unknown config '{name}'; available: {', '.join(sorted(EXPERIMENTS))}")
    return importlib.import_module(EXPERIMENTS[name]).PRESETS


def load(name: str, preset: str = "tiny", overrides: list[str] | None = None):
    """Returns the validated config `name`/`preset` with `key=value` overrides applied."""
    table = presets(name)
    if preset not in table:
        raise UserError(f"unknown preset '{preset}' for config '{name}'; "
                        f"available: {', '.join(table)}")
    return base.apply_overrides(table[preset](), list(overrides or []))
