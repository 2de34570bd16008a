"""The rules, one window at a time: retrain, estimate, drift, fairness, lift, ops."""

from __future__ import annotations

import pytest

from watchkeeper.alerts.policy import DriftRule, FairnessRule, OpsRule, RetrainRule, SunsetRule
from watchkeeper.alerts.rules import (
    DriftRow,
    MetricBaseline,
    Point,
    Window,
    build_windows,
    drift_signal,
    drifted_features,
    drop_and_bound,
    estimate_signal,
    fairness_signals,
    lift_signal,
    ops_signals,
    pooled_baseline,
    retrain_signal,
    wilson,
)

REF = MetricBaseline(value=0.85, n=1200, starts=(0, 300, 600))


def win(i: int = 10, version: str = "v1", drift: tuple[DriftRow, ...] = (), **metrics: tuple[float, int]) -> Window:
    pts = {"predictions": Point(500, 500), **{k: Point(*v) for k, v in metrics.items()}}
    return Window(version, i * 300, i * 300 + 300, pts, {}, drift)


def test_build_windows_groups_rows_and_orders_by_end() -> None:
    rows = [
        {"version": "v2", "ws": 300, "we": 600, "segment": "", "metric": "accuracy", "value": 0.9, "n": 10},
        {"version": "v1", "ws": 0, "we": 300, "segment": "region", "metric": "demographic_parity_difference",
         "value": 0.2, "n": 100},
        {"version": "v1", "ws": 0, "we": 300, "segment": "", "metric": "accuracy", "value": 0.8, "n": 10},
    ]  # fmt: skip
    drift = [{"version": "v1", "ws": 0, "we": 300, "feature": "x", "detector": "ks", "statistic": 0.3,
              "threshold": 0.05, "drifted": 1}]  # fmt: skip
    w1, w2 = build_windows(rows, drift)
    assert (w1.version, w1.end, w2.version) == ("v1", 300, "v2")
    assert w1.metrics["accuracy"] == Point(0.8, 10)
    assert w1.segments["region"]["demographic_parity_difference"].value == 0.2
    assert w1.drift == (DriftRow("x", "ks", 0.3, 0.05, True),)


def test_reference_pools_the_first_k_windows() -> None:
    assert pooled_baseline([(600, Point(0.5, 100)), (0, Point(0.8, 100))], k=3) is None
    pts = [(600, Point(0.5, 100)), (0, Point(0.8, 100)), (300, Point(0.9, 200)), (900, Point(0, 9))]
    ref = pooled_baseline(pts, 3)
    assert ref is not None and ref.starts == (0, 300, 600) and ref.value == pytest.approx(0.775) and ref.n == 400
    assert ref.covers(600) and not ref.covers(900)


def test_wilson_and_newcombe_bounds() -> None:
    lo, hi = wilson(0.8, 400, 1.645)
    assert lo < 0.8 < hi and hi - lo < 0.07
    drop, lower = drop_and_bound("accuracy", REF, Point(0.80, 400), 1.645, True)
    assert drop == pytest.approx(0.05) and 0 < lower < drop
    # A loss: higher is worse.
    drop, lower = drop_and_bound("log_loss", MetricBaseline(0.30, 0), Point(0.45, 400), 1.645, False)
    assert (drop, lower) == (pytest.approx(0.15), pytest.approx(0.15))


def test_retrain_needs_enough_labels_and_a_reference() -> None:
    rule = RetrainRule()
    assert retrain_signal("m", win(accuracy=(0.5, 50)), REF, (), rule).bad is None
    assert retrain_signal("m", win(accuracy=(0.5, 400)), None, (), rule).bad is None
    assert retrain_signal("m", win(i=2, accuracy=(0.5, 400)), REF, (), rule).bad is None  # a reference window


def test_retrain_bad_only_when_material_and_significant() -> None:
    rule = RetrainRule(min_drop=0.05)
    assert retrain_signal("m", win(accuracy=(0.60, 400)), REF, (), rule).bad is True
    assert retrain_signal("m", win(accuracy=(0.83, 400)), REF, (), rule).bad is False  # within min_drop
    # A drop of 0.06 on 100 labels is material but not significant: no evidence either way.
    assert retrain_signal("m", win(accuracy=(0.79, 100)), REF, (), rule).bad is None
    configured = MetricBaseline(value=0.9, n=0)
    s = retrain_signal("m", win(i=1, accuracy=(0.7, 400)), configured, (), rule)
    assert s.bad is True and s.evidence["reference"]["source"] == "configured"


def test_retrain_on_sustained_concept_drift() -> None:
    rule = RetrainRule(concept_windows=3, concept_min_windows=2)
    err = (DriftRow("__error__", "adwin_error", 1.0, 0.5, True),)
    quiet = (DriftRow("__error__", "adwin_error", 0.1, 0.5, False),)
    assert retrain_signal("m", win(drift=err, accuracy=(0.85, 400)), REF, (False, False), rule).bad is False
    s = retrain_signal("m", win(drift=err, accuracy=(0.85, 400)), REF, (True, False), rule)
    assert s.bad is True and s.evidence["reasons"] == ["concept_drift"]
    assert s.evidence["concept_drift"] == {"detectors": ["adwin_error"], "fired_windows": 2, "of_windows": 3}
    assert retrain_signal("m", win(drift=quiet), REF, (True,), rule).bad is False
    # Detector names ending in "_error" count whatever the feature.
    named = (DriftRow("stream", "page_hinkley_error", 1.0, 0.5, True),)
    assert retrain_signal("m", win(drift=named), REF, (True,), rule).bad is True


def test_estimate_warns_only_while_labels_are_missing() -> None:
    rule = RetrainRule()
    ref = MetricBaseline(0.9, 1500, (0, 300, 600))
    unlabelled = win(est_accuracy=(0.75, 500), labelled=(20, 500), label_rate=(0.04, 500))
    s = estimate_signal("m", unlabelled, ref, rule)
    assert s.bad is True and s.kind == "performance" and s.subject == "est_accuracy" and s.severity == "warning"
    assert "4% of predictions are labelled" in s.summary
    labelled = win(est_accuracy=(0.75, 500), labelled=(400, 500), label_rate=(0.8, 500))
    assert estimate_signal("m", labelled, ref, rule).bad is False


def test_drift_needs_the_same_feature_in_each_of_k_windows_and_ranks_by_statistic() -> None:
    rule, retrain = DriftRule(windows=3), RetrainRule()

    def rows(flagged: dict[str, float]) -> Window:
        feats = ("a", "b", "c", "d")
        return win(drift=tuple(DriftRow(f, "psi", flagged.get(f, 0.01), 0.2, f in flagged) for f in feats))

    hist = [drifted_features(rows(x), retrain) for x in ({"a": 0.3, "b": 0.9}, {"a": 0.4, "b": 0.5},
                                                         {"a": 0.5, "b": 0.6, "c": 0.9})]  # fmt: skip
    s = drift_signal("m", rows({}), [h for h in hist if h is not None], rule)
    assert s.bad is True
    assert [f["feature"] for f in s.evidence["features"]] == ["b", "a"]  # ranked by the current statistic
    assert s.evidence["drifting_now"] == ["c"] and s.summary.endswith("b, a.")
    assert drift_signal("m", rows({}), [h for h in hist[1:] if h is not None], rule).bad is False  # only 2 windows
    assert drifted_features(win(), retrain) is None  # no drift rows: no evidence either way
    concept_only = win(drift=(DriftRow("__error__", "adwin_error", 1, 0.5, True),))
    assert drifted_features(concept_only, retrain) is None


def test_fairness_per_attribute_with_gap_and_ratio_bounds() -> None:
    w = Window("v1", 0, 300, {}, {
        "region": {"demographic_parity_difference": Point(0.18, 400), "disparate_impact_ratio": Point(0.7, 400)},
        "age_band": {"demographic_parity_difference": Point(-0.05, 400)},
        "gender": {"demographic_parity_difference": Point(0.5, 10)},
    })  # fmt: skip
    sig = {s.subject: s for s in fairness_signals("m", w, FairnessRule())}
    assert sig["region"].bad is True and len(sig["region"].evidence["breaches"]) == 2
    assert "above its bound 0.1" in sig["region"].summary or "below its bound 0.8" in sig["region"].summary
    assert sig["age_band"].bad is False
    assert sig["gender"].bad is None  # too few events to judge


def test_lift_below_baseline() -> None:
    rule = SunsetRule()
    assert lift_signal("m", win(), rule) is None
    s = lift_signal("m", win(lift_accuracy=(-0.03, 400)), rule)
    assert s is not None and s.bad is True and s.kind == "sunset" and s.subject == "below_baseline"
    s = lift_signal("m", win(lift=(0.01, 400)), rule)
    assert s is not None and s.bad is False
    s = lift_signal("m", win(lift_accuracy=(-0.03, 20)), rule)
    assert s is not None and s.bad is None


def test_ops_rates() -> None:
    orphans = Window("", 0, 300, {"orphaned_outcomes": Point(30, 200)})
    [s] = ops_signals("m", orphans, OpsRule(max_orphan_rate=0.05))
    assert (s.subject, s.bad, s.evidence["rate"]) == ("orphaned_outcomes", True, 0.15)
    late = ops_signals("m", win(late_labels=(10, 400), dead_letter_rate=(0.5, 1000), lag_seconds=(30, 1)), OpsRule())
    assert {s.subject: s.bad for s in late} == {"late_labels": False, "dead_letters": True, "lag": False}
