"""Evaluation of emotion models on a held-out split, overall and per recording condition.

    report = evaluate(load_emotion_model("runs/ser-base"), data_dir, "test", out_dir=DIR)
    report = evaluate(student, data_dir, "test", teacher=load_emotion_model(TEACHER))

Every clip of the split is run whole (length-bucketed padded batches; both models mask
padding, so each clip is scored as if alone). For each group (all clips, then each
`condition` of the corpus: clean, distance, shout) the report gives:
- with a category head: UAR over the 8 emotions, per-class recall and support, accuracy,
  the confusion matrix (rows true, columns predicted); see `emotive.metrics.emotion` for how
  a class absent from a group is treated (left out of the UAR and listed);
- CCC per dimension (arousal, dominance, valence) against the labels;
- with a teacher (student eval): CCC per dimension against the teacher's predictions on the
  same clips, and agreement with the teacher's top emotion when both have categories.

Writes report.json and confusion.png (all clips) plus confusion_<condition>.png per group.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from emotive.data.speech.emotions import EMOTIONS
from emotive.evals.common import by_condition, clip_batches, write_report
from emotive.infer.emotion import EmotionPredictor
from emotive.metrics.emotion import ccc, classification_report, write_confusion_png
from emotive.models.ser import ADV_ORDER


def predict_split(predictor: EmotionPredictor, data_dir, split: str, *,
                  dataset: str = "emotive_speech", batch_size: int = 8,
                  limit: int | None = None, teacher: EmotionPredictor | None = None) -> dict:
    """Runs `predictor` (and `teacher`) over whole clips of a split; returns numpy arrays:
    id, condition (str [N]), emotion (int [N], -1 unknown), adv, has_adv (labels), pred_adv
    [N, 3], pred_probs [N, 8] or None, and teacher_adv / teacher_probs with a teacher."""
    rows: dict[str, list] = {k: [] for k in ("id", "condition", "emotion", "adv", "has_adv",
                                             "pred_adv", "pred_probs", "teacher_adv",
                                             "teacher_probs")}
    for batch, keep in clip_batches(data_dir, dataset, split, batch_size=batch_size,
                                    limit=limit, desc=f"{predictor.task} {split}"):
        out = predictor.predict(batch["audio"], batch["length"])
        ref = teacher.predict(batch["audio"], batch["length"]) if teacher else None
        for k in ("id", "condition", "emotion", "adv", "has_adv"):
            rows[k].extend(batch[k][keep])
        rows["pred_adv"].extend(out["adv"][keep])
        if out["probs"] is not None:
            rows["pred_probs"].extend(out["probs"][keep])
        if ref is not None:
            rows["teacher_adv"].extend(ref["adv"][keep])
            rows["teacher_probs"].extend(ref["probs"][keep])
    return {k: (np.asarray(v) if v else None) for k, v in rows.items()}


def group_metrics(p: dict, rows: np.ndarray) -> dict:
    """The metrics of one group of clips (`rows` indexes the predict_split arrays)."""
    out: dict = {"clips": int(rows.size)}
    if p["pred_probs"] is not None:
        pred = np.argmax(p["pred_probs"][rows], axis=1)
        out.update(classification_report(p["emotion"][rows], pred, EMOTIONS))
    labelled = rows[p["has_adv"][rows]]
    out["ccc"] = {name: ccc(p["pred_adv"][labelled, d], p["adv"][labelled, d])
                  for d, name in enumerate(ADV_ORDER)}
    if p["teacher_adv"] is not None:
        out["ccc_vs_teacher"] = {name: ccc(p["pred_adv"][rows, d], p["teacher_adv"][rows, d])
                                 for d, name in enumerate(ADV_ORDER)}
        out["teacher_ccc"] = {name: ccc(p["teacher_adv"][labelled, d], p["adv"][labelled, d])
                              for d, name in enumerate(ADV_ORDER)}
        if p["pred_probs"] is not None:
            same = (np.argmax(p["pred_probs"][rows], 1) == np.argmax(p["teacher_probs"][rows], 1))
            out["agreement_with_teacher"] = float(same.mean())
            out["teacher_uar"] = classification_report(
                p["emotion"][rows], np.argmax(p["teacher_probs"][rows], 1), EMOTIONS)["uar"]
    return out


def _groups(conditions: np.ndarray) -> dict[str, np.ndarray]:
    """'all' plus one group per condition, the corpus's conditions first in their order."""
    return {"all": np.arange(conditions.size), **by_condition(conditions, unknown=None)}


def evaluate(predictor: EmotionPredictor, data_dir, split: str = "validation", *,
             dataset: str = "emotive_speech", batch_size: int = 8, limit: int | None = None,
             teacher: EmotionPredictor | None = None, out_dir=None) -> dict:
    """Evaluates `predictor` on whole clips of `split`; returns the report (see the module
    docstring) and, with `out_dir`, writes report.json and the confusion-matrix PNGs there."""
    start = time.perf_counter()
    p = predict_split(predictor, data_dir, split, dataset=dataset, batch_size=batch_size,
                      limit=limit, teacher=teacher)
    groups = {name: group_metrics(p, rows) for name, rows in _groups(p["condition"]).items()}
    report = {"task": predictor.task, "step": predictor.step,
              "checkpoint": str(predictor.step_dir), "dataset": dataset, "split": split,
              "clips": int(p["id"].size), "parameters": predictor.num_params,
              "emotions": list(EMOTIONS), "overall": groups.pop("all"), "per_condition": groups}
    if teacher is not None:
        report["teacher"] = {"checkpoint": str(teacher.step_dir), "step": teacher.step,
                             "parameters": teacher.num_params}
    report["eval_seconds"] = round(time.perf_counter() - start, 1)
    if out_dir is not None:
        _write(report, pathlib.Path(out_dir))
    return report


def _write(report: dict, out_dir: pathlib.Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"report": str(out_dir / "report.json")}
    split = f"{report['dataset']}/{report['split']}"
    for name, metrics in [("all", report["overall"]), *report["per_condition"].items()]:
        if "confusion" not in metrics:
            continue
        path = out_dir / ("confusion.png" if name == "all" else f"confusion_{name}.png")
        write_confusion_png(np.array(metrics["confusion"]), EMOTIONS, path,
                            title=f"{report['task']} step {report['step']}, {split}, {name}: "
                                  f"UAR {metrics['uar']:.3f}")
        files[f"confusion_{name}"] = str(path)
    report["files"] = files
    write_report(out_dir, report)


def format_report(report: dict) -> str:
    """A few human-readable lines: one per group, then where the files are."""
    lines = [f"{report['task']} eval on {report['dataset']}/{report['split']} (step "
             f"{report['step']}, {report['parameters']:,} parameters): {report['clips']} clips"]
    for name, m in [("all", report["overall"]), *report["per_condition"].items()]:
        parts = [f"  {name:<9} n={m['clips']:<5}"]
        if "uar" in m:
            parts.append(f"UAR {m['uar']:.3f}  acc {m['accuracy']:.3f}")
        parts.append("CCC " + " ".join(f"{k[0].upper()} {v:.3f}" for k, v in m["ccc"].items()))
        if "ccc_vs_teacher" in m:
            parts.append("vs teacher " + " ".join(f"{k[0].upper()} {v:.3f}"
                                                  for k, v in m["ccc_vs_teacher"].items()))
        if "agreement_with_teacher" in m:
            parts.append(f"agree {m['agreement_with_teacher']:.3f}")
        lines.append("  ".join(parts))
    if "recall" in report["overall"]:
        lines.append("  recall (all): " + ", ".join(
            f"{k} {'n/a' if v is None else format(v, '.2f')}"
            for k, v in report["overall"]["recall"].items()))
    if "files" in report:
        lines.append(f"  report: {report['files']['report']}")
    return "\n".join(lines)
