"""Binary metrics from histograms agree with scikit-learn; summaries merge like one pass."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from watchkeeper.detectors import BinarySummary, CostMatrix, lift, merge_all


def _data(n: int = 5000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, 0.3, n)
    s = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + 1.5 * y - 1)))
    return s, y


def test_exact_metrics_equal_sklearn() -> None:
    s, y = _data()
    m = BinarySummary.from_arrays(s, y).metrics()
    pred = s >= 0.5
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (tp, fp, tn, fn)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred), abs=1e-12)
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred), abs=1e-12)
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred), abs=1e-12)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, s), rel=1e-12)
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, s), rel=1e-12)
    assert m["positive_rate"] == pytest.approx(pred.mean())
    assert m["prevalence"] == pytest.approx(y.mean())


def test_roc_auc_and_average_precision_within_bin_error() -> None:
    s, y = _data()
    summ = BinarySummary.from_arrays(s, y)
    exact_auc = skm.roc_auc_score(y, s)
    assert abs(summ.roc_auc() - exact_auc) <= summ.roc_auc_bin_error() + 1e-12
    assert summ.roc_auc() == pytest.approx(exact_auc, abs=1e-3)
    assert summ.average_precision() == pytest.approx(skm.average_precision_score(y, s), abs=0.01)


def test_histogram_metrics_exact_when_scores_sit_in_bins() -> None:
    # Scores already quantised to bin centres: the histogram loses nothing.
    s, y = _data()
    q = (np.floor(s * 100) + 0.5) / 100
    summ = BinarySummary.from_arrays(q, y)
    assert summ.roc_auc() == pytest.approx(skm.roc_auc_score(y, q), abs=1e-12)
    assert summ.average_precision() == pytest.approx(skm.average_precision_score(y, q), abs=1e-12)


def test_threshold_counts_are_exact_off_bin_edges() -> None:
    s, y = _data()
    summ = BinarySummary.from_arrays(s, y, threshold=0.437)
    pred = s >= 0.437
    assert summ.tp == int(np.sum(pred & (y == 1)))
    assert summ.n_pred_pos == int(pred.sum())


def test_ece_matches_hand_computation() -> None:
    s, y = _data()
    bins = np.minimum((s * 10).astype(int), 9)
    ece = sum(abs(y[bins == b].sum() - s[bins == b].sum()) for b in range(10)) / len(s)
    assert BinarySummary.from_arrays(s, y).ece(10) == pytest.approx(ece, abs=1e-12)


def test_unlabelled_events_count_for_traffic_not_for_label_metrics() -> None:
    s, y = _data(1000)
    yy = y.astype(float)
    yy[::4] = np.nan
    summ = BinarySummary.from_arrays(s, yy)
    m = summ.metrics()
    lab = ~np.isnan(yy)
    assert summ.n == 1000 and summ.n_labeled == lab.sum()
    assert m["label_rate"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y[lab], s[lab] >= 0.5))
    assert m["positive_rate"] == pytest.approx(np.mean(s >= 0.5))
    assert summ.hist.sum() == 1000 and (summ.hist_pos + summ.hist_neg).sum() == lab.sum()


def test_no_labels_gives_nan_not_errors() -> None:
    m = BinarySummary.from_arrays([0.2, 0.9]).metrics()
    assert np.isnan(m["accuracy"]) and np.isnan(m["roc_auc"]) and np.isnan(m["log_loss"])
    assert m["positive_rate"] == 0.5 and m["label_rate"] == 0.0


def test_expected_cost_and_cost_curve() -> None:
    s, y = _data()
    cost = CostMatrix(fp=1.0, fn=5.0)
    summ = BinarySummary.from_arrays(s, y)
    pred = s >= 0.5
    manual = (np.sum(pred & (y == 0)) * 1.0 + np.sum(~pred & (y == 1)) * 5.0) / len(y)
    assert summ.expected_cost(cost) == pytest.approx(manual)
    thresholds, costs = summ.cost_curve(cost)
    assert costs[50] == pytest.approx(manual)  # 0.5 is a bin edge
    assert thresholds[np.argmin(costs)] < 0.5  # false negatives cost more: a lower threshold is cheaper
    assert summ.metrics(cost)["expected_cost"] == pytest.approx(manual)


def test_lift_against_baseline() -> None:
    s, y = _data()
    model = BinarySummary.from_arrays(s, y).metrics()
    base = BinarySummary.from_arrays(np.full(len(y), y.mean()), y).metrics()
    out = lift(model, base)
    assert out["lift_accuracy"] == pytest.approx(model["accuracy"] - base["accuracy"])
    assert out["lift_brier"] < 0  # the model beats the prevalence baseline
    assert "lift_tp" not in out


def test_merge_of_partitions_equals_one_pass() -> None:
    s, y = _data()
    parts = np.array_split(np.arange(len(s)), 7)
    merged = merge_all(BinarySummary.from_arrays(s[p], y[p]) for p in parts)
    assert merged == BinarySummary.from_arrays(s, y)
    assert merged.metrics()["roc_auc"] == BinarySummary.from_arrays(s, y).metrics()["roc_auc"]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1), st.sampled_from([0.0, 1.0, float("nan")])), min_size=1, max_size=60),
    st.integers(0, 60),
)
def test_merge_is_order_free(rows: list[tuple[float, float]], cut: int) -> None:
    s = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    whole = BinarySummary.from_arrays(s, y)
    a, b = BinarySummary.from_arrays(s[:cut], y[:cut]), BinarySummary.from_arrays(s[cut:], y[cut:])
    assert a + b == whole and b + a == whole


def test_grouped_summaries_equal_per_group_ones() -> None:
    s, y = _data(2000)
    seg = np.random.default_rng(0).choice(["eu", "us", "apac"], len(s))
    by = BinarySummary.from_arrays_by(seg, s, y)
    assert sorted(by) == ["apac", "eu", "us"]
    for k, v in by.items():
        assert v == BinarySummary.from_arrays(s[seg == k], y[seg == k])
    assert merge_all(by.values()) == BinarySummary.from_arrays(s, y)


def test_merge_refuses_different_bins() -> None:
    with pytest.raises(ValueError, match="threshold"):
        BinarySummary.empty(0.5) + BinarySummary.empty(0.6)


def test_serialisation_round_trips() -> None:
    s, y = _data(300)
    summ = BinarySummary.from_arrays(s, y)
    assert BinarySummary.from_dict(summ.to_dict()) == summ
    assert pickle.loads(pickle.dumps(summ)) == summ
    assert summ.metric_rows()[0] == ("n", 300.0, 300)


def test_nan_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        BinarySummary.from_arrays([0.1, np.nan], [0, 1])
