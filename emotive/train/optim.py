"""Optimisers: AdamW with linear warm-up and cosine decay, global-norm clipping."""

from __future__ import annotations

import jax
import optax

from emotive.configs.common import OptimConfig


def lr_schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """Linear warm-up from 0 to `lr`, then cosine down to `lr * min_lr_ratio` at `total_steps`."""
    warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=cfg.lr, warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1), end_value=cfg.lr * cfg.min_lr_ratio)


def adamw(cfg: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    """AdamW; weight decay skips vectors (norm scales, biases), as is usual for transformers."""
    decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
    chain = []
    if cfg.clip_norm > 0:
        chain.append(optax.clip_by_global_norm(cfg.clip_norm))
    chain.append(optax.adamw(lr_schedule(cfg, total_steps), b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                             weight_decay=cfg.weight_decay, mask=decay_mask))
    return optax.chain(*chain)
