"""Distilling a Wav2Small student from a frozen SER teacher, on the teacher's outputs alone.

The teacher (a `ser` checkpoint, `teacher.ckpt`) is loaded with `load_trained` and runs on
the host inside the input pipeline: every batch of random crops gets the teacher's A/D/V
(`teacher_adv` [B, 3]) and emotion logits (`teacher_logits` [B, 8]) for those very crops.
The training batches carry no label field at all, so no label can leak into the loss:

    loss = ccc_weight * mean over A/D/V of (1 - CCC(student, teacher))
         + mse_weight * MSE(student A/D/V, teacher A/D/V)
         + category_weight * T^2 * CE(softmax(teacher / T), log_softmax(student / T))

(the last term only for a student with a category head; T is `loss.temperature`, Hinton's
T^2 keeps its gradient scale independent of T). The teacher being outside the model keeps
it frozen by construction, out of the student's checkpoint, and away from `load_trained`
of the student (which needs no teacher). BatchNorm runs on batch statistics over valid
frames in training and updates its running statistics, which the trainer carries and
checkpoints as `rest`.

The periodic eval (held-out crops, labels allowed there) reports CCC against the teacher
per dimension, agreement with the teacher's top emotion, and CCC and accuracy against the
labels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from emotive.configs.student import StudentConfig
from emotive.errors import UserError
from emotive.models.ser import ADV_ORDER
from emotive.models.wav2small import Wav2Small
from emotive.data.pipelines.input import DeviceBatches
from emotive.train.losses import (EMOTION_LABEL_FIELDS, adv_cccs, audio_throughput,
                                  crop_data, masked_mean)
from emotive.train.task import Task

TRAIN_FIELDS = ("audio", "length", "example_mask")  # no labels: the teacher gives the targets


class TeacherBatches(DeviceBatches):
    """DeviceBatches plus the frozen teacher's predictions on each batch's audio."""

    def __init__(self, inner, fields, teacher):
        super().__init__(inner, fields)
        self.teacher = teacher

    def __next__(self) -> dict:
        batch = next(self.inner)
        out = self.teacher.predict(batch["audio"], batch["length"])
        return {**{k: batch[k] for k in self.fields}, "teacher_adv": out["adv"],
                "teacher_logits": out["logits"].astype(np.float32)}


def load_teacher(cfg: StudentConfig):
    """The frozen teacher predictor of `teacher.ckpt`; UserError if unset or not a ser run."""
    from emotive.infer.emotion import load_emotion_model

    if not cfg.teacher.ckpt:
        raise UserError("the student needs a teacher: pass --set teacher.ckpt=DIR, the workdir "
                        "of `emotive train ser`")
    return load_emotion_model(cfg.teacher.ckpt, tasks=("ser",))


def student_outputs(out_BxO: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    """Splits the student's head into A/D/V [B, 3] and emotion logits [B, 8] (or None)."""
    return out_BxO[:, :3], (out_BxO[:, 3:] if out_BxO.shape[1] > 3 else None)


def make_task(cfg: StudentConfig) -> Task:
    lc = cfg.loss
    teacher = []  # loaded on first use: loading the student alone must not need the teacher

    def wrap(inner, fields):
        if not teacher:
            teacher.append(load_teacher(cfg))
        return TeacherBatches(inner, fields, teacher[0])

    def distill(out_BxO, batch):
        adv, logits = student_outputs(out_BxO)
        rows = batch["example_mask"]
        cccs = adv_cccs(adv, batch["teacher_adv"], rows)
        mse = masked_mean(jnp.mean(jnp.square(adv - batch["teacher_adv"]), axis=1), rows)
        loss = lc.ccc_weight * jnp.mean(1.0 - cccs) + lc.mse_weight * mse
        metrics = {"mse_teacher": mse}
        metrics.update({f"ccc_teacher_{n}": cccs[d] for d, n in enumerate(ADV_ORDER)})
        if logits is not None:
            t = lc.temperature
            soft = jax.nn.softmax(batch["teacher_logits"] / t)
            ce = masked_mean(optax.softmax_cross_entropy(logits / t, soft), rows)
            loss = loss + lc.category_weight * t * t * ce
            agree = jnp.argmax(logits, -1) == jnp.argmax(batch["teacher_logits"], -1)
            metrics.update({"ce_teacher": ce,
                            "agreement": masked_mean(agree.astype(jnp.float32), rows)})
        return loss, metrics

    def loss_fn(model: Wav2Small, batch, rng):
        del rng
        return distill(model(batch["audio"], batch["length"], train=True), batch)

    def eval_fn(model: Wav2Small, batch):
        out = model(batch["audio"], batch["length"])
        loss, metrics = distill(out, batch)
        adv, logits = student_outputs(out)
        cccs = adv_cccs(adv, batch["adv"], batch["example_mask"] & batch["has_adv"])
        metrics.update({f"ccc_label_{n}": cccs[d] for d, n in enumerate(ADV_ORDER)})
        if logits is not None:
            labelled = batch["example_mask"] & (batch["emotion"] >= 0)
            correct = (jnp.argmax(logits, -1) == batch["emotion"]).astype(jnp.float32)
            metrics["accuracy"] = masked_mean(correct, labelled)
        return {"loss": loss, **metrics}

    return Task(
        name="student",
        make_model=lambda rngs: Wav2Small(cfg.model, rngs),
        data=crop_data(cfg, crop_samples=cfg.data.crop_samples, fields=TRAIN_FIELDS,
                       eval_fields=EMOTION_LABEL_FIELDS, wrap=wrap, augment=cfg.augment),
        losses={"model": loss_fn},
        eval_fn=eval_fn,
        **audio_throughput(),
    )


def report_after_training(cfg: StudentConfig, summary: dict) -> str:
    ev = summary.get("eval", {})
    nan = float("nan")
    vs = ", ".join(f"{n} {ev.get(f'ccc_teacher_{n}', nan):.3f}" for n in ADV_ORDER)
    workdir = summary["workdir"]
    lines = [f"student: eval on {cfg.data.eval_split} crops: CCC against the teacher {vs}"]
    if "agreement" in ev:
        lines[0] += f"; top-emotion agreement {ev['agreement']:.3f}"
    lines += [f"checkpoints: {summary['checkpoint_dir']}",
              f"full eval (CCC against the teacher and the labels, per condition): "
              f"emotive eval student --ckpt {workdir} --data-dir {cfg.data.data_dir} "
              "--split test",
              f"classify a file: emotive classify IN.wav --ckpt {workdir}",
              f"TensorBoard logs: {summary['tensorboard_dir']}",
              f"metrics (JSONL): {summary['metrics_file']}"]
    return "\n".join(lines)
