"""DDPM noise schedule, training targets and the DDIM update (pure functions of arrays).

    sched = Schedule.scaled_linear(1000, 0.00085, 0.012)
    x_t = sched.q_sample(x0, t, eps)                  # forward process
    target = sched.target(x0, eps, t, "v")            # what the denoiser learns
    x0_hat, eps_hat = sched.split(prediction, x_t, t, "v")
    x_prev = sched.ddim_step(x0_hat, eps_hat, t_prev) # eta = 0

"scaled_linear" is Stable Diffusion's: betas = linspace(sqrt(b0), sqrt(b1), T)^2. v is
Salimans & Ho's v = sqrt(abar) eps - sqrt(1 - abar) x0. `ddim_timesteps` spaces the sampling
steps evenly from T - 1 down to 0 ("trailing", so the first step starts at the last level).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Schedule:
    alphas_cumprod: np.ndarray   # [T] float64

    @classmethod
    def scaled_linear(cls, steps: int, beta_start: float, beta_end: float) -> "Schedule":
        betas = np.linspace(math.sqrt(beta_start), math.sqrt(beta_end), steps,
                            dtype=np.float64) ** 2
        return cls(np.cumprod(1.0 - betas))

    @property
    def steps(self) -> int:
        return len(self.alphas_cumprod)

    def _coef(self, t_B, like):
        """sqrt(abar_t), sqrt(1 - abar_t) shaped to broadcast against `like`; t = -1 gives
        abar = 1 (the clean end of a DDIM chain)."""
        abar = jnp.concatenate([jnp.asarray(self.alphas_cumprod, jnp.float32),
                                jnp.ones(1, jnp.float32)])[t_B]
        shape = (-1,) + (1,) * (like.ndim - 1)
        return jnp.sqrt(abar).reshape(shape), jnp.sqrt(1.0 - abar).reshape(shape)

    def q_sample(self, x0, t_B, eps):
        a, s = self._coef(t_B, x0)
        return a * x0 + s * eps

    def target(self, x0, eps, t_B, prediction: str):
        if prediction == "epsilon":
            return eps
        a, s = self._coef(t_B, x0)
        return a * eps - s * x0

    def split(self, pred, x_t, t_B, prediction: str):
        """(x0 estimate, eps estimate) from a prediction of kind `prediction`."""
        a, s = self._coef(t_B, x_t)
        if prediction == "epsilon":
            eps = pred
            x0 = (x_t - s * eps) / jnp.maximum(a, 1e-8)
        else:
            x0 = a * x_t - s * pred
            eps = s * x_t + a * pred
        return x0, eps

    def ddim_step(self, x0, eps, t_prev_B):
        a, s = self._coef(t_prev_B, x0)
        return a * x0 + s * eps


def ddim_timesteps(train_steps: int, sample_steps: int) -> np.ndarray:
    """Sampling levels from train_steps - 1 down to 0, `sample_steps` of them (int32)."""
    levels = np.round(np.linspace(train_steps - 1, 0, sample_steps)).astype(np.int32)
    return np.unique(levels)[::-1].copy()


def timestep_embedding(t_B, dim: int, max_period: float = 10000.0):
    """Sinusoidal embedding [B, dim] of (possibly fractional) timesteps or positions."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(t_B, jnp.float32)[..., None] * freqs
    emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
    if dim % 2:
        emb = jnp.pad(emb, [(0, 0)] * (emb.ndim - 1) + [(0, 1)])
    return emb


def sample_timesteps(rng, batch: int, steps: int):
    return jax.random.randint(rng, (batch,), 0, steps)
