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
from watchkeeper.detectors.timeutil import iso
from watchkeeper.streams.events import Prediction
from watchkeeper.streams.ingest import SourceMessage
from watchkeeper.streams.service import Worker
from watchkeeper.windows.closer import WindowCloser
from watchkeeper.windows.config import WindowKey
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


def first_carried(worker: Worker, model: str) -> dict[str, Any]:
    return next(r for r in drift_rows(worker, model) if r["detector"] == CARRIED)


@pytest.mark.parametrize("seed", [2, 3])
def test_a_late_alarm_of_a_real_shift_is_confirmed_in_a_later_window_when_150_events_came_after_it(
    worker: Worker, seed: int
) -> None:
    """A 0.5 sigma shift at 60 events a window: the first alarm has fewer than 150 events after it in its
    window (no after_alarm row); it is carried, a later window's carried_alarm row confirms it with its
    time, and the drift alert is decided then (a look's mark or the window's end), never at the alarm."""
    model = f"carried{seed}"
    publish(worker, events(model, seed, 0.5, WARM + 900))
    closer = WindowCloser(worker.store, worker.settings.window_config())
    closer.tick(force=True)
    rows = drift_rows(worker, model)
    alarm = next(r for r in rows if r["detector"] == "mean_shift" and r["drifted"])
    assert alarm["feature"] == "f3" and alarm["t"] >= W0 + WARM
    assert not [r for r in rows if r["ws"] == alarm["ws"] and r["detector"] == "after_alarm"]
    carried = first_carried(worker, model)
    assert (carried["feature"], carried["t"], carried["drifted"]) == ("f3", alarm["t"], 1)
    assert alarm["ws"] < carried["ws"] <= alarm["ws"] + 3 * W
    [alert] = drift_alerts(worker, closer, model)
    assert alert.evidence["alarm"] == iso(alarm["t"])
    decided = alert.ts.timestamp()
    # 150 events after the alarm (one a second) before the decision; at the latest the carried window's end.
    assert alarm["t"] + LOOK_MIN_AFTER <= decided <= carried["ws"] + W
    assert decided > alarm["ws"] + W and decided % 10 == 0


def test_a_replay_and_the_next_owner_after_a_shard_move_carry_the_same_alarm_to_the_same_decision(
    worker: Worker,
) -> None:
    """The same events twice: ``live`` written up to the alarm's window by one closer and the rest by a new one
    (a restart or a shard move: nothing in memory, the carried alarm is read back from the drift rows);
    ``replay`` written in one pass. Both confirm the same alarm in the same window, and the drift alert is
    decided at the same time."""
    batch = {m: events(m, 2, 0.5, WARM + 900) for m in ("live", "replay")}
    cut = W0 + 1620  # the end of the first alarm's window (seed 2: the alarm at W0 + 1571.5)
    publish(worker, [e for e in batch["live"] if e["ts"] < cut])
    first = WindowCloser(worker.store, worker.settings.window_config())
    first.tick(force=True)
    assert first.drift.carry.pending_at(WindowKey("live", "v1", cut)) == {"f3": (W0 + 1571.5, cut - W)}
    publish(worker, [e for e in batch["live"] if e["ts"] >= cut])
    second = WindowCloser(worker.store, worker.settings.window_config())
    second.tick(force=True)
    looks = first.looks.take()
    second.looks.found[:0] = looks
    live = first_carried(worker, "live"), drift_alerts(worker, second, "live")
    publish(worker, batch["replay"])
    third = WindowCloser(worker.store, worker.settings.window_config())
    third.tick(force=True)
    replay = first_carried(worker, "replay"), drift_alerts(worker, third, "replay")
    assert live[0] == replay[0] and live[0]["drifted"] == 1
    assert [(a.ts, a.evidence_ts, a.evidence["alarm"]) for a in live[1]][:1] == [
        (a.ts, a.evidence_ts, a.evidence["alarm"]) for a in replay[1]][:1]  # fmt: skip
    assert live[1] and live[1][0].evidence["alarm"] == iso(W0 + 1571.5)
