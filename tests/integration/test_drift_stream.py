"""Drift written by the stream: a shifted feature is flagged after the shift, a stable model is not; a rise in
a feature's missing values is flagged and alerted on."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import orjson
import pytest

from watchkeeper.alerts.engine import AlertEngine
from watchkeeper.streams.events import Outcome, Prediction
from watchkeeper.streams.ingest import SourceMessage
from watchkeeper.streams.service import Worker
from watchkeeper.windows.closer import WindowCloser

pytestmark = pytest.mark.integration

W = 300
WINDOWS = 24
PER_WINDOW = 300
# The reference is a version's first 1,000 predictions (WATCHKEEPER_REFERENCE_PREDICTIONS), not its first
# 3 windows: at 300 a window they fill windows 0-3, and window 4 is the first tested.
REFERENCE = 4


# The settings of the ``worker`` fixture (tests/integration/conftest.py).
WORKER_SETTINGS = dict(window_seconds=W, label_delay_seconds=0, idle_flush=3600)


def publish(
    worker: Worker, model: str, shift_from: int | None, seed: int, missing: Callable[[int], float] | None = None
) -> int:
    """WINDOWS windows of 5 numeric features and one categorical; feature f2 shifts by 1 sigma.

    With ``missing`` (window -> rate): f2 is missing at that rate, and ``channel`` in 2 % of the predictions
    throughout, null or absent alike (every other one)."""
    rng = np.random.default_rng(seed)
    start = int(time.time() - 3 * 86400) // W * W
    events = []
    for i in range(WINDOWS * PER_WINDOW):
        win = i // PER_WINDOW
        x = rng.normal(size=5)
        if shift_from is not None and win >= shift_from:
            x[2] += 1.0
        features: dict[str, float | str | None] = {f"f{j}": float(x[j]) for j in range(5)}
        features["channel"] = str(rng.choice(["web", "app"]))
        if missing is not None:
            for name, rate in (("f2", missing(win)), ("channel", 0.02)):
                if rng.uniform() < rate:  # null in odd predictions, absent in even ones
                    features[name] = None
                    if i % 2 == 0:
                        del features[name]
        events.append(
            {
                "prediction_id": f"{model}-{i}",
                "model": model,
                "version": "v1",
                "ts": start + win * W + (i % PER_WINDOW) * (W / PER_WINDOW),
                "prediction": float(1 / (1 + np.exp(-x[0]))),
                "features": features,
            }
        )
    for off in range(0, len(events), 1000):
        msg = SourceMessage(
            "predictions", 0, hash(model) % 10_000_000 + off, orjson.dumps({"events": events[off : off + 1000]}), None
        )
        worker.write_batch(worker.build_batch([msg], Prediction))
    return start


def drift_rows(worker: Worker, model: str) -> list[tuple]:
    return worker.store.query_rows(
        "SELECT feature, toUnixTimestamp(window_start), drifted FROM drift FINAL WHERE model = {m:String} "
        "ORDER BY window_start, feature",
        {"m": model},
    )


def test_feature_shift_is_flagged_after_the_shift_only(worker: Worker) -> None:
    start = publish(worker, "shifty", shift_from=12, seed=1)
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)
    rows = drift_rows(worker, "shifty")
    assert rows, "no drift rows written"
    flagged = {(f, (ws - start) // W) for f, ws, d in rows if d}
    after = {w for f, w in flagged if f == "f2"}
    assert after == set(range(12, WINDOWS))  # every window after the shift, none before
    # No other single feature; the joint test (__multivariate__) may see f2's shift too: it is a change.
    others = {(f, w) for f, w in flagged if f not in ("f2", "__multivariate__")}
    assert not others
    # The reference windows themselves are not tested by the window tests (the per-event detector, which
    # learns from the first 1,000 events itself, runs from the window after them).
    tested = worker.store.query_rows(
        "SELECT min(toUnixTimestamp(window_start)) FROM drift FINAL WHERE model = 'shifty' AND detector != 'mean_shift'"
    )
    assert (tested[0][0] - start) // W == REFERENCE


def test_stable_model_stays_under_one_percent_false_flags(worker: Worker) -> None:
    publish(worker, "steady", shift_from=None, seed=2)
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)
    rows = drift_rows(worker, "steady")
    assert len(rows) >= (WINDOWS - REFERENCE) * 6
    assert sum(d for _, _, d in rows) / len(rows) < 0.01


def test_concept_drift_on_the_error_stream(worker: Worker) -> None:
    """Accuracy 0.86 -> 0.72 from window 12: the error-stream detector fires after the change, not before."""
    rng = np.random.default_rng(5)
    start = int(time.time() - 3 * 86400) // W * W
    preds, outs = [], []
    for i in range(WINDOWS * PER_WINDOW):
        win = i // PER_WINDOW
        ts = start + win * W + (i % PER_WINDOW) * (W / PER_WINDOW)
        y = int(rng.uniform() < 0.5)
        correct = rng.uniform() < (0.86 if win < 12 else 0.72)
        score = 0.8 if (y == 1) == correct else 0.2
        preds.append({"prediction_id": f"cd-{i}", "model": "concept", "version": "v1", "ts": ts, "prediction": score})
        outs.append({"prediction_id": f"cd-{i}", "model": "concept", "outcome": y, "ts": ts + 60})
    for off in range(0, len(preds), 1000):
        for kind, evs, base in ((Prediction, preds, 50_000_000), (Outcome, outs, 60_000_000)):
            msg = SourceMessage("t", 0, base + off, orjson.dumps({"events": evs[off : off + 1000]}), None)
            worker.write_batch(worker.build_batch([msg], kind))
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)
    rows = worker.store.query_rows(
        "SELECT toUnixTimestamp(window_start), drifted, toUnixTimestamp(ts) FROM drift FINAL "
        "WHERE model = 'concept' AND feature = '__error__' ORDER BY window_start"
    )
    assert len(rows) == WINDOWS
    fired = [(ws - start) // W for ws, d, _ in rows if d]
    assert fired and min(fired) >= 12, fired
    first = next(t for ws, d, t in rows if d)
    assert first - (start + 12 * W) <= 3 * W  # found within three windows of the change


def test_label_drift_when_the_outcome_balance_moves(worker: Worker) -> None:
    """Positives 20% -> 60% from window 12: __label__ drifts after, never before; no label drift when stable."""
    rng = np.random.default_rng(6)
    start = int(time.time() - 3 * 86400) // W * W
    preds, outs = [], []
    for i in range(WINDOWS * PER_WINDOW):
        win = i // PER_WINDOW
        ts = start + win * W + (i % PER_WINDOW) * (W / PER_WINDOW)
        y = int(rng.uniform() < (0.2 if win < 12 else 0.6))
        preds.append({"prediction_id": f"lb-{i}", "model": "labels", "version": "v1", "ts": ts, "prediction": 0.3})
        outs.append({"prediction_id": f"lb-{i}", "model": "labels", "outcome": y, "ts": ts + 60})
    for off in range(0, len(preds), 1000):
        for kind, evs, base in ((Prediction, preds, 90_000_000), (Outcome, outs, 91_000_000)):
            msg = SourceMessage("t", 0, base + off, orjson.dumps({"events": evs[off : off + 1000]}), None)
            worker.write_batch(worker.build_batch([msg], kind))
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)
    rows = worker.store.query_rows(
        "SELECT toUnixTimestamp(window_start), drifted FROM drift FINAL "
        "WHERE model = 'labels' AND feature = '__label__' ORDER BY window_start"
    )
    assert len(rows) == WINDOWS - REFERENCE  # the reference windows are not tested
    assert {(ws - start) // W for ws, d in rows if d} == set(range(12, WINDOWS))
    stable = worker.store.query_rows(
        "SELECT countIf(drifted = 1) FROM drift FINAL WHERE model = 'concept' AND feature = '__label__'"
    )
    assert stable in ([(0,)], [])


def publish_correlated(worker: Worker, model: str, flip_from: int, seed: int) -> int:
    """Features a and b with correlation 0.9, then -0.9 from window ``flip_from``: each stays N(0, 1)."""
    rng = np.random.default_rng(seed)
    start = int(time.time() - 3 * 86400) // W * W
    events = []
    for i in range(WINDOWS * PER_WINDOW):
        win = i // PER_WINDOW
        rho = 0.9 if win < flip_from else -0.9
        a, z, c = rng.normal(size=3)
        b = rho * a + np.sqrt(1 - rho**2) * z
        events.append({"prediction_id": f"{model}-{i}", "model": model, "version": "v1",
                       "ts": start + win * W + (i % PER_WINDOW) * (W / PER_WINDOW), "prediction": 0.5,
                       "features": {"a": float(a), "b": float(b), "c": float(c)}})  # fmt: skip
    for off in range(0, len(events), 1000):
        msg = SourceMessage(
            "predictions", 0, hash(model) % 10_000_000 + off, orjson.dumps({"events": events[off : off + 1000]}), None
        )
        worker.write_batch(worker.build_batch([msg], Prediction))
    return start


def test_a_correlation_change_is_flagged_by_the_joint_test_only(worker: Worker) -> None:
    """No single feature changes; how a and b move together does: __multivariate__ flags it, and only it."""
    start = publish_correlated(worker, "corr", flip_from=12, seed=5)
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)
    rows = drift_rows(worker, "corr")
    joint = {(ws - start) // W: d for f, ws, d in rows if f == "__multivariate__"}
    assert set(joint) == set(range(REFERENCE, WINDOWS))  # tested in every window after the reference
    assert {w for w, d in joint.items() if d} == set(range(12, WINDOWS))
    assert not [(f, (ws - start) // W) for f, ws, d in rows if d and f in ("a", "b", "c")]


# A rise in a feature's missing values: f2 missing (null or absent) in 2 % of the predictions, then in 20 %
# from window RISE. The missing_rate rows flag it after the rise only, and the drift alert names it with
# both rates; the same model with a steady 2 % raises no drift alert.
RISE = 12


def missing_rows(worker: Worker, model: str, start: int) -> dict[tuple[str, int], tuple[float, float, int]]:
    rows = worker.store.query_rows(
        "SELECT feature, toUnixTimestamp(window_start), statistic, threshold, drifted FROM drift FINAL "
        "WHERE model = {m:String} AND detector = 'missing_rate'",
        {"m": model},
    )
    return {(f, (ws - start) // W): (s, t, d) for f, ws, s, t, d in rows}


def drift_alerts(worker: Worker, model: str) -> list:
    alerts = AlertEngine(worker.store, worker.settings.alert_config()).evaluate()
    return [a for a in alerts if a.model == model and a.kind == "drift" and a.state == "firing"]


def test_a_rise_in_missing_values_raises_a_drift_alert_naming_the_feature(worker: Worker) -> None:
    start = publish(worker, "holes", None, seed=11, missing=lambda win: 0.2 if win >= RISE else 0.02)
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)
    rows = missing_rows(worker, "holes", start)
    # Every tested window has a row for both features (each has missing values), none inside the reference.
    assert {w for _, w in rows} == set(range(REFERENCE, WINDOWS))
    assert {f for f, _ in rows} == {"f2", "channel"}
    flagged = {(f, w) for (f, w), (_, _, d) in rows.items() if d}
    assert flagged == {("f2", w) for w in range(RISE, WINDOWS)}
    rate, reference, _ = rows[("f2", RISE)]
    assert 0.15 < rate < 0.25 and 0.01 < reference < 0.035

    (alert,) = drift_alerts(worker, "holes")
    assert "f2: missing in" in alert.summary and "of predictions, reference" in alert.summary
    (f2,) = [f for f in alert.evidence["features"] if f["feature"] == "f2"]
    assert "missing_rate" in f2["detectors"] and 0.15 < f2["missing_rate"] < 0.25
    assert f2["reference_missing_rate"] == pytest.approx(reference)
    assert [f["feature"] for f in alert.evidence["features"]] == ["f2"]


def test_a_steady_missing_rate_raises_nothing(worker: Worker) -> None:
    start = publish(worker, "steady_holes", None, seed=12, missing=lambda win: 0.02)
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)
    rows = missing_rows(worker, "steady_holes", start)
    assert len(rows) == 2 * (WINDOWS - REFERENCE)  # tested in every window, f2 and channel
    assert not [k for k, (_, _, d) in rows.items() if d]
    assert drift_alerts(worker, "steady_holes") == []
