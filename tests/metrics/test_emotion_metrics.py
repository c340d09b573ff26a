"""CCC, UAR and the confusion matrix: hand-computed cases and properties."""

import numpy as np
import pytest

from emotive.metrics.emotion import (ccc, classification_report, confusion_matrix,
                                     per_class_recall, uar, write_confusion_png)


def _ccc_direct(x, y):
    """Lin's formula written out with population moments (audmetric's definition)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = x.size
    mx, my = x.sum() / n, y.sum() / n
    vx = ((x - mx) ** 2).sum() / n
    vy = ((y - my) ** 2).sum() / n
    cov = ((x - mx) * (y - my)).sum() / n
    return 2 * cov / (vx + vy + (mx - my) ** 2)


def test_ccc_hand_computed_and_against_the_direct_formula():
    # x = (1, 2, 3), y = (2, 4, 6): means 2, 4; var 2/3, 8/3; cov 4/3 -> 8/3 / (10/3 + 4) = 4/11
    assert ccc([1, 2, 3], [2, 4, 6]) == pytest.approx(4 / 11)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.normal(size=50)
        y = 0.7 * x + rng.normal(0.3, 0.5, size=50)
        assert ccc(x, y) == pytest.approx(_ccc_direct(x, y), rel=1e-12)


def test_ccc_properties():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=40), rng.normal(size=40)
    x = (x - x.mean()) / x.std()
    assert ccc(x, x) == pytest.approx(1.0)
    assert ccc(x, -x) == pytest.approx(-1.0)  # -1 needs a zero mean
    assert ccc(x, y) == pytest.approx(ccc(y, x))  # symmetric
    assert abs(ccc(x, y)) <= 1.0
    # Unlike Pearson's r, a shift or a scale lowers it.
    assert ccc(x, x + 1.0) == pytest.approx(2 / 3) and ccc(x, 2 * x) < 1.0
    assert ccc([0.5, 0.5], [0.5, 0.5]) == 1.0 and ccc([0.5, 0.5], [0.2, 0.2]) == 0.0
    assert np.isnan(ccc([], []))


def test_confusion_matrix_and_uar_by_hand():
    true = [0, 0, 0, 1, 1, 2, -1]
    pred = [0, 1, 0, 1, 1, 0, 2]  # the -1 row is unlabelled and skipped
    m = confusion_matrix(true, pred, 4)
    assert m.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    recall = per_class_recall(m)
    assert recall[:3].tolist() == pytest.approx([2 / 3, 1.0, 0.0]) and np.isnan(recall[3])
    # sklearn-style macro recall over the classes present in the truth (3 is absent).
    assert uar(true, pred, 4) == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)


def test_uar_properties():
    rng = np.random.default_rng(2)
    true = rng.integers(0, 5, size=200)
    assert uar(true, true, 5) == 1.0
    # Chance: a constant guess gets 1 / (classes present) whatever the class balance.
    skewed = np.concatenate([np.zeros(90, int), np.arange(1, 5).repeat(3)])
    assert uar(skewed, np.zeros_like(skewed), 5) == pytest.approx(1 / 5)
    # Relabelling the classes consistently does not change it.
    perm = np.array([3, 0, 4, 1, 2])
    pred = np.where(rng.random(200) < 0.6, true, rng.integers(0, 5, size=200))
    assert uar(perm[true], perm[pred], 5) == pytest.approx(uar(true, pred, 5))
    assert np.isnan(uar([-1, -1], [0, 1], 3))


def test_classification_report_and_png(tmp_path):
    report = classification_report([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c", "d"])
    assert report["examples"] == 4 and report["accuracy"] == pytest.approx(0.75)
    assert report["recall"] == {"a": 1.0, "b": 0.5, "c": 1.0, "d": None}
    assert report["uar"] == pytest.approx(2.5 / 3) and report["absent_classes"] == ["d"]
    assert report["support"]["b"] == 2 and report["confusion"][1] == [0, 1, 1, 0]
    path = tmp_path / "plots" / "cm.png"
    write_confusion_png(np.array(report["confusion"]), ["a", "b", "c", "d"], path, title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
