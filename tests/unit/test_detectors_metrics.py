"""Multiclass and regression metrics equal scikit-learn's; their summaries merge like one pass."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from watchkeeper.detectors import MulticlassSummary, RegressionSummary, merge_all

CLASSES = ["cat", "dog", "eel"]


def _multiclass(n: int = 3000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.choice(CLASSES, n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), np.searchsorted(CLASSES, y)] += 1.2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, np.array(CLASSES)[proba.argmax(axis=1)], proba


def test_multiclass_metrics_equal_sklearn() -> None:
    y, pred, proba = _multiclass()
    m = MulticlassSummary.from_arrays(pred, y, scores=proba, score_classes=CLASSES).metrics()
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"), abs=1e-12)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=CLASSES), rel=1e-12)
    recalls = skm.recall_score(y, pred, average=None, labels=CLASSES)
    for c, r in zip(CLASSES, recalls, strict=True):
        assert m[f"recall_{c}"] == pytest.approx(r, abs=1e-12)


def test_multiclass_merge_unites_classes() -> None:
    y, pred, proba = _multiclass()
    whole = MulticlassSummary.from_arrays(pred, y, scores=proba, score_classes=CLASSES)
    only_cat = y == "cat"
    a = MulticlassSummary.from_arrays(pred[only_cat], y[only_cat], scores=proba[only_cat], score_classes=CLASSES)
    b = MulticlassSummary.from_arrays(pred[~only_cat], y[~only_cat], scores=proba[~only_cat], score_classes=CLASSES)
    assert a + b == whole
    assert MulticlassSummary.from_dict(whole.to_dict()) == whole
    partial = MulticlassSummary.from_arrays(["x"], ["x"])
    merged = whole + partial
    assert merged.classes == ("cat", "dog", "eel", "x") and merged.n_labeled == whole.n_labeled + 1


def test_multiclass_unlabelled_events() -> None:
    y, pred, _ = _multiclass(300)
    yy = y.astype(object)
    yy[::3] = None
    m = MulticlassSummary.from_arrays(pred, yy).metrics()
    lab = np.array([v is not None for v in yy])
    assert m["label_rate"] == pytest.approx(lab.mean())
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y[lab], pred[lab]))


def test_regression_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 4000)
    p = y + rng.normal(0.2, 1, 4000)
    m = RegressionSummary.from_arrays(p, y).metrics()
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-12)
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)), rel=1e-12)
    assert m["r2"] == pytest.approx(skm.r2_score(y, p), rel=1e-9)
    assert m["bias"] == pytest.approx(np.mean(p - y), rel=1e-12)


def test_regression_merge_equals_one_pass() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=1000)
    p = y + rng.normal(size=1000)
    y[::5] = np.nan
    parts = np.array_split(np.arange(1000), 4)
    merged = merge_all(RegressionSummary.from_arrays(p[i], y[i]) for i in parts)
    assert merged == RegressionSummary.from_arrays(p, y)
    assert merged.metrics()["label_rate"] == pytest.approx(0.8)
