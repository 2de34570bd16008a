"""Two clocks per window, through the model stage and the alert engine on the embedded store.

A live stream is simulated in event time: every 10 s of event time the worker writes what arrived
(predictions at 10 per second, each one's label 30 s later), runs a pass of the model stage and
evaluates the alerts, as the worker's timer does. Windows are 60 s, the label delay 120 s, the grace
10 s. So a window's label-free results (and the alerts decided from them) come 10 s after its end,
while its label-based ones are provisional until 120 s after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson
import pytest

from watchkeeper.settings import Settings
from watchkeeper.streams.events import Outcome, Prediction
from watchkeeper.streams.ingest import SourceMessage
from watchkeeper.streams.service import Worker
from watchkeeper.windows.closer import INSERT_SAFETY_SECONDS
from watchkeeper.windows.partial import LOOK_EVERY_SECONDS

pytestmark = pytest.mark.integration

W = 60
DELAY = 120
GRACE = 10
RATE = 10  # predictions per second
LABEL_AFTER = 30  # seconds from a prediction to its outcome
STEP = 10  # seconds of event time between passes
WINDOWS = 9
SHIFT_WINDOW = 5  # the shifted model's feature f1 moves by one sigma from this window on
# The settings of the ``worker`` fixture (tests/integration/conftest.py).
WORKER_SETTINGS = dict(window_seconds=W, label_delay_seconds=DELAY, window_grace_seconds=GRACE, idle_flush=3600)
TABLES = ("predictions", "outcomes", "metrics", "drift", "metrics_daily", "mistakes", "alerts", "checkpoints",
          "alert_deliveries")  # fmt: skip


def stream_of(
    models: dict[str, float | None], start: int, seed: int, n: int, label_after: float,
    draw: Callable[[np.random.Generator, float | None, float], tuple[np.ndarray, float, int]],
) -> list[tuple[float, str, dict[str, Any]]]:
    """(arrival time, kind, event) of ``n`` predictions per model (``RATE`` a second from ``start``) and their
    outcomes ``label_after`` s later, in arrival order; ``draw(rng, the model's change, ts)`` gives each
    prediction's features, score and outcome."""
    rng = np.random.default_rng(seed)
    out = []
    for model, change in models.items():
        for i in range(n):
            ts = start + i / RATE
            x, p, y = draw(rng, change, ts)
            pid = f"{model}-{i}"
            out.append((ts, "p", {"prediction_id": pid, "model": model, "version": "v1", "ts": ts, "prediction": p,
                                  "features": {f"f{j}": float(x[j]) for j in range(3)}}))  # fmt: skip
            out.append((ts + label_after, "o", {"prediction_id": pid, "model": model, "outcome": y,
                                                "ts": ts + label_after}))  # fmt: skip
    return sorted(out, key=lambda e: (e[0], e[1], e[2]["prediction_id"]))


def events(
    models: dict[str, float | None], start: int, seed: int = 3, *, w: int = W, windows: int = WINDOWS, size: float = 1.0
) -> list[tuple[float, str, dict[str, Any]]]:
    """(arrival time, kind, event) of every prediction and outcome, in arrival order. ``models``: name ->
    the window (of ``w`` seconds; 2.5: the middle of window 2) from which its feature f1 is shifted by
    ``size`` sigma (None: stable)."""

    def draw(rng: np.random.Generator, shift: float | None, ts: float) -> tuple[np.ndarray, float, int]:
        x = rng.normal(size=3)
        if shift is not None and ts >= start + shift * w:
            x[1] += size
        p = float(1 / (1 + np.exp(-2 * x[0])))
        return x, p, int(rng.uniform() < p)

    return stream_of(models, start, seed, windows * w * RATE, LABEL_AFTER, draw)


class Feed:
    """Writes arriving events to the store as the worker's ingest would (one message per kind and step)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.offset = 0

    def write(self, batch: list[tuple[float, str, dict[str, Any]]]) -> None:
        for kind, cls in (("p", Prediction), ("o", Outcome)):
            evs = [e for _, k, e in batch if k == kind]
            if evs:
                self.offset += 1
                msg = SourceMessage("t", 0, self.offset, orjson.dumps({"events": evs}), None)
                self.worker.write_batch(self.worker.build_batch([msg], cls))


def live(worker: Worker, stream: list[tuple[float, str, dict[str, Any]]], start: int) -> Iterator[float]:
    """Feed ``stream`` STEP seconds of event time at a time, with a model-stage pass after each; yields the
    event time reached (after the pass and the alert evaluation)."""
    feed = Feed(worker)
    t, i = start + STEP, 0
    while i < len(stream):
        j = i
        while j < len(stream) and stream[j][0] < t:
            j += 1
        feed.write(stream[i:j])
        i = j
        worker.close_windows()
        worker.evaluate_alerts()
        yield t
        t += STEP


def fresh_worker(worker: Worker, **settings: Any) -> Worker:
    """An empty store and a new worker on it (no state kept from an earlier run); ``settings`` override
    WORKER_SETTINGS."""
    for table in TABLES:
        worker.store.command(f"TRUNCATE TABLE IF EXISTS {table}")
    w = Worker(Settings(store_port=worker.settings.store_port, settle_seconds=0.0, **{**WORKER_SETTINGS, **settings}))
    w.ensure_schema()
    return w


def start_time(w: int = W) -> int:
    return int(time.time() - 3 * 86400) // w * w


def decisions(worker: Worker) -> list[dict[str, Any]]:
    from watchkeeper.alerts.engine import list_alerts

    return sorted((a.decision() for a in list_alerts(worker.store, history=True)),
                  key=lambda d: (d["ts"], d["alert_id"], d["state"]))  # fmt: skip


def test_label_based_rows_are_provisional_until_the_label_delay_then_final(worker: Worker) -> None:
    """A window's accuracy is written 10 s after its end from the labels so far (provisional), rewritten as
    labels arrive (a new version each, with more coverage), and final once the label delay has passed;
    its prediction count is final from the first write."""
    worker = fresh_worker(worker)
    # Every pass that finds new labels rewrites the window (the worker waits a few seconds between them).
    worker.closer.rewrite_every = 0.0
    start = start_time()
    stream = events({"clk.labels": None}, start)
    first = start  # the window watched
    seen: list[tuple[int, float, float]] = []  # (provisional, labelled, event time) after each pass
    versions: list[float] = []  # the accuracy row's computed_at after each pass
    for t in live(worker, stream, start):
        rows = dict(
            (m, (p, v, c)) for m, p, v, c in worker.store.query_rows(
                "SELECT metric, provisional, value, toUnixTimestamp64Milli(computed_at) FROM metrics FINAL "
                "WHERE model = 'clk.labels' AND segment = '' "
                "AND window_start = toDateTime({ws:UInt32}) AND metric IN ('accuracy', 'labelled', 'predictions')",
                {"ws": first})
        )  # fmt: skip
        # The watermark after the pass at ``t`` is the last event before ``t``.
        if t <= first + W + GRACE:
            assert rows == {}, (t, rows)  # not written before its end plus the grace
            continue
        assert rows["predictions"][:2] == (0, W * RATE)  # label-free: final at once
        seen.append((int(rows["accuracy"][0]), float(rows["labelled"][1]), t))
        versions.append(rows["accuracy"][2])
        if t > first + W + DELAY + STEP:
            break
    provisional = [s for s in seen if s[0] == 1]
    final = [s for s in seen if s[0] == 0]
    assert provisional and final, seen
    assert max(t for *_, t in provisional) <= first + W + DELAY < min(t for *_, t in final)
    # Coverage grows with the labels while provisional (it stays provisional, all labels in, until the
    # label delay has passed), and the final version has them all.
    coverage = [labelled for _, labelled, _ in provisional]
    assert coverage == sorted(coverage) and coverage[0] < coverage[-1] == W * RATE
    assert final[-1][1] == W * RATE
    # Each rewrite was a new version of the row (insert-only: a newer ``computed_at``, read with FINAL).
    assert len(set(versions)) >= 3 and versions == sorted(versions)
    # The views say which windows are still provisional, and how many labels are in.
    wide = worker.store.query_rows(
        "SELECT toUnixTimestamp(window_start), provisional, label_coverage FROM metrics_wide "
        "WHERE model = 'clk.labels' ORDER BY window_start"
    )
    assert wide[0][1:] == (0, 1.0)
    assert any(p == 1 and cov < 1.0 for _, p, cov in wide)


def test_a_drift_alert_is_decided_by_the_window_end_plus_grace_without_waiting_for_labels(worker: Worker) -> None:
    """f1 moves by one sigma at the start of window 5: the drift alert's decision time (``alerts.ts``) is
    at the latest window 5's end plus the grace (a look at the window so far may decide it sooner), long
    before its labels are final; the stable model gets no alert."""
    worker = fresh_worker(worker)
    start = start_time()
    stream = events({"clk.shift": SHIFT_WINDOW, "clk.steady": None}, start)
    decided_at: float | None = None
    for t in live(worker, stream, start):
        fired = [a for a in worker.alert_engine.firing(kind="drift") if a.model == "clk.shift"]
        if fired and decided_at is None:
            decided_at = t
            break
    end = start + (SHIFT_WINDOW + 1) * W
    assert decided_at is not None and decided_at <= end + GRACE + STEP  # the first pass past end + grace
    [alert] = [a for a in decisions(worker) if a["model"] == "clk.shift" and a["kind"] == "drift"]
    ts = int(np.datetime64(alert["ts"].replace("Z", "")).astype("datetime64[s]").astype(int))
    assert end - W < ts <= end + GRACE < end + DELAY
    # Labels of the window are still provisional when the alert was decided.
    assert worker.store.query_rows(
        "SELECT provisional FROM metrics FINAL WHERE model = 'clk.shift' AND metric = 'labelled' AND segment = '' "
        "AND window_start = toDateTime({ws:UInt32})", {"ws": end - W})[0][0] == 1  # fmt: skip
    assert [d for d in decisions(worker) if d["model"] == "clk.steady"] == []


def test_a_replay_of_the_same_events_decides_the_same_alerts_and_a_stable_stream_none(worker: Worker) -> None:
    """The live run (a pass every 10 s of event time) and a replay of the same events written at once
    decide the same alerts, at the same decision times; the stable model has none in either."""
    worker = fresh_worker(worker)
    start = start_time()
    stream = events({"clk.shift": SHIFT_WINDOW, "clk.steady": None}, start, seed=11)
    for _ in live(worker, stream, start):
        pass
    # The stream's tail: the last windows' label delay passes (a quiet stream would flush them too).
    tail = start + WINDOWS * W + DELAY + W
    Feed(worker).write([(tail, "p", {"prediction_id": "tick", "model": "clk.tick", "version": "v1", "ts": tail,
                                     "prediction": 0.5})])  # fmt: skip
    worker.close_windows()
    worker.evaluate_alerts()
    first = [d for d in decisions(worker) if d["model"] != "clk.tick"]
    assert any(d["model"] == "clk.shift" and d["kind"] == "drift" for d in first), first
    assert [d for d in first if d["model"] == "clk.steady"] == []

    replay = fresh_worker(worker)
    feed = Feed(replay)
    feed.write(stream)
    feed.write([(tail, "p", {"prediction_id": "tick", "model": "clk.tick", "version": "v1", "ts": tail,
                             "prediction": 0.5})])  # fmt: skip
    replay.close_windows()
    replay.evaluate_alerts()
    again = [d for d in decisions(replay) if d["model"] != "clk.tick"]
    assert again == first


# Looks at the window so far (windows/partial.py): the default window length, a 0.5 sigma shift of f1 in the
# middle of window 2 (after a reference of 1,000 predictions and a whole window without change).
LONG_W = 300
LONG_WINDOWS = 4
LONG_SETTINGS = dict(window_seconds=LONG_W, label_delay_seconds=60)


def replayed(worker: Worker, stream: list[tuple[float, str, dict[str, Any]]], until: float) -> list[dict[str, Any]]:
    """The decisions of a fresh worker (LONG_SETTINGS) given the events of ``stream`` before ``until`` at once."""
    replay = fresh_worker(worker, **LONG_SETTINGS)
    Feed(replay).write([e for e in stream if e[0] < until])
    replay.close_windows()
    replay.evaluate_alerts()
    return decisions(replay)


def epoch_of(iso_ts: str) -> int:
    return int(np.datetime64(iso_ts.replace("Z", "")).astype("datetime64[s]").astype(int))


def test_a_shift_mid_window_is_decided_before_the_window_ends_and_a_replay_decides_the_same(worker: Worker) -> None:
    """A 0.5 sigma shift 150 s into a 300 s window: the per-event alarm is confirmed by the window test on the
    window so far, and the drift alert decided (``alerts.ts``, the look's event time) within 60 s of the
    shift, before the window ends; the stable model gets none; a replay of the same events written at once
    decides the same alerts at the same times."""
    live_worker = fresh_worker(worker, **LONG_SETTINGS)
    start = start_time(LONG_W)
    stream = events({"clk.mid": 2.5, "clk.calm": None}, start, seed=5, w=LONG_W, windows=LONG_WINDOWS, size=0.5)
    onset, end = start + 2.5 * LONG_W, start + 3 * LONG_W
    reached = start
    for reached in live(live_worker, stream, start):
        if reached > end + 2 * STEP:
            break
    first = decisions(live_worker)
    [alert] = [a for a in first if a["kind"] == "drift"]
    assert alert["model"] == "clk.mid" and alert["state"] == "firing"
    ts = epoch_of(alert["ts"])
    assert onset < ts <= onset + 60 and ts < end, (ts - onset, alert)
    # Decided on the window so far, at a look's mark, from an alarm on the shifted feature after the shift.
    assert epoch_of(alert["evidence"]["partial_window_until"]) == ts
    assert (ts - start) % LOOK_EVERY_SECONDS == 0
    assert onset <= epoch_of(alert["evidence_ts"]) < ts
    assert [f["feature"] for f in alert["evidence"]["features"]] == ["f1"]
    assert [d for d in first if d["model"] == "clk.calm"] == []

    assert replayed(worker, stream, reached) == first


# Looks at the labels so far (windows/label_looks.py): the default window length, a label delay of 60 s, each label
# 20 s after its prediction, and a concept change (accuracy 0.87 -> 0.73) in the middle of window 2.
LABEL_SOON = 20


def concept_events(
    models: dict[str, float | None], start: int, seed: int, windows: int = LONG_WINDOWS
) -> list[tuple[float, str, dict[str, Any]]]:
    """(arrival time, kind, event) of every prediction and its label (``LABEL_SOON`` s later), in arrival order.
    ``models``: name -> the event time (seconds after ``start``) from which its labels follow another concept
    (``[x0 - 0.3 x1 + e > 0]`` instead of ``[x0 + 0.5 x1 + e > 0]``; None: never)."""

    def draw(rng: np.random.Generator, change: float | None, ts: float) -> tuple[np.ndarray, float, int]:
        x = rng.normal(size=3)
        signal = x[0] + 0.5 * x[1]
        truth = x[0] - 0.3 * x[1] if change is not None and ts >= start + change else signal
        return x, float(1 / (1 + np.exp(-2 * signal))), int(truth + rng.normal(0.0, 0.5) > 0)

    return stream_of(models, start, seed, windows * LONG_W * RATE, LABEL_SOON, draw)


def test_a_concept_change_mid_window_is_decided_on_the_labels_so_far_and_a_replay_decides_the_same(
    worker: Worker,
) -> None:
    """The labels of a model follow another concept from 150 s into a 300 s window: the error-stream alarm on
    the labels so far is confirmed by the retrain rule on the labels that had arrived, and the retrain alert
    decided (``alerts.ts``, the look's mark) within 60 s of the labels showing the change — long before the
    window's end plus the label delay, when the final window would decide it; the stable model gets no alert;
    a replay of the same events written at once decides the same alerts at the same times."""
    live_worker = fresh_worker(worker, **LONG_SETTINGS)
    start = start_time(LONG_W)
    onset = 2.5 * LONG_W
    stream = concept_events({"clk.concept": onset, "clk.same": None}, start, seed=7)
    shows, end = start + onset + LABEL_SOON, start + 3 * LONG_W
    reached: float = start
    for reached in live(live_worker, stream, start):
        if reached > shows + 90:
            break
    first = decisions(live_worker)
    [alert] = [a for a in first if a["kind"] == "retrain"]
    assert alert["model"] == "clk.concept" and alert["state"] == "firing"
    ts = epoch_of(alert["ts"])
    assert shows < ts <= shows + 60 and ts < end + 60, (ts - shows, alert)
    # Decided at a look's mark, on labels that had all arrived before it, from an alarm after the change.
    assert epoch_of(alert["evidence"]["labels_until"]) == ts and ts % 20 == 0
    assert start + onset <= epoch_of(alert["evidence_ts"]) < ts - LABEL_SOON
    assert alert["evidence"]["fast_path"] in ("concept_drift", "performance")
    assert alert["evidence"]["current"]["value"] < 0.82
    assert [d for d in first if d["model"] == "clk.same"] == []

    assert replayed(worker, stream, reached) == first


def window_test_rows(worker: Worker) -> set[tuple[Any, ...]]:
    """The current drift rows of the window tests (not the per-event detectors', whose state a new worker
    starts afresh, nor the tests of the events after their alarms, ``after_alarm`` and ``carried_alarm``,
    which follow those alarms): (model, window, feature, detector, statistic, drifted, provisional)."""
    rows = worker.store.query_rows(
        "SELECT model, toUnixTimestamp(window_start), feature, detector, round(statistic, 9), drifted, provisional "
        "FROM drift FINAL WHERE detector NOT IN ('mean_shift', 'covariate_shift', 'after_alarm', 'carried_alarm') "
        "AND feature != '__error__'"
    )
    return {tuple(r) for r in rows}


@pytest.mark.slow
def test_a_pass_cut_short_after_its_metrics_is_written_again_by_the_next_worker(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed between a pass's inserts (its metrics written, its drift rows not) in the pass that
    writes a window final: no later row comes to that window, yet the next worker on the same store writes
    it again, so every window ends with the drift rows an uninterrupted run writes (final, not left
    provisional)."""
    start = start_time()
    stream = events({"cut.shift": SHIFT_WINDOW, "cut.calm": None}, start, seed=9)
    cut_at = start + 5 * W + DELAY  # the pass after it writes window 4 final (its labels all in)

    whole = fresh_worker(worker)
    for _ in live(whole, stream, start):
        pass
    expected = window_test_rows(whole)
    assert {r[-1] for r in expected} == {0, 1}  # label drift rows, provisional ones too

    first = fresh_worker(worker)
    reached = start
    for reached in live(first, stream, start):
        if reached >= cut_at:
            break
    # The rows of the window written final in the cut pass were ingested a while before it, as on a real
    # stream (a pass counts rows ingested within INSERT_SAFETY_SECONDS of an earlier pass as new).
    time.sleep(INSERT_SAFETY_SECONDS + 1)
    real = first.store.insert

    def killed(table: str, *args: Any, **kwargs: Any) -> Any:
        if table == "drift":
            raise KeyboardInterrupt("killed between the pass's inserts")
        return real(table, *args, **kwargs)

    monkeypatch.setattr(first.store, "insert", killed)
    Feed(first).write([e for e in stream if reached <= e[0] < reached + STEP])
    with pytest.raises(KeyboardInterrupt):
        first.close_windows()

    second = Worker(Settings(store_port=worker.settings.store_port, settle_seconds=0.0, **WORKER_SETTINGS))
    rest = [e for e in stream if e[0] >= reached + STEP]
    for _ in live(second, rest, reached + STEP):
        pass
    assert window_test_rows(second) == expected
