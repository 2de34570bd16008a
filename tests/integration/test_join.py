"""The join and the windows against the real store (chdb): order, late labels, duplicates, restarts."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pytest

from watchkeeper.sinks.writer import Store
from watchkeeper.streams.events import Outcome, Prediction
from watchkeeper.streams.ingest import SourceMessage
from watchkeeper.streams.service import Worker
from watchkeeper.windows import closer as windows
from watchkeeper.windows.closer import INSERT_SAFETY_SECONDS, WindowCloser
from watchkeeper.windows.config import WindowKey

pytestmark = pytest.mark.integration

W0 = int(time.time() - 2 * 86400) // 300 * 300  # recent: inside the raw-data retention
T0 = W0 + 100.0
_offsets = itertools.count()
_models = itertools.count()


# The settings of the ``worker`` fixture (tests/integration/conftest.py).
WORKER_SETTINGS = dict(window_seconds=300, label_delay_seconds=600, idle_flush=3600)


@pytest.fixture
def model() -> str:
    return f"join{next(_models)}"


def send(worker: Worker, kind: type, *events: dict[str, Any], offset: int | None = None) -> None:
    topic = "predictions" if kind is Prediction else "outcomes"
    off = next(_offsets) if offset is None else offset
    msg = SourceMessage(topic, 0, off, orjson.dumps({"events": list(events)}), None)
    worker.write_batch(worker.build_batch([msg], kind))


def pred(model: str, pid: str, ts: float, score: float = 0.9, **kw: Any) -> dict[str, Any]:
    return {"prediction_id": pid, "model": model, "version": "v1", "ts": ts, "prediction": score, **kw}


def outcome(model: str, pid: str, ts: float, y: int = 1) -> dict[str, Any]:
    return {"prediction_id": pid, "model": model, "outcome": y, "ts": ts}


def metrics(store: Store, model: str, final: bool = True, window: int | None = None) -> dict[str, float]:
    only = "AND toUnixTimestamp(window_start) = {w:UInt32}" if window is not None else ""
    rows = store.query_rows(
        f"SELECT metric, sum(value) FROM metrics {'FINAL' if final else ''} "
        f"WHERE model = {{m:String}} AND version = 'v1' {only} GROUP BY metric",
        {"m": model, "w": window or 0},
    )
    return {m: v for m, v in rows}


def _provisional(store: Store, model: str) -> int:
    rows = store.query_rows(
        "SELECT max(provisional) FROM metrics FINAL WHERE model = {m:String} AND window_start = {w:DateTime}",
        {"m": model, "w": W0},
    )
    return int(rows[0][0])


def test_window_is_written_at_watermark_plus_grace_and_final_at_plus_label_delay(worker: Worker, model: str) -> None:
    """Two clocks: the window's rows are written once the watermark passes its end + grace (label-based
    ones provisional), and written final once it passes end + label delay."""
    cfg = worker.settings.window_config()
    grace, delay = cfg.grace_seconds, cfg.label_delay_seconds
    assert 0 < grace < delay
    closer = WindowCloser(worker.store, cfg)
    send(worker, Prediction, pred(model, "a", T0))
    assert closer.tick() == []  # watermark T0: window still open
    send(worker, Prediction, pred(model, "b", W0 + 300 + grace - 1))
    assert closer.tick() == []  # one second short of end + grace
    send(worker, Prediction, pred(model, "c", W0 + 300 + grace))
    written = closer.tick()
    assert [(k.model, k.start) for k in written] == [(model, W0)]
    assert metrics(worker.store, model, window=W0)["predictions"] == 1
    assert _provisional(worker.store, model) == 1  # its labels may still come
    send(worker, Prediction, pred(model, "d", W0 + 300 + delay))
    closer.tick()
    assert _provisional(worker.store, model) == 0
    assert metrics(worker.store, model, window=W0)["predictions"] == 1


def test_a_row_moves_the_watermark_only_once_settled(worker: Worker, model: str) -> None:
    """Concurrent batches commit in any order: a row inserted less than ``settle_seconds`` ago does not
    close windows yet, so a later window is never closed while an earlier one's rows are still arriving
    (the per-event detectors see each window once, in order)."""
    from dataclasses import replace

    config = worker.settings.window_config()
    send(worker, Prediction, pred(model, "a", T0))
    send(worker, Prediction, pred(model, "b", W0 + 300 + 600))
    waiting = WindowCloser(worker.store, replace(config, settle_seconds=3600.0))
    assert [k for k in waiting.tick() if k.model == model] == []  # the row that would close it is not settled
    settled = WindowCloser(worker.store, replace(config, settle_seconds=0.0))
    assert [(k.model, k.start) for k in settled.tick() if k.model == model] == [(model, W0)]


def test_outcome_before_prediction_is_joined(worker: Worker, model: str) -> None:
    closer = WindowCloser(worker.store, worker.settings.window_config())
    send(worker, Outcome, outcome(model, "p1", T0 + 5, y=1))
    send(worker, Prediction, pred(model, "p1", T0, score=0.8))
    closer.tick(force=True)
    m = metrics(worker.store, model)
    assert (m["predictions"], m["labelled"], m["tp"], m["accuracy"]) == (1, 1, 1, 1.0)


def test_late_label_updates_the_window_without_double_counting(worker: Worker, model: str) -> None:
    closer = WindowCloser(worker.store, worker.settings.window_config())
    send(worker, Prediction, pred(model, "p1", T0, score=0.2), pred(model, "p2", T0 + 1, score=0.7))
    closer.tick(force=True)
    first = metrics(worker.store, model)
    assert (first["predictions"], first["labelled"]) == (2, 0)
    # Labels an hour later (past the allowed delay): the window is rewritten, not added to.
    send(worker, Outcome, outcome(model, "p1", T0 + 3600, y=0), outcome(model, "p2", T0 + 3600, y=0))
    closer.tick(force=True)
    after = metrics(worker.store, model)  # FINAL: the latest version of each row, tombstones hidden
    assert (after["predictions"], after["labelled"], after["tn"], after["fp"]) == (2, 2, 1, 1)
    assert after["late_labels"] == 2
    assert after["accuracy"] == 0.5


def test_duplicates_and_replays_count_once(worker: Worker, model: str) -> None:
    closer = WindowCloser(worker.store, worker.settings.window_config())
    event = pred(model, "p1", T0)
    send(worker, Prediction, event, offset=10_000)
    send(worker, Prediction, event, offset=10_000)  # the same message replayed (same token)
    send(worker, Prediction, event)  # the same event in another message
    send(worker, Prediction, {**event, "event_id": "p1-retry"}, pred(model, "p2", T0))  # new event ids
    send(worker, Outcome, outcome(model, "p2", T0 + 10), outcome(model, "p2", T0 + 10))
    closer.tick(force=True)
    m = metrics(worker.store, model)
    assert m["predictions"] == 3  # p1, p1-retry, p2
    assert m["labelled"] == 1


def test_restarted_closer_recovers_pending_joins(worker: Worker, model: str) -> None:
    first = WindowCloser(worker.store, worker.settings.window_config())
    send(worker, Prediction, pred(model, "p1", T0, score=0.9))
    assert [k for k in first.tick() if k.model == model] == []  # pending: waiting for its label
    del first  # the worker dies; its memory is gone
    send(worker, Outcome, outcome(model, "p1", T0 + 60, y=1))
    second = WindowCloser(worker.store, worker.settings.window_config())
    send(worker, Prediction, pred(model, "later", W0 + 300 + 600 + 1))  # watermark passes
    written = second.tick()
    assert (model, "v1", W0) in {(k.model, k.version, k.start) for k in written}
    m = metrics(worker.store, model)
    assert (m["labelled"], m["tp"]) == (1, 1)
    # Another restart may recompute what it cannot prove up to date: the result is the same.
    before = metrics(worker.store, model, window=W0)
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)
    assert metrics(worker.store, model, window=W0) == before


def test_a_restart_resumes_from_the_checkpoint_and_still_closes_late_labels(
    worker: Worker, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage's checkpoint: a restarted closer scans only rows ingested since, yet recomputes a window
    whose late label came in meanwhile, closing it on the watermark of the rows it did not rescan."""
    monkeypatch.setattr(windows, "LOOKBACK_SECONDS", 0.0)  # no look-back: the test needs no 30 s wait
    monkeypatch.setattr(windows, "CHECKPOINT_EVERY_SECONDS", 0.0)
    first = WindowCloser(worker.store, worker.settings.window_config())
    send(worker, Prediction, pred(model, "p1", T0, score=0.9), pred(model, "later", W0 + 300 + 600 + 1))
    first.tick(force=True)  # every window written: nothing pending
    first.tick()  # this pass's scan starts after every row above: so does the checkpoint it saves
    assert metrics(worker.store, model, window=W0)["labelled"] == 0
    del first  # the worker dies
    send(worker, Outcome, outcome(model, "p1", T0 + 60, y=1))  # a label, after its window was written

    second = WindowCloser(worker.store, worker.settings.window_config())
    written = second.tick()  # not forced: the watermark comes from rows before the checkpoint
    (newest,) = worker.store.query_rows(
        "SELECT max(toUnixTimestamp64Milli(ingested_at)) / 1000 FROM predictions WHERE model = {m:String}",
        {"m": model},
    )[0]
    assert second.since > newest  # the restart did not scan the predictions again
    assert (model, "v1", W0) in {(k.model, k.version, k.start) for k in written}
    m = metrics(worker.store, model, window=W0)
    assert (m["predictions"], m["labelled"], m["tp"]) == (1, 1, 1)


def test_a_restart_after_a_pass_written_whole_writes_nothing_again(
    worker: Worker, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restarted stage wrote its predecessor's last pass again, whole or not (7-18 s of both processes' time
    for 40 windows, measured): a pass written whole is on record with the checkpoint, and is not redone."""
    monkeypatch.setattr(windows, "LOOKBACK_SECONDS", 0.0)
    monkeypatch.setattr(windows, "CHECKPOINT_EVERY_SECONDS", 0.0)
    first = WindowCloser(worker.store, worker.settings.window_config())
    send(worker, Prediction, pred(model, "p1", T0), pred(model, "later", W0 + 300 + 600 + 1))
    assert model in {k.model for k in first.tick(force=True)}
    first.tick()  # the checkpoint passes every row above
    del first  # the worker stops
    second = WindowCloser(worker.store, worker.settings.window_config())
    assert model not in {k.model for k in second.tick()}


def test_a_restart_writes_again_a_pass_cut_between_its_metrics_and_its_drift(
    worker: Worker, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(windows, "LOOKBACK_SECONDS", 0.0)
    monkeypatch.setattr(windows, "CHECKPOINT_EVERY_SECONDS", 0.0)
    first = WindowCloser(worker.store, worker.settings.window_config())
    send(worker, Prediction, *(pred(model, f"p{i}", T0 + i) for i in range(40)), pred(model, "later", W0 + 901))
    first.tick(force=True)
    first.tick()  # written whole, on record; the checkpoint passes every row
    key = WindowKey(model, "v1", W0)

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise SystemExit("killed after the metrics insert")

    monkeypatch.setattr(first.drift, "pass_rows", killed)
    cut = first.store_now()
    with pytest.raises(SystemExit):
        first.write([key], cut)  # a recompute whose drift rows were never written
    del first
    second = WindowCloser(worker.store, worker.settings.window_config())
    assert key in second.tick()  # the cut pass is the last one, and not on record as written whole
    ((latest,),) = worker.store.query_rows(
        "SELECT max(toUnixTimestamp64Milli(computed_at)) / 1000 FROM metrics WHERE model = {m:String}", {"m": model}
    )
    assert latest > cut


def test_the_checkpoint_never_passes_a_window_still_waiting_for_its_watermark(
    worker: Worker, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(windows, "LOOKBACK_SECONDS", 0.0)
    monkeypatch.setattr(windows, "CHECKPOINT_EVERY_SECONDS", 0.0)
    first = WindowCloser(worker.store, worker.settings.window_config())
    send(worker, Prediction, pred(model, "p1", T0))
    for _ in range(2):  # the second pass's scan starts after p1, but its window is still open
        assert model not in {k.model for k in first.tick()}
    del first
    second = WindowCloser(worker.store, worker.settings.window_config())
    send(worker, Prediction, pred(model, "later", W0 + 300 + 600 + 1))  # the watermark passes
    assert (model, "v1", W0) in {(k.model, k.version, k.start) for k in second.tick()}
    assert metrics(worker.store, model, window=W0)["predictions"] == 1


def test_events_older_than_the_raw_retention_are_dead_lettered(worker: Worker, model: str) -> None:
    old = time.time() - (worker.settings.raw_ttl_days + 1) * 86400
    send(worker, Prediction, pred(model, "old", old), pred(model, "new", T0))
    rows = worker.store.query_rows("SELECT error FROM dead_letters WHERE model = {m:String}", {"m": model})
    assert rows == [("ts: older than the raw-data retention (raw_ttl_days)",)]
    assert worker.store.query_rows("SELECT prediction_id FROM predictions WHERE model = {m:String}", {"m": model}) == [
        ("new",)
    ]


def test_orphaned_outcomes_are_counted(worker: Worker, model: str) -> None:
    closer = WindowCloser(worker.store, worker.settings.window_config())
    send(worker, Outcome, outcome(model, "ghost-1", T0), outcome(model, "ghost-2", T0 + 1))
    send(
        worker,
        Prediction,
        pred(model, "real", T0),
    )
    send(worker, Outcome, outcome(model, "real", T0 + 2))
    closer.tick(force=True)
    rows = worker.store.query_rows(
        "SELECT sum(value), sum(n) FROM metrics WHERE model = {m:String} AND metric = 'orphaned_outcomes'",
        {"m": model},
    )
    assert rows == [(2.0, 3)]


def test_dead_letter_rate_counts_the_bad_events_among_the_windows_messages(worker: Worker, model: str) -> None:
    """A bad event inside an envelope and a bad message between good ones: 2 dead of 5 events."""
    closer = WindowCloser(worker.store, worker.settings.window_config())
    bad = {"model": model, "version": "v1", "prediction": [0.5], "ts": T0 + 1}  # no prediction_id, a list
    send(worker, Prediction, pred(model, "a", T0), bad, pred(model, "c", T0 + 2))
    send(worker, Prediction, bad)
    send(worker, Prediction, pred(model, "e", T0 + 4))
    closer.tick(force=True)
    rows = worker.store.query_rows(
        "SELECT value, n FROM metrics FINAL WHERE model = {m:String} AND metric = 'dead_letter_rate'", {"m": model}
    )
    assert rows == [(0.4, 5)]


def test_lag_is_from_the_broker_time_to_the_row_in_the_store(worker: Worker, model: str) -> None:
    """lag_seconds: p95 of (ingested_at - the message's broker time); events without one are left out."""
    closer = WindowCloser(worker.store, worker.settings.window_config())
    published = time.time() - 120.0  # the messages waited two minutes in the broker
    for i in range(4):
        msg = SourceMessage("predictions", 0, next(_offsets), orjson.dumps(pred(model, f"p{i}", T0 + i)), published)
        worker.write_batch(worker.build_batch([msg], Prediction))
    send(worker, Prediction, pred(model, "no-broker-time", T0 + 5))
    closer.tick(force=True)
    rows = worker.store.query_rows(
        "SELECT value, n FROM metrics FINAL WHERE model = {m:String} AND metric = 'lag_seconds'", {"m": model}
    )
    assert len(rows) == 1 and rows[0][1] == 4
    assert 120.0 <= rows[0][0] < 180.0, rows


def test_latency_percentiles_come_from_a_mergeable_sketch(worker: Worker, model: str) -> None:
    """Two windows of latencies: each window's percentiles within 1% of the exact ones, and the
    written buckets of both, summed, give the percentiles of all (a range over windows)."""
    from watchkeeper.detectors import LatencySketch

    closer = WindowCloser(worker.store, worker.settings.window_config())
    rng = np.random.default_rng(3)
    lat = np.round(rng.lognormal(3, 0.7, 600), 3)
    lat[:5] = 0.0  # the zero bucket
    send(worker, Prediction, *[pred(model, f"l{i}", T0 + i * 0.1, latency_ms=float(lat[i])) for i in range(300)])
    send(
        worker,
        Prediction,
        *[pred(model, f"l{i}", T0 + 300 + i * 0.1, latency_ms=float(lat[i])) for i in range(300, 600)],
    )
    closer.tick(force=True)
    for window, part in ((W0, lat[:300]), (W0 + 300, lat[300:])):
        got = metrics(worker.store, model, final=True, window=window)
        for q in (0.5, 0.95, 0.99):
            exact = float(np.quantile(part, q, method="lower"))
            assert got[f"latency_p{round(q * 100)}"] == pytest.approx(exact, rel=0.0101, abs=1e-3)
    buckets = worker.store.query_rows(
        "SELECT toInt32(substring(segment, 5)), sum(value) FROM metrics FINAL "
        "WHERE model = {m:String} AND metric = 'latency_bucket' GROUP BY segment",
        {"m": model},
    )
    sk = LatencySketch()
    keys = [k for k, _ in buckets if k >= sk.key_min]
    counts = [c for k, c in buckets if k >= sk.key_min]
    merged = LatencySketch.from_key_counts(keys, counts, sum(c for k, c in buckets if k < sk.key_min))
    assert merged.n == 600
    for q in (0.5, 0.99):
        assert merged.quantile(q) == pytest.approx(float(np.quantile(lat, q, method="lower")), rel=0.0101)


def test_the_daily_rollup_drops_what_its_windows_no_longer_have(worker: Worker, model: str) -> None:
    """A rewrite inserts the day's new version first (a reader never finds the day empty), then tombstones
    the keys that are gone from the windows: FINAL no longer shows them."""
    closer = WindowCloser(worker.store, worker.settings.window_config())
    send(worker, Prediction, pred(model, "r1", T0))
    keys = closer.tick(force=True)
    day_rows = (
        "SELECT metric FROM metrics_daily FINAL WHERE model = {m:String} AND version = 'v1' AND segment = '' "
        "AND metric IN ('predictions', 'gone') ORDER BY metric"
    )
    now = datetime.now(UTC)
    extra = {"window_start": [datetime.fromtimestamp(W0, UTC)], "window_end": [datetime.fromtimestamp(W0 + 300, UTC)],
             "model": [model], "version": ["v1"], "segment": [""], "metric": ["gone"], "value": [1.0], "n": [1],
             "computed_at": [now]}  # fmt: skip
    worker.store.insert("metrics", extra)
    closer._rollup(keys, now)
    assert worker.store.query_rows(day_rows, {"m": model}) == [("gone",), ("predictions",)]
    worker.store.insert("metrics", {**extra, "computed_at": [datetime.now(UTC)], "is_deleted": [1]})
    closer._rollup(keys, datetime.now(UTC))
    assert worker.store.query_rows(day_rows, {"m": model}) == [("predictions",)]


def test_a_prediction_arriving_after_its_outcome_window_was_written_adopts_its_orphan(
    worker: Worker, model: str
) -> None:
    """Outcomes first: their window is written with 2 orphans; their predictions turn up later (well
    after the write): the outcome window is rewritten with 0 orphans."""
    closer = WindowCloser(worker.store, worker.settings.window_config())
    send(worker, Outcome, outcome(model, "early-1", T0), outcome(model, "early-2", T0 + 1))
    time.sleep(INSERT_SAFETY_SECONDS + 1)  # the write below then covers the outcomes for good
    closer.tick(force=True)
    orphans = (
        "SELECT toUInt64(sum(value)), toUInt64(sum(n)) FROM metrics FINAL "
        "WHERE model = {m:String} AND metric = 'orphaned_outcomes'"
    )
    assert worker.store.query_rows(orphans, {"m": model}) == [(2, 2)]
    send(worker, Prediction, pred(model, "early-1", T0 - 30), pred(model, "early-2", T0 - 20))
    closer.tick(force=True)
    assert worker.store.query_rows(orphans, {"m": model}) == [(0, 2)]


def test_mistakes_sample_is_bounded_and_correct(worker: Worker, model: str) -> None:
    """Each labelled window keeps at most 20 of its wrong answers, with features and outcome."""
    events, outcomes = [], []
    for i in range(100):
        events.append(pred(model, f"m{i}", T0 + i, score=0.9, features={"x": float(i)}))
        outcomes.append(outcome(model, f"m{i}", T0 + i + 1, y=i % 2))  # half of them wrong (y = 0)
    send(worker, Prediction, *events)
    send(worker, Outcome, *outcomes)
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)  # a recompute replaces, never adds
    rows = worker.store.query_rows(
        "SELECT prediction_id, prediction, outcome, kind, features['x'] FROM mistakes FINAL WHERE model = {m:String}",
        {"m": model},
    )
    assert len(rows) == 20
    assert all(o == 0.0 and k == "false_positive" and p == 0.9 for _, p, o, k, _ in rows)
    assert all(int(pid[1:]) % 2 == 0 and x == float(pid[1:]) for pid, _, _, _, x in rows)


def test_daily_rollup_matches_the_windows(worker: Worker, model: str) -> None:
    """metrics_daily: counts add up, rates are n-weighted means of the windows, rewritten with late labels."""
    send(worker, Prediction, *[pred(model, f"d{i}", T0 + i * 60, score=0.9) for i in range(20)])
    send(worker, Outcome, *[outcome(model, f"d{i}", T0 + i * 60 + 5, y=int(i < 15)) for i in range(20)])
    closer = WindowCloser(worker.store, worker.settings.window_config())
    closer.tick(force=True)

    def daily() -> dict[str, tuple[float, int]]:
        # The windows may straddle midnight UTC (two days): add the days up as the rollup adds windows.
        rows = worker.store.query_rows(
            "SELECT metric, if(metric IN ('predictions', 'tp', 'fp'), sum(value), sum(value * n) / sum(n)), "
            "toUInt64(sum(n)) FROM metrics_daily FINAL WHERE model = {m:String} AND segment = '' "
            "AND version = 'v1' GROUP BY metric",
            {"m": model},
        )
        return {m: (v, n) for m, v, n in rows}

    d = daily()
    assert d["predictions"] == (20.0, 20) and d["tp"][0] == 15 and d["fp"][0] == 5
    assert d["accuracy"][0] == pytest.approx(15 / 20)
    send(worker, Outcome, outcome(model, "d19", T0 + 19 * 60 + 9, y=1))  # a late correction of one label
    closer.tick(force=True)
    assert daily()["accuracy"][0] == pytest.approx(16 / 20)
    assert daily()["predictions"] == (20.0, 20)
