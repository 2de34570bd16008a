"""Label-free estimates track realised performance when scores are calibrated."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from watchkeeper.detectors import BinarySummary, cbpe_error, cbpe_estimate


def test_estimates_match_realised_on_calibrated_scores() -> None:
    rng = np.random.default_rng(5)
    s = rng.beta(2, 3, 50_000)
    y = rng.binomial(1, s)
    summ = BinarySummary.from_arrays(s, y)
    est = cbpe_estimate(summ)
    assert est["est_accuracy"] == pytest.approx(skm.accuracy_score(y, s >= 0.5), abs=0.01)
    assert est["est_roc_auc"] == pytest.approx(skm.roc_auc_score(y, s), abs=0.01)
    assert est["est_f1"] == pytest.approx(skm.f1_score(y, s >= 0.5), abs=0.01)
    err = cbpe_error(summ)
    assert abs(err["accuracy"]) < 0.01 and abs(err["roc_auc"]) < 0.01


def test_estimate_needs_no_labels() -> None:
    rng = np.random.default_rng(6)
    s = rng.beta(2, 3, 20_000)
    est = cbpe_estimate(BinarySummary.from_arrays(s))
    # Calibrated: expected accuracy is the mean of max(s, 1 - s).
    assert est["est_accuracy"] == pytest.approx(np.mean(np.maximum(s, 1 - s)), abs=1e-9)


def test_reference_calibration_repairs_overconfident_scores() -> None:
    rng = np.random.default_rng(7)
    p = rng.beta(2, 3, 40_000)
    y = rng.binomial(1, p)
    s = np.clip(0.5 + 1.6 * (p - 0.5), 0, 1)  # overconfident
    ref = BinarySummary.from_arrays(s[:20_000], y[:20_000])
    cur = BinarySummary.from_arrays(s[20_000:], y[20_000:])
    real = cur.metrics()["accuracy"]
    naive = cbpe_estimate(cur)["est_accuracy"]
    fixed = cbpe_estimate(cur, calibration=ref)["est_accuracy"]
    assert abs(fixed - real) < 0.01 < abs(naive - real)
