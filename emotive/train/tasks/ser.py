"""The speech emotion recognition task: categories and arousal/dominance/valence, jointly.

Per step, on a batch of random crops (`data.crop_seconds`, shorter clips zero-padded and
masked by `length`):

    loss = ce_weight * CE(logits, emotion)
         + sum over d in (arousal, dominance, valence) of weight_d * (1 - CCC_d(pred, target))

CCC is computed over the batch (the rows with known A/D/V), with population moments, as
audeering trains its A/D/V models; it is the metric the eval reports, so the loss optimises
what is measured. Cross-entropy ignores rows without an emotion label (-1).

The periodic eval reports accuracy and per-dimension CCC on crops of the held-out split,
averaged over batches (a quick proxy); `emotive eval ser` gives the full report on whole
clips, per recording condition.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from emotive.configs.ser import NUM_EMOTIONS, SerConfig
from emotive.models.ser import ADV_ORDER, SpeechEmotionModel
from emotive.train.losses import (EMOTION_LABEL_FIELDS, adv_cccs, audio_throughput,
                                  crop_data, masked_mean)
from emotive.train.task import Task


def ser_objective(out: dict, batch: dict, cfg: SerConfig) -> tuple[jax.Array, dict]:
    """The joint loss of the model outputs on a labelled batch, and its metrics."""
    lc = cfg.loss
    labelled = batch["example_mask"] & (batch["emotion"] >= 0)
    targets = jax.nn.one_hot(jnp.maximum(batch["emotion"], 0), NUM_EMOTIONS)
    if lc.label_smoothing:
        targets = optax.smooth_labels(targets, lc.label_smoothing)
    ce_B = optax.softmax_cross_entropy(out["logits"], targets)
    if lc.class_weights:
        weight_B = jnp.asarray(lc.class_weights)[jnp.maximum(batch["emotion"], 0)]
        ce = jnp.sum(jnp.where(labelled, weight_B * ce_B, 0.0)) / jnp.maximum(
            jnp.sum(jnp.where(labelled, weight_B, 0.0)), 1e-6)
    else:
        ce = masked_mean(ce_B, labelled)
    correct = (jnp.argmax(out["logits"], -1) == batch["emotion"]).astype(jnp.float32)
    cccs = adv_cccs(out["adv"], batch["adv"], batch["example_mask"] & batch["has_adv"])
    loss = lc.ce_weight * ce + jnp.sum(jnp.asarray(lc.adv_weights) * (1.0 - cccs))
    metrics = {"ce": ce, "accuracy": masked_mean(correct, labelled)}
    metrics.update({f"ccc_{name}": cccs[d] for d, name in enumerate(ADV_ORDER)})
    return loss, metrics


def make_task(cfg: SerConfig) -> Task:
    def loss_fn(model: SpeechEmotionModel, batch, rng):
        del rng
        return ser_objective(model(batch["audio"], batch["length"]), batch, cfg)

    def eval_fn(model: SpeechEmotionModel, batch):
        loss, metrics = ser_objective(model(batch["audio"], batch["length"]), batch, cfg)
        return {"loss": loss, **metrics}

    return Task(
        name="ser",
        make_model=lambda rngs: SpeechEmotionModel(cfg.model, rngs),
        data=crop_data(cfg, crop_samples=cfg.data.crop_samples, fields=EMOTION_LABEL_FIELDS,
                       augment=cfg.augment),
        losses={"model": loss_fn},
        eval_fn=eval_fn,
        **audio_throughput(),
    )


def report_after_training(cfg: SerConfig, summary: dict) -> str:
    ev = summary.get("eval", {})
    nan = float("nan")
    workdir = summary["workdir"]
    return "\n".join([
        f"ser: eval on {cfg.data.eval_split} crops: accuracy {ev.get('accuracy', nan):.3f}, "
        f"CCC arousal {ev.get('ccc_arousal', nan):.3f} dominance "
        f"{ev.get('ccc_dominance', nan):.3f} valence {ev.get('ccc_valence', nan):.3f}",
        f"checkpoints: {summary['checkpoint_dir']}",
        f"full eval (UAR, per-class recall, CCC per condition on whole clips): "
        f"emotive eval ser --ckpt {workdir} --data-dir {cfg.data.data_dir} --split test",
        f"classify a file: emotive classify IN.wav --ckpt {workdir}",
        f"TensorBoard logs: {summary['tensorboard_dir']}",
        f"metrics (JSONL): {summary['metrics_file']}"])
