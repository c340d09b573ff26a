"""The motion VAE task: reconstruct body+face windows through a sequence of latents.

Batches are windows of `data.window_frames` frames of the split's takes (random crops of
longer takes, shorter ones padded and masked). Loss, on standardised frames:

    MSE(x_hat, x) + velocity_weight * MSE(diff x_hat, diff x) + kl_weight * KL per value

with z sampled from q(z|x) by the reparameterisation trick. The frame standardiser's
statistics accumulate over the first `model.norm_batches` batches (`RunningMoments`).
Periodic eval reports the same terms on held-out speakers' windows (z = mean).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from emotive.configs.motion_vae import MotionVAEConfig
from emotive.data.pipelines import motion as md
from emotive.data.pipelines.input import DeviceBatches, make_iterator
from emotive.models.motion_vae import MotionVAE, latent_mask
from emotive.train.task import DataSpec, Task


@functools.lru_cache(maxsize=4)
def cached_table(data_cfg, split: str) -> md.MotionTable:
    return md.load_table(data_cfg, split)


def window_item(table: md.MotionTable, i: int, window: int, rng) -> tuple[dict, int]:
    """One take's window: frames [W, 385] and mask [W]; returns it with its start frame."""
    x = table.frames[i]
    start = md.crop_start(len(x), window, (table.records[i]["id"],), rng)
    frames, mask = md.pad_window(x, start, window)
    return {"frames": frames, "mask": mask}, start


def window_iterator(cfg, split: str, item_fn, *, shuffle: bool, seed_offset: int = 0):
    """An iterator factory of windows of `split`: item_fn(table, index, rng) -> dict."""

    def make(process_index: int, process_count: int):
        table = cached_table(cfg.data, split)
        inner = make_iterator(
            range(len(table)), global_batch_size=cfg.train.batch_size,
            seed=cfg.train.seed + seed_offset, process_index=process_index,
            process_count=process_count, shuffle=shuffle,
            random_transform=lambda i, rng: item_fn(table, int(i), rng if shuffle else None),
            batch_fn=md.stack)
        return DeviceBatches(inner, item_fn.fields)
    return make


def masked_mse(a_BxTxD, b_BxTxD, mask_BxT):
    m = mask_BxT[..., None]
    return jnp.sum(jnp.square(a_BxTxD - b_BxTxD) * m) / jnp.maximum(m.sum() * a_BxTxD.shape[-1],
                                                                      1.0)


def vae_terms(model: MotionVAE, frames, mask, rng, sample: bool):
    """(reconstruction, velocity, KL) of one batch, on standardised frames."""
    mean, logvar = model.encode(frames, mask)
    z = mean
    if sample:
        z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(rng, mean.shape)
    lmask = latent_mask(mask, model.cfg.downsample)
    recon = model.decode_normalized(z, lmask)
    target = model.norm.normalize(frames)
    rec = masked_mse(recon, target, mask)
    vmask = mask[:, 1:] * mask[:, :-1]
    vel = masked_mse(jnp.diff(recon, axis=1), jnp.diff(target, axis=1), vmask)
    kl = 0.5 * (jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar)
    kl = jnp.sum(kl * lmask[..., None]) / jnp.maximum(lmask.sum() * mean.shape[-1], 1.0)
    return rec, vel, kl


def make_task(cfg: MotionVAEConfig) -> Task:
    window = cfg.data.window_frames

    def item(table, i, rng):
        return window_item(table, i, window, rng)[0]
    item.fields = ("frames", "mask")

    def loss_fn(model: MotionVAE, batch, rng):
        model.norm.update(batch["frames"], batch["mask"])
        rec, vel, kl = vae_terms(model, batch["frames"], batch["mask"], rng, sample=True)
        loss = rec + cfg.loss.velocity_weight * vel + cfg.loss.kl_weight * kl
        return loss, {"reconstruction": rec, "velocity": vel, "kl": kl}

    def eval_fn(model: MotionVAE, batch):
        rec, vel, kl = vae_terms(model, batch["frames"], batch["mask"], None, sample=False)
        return {"reconstruction": rec, "velocity": vel, "kl": kl}

    return Task(
        name="motion_vae",
        make_model=lambda rngs: MotionVAE(cfg.model, frame_dim=md.FRAME_DIM, rngs=rngs),
        data=DataSpec(train=window_iterator(cfg, cfg.data.train_split, item, shuffle=True),
                      eval=window_iterator(cfg, cfg.data.eval_split, item, shuffle=False,
                                           seed_offset=1)),
        losses={"model": loss_fn},
        eval_fn=eval_fn,
        throughput_unit="motion_seconds",
        count_units=lambda batch: float(np.sum(batch["mask"])) / md.FPS,
    )


def report_after_training(cfg: MotionVAEConfig, summary: dict) -> str:
    ev = summary.get("eval", {})
    ckpt = summary["checkpoint_dir"]
    return "\n".join([
        f"motion_vae: eval on {cfg.data.eval_split} windows (held-out speakers): "
        f"reconstruction MSE {ev.get('reconstruction', float('nan')):.4f} (standardised; 1.0 "
        f"= predicting the mean), velocity {ev.get('velocity', float('nan')):.4f}, "
        f"KL {ev.get('kl', float('nan')):.3f}",
        f"checkpoints: {ckpt}",
        f"next: emotive train motion_ldm --preset base --set vae.ckpt={ckpt} "
        f"data.motion_dir={cfg.data.motion_dir}",
        f"TensorBoard logs: {summary['tensorboard_dir']}",
        f"metrics (JSONL): {summary['metrics_file']}"])
