"""Device peak FLOP/s for MFU: a table of known accelerators, else a measured matmul."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

# Dense bf16 peak TFLOP/s per device, from vendor data sheets.
KNOWN_PEAK_TFLOPS = {
    "H100": 989.0,
    "H200": 989.0,
    "A100": 312.0,
    "TPU v4": 275.0,
    "TPU v5 lite": 197.0,
    "TPU v5e": 197.0,
    "TPU v5p": 459.0,
    "TPU v6 lite": 918.0,
}


def known_peak_tflops(device=None) -> float | None:
    kind = (device or jax.devices()[0]).device_kind
    for name, peak in KNOWN_PEAK_TFLOPS.items():
        if name.lower() in kind.lower():
            return peak
    return None


def measure_matmul_tflops(n: int = 2048, dtype=jnp.float32, repeats: int = 5,
                          device=None) -> float:
    """Achieved TFLOP/s of an n x n x n matmul on one device (best of `repeats`)."""
    device = device or jax.devices()[0]
    a = jax.device_put(jnp.ones((n, n), dtype), device)
    b = jax.device_put(jnp.ones((n, n), dtype), device)
    matmul = jax.jit(lambda x, y: x @ y)
    matmul(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e12


def peak_tflops(configured: float = 0.0, dtype=jnp.float32) -> tuple[float, str]:
    """Per-device peak and where it came from: the config, the table, or a measurement."""
    if configured > 0:
        return configured, "config"
    known = known_peak_tflops()
    if known is not None and dtype == jnp.bfloat16:
        return known, "datasheet (bf16)"
    # CPUs, and fp32 on accelerators: measure a matmul large enough to approach the peak.
    return measure_matmul_tflops(2048, dtype), f"measured {jnp.dtype(dtype).name} matmul"
