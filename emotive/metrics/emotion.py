"""Speech emotion metrics: CCC, unweighted average recall, confusion matrix and its plot.

Definitions follow the SER literature so numbers compare with published ones:

- CCC (Lin's concordance correlation coefficient), with population statistics as audmetric
  computes it: 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2), every moment divided
  by N, not N - 1. It is 1 only for identical sequences and penalises bias and scale, unlike
  Pearson's r. Two constant, equal sequences have 0 / 0: we return 1.0 when they are equal and
  0.0 otherwise (audmetric returns NaN there; a verifier needs a number).
- UAR (unweighted average recall): the mean over classes of recall = correct / true count, over
  the full class list passed in, so a class the model never predicts counts as 0 recall. A
  class absent from the truth has no recall (0 / 0): it is reported as NaN per class and left
  out of the mean, and the report lists it. Counting it as 0 (sklearn's recall_score with
  `labels=` and zero_division=0) would punish a model for a class it was never asked about;
  counting it as 1 would reward it. The mean is over the classes present in the truth.

Everything here is numpy on the host; inputs are plain arrays of predictions and labels.
"""

from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np


def ccc(pred_N, true_N) -> float:
    """Concordance correlation coefficient of two float sequences [N] (population moments).

    Returns a float in [-1, 1]; NaN for empty input. Constant, equal sequences give 1.0,
    constant unequal ones 0.0 (the formula's 0 / 0).
    """
    x = np.asarray(pred_N, np.float64).reshape(-1)
    y = np.asarray(true_N, np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"ccc needs sequences of equal length, got {x.size} and {y.size}")
    if x.size == 0:
        return float("nan")
    mx, my = x.mean(), y.mean()
    vx, vy = np.mean(np.square(x - mx)), np.mean(np.square(y - my))
    cov = np.mean((x - mx) * (y - my))
    denom = vx + vy + (mx - my) ** 2
    if denom <= 0.0:  # both constant and equal
        return 1.0
    return float(2.0 * cov / denom)


def confusion_matrix(true_N, pred_N, num_classes: int) -> np.ndarray:
    """int64 [num_classes, num_classes]: row = true class, column = predicted class.

    Labels outside [0, num_classes) (e.g. -1 for unknown) are skipped in both arrays.
    """
    t = np.asarray(true_N, np.int64).reshape(-1)
    p = np.asarray(pred_N, np.int64).reshape(-1)
    keep = (t >= 0) & (t < num_classes) & (p >= 0) & (p < num_classes)
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (t[keep], p[keep]), 1)
    return matrix


def per_class_recall(matrix_CxC: np.ndarray) -> np.ndarray:
    """float64 [C]: recall of each class from a confusion matrix; NaN where the class is absent
    from the truth (its row is empty)."""
    matrix_CxC = np.asarray(matrix_CxC)
    support = matrix_CxC.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix_CxC) / np.maximum(support, 1), np.nan)


def uar(true_N, pred_N, num_classes: int) -> float:
    """Unweighted average recall over the classes present in the truth (see module docstring);
    NaN if no labelled example is given."""
    recall = per_class_recall(confusion_matrix(true_N, pred_N, num_classes))
    present = ~np.isnan(recall)
    return float(recall[present].mean()) if present.any() else float("nan")


def classification_report(true_N, pred_N, class_names: Sequence[str]) -> dict:
    """Accuracy, UAR, per-class recall and support, the confusion matrix and absent classes.

    JSON-ready: recall of an absent class is None. Examples with label -1 are left out.
    """
    names = list(class_names)
    matrix = confusion_matrix(true_N, pred_N, len(names))
    recall = per_class_recall(matrix)
    total = int(matrix.sum())
    present = ~np.isnan(recall)
    return {
        "examples": total,
        "accuracy": float(np.trace(matrix) / total) if total else float("nan"),
        "uar": float(recall[present].mean()) if present.any() else float("nan"),
        "recall": {n: (None if np.isnan(r) else float(r)) for n, r in zip(names, recall)},
        "support": {n: int(s) for n, s in zip(names, matrix.sum(axis=1))},
        "absent_classes": [n for n, p in zip(names, present) if not p],
        "confusion": matrix.tolist(),
    }


def write_confusion_png(matrix_CxC, class_names: Sequence[str], path, *, title: str = "") -> None:
    """Writes a row-normalised confusion matrix (true rows, predicted columns) as a PNG, with
    each cell's count and row share printed in it."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix_CxC, np.float64)
    names = list(class_names)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 1.0 + 0.75 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=10)
    for i in range(len(names)):
        for j in range(len(names)):
            if matrix[i, j]:
                ax.text(j, i, f"{int(matrix[i, j])}\n{share[i, j]:.0%}", ha="center",
                        va="center", fontsize=7, color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
