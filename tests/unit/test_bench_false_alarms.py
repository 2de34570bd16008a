"""The false-alarm simulation (``bench/false_alarms.py``) runs the product's detectors and evaluator: a short
stable run raises nothing, and each power scenario's change is found (so the simulation can see an alert)."""

from __future__ import annotations

from bench.false_alarms import W, run_model


def test_a_stable_model_raises_no_alert_in_a_day() -> None:
    assert run_model(seed=3, windows=288) == []


def test_a_fairness_gap_and_a_mean_shift_are_found() -> None:
    fair = run_model(seed=4, windows=12, tpr_gap=0.3)
    assert [(k, s, path) for k, _, s, _, path in fair] == [("fairness", "firing", "fairness")]
    shifted = run_model(seed=4, windows=24, shift_at=12, shift=0.5)
    drift = [(ts, path) for k, _, s, ts, path in shifted if k == "drift" and s == "firing"]
    # Found by the fast path: the per-event alarm confirmed by the window test of the events after it, at the
    # alarm's time.
    assert drift and 12 * W < drift[0][0] <= 13 * W and drift[0][1] == "fast:after_alarm+ks+mean_shift"
