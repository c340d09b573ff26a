"""What the memory benchmarks share: a fresh process per input length, and its audio.

    row = run_fresh([script, "--child", "60", ...], platform="cpu", what="60 s")  # parent
    emit(row)                                                                      # child

A child prints one marked JSON line; the parent runs it with the given JAX platform and
returns that row, or exits with the child's last lines. Peak memory is the child's
ru_maxrss (`max_rss_mb`), so every length starts from a clean process.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import numpy as np

from emotive.configs.common import SAMPLE_RATE

MARK = "BENCH-CHILD-RESULT "


def emit(row: dict) -> None:
    """The child's result: one marked JSON line on stdout."""
    print(MARK + json.dumps(row), flush=True)


def run_fresh(cmd: list[str], *, platform: str, what: str) -> dict:
    """Runs `cmd` (a Python script and its arguments) in a fresh interpreter with
    JAX_PLATFORMS=platform; returns the row it emitted."""
    env = {**os.environ, "JAX_PLATFORMS": platform, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, *cmd], env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise SystemExit(f"{cmd[0]}: {what} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1][len(MARK):])


def max_rss_mb() -> float:
    """This process's peak resident memory so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def synthetic_speech(seconds: float, sr: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A deterministic speech-like signal [T] float32: harmonics of a gliding pitch under a
    syllable-rate envelope, in phrases separated by pauses; RMS about -20 dBFS. Made in 1 s
    blocks, so it raises the process's peak memory (ru_maxrss) by little more than its own
    size (the benchmark's baseline is read after it)."""
    n = int(round(seconds * sr))
    rng = np.random.default_rng(seed)
    env = np.zeros(n, np.float32)
    pos = 0.0
    while pos < seconds:
        phrase_end = pos + rng.uniform(2.0, 4.0)
        while pos < min(phrase_end, seconds):
            dur = rng.uniform(0.18, 0.32)   # about 4 syllables a second
            lo, hi = int(pos * sr), min(n, int((pos + dur) * sr))
            x = (np.arange(hi - lo) + 0.5) / max(hi - lo, 1)
            env[lo:hi] = rng.uniform(0.5, 1.0) * np.sin(np.pi * x) ** 2
            pos += dur
        pos += rng.uniform(0.3, 0.6)        # a pause between phrases
    out = np.zeros(n, np.float32)
    phase0 = 0.0
    for lo in range(0, n, sr):
        t = np.arange(lo, min(n, lo + sr)) / sr
        f0 = 120.0 * (1 + 0.08 * np.sin(2 * np.pi * 0.3 * t)
                      + 0.04 * np.sin(2 * np.pi * 1.7 * t))
        phase = phase0 + 2 * np.pi * np.cumsum(f0) / sr
        phase0 = float(phase[-1])
        tone = sum(np.sin(k * phase) / k for k in range(1, 13))
        out[lo:lo + t.size] = (tone + 0.05 * rng.standard_normal(t.size)) * env[lo:lo + t.size]
    out *= 0.1 / max(float(np.sqrt(np.mean(np.square(out, dtype=np.float64)))), 1e-8)
    return np.clip(out, -0.99, 0.99, out=out)


def make_audio(seconds: float, path: str | None) -> np.ndarray:
    if path is None:
        return synthetic_speech(seconds)
    from emotive.codecs.audio import load_audio

    x = load_audio(path, SAMPLE_RATE, normalize_loudness=False)
    n = int(round(seconds * SAMPLE_RATE))
    return np.tile(x, -(-n // x.size))[:n].astype(np.float32)
