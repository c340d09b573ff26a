"""The speaker encoder task: AAM-softmax over the train split's speakers, on random crops.

Labels are the `speaker` field of `crop_batches`: the index into the sorted speaker names of
the split being read. Training reads only the train split, so that index is the one global
table of train speakers the classification head needs (held-out splits have other speakers
and never meet the head). With `data.speed_factors`, crops are resampled inside the step and
become pseudo-speakers (`speed_perturb`).

Periodic eval runs on crops of held-out speakers (data.eval_split) and reports, per batch of
crops, the mean cosine of same- and different-speaker pairs and an in-batch EER (the minimum
over thresholds of max(FAR, FRR)). The full protocol (whole utterances, all pairs, per
condition) is `emotive eval speaker` (emotive.evals.speaker).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from emotive.configs.asr import SAMPLE_RATE
from emotive.configs.speaker import SpeakerConfig
from emotive.errors import UserError
from emotive.models.speaker import SpeakerEncoder, aam_logits
from emotive.train.losses import audio_throughput, crop_iterator
from emotive.train.task import DataSpec, Task

DEVICE_FIELDS = ("audio", "length", "speaker")


def batch_eer(emb_BxD, labels_B):
    """In-batch EER proxy over all pairs i < j: min over thresholds of max(FAR, FRR).

    Also returns the mean cosine of same- and of different-speaker pairs. Inside jit.
    """
    b = emb_BxD.shape[0]
    i, j = np.triu_indices(b, k=1)
    scores = (emb_BxD @ emb_BxD.T)[i, j]
    same = labels_B[i] == labels_B[j]
    order = jnp.argsort(-scores)
    same_o = same[order].astype(jnp.float32)
    n_same = jnp.maximum(same_o.sum(), 1.0)
    n_diff = jnp.maximum((1.0 - same_o).sum(), 1.0)
    far = jnp.cumsum(1.0 - same_o) / n_diff
    frr = 1.0 - jnp.cumsum(same_o) / n_same
    eer = jnp.min(jnp.maximum(far, frr))
    same_cos = jnp.sum(jnp.where(same, scores, 0.0)) / n_same
    diff_cos = jnp.sum(jnp.where(same, 0.0, scores)) / n_diff
    return eer, same_cos, diff_cos


def speed_perturb(audio_BxT, lengths_B, labels_B, rng, factors: tuple[float, ...],
                  class_stride: int):
    """Resamples each row by 1 or one of `factors` (uniform choice; linear interpolation,
    factor > 1 = faster and higher). Returns (audio [B, T], lengths [B], labels [B]) with
    a resampled row's label moved to its pseudo-speaker class label + k * class_stride."""
    b, t = audio_BxT.shape
    k = jax.random.randint(rng, (b,), 0, len(factors) + 1)
    factor_B = jnp.asarray((1.0,) + tuple(factors), jnp.float32)[k]
    pos = jnp.arange(t, dtype=jnp.float32)[None, :] * factor_B[:, None]
    i0 = jnp.floor(pos).astype(jnp.int32)
    frac = pos - i0
    left = jnp.take_along_axis(audio_BxT, jnp.clip(i0, 0, t - 1), axis=1)
    right = jnp.take_along_axis(audio_BxT, jnp.clip(i0 + 1, 0, t - 1), axis=1)
    new_lengths = jnp.minimum(jnp.floor(lengths_B / factor_B).astype(jnp.int32), t)
    audio = jnp.where(jnp.arange(t)[None, :] < new_lengths[:, None],
                      left * (1.0 - frac) + right * frac, 0.0)
    return audio, new_lengths, labels_B + k * class_stride


def make_task(cfg: SpeakerConfig) -> Task:
    crop = max(1, int(cfg.data.crop_seconds * SAMPLE_RATE))
    mcfg = cfg.model

    def loss_fn(model: SpeakerEncoder, batch, rng):
        audio, lengths, labels = batch["audio"], batch["length"], batch["speaker"]
        rng, speed_rng = jax.random.split(rng)
        if cfg.data.speed_factors:
            audio, lengths, labels = speed_perturb(audio, lengths, labels, speed_rng,
                                                   cfg.data.speed_factors, cfg.class_stride)
        emb = model(audio, lengths, rng=rng)["embedding"]
        logits = model.logits(emb, labels)
        loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
        plain = aam_logits(emb, model.head[...], labels, margin=0.0, scale=1.0)
        accuracy = jnp.mean((jnp.argmax(plain, -1) == labels).astype(jnp.float32))
        return loss, {"accuracy": accuracy}

    def eval_fn(model: SpeakerEncoder, batch):
        emb = model(batch["audio"], batch["length"])["embedding"]
        eer, same_cos, diff_cos = batch_eer(emb, batch["speaker"])
        return {"batch_eer": eer, "same_cosine": same_cos, "different_cosine": diff_cos}

    def check_speakers(opened):
        split = cfg.data.train_split
        if not opened.speakers:
            raise UserError(f"{cfg.data.dataset}/{split} has no speaker labels; the speaker "
                            "encoder needs a dataset with a speaker field")
        if len(opened.speakers) > cfg.class_stride:
            need = len(opened.speakers) * (1 + len(cfg.data.speed_factors))
            raise UserError(f"{cfg.data.dataset}/{split} has {len(opened.speakers)} speakers "
                            f"but model.num_speakers={mcfg.num_speakers} (with "
                            f"{len(cfg.data.speed_factors)} speed factors); set "
                            f"model.num_speakers={need} or more")

    return Task(
        name="speaker",
        make_model=lambda rngs: SpeakerEncoder(mcfg, rngs=rngs),
        data=DataSpec(train=crop_iterator(cfg, cfg.data.train_split, crop_samples=crop,
                                          fields=DEVICE_FIELDS, shuffle=True,
                                          check=check_speakers, augment=cfg.augment),
                      # Eval batches are shuffled too (same seed every time), so each batch
                      # mixes speakers instead of holding one speaker's records in file order.
                      eval=crop_iterator(cfg, cfg.data.eval_split, crop_samples=crop,
                                         fields=DEVICE_FIELDS, shuffle=True, seed_offset=1)),
        losses={"model": loss_fn},
        eval_fn=eval_fn,
        **audio_throughput(),
    )


def report_after_training(cfg: SpeakerConfig, summary: dict) -> str:
    ev = summary.get("eval", {})
    ckpt = summary["checkpoint_dir"]
    return "\n".join([
        f"speaker: eval on {cfg.data.eval_split} crops (held-out speakers): in-batch EER "
        f"{ev.get('batch_eer', float('nan')):.3f}, cosine same "
        f"{ev.get('same_cosine', float('nan')):.3f} / different "
        f"{ev.get('different_cosine', float('nan')):.3f}",
        f"checkpoints: {ckpt}",
        f"full eval (all trial pairs, per condition): emotive eval speaker --ckpt {ckpt} "
        f"--data-dir {cfg.data.data_dir} --split test",
        f"TensorBoard logs: {summary['tensorboard_dir']}",
        f"metrics (JSONL): {summary['metrics_file']}"])
