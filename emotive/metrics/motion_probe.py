"""The motion-emotion probe: does a clip's motion tell its emotion?

    x = np.stack([motion_features(positions_TxJx3, 30.0) for ...])
    probe = EmotionProbe.fit(x_train, emotions_train); probe.accuracy(x_test, emotions_test)

A multinomial logistic regression (L2, standardised features) on pooled motion features
(`motion_features`), trained on one set of speakers and scored on another; `accuracy`
returns {"value", "per_class_recall", "correct", "protocol"}.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from emotive.metrics.motion_beats import central_speeds

__all__ = ["motion_features", "EmotionProbe"]

_PROBE_JOINTS = tuple(range(22))   # the SMPL-X body


def motion_features(positions_TxJx3, fps: float) -> np.ndarray:
    """Pooled features of one clip: body joints relative to the pelvis (mean and std over
    frames), each body joint's mean speed and 90th-percentile speed, all in metres (and m/s)."""
    p = np.asarray(positions_TxJx3, np.float64)[:, _PROBE_JOINTS]
    rel = p - p[:, :1]
    speed = central_speeds(p, fps)
    return np.concatenate([rel.mean(0).ravel(), rel.std(0).ravel(), speed.mean(0),
                           np.percentile(speed, 90, axis=0)]).astype(np.float32)


class EmotionProbe:
    """Multinomial logistic regression on standardised features (L-BFGS, L2 weight `l2`)."""

    def __init__(self, weights, bias, mean, std, classes: Sequence[str], l2: float):
        self.weights, self.bias = weights, bias
        self.mean, self.std = mean, std
        self.classes = tuple(classes)
        self.l2 = l2

    @classmethod
    def fit(cls, features_NxF, labels_N, *, classes: Sequence[str] | None = None,
            l2: float = 1e-2, max_iter: int = 500) -> "EmotionProbe":
        """Fits the probe on features [N, F] and labels [N] (classes: sorted labels unless
        given)."""
        from scipy.optimize import minimize

        x = np.asarray(features_NxF, np.float64)
        labels = [str(v) for v in labels_N]
        classes = tuple(classes) if classes is not None else tuple(sorted(set(labels)))
        y = np.asarray([classes.index(v) for v in labels])
        mean, std = x.mean(0), np.maximum(x.std(0), 1e-8)
        z = (x - mean) / std
        n, f = z.shape
        k = len(classes)
        onehot = np.eye(k)[y]

        def loss(theta):
            w, b = theta[:f * k].reshape(f, k), theta[f * k:]
            logits = z @ w + b
            logits -= logits.max(1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
            p = np.exp(logp)
            value = -(onehot * logp).sum() / n + 0.5 * l2 * (w * w).sum()
            g = (p - onehot) / n
            return value, np.concatenate([(z.T @ g + l2 * w).ravel(), g.sum(0)])

        res = minimize(loss, np.zeros(f * k + k), jac=True, method="L-BFGS-B",
                       options={"maxiter": max_iter})
        return cls(res.x[:f * k].reshape(f, k), res.x[f * k:], mean, std, classes, l2)

    def predict(self, features_NxF) -> list[str]:
        """The most likely class of each row of features [N, F]."""
        z = (np.asarray(features_NxF, np.float64) - self.mean) / self.std
        return [self.classes[i] for i in np.argmax(z @ self.weights + self.bias, axis=1)]

    def accuracy(self, features_NxF, labels_N) -> dict:
        """Accuracy with per-class recall and the protocol."""
        pred = self.predict(features_NxF)
        truth = [str(v) for v in labels_N]
        correct = np.asarray([p == t for p, t in zip(pred, truth)])
        recall = {c: float(np.mean([p == c for p, t in zip(pred, truth) if t == c]))
                  for c in self.classes if c in truth}
        return {"value": float(correct.mean()) if correct.size else float("nan"),
                "per_class_recall": recall, "correct": correct.astype(float).tolist(),
                "protocol": {"metric": "motion-emotion probe accuracy",
                             "model": f"multinomial logistic regression, L2 {self.l2}, "
                                      "standardised features",
                             "features": "body joints rel. pelvis mean+std, speed mean+p90",
                             "classes": list(self.classes), "test_clips": len(truth)}}
