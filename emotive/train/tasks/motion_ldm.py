"""The motion latent diffusion task: denoise VAE latents of motion windows given speech.

Before training, every take of the split gets its conditions once, on the host: content
features at the motion frame rate (`content.source`), its emotion vector from the labels, and
a style embedding per clip (the speaker encoder on the clip's audio). A training window's
style comes from another clip of the same speaker (`style_partners`), so style cannot leak
the clip's own content. The frozen VAE (`vae.ckpt`) encodes each batch's frames on the host
(`LatentBatches`, as the student's teacher runs), so the denoiser's jitted step never holds
the VAE.

Loss: DDPM with `diffusion.steps` levels (scaled-linear betas), t uniform, the MSE of the
epsilon or v prediction over valid latent steps. The latents are standardised per channel
by statistics the denoiser accumulates over its first `norm_batches` batches. Conditions are
dropped per row for classifier-free guidance (`guidance.*`): content, emotion (whole, or one
of its category / A/D/V parts), style, or all at once.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from emotive.configs.motion_ldm import MotionLDMConfig
from emotive.data.pipelines import motion as md
from emotive.data.pipelines.input import DeviceBatches, make_iterator
from emotive.errors import UserError
from emotive.models.diffusion import Schedule, sample_timesteps
from emotive.models.motion_denoiser import Conditions, MotionDenoiser
from emotive.train.task import DataSpec, Task
from emotive.train.tasks.motion_vae import cached_table, masked_mse

FIELDS = ("frames", "mask", "content", "emotion", "style", "style_keep")
_CAT_END, _ADV_START = md._HAS_CAT + 1, md._ADV.start


def _encoders(cfg: MotionLDMConfig):
    from emotive.infer.motion import MotionAutoencoder
    from emotive.infer.motion_conditions import ContentEncoder, StyleEncoder
    if not cfg.vae.ckpt:
        raise UserError("motion_ldm needs a trained motion VAE: --set vae.ckpt=VAE_RUN (the "
                        "workdir of `emotive train motion_vae`)")
    return (MotionAutoencoder.load(cfg.vae.ckpt),
            ContentEncoder(cfg.content.source, cfg.content.asr_ckpt),
            StyleEncoder(cfg.style.speaker_ckpt))


@functools.lru_cache(maxsize=4)
def conditioned_table(cfg: MotionLDMConfig, split: str):
    """The split's table with content, emotion and style filled in (once per process)."""
    table = cached_table(cfg.data, split)
    _, content_enc, style_enc = _encoders(cfg)
    clips = md.by_clip(table)
    content = [None] * len(table)
    audios = {}
    for clip, takes in tqdm(clips.items(), desc=f"motion conditions {split}", unit="clip",
                            leave=False):
        audio = table.audio(takes[0])
        audios[clip] = audio
        for i in takes:
            content[i] = content_enc(audio, len(table.frames[i]))
    names = list(clips)
    emb = style_enc([audios[c] for c in names])
    style_of = {c: emb[j] for j, c in enumerate(names)}
    table = dataclasses.replace(
        table, content=content,
        style=np.stack([style_of[r["clip"]] for r in table.records]).astype(np.float32))
    return table, md.style_partners(table), style_enc.embedder is not None


class LatentBatches(DeviceBatches):
    """Device batches with the frozen VAE's latents of their frames (`latents`, `lmask`)."""

    def __init__(self, inner, fields, vae):
        super().__init__(inner, fields)
        self.vae = vae

    def __next__(self):
        batch = super().__next__()
        lmask = md.latent_mask_np(batch["mask"], self.vae.downsample)
        out = {k: batch[k] for k in FIELDS if k not in ("frames",)}
        return {**out, "latents": self.vae.encode(batch["frames"], batch["mask"]),
                "lmask": lmask}


def _iterator(cfg: MotionLDMConfig, split: str, *, shuffle: bool, seed_offset: int = 0):
    window = cfg.data.window_frames

    def make(process_index: int, process_count: int):
        table, partners, has_style = conditioned_table(cfg, split)
        vae = _encoders(cfg)[0]

        def item(i, rng):
            i = int(i)
            x = table.frames[i]
            start = md.crop_start(len(x), window, (table.records[i]["id"],), rng)
            frames, mask = md.pad_window(x, start, window)
            content, _ = md.pad_window(table.content[i], start, window)
            pick = rng if rng is not None else np.random.default_rng(i)
            ref = int(pick.choice(partners[i]))
            return {"frames": frames, "mask": mask, "content": content,
                    "emotion": table.emotions[i], "style": table.style[ref],
                    "style_keep": np.float32(has_style)}

        inner = make_iterator(range(len(table)), global_batch_size=cfg.train.batch_size,
                              seed=cfg.train.seed + seed_offset, process_index=process_index,
                              process_count=process_count, shuffle=shuffle,
                              random_transform=lambda i, rng: item(i, rng if shuffle else None),
                              batch_fn=md.stack)
        return LatentBatches(inner, FIELDS, vae)
    return make


def drop_conditions(cfg: MotionLDMConfig, batch, rng) -> Conditions:
    """The batch's conditions with per-row classifier-free-guidance dropout (inside jit)."""
    g = cfg.guidance
    b = batch["emotion"].shape[0]
    r_all, r_c, r_e, r_s, r_part = jax.random.uniform(rng, (5, b))
    keep_all = r_all >= g.all_dropout
    keep_c = keep_all & (r_c >= g.content_dropout)
    keep_e = keep_all & (r_e >= g.emotion_dropout)
    keep_s = keep_all & (r_s >= g.style_dropout) & (batch["style_keep"] > 0)
    cat_only = r_part < g.category_only
    adv_only = (r_part >= g.category_only) & (r_part < g.category_only + g.adv_only)
    cols = jnp.arange(md.EMOTION_DIM)
    keep_cols = ((cols[None] < _CAT_END) & ~adv_only[:, None]) | \
                ((cols[None] >= _ADV_START) & ~cat_only[:, None])
    emotion = batch["emotion"] * (keep_cols & keep_e[:, None])
    return Conditions(batch["content"], keep_c.astype(jnp.float32), emotion, batch["style"],
                      keep_s.astype(jnp.float32))


def make_task(cfg: MotionLDMConfig) -> Task:
    from emotive.infer.motion_conditions import ContentEncoder, StyleEncoder, run_config
    vae_cfg = run_config(cfg.vae.ckpt, "motion_vae")["model"] if cfg.vae.ckpt else None
    if vae_cfg is None:
        raise UserError("motion_ldm needs a trained motion VAE: --set vae.ckpt=VAE_RUN (the "
                        "workdir of `emotive train motion_vae`)")
    if cfg.data.window_frames % (4 * vae_cfg["downsample"]):
        raise UserError(f"data.window_frames={cfg.data.window_frames} must be a multiple of "
                        f"4 x the VAE's downsampling ({vae_cfg['downsample']})")
    latent_dim, downsample = vae_cfg["latent_dim"], vae_cfg["downsample"]
    content_dim = ContentEncoder.dim_of(cfg.content)
    style_dim = StyleEncoder.dim_of(cfg.style)
    d = cfg.diffusion
    sched = Schedule.scaled_linear(d.steps, d.beta_start, d.beta_end)

    def make_model(rngs):
        return MotionDenoiser(cfg.model.transformer, latent_dim=latent_dim,
                              downsample=downsample, content_dim=content_dim,
                              style_dim=style_dim, emotion_dim=md.EMOTION_DIM,
                              norm_batches=50, rngs=rngs)

    def diffusion_loss(model, batch, rng, conds):
        z0 = model.latent_norm.normalize(batch["latents"])
        t_rng, e_rng = jax.random.split(rng)
        t = sample_timesteps(t_rng, z0.shape[0], d.steps)
        eps = jax.random.normal(e_rng, z0.shape)
        z_t = sched.q_sample(z0, t, eps)
        pred = model(z_t, t, conds, batch["lmask"], batch["mask"])
        return masked_mse(pred, sched.target(z0, eps, t, d.prediction), batch["lmask"])

    def loss_fn(model: MotionDenoiser, batch, rng):
        model.latent_norm.update(batch["latents"], batch["lmask"])
        drop_rng, rng = jax.random.split(rng)
        loss = diffusion_loss(model, batch, rng, drop_conditions(cfg, batch, drop_rng))
        return loss, {}

    def eval_fn(model: MotionDenoiser, batch):
        conds = Conditions(batch["content"], jnp.ones(batch["emotion"].shape[0]),
                           batch["emotion"], batch["style"], batch["style_keep"])
        rng = jax.random.key(0)
        uncond = conds._replace(content_keep=jnp.zeros_like(conds.content_keep),
                                emotion=jnp.zeros_like(conds.emotion),
                                style_keep=jnp.zeros_like(conds.style_keep))
        return {"diffusion_loss": diffusion_loss(model, batch, rng, conds),
                "unconditional_loss": diffusion_loss(model, batch, rng, uncond)}

    return Task(
        name="motion_ldm",
        make_model=make_model,
        data=DataSpec(train=_iterator(cfg, cfg.data.train_split, shuffle=True),
                      eval=_iterator(cfg, cfg.data.eval_split, shuffle=False, seed_offset=1)),
        losses={"model": loss_fn},
        eval_fn=eval_fn,
        throughput_unit="motion_seconds",
        count_units=lambda batch: float(np.sum(batch["mask"])) / md.FPS,
    )


def report_after_training(cfg: MotionLDMConfig, summary: dict) -> str:
    ev = summary.get("eval", {})
    ckpt = summary["checkpoint_dir"]
    return "\n".join([
        f"motion_ldm: eval on {cfg.data.eval_split} windows (held-out speakers): diffusion "
        f"loss {ev.get('diffusion_loss', float('nan')):.4f} conditioned, "
        f"{ev.get('unconditional_loss', float('nan')):.4f} with every condition dropped",
        f"checkpoints: {ckpt}",
        f"held-out report: emotive eval motion --ckpt {ckpt} --split test",
        f"generate: emotive motion --audio x.wav --ckpt {ckpt} --emotion happy --out m.npz",
        f"TensorBoard logs: {summary['tensorboard_dir']}",
        f"metrics (JSONL): {summary['metrics_file']}"])
