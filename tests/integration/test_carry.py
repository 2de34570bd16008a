"""Per-event drift alarms carried into the next windows (windows/carry.py) through the real model stage.

A model of 60 events a window (one a minute-long window at 1 event/s): no alarm ever has the 150 events after
it within its window that its confirmation needs, so before the carry a real shift was never confirmed by the
fast path. Now the alarm is carried, the test reads the events after it across the window boundary, and the
drift alert is decided when it has 150 of them (a look's mark or the window's end), not at the alarm.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import orjson
import pytest

from watchkeeper.alerts.engine import AlertEngine
from watchkeeper.streams.events import Prediction
from watchkeeper.streams.ingest import SourceMessage
from watchkeeper.streams.service import Worker
from watchkeeper.windows.closer import WindowCloser
from watchkeeper.windows.partial import CARRIED, LOOK_MIN_AFTER

pytestmark = pytest.mark.integration

W = 60
W0 = int(time.time() - 2 * 86400) // W * W
FEATURES = ("f0", "f1", "f2", "f3", "f4")
WARM = 1500  # the reference (the first 1,000 events) and the detector's warm-up, then stable traffic
_offsets = itertools.count()

WORKER_SETTINGS = dict(window_seconds=W, label_delay_seconds=0, idle_flush=3600)


def events(model: str, seed: int, shift: float, n: int) -> list[dict[str, Any]]:
    """One event a second (60 a window); from ``W0 + WARM`` on, f3 moves by ``shift`` sigma."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    x[WARM:, 3] += shift
    return [{"prediction_id": f"{model}-{i}", "model": model, "version": "v1", "ts": W0 + i + 0.5,
             "prediction": 0.5, "features": dict(zip(FEATURES, np.round(x[i], 4).tolist(), strict=True))}
            for i in range(n)]  # fmt: skip


def publish(worker: Worker, batch: list[dict[str, Any]]) -> None:
    for lo in range(0, len(batch), 500):
        msg = SourceMessage("predictions", 0, next(_offsets), orjson.dumps({"events": batch[lo : lo + 500]}), None)
        worker.write_batch(worker.build_batch([msg], Prediction))


def drift_rows(worker: Worker, model: str) -> list[dict[str, Any]]:
    return worker.store.query(
        "SELECT toUnixTimestamp(window_start) AS ws, feature, detector, drifted, toUnixTimestamp64Milli(ts) / 1000 "
        "AS t FROM drift FINAL WHERE model = {m:String} AND detector IN ('mean_shift', 'after_alarm', {c:String}) "
        "ORDER BY ws, feature, detector",
        {"m": model, "c": CARRIED},
    )


def drift_alerts(worker: Worker, closer: WindowCloser, model: str) -> list[Any]:
    engine = AlertEngine(worker.store, worker.settings.alert_config(), history_days=None, write=False)
    engine.add_looks(closer.looks.take())
    return [a for a in engine.evaluate() if a.model == model and a.kind == "drift" and a.state == "firing"]


def test_experiment(worker: Worker) -> None:
    for seed in range(4):
        m = f"exp{seed}"
        publish(worker, events(m, seed, 0.5, WARM + 900))
        closer = WindowCloser(worker.store, worker.settings.window_config())
        closer.tick(force=True)
        rows = [r for r in drift_rows(worker, m) if r["drifted"] or r["detector"] != "mean_shift"]
        print(m, [(r["ws"] - W0, r["feature"], r["detector"], r["drifted"], round(r["t"] - W0, 1)) for r in rows])
        for a in drift_alerts(worker, closer, m):
            print("  alert", a.ts, a.evidence_ts, a.summary, a.evidence.get("alarm"))
