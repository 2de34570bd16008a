"""A rise in a feature's missing values, through the stream, the model stage and the alert engine.

f2 is null (or absent) in 2 % of the predictions, then in 20 % from window 12: the ``missing_rate`` rows
flag it after the rise only, and the drift alert names it with both rates. The same model with a steady
2 % raises no drift alert.
"""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest

from watchkeeper.alerts.engine import AlertEngine
from watchkeeper.streams.events import Prediction
from watchkeeper.streams.ingest import SourceMessage
from watchkeeper.streams.service import Worker
from watchkeeper.windows.closer import WindowCloser

pytestmark = pytest.mark.integration

W = 300
WINDOWS = 20
PER_WINDOW = 300
RISE = 12  # the first window with 20 % missing
REFERENCE = 4  # the first 1,000 predictions fill windows 0-3

WORKER_SETTINGS = dict(window_seconds=W, label_delay_seconds=0, idle_flush=3600)


def publish(worker: Worker, model: str, rise_from: int | None, seed: int) -> int:
    """5 numeric features and a categorical one; f2 missing in 2 % of predictions (20 % from ``rise_from``),
    half of them null and half absent, and ``channel`` absent in 2 % throughout."""
    rng = np.random.default_rng(seed)
    start = int(time.time() - 3 * 86400) // W * W
    events = []
    for i in range(WINDOWS * PER_WINDOW):
        win = i // PER_WINDOW
        x = rng.normal(size=5)
        features: dict[str, float | str | None] = {f"f{j}": float(x[j]) for j in range(5)}
        rate = 0.2 if rise_from is not None and win >= rise_from else 0.02
        if rng.uniform() < rate:
            if i % 2:
                features["f2"] = None
            else:
                del features["f2"]
        if rng.uniform() >= 0.02:
            features["channel"] = str(rng.choice(["web", "app"]))
        events.append({"prediction_id": f"{model}-{i}", "model": model, "version": "v1",
                       "ts": start + win * W + (i % PER_WINDOW) * (W / PER_WINDOW),
                       "prediction": float(1 / (1 + np.exp(-x[0]))), "features": features})  # fmt: skip
    for off in range(0, len(events), 1000):
        msg = SourceMessage(
            "predictions", 0, hash(model) % 10_000_000 + off, orjson.dumps({"events": events[off : off + 1000]}), None
        )
        worker.write_batch(worker.build_batch([msg], Prediction))
    return start


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
    start = publish(worker, "holes", rise_from=RISE, seed=11)
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
    start = publish(worker, "steady_holes", rise_from=None, seed=12)
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)
    rows = missing_rows(worker, "steady_holes", start)
    assert len(rows) == 2 * (WINDOWS - REFERENCE)  # tested in every window, f2 and channel
    assert not [k for k, (_, _, d) in rows.items() if d]
    assert drift_alerts(worker, "steady_holes") == []
