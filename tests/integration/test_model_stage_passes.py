"""The model stage's passes against the real store (chdb): set-based, insert-only, and safe at handover.

- A pass closes every due window of every model in a fixed number of statements: 10 models and
  1,000 models cost the same (a statement spy counts them). Its looks at the labels so far read every
  version with a window not final in one statement; its drift looks read every window with a per-event
  alarm in one statement.
- A recomputed window is a new version of its rows: the pipeline (ingest and the model stage) issues
  no DELETE, ALTER or other mutation over a run with late labels, a reference reload and an owner
  change, and ``FINAL`` shows every window once.
- Two owners writing the same windows during a rebalance converge on the newest version, whatever
  order their statements reach the store in.
"""

from __future__ import annotations

import itertools
import queue
import re
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pandas as pd
import pytest

from watchkeeper.reference import load_reference
from watchkeeper.sinks.writer import Store
from watchkeeper.streams.events import Outcome, Prediction
from watchkeeper.streams.ingest import SourceMessage
from watchkeeper.streams.service import Worker
from watchkeeper.windows.closer import WindowCloser
from watchkeeper.windows.config import WindowKey
from watchkeeper.windows.ownership import Shard, owner_partition

pytestmark = pytest.mark.integration

W0 = int(time.time() - 2 * 86400) // 60 * 60  # recent: inside the raw-data retention
_offsets = itertools.count(1_000_000)
_runs = itertools.count()

# Tiny windows, as a wide fleet of small models has: one minute, labels due within a minute.
WORKER_SETTINGS = dict(window_seconds=60, label_delay_seconds=60, idle_flush=3600)

MUTATION = re.compile(r"^\s*(DELETE|ALTER|OPTIMIZE|TRUNCATE|DROP|UPDATE)\b", re.I)


class Spy(Store):
    """A store that records every statement it sends: (method, SQL or table)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.sent: list[tuple[str, str]] = []

    def _record(self, method: str, text: str) -> None:
        self.sent.append((method, text))

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        self._record("query", sql)
        return super().query(sql, params)

    def query_rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        self._record("query_rows", sql)
        return super().query_rows(sql, params)

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        self._record("query_arrow", sql)
        return super().query_arrow(sql, params)

    def command(self, sql: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        self._record("command", sql)
        return super().command(sql, params, **kw)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self._record("execute", sql)
        return super().execute(sql, params)

    def delete(self, table: str, where: str, params: dict[str, Any] | None = None) -> Any:
        self._record("delete", table)
        return super().delete(table, where, params)

    def insert(self, table: str, columns: Any, **kw: Any) -> int:
        self._record("insert", table)
        return super().insert(table, columns, **kw)

    def insert_arrow(self, table: str, data: Any, **kw: Any) -> int:
        self._record("insert_arrow", table)
        return super().insert_arrow(table, data, **kw)

    def mutations(self) -> list[tuple[str, str]]:
        return [(m, s) for m, s in self.sent if m == "delete" or (m in ("command", "execute") and MUTATION.match(s))]


def spy(worker: Worker) -> Spy:
    p = worker.settings.clickhouse_params()
    return Spy(host=p["host"], port=p["port"], database=worker.settings.clickhouse_database)


def send(worker: Worker, kind: type, events: list[dict[str, Any]]) -> None:
    topic = "predictions" if kind is Prediction else "outcomes"
    msg = SourceMessage(topic, 0, next(_offsets), orjson.dumps({"events": events}), None)
    worker.write_batch(worker.build_batch([msg], kind))


def fleet(worker: Worker, prefix: str, models: int, windows: int = 1, per_window: int = 3) -> list[str]:
    """``models`` binary models with ``windows`` windows of ``per_window`` labelled predictions each
    (features, a segment, a baseline: every kind of row the pass writes)."""
    names = [f"{prefix}-{i}" for i in range(models)]
    preds, outs = [], []
    for m in names:
        for w in range(windows):
            for j in range(per_window):
                pid = f"{m}-{w}-{j}"
                ts = W0 + w * 60 + 5 + j
                preds.append({"prediction_id": pid, "model": m, "version": "v1", "ts": ts, "prediction": 0.2 + 0.3 * j,
                              "features": {"x": float(j), "y": float(w)}, "segments": {"region": f"r{j % 2}"},
                              "baseline": 0.5, "latency_ms": 10.0 + j})  # fmt: skip
                outs.append({"prediction_id": pid, "model": m, "outcome": j % 2, "ts": ts + 1})
    send(worker, Prediction, preds)
    send(worker, Outcome, outs)
    return names


def test_a_pass_costs_the_same_statements_for_10_models_as_for_1000(worker: Worker) -> None:
    """The issue's wide fleet in miniature: the statement count of a pass does not grow with the models,
    and every model's windows are written, counted exactly."""
    counts = {}
    for n in (10, 1000):
        names = fleet(worker, f"wide{next(_runs)}", n)
        store = spy(worker)
        closer = WindowCloser(store, worker.settings.window_config(), Shard.everything())
        started = time.perf_counter()
        written = closer.tick(force=True)  # a new closer: every window in the store (the 10 models too)
        elapsed = time.perf_counter() - started
        assert {k.model for k in written} >= set(names)
        counts[n] = (len(store.sent), closer.last_pass_statements)
        got = store.query_rows(
            "SELECT toUInt64(sum(value)) FROM metrics FINAL WHERE model IN {m:Array(String)} AND segment = '' "
            "AND metric IN ('predictions', 'labelled')", {"m": names})  # fmt: skip
        assert got == [(2 * 3 * n,)]
        assert store.mutations() == []
        store.close()
    assert counts[10] == counts[1000], counts
    assert counts[1000][1] <= 40  # the pass's own statements: a few per table
    assert elapsed < 60  # 1,000 models' windows in one pass (about 5 windows/s before: 200 s)


def test_the_pipeline_issues_no_mutation_over_late_labels_a_reference_reload_and_an_owner_change(
    worker: Worker, tmp_path: Path
) -> None:
    """Ingest and two model-stage owners over late labels, a reloaded reference and a rebalance: inserts and
    reads only. ``FINAL`` shows each window once, with its newest counts."""
    run = f"mut{next(_runs)}"
    ingest = spy(worker)
    writers: queue.SimpleQueue[Store] = queue.SimpleQueue()
    writers.put(ingest)
    worker.__dict__["writers"] = writers  # the ingest path's connections: the spy
    try:
        names = [next(f"{run}-{i}" for i in range(100) if owner_partition(f"{run}-{i}", 2) == p) for p in (0, 1)]
        a_store, b_store = spy(worker), spy(worker)
        config = worker.settings.window_config()
        a = WindowCloser(a_store, config, Shard(2, frozenset({0})))
        b = WindowCloser(b_store, config, Shard(2, frozenset({1})))
        for m in names:
            preds = [{"prediction_id": f"{m}-{j}", "model": m, "version": "v1", "ts": W0 + 5 + j,
                      "prediction": 0.3 + 0.2 * j, "features": {"x": float(j)}} for j in range(3)]  # fmt: skip
            send(worker, Prediction, preds)
        for c in (a, b):
            c.tick(force=True)
        # Late labels for both models; a reloaded reference for the first.
        for m in names:
            send(worker, Outcome, [{"prediction_id": f"{m}-{j}", "model": m, "outcome": 1, "ts": W0 + 3600}
                                   for j in range(3)])  # fmt: skip
        path = tmp_path / "ref.csv"
        pd.DataFrame({"x": [0.0, 1.0, 2.0] * 20, "prediction": [0.5] * 60}).to_csv(path, index=False)
        load_reference(worker.store, names[0], path)  # an operator's action, not the pipeline's
        load_reference(worker.store, names[0], path)
        for c in (a, b):
            c.tick(force=True)
        # An owner change: the first owner takes both partitions; the second has none.
        b.tick(force=True, shard=Shard.none(2))
        a.tick(force=True, shard=Shard(2, frozenset({0, 1})))
        send(worker, Outcome, [{"prediction_id": f"{m}-0", "model": m, "outcome": 0, "ts": W0 + 7200} for m in names])
        a.tick(force=True)
        for s in (ingest, a_store, b_store):
            assert s.mutations() == [], s.mutations()
        assert any(m == "insert_arrow" or m == "insert" for m, _ in ingest.sent)
        rows = worker.store.query_rows(
            "SELECT model, metric, value, n FROM metrics FINAL WHERE model IN {m:Array(String)} AND segment = '' "
            "AND version = 'v1' AND metric IN ('predictions', 'labelled', 'tp', 'fn') ORDER BY model, metric",
            {"m": names},
        )
        for m in names:
            got = {metric: (value, n) for model, metric, value, n in rows if model == m}
            # p0 is now a 0 (predicted 0.3: a true negative), p1 and p2 are 1s (0.5 and 0.7: true positives).
            assert got["predictions"] == (3.0, 3) and got["labelled"] == (3.0, 3)
            assert got["tp"][0] == 2.0 and got.get("fn", (0.0, 0))[0] == 0.0
    finally:
        worker.__dict__.pop("writers", None)
        for s in (ingest,):
            s.close()


TABLE_ROWS = {
    "metrics": "SELECT window_start, version, segment, metric, value, n FROM metrics FINAL WHERE model = {m:String}",
    "drift": "SELECT window_start, version, feature, detector, statistic, drifted FROM drift FINAL "
    "WHERE model = {m:String}",
    "mistakes": "SELECT window_start, version, prediction_id, kind FROM mistakes FINAL WHERE model = {m:String}",
    "metrics_daily": "SELECT day, version, segment, metric, value, n, windows FROM metrics_daily FINAL "
    "WHERE model = {m:String}",
}


def snapshot(store: Store, model: str) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(store.query_rows(sql, {"m": model})) for t, sql in TABLE_ROWS.items()}


class Delayed(Spy):
    """A writer whose statements are held back, to be sent later (a slow owner during a rebalance)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.held: list[tuple[str, tuple[Any, ...], dict[str, Any]]] | None = None

    def command(self, sql: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        if self.held is not None and sql.lstrip().startswith("INSERT"):
            self.held.append(("command", (sql, params), kw))
            return None
        return super().command(sql, params, **kw)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        if self.held is not None:
            self.held.append(("execute", (sql, params), {}))
            return None
        return super().execute(sql, params)

    def insert(self, table: str, columns: Any, **kw: Any) -> int:
        if self.held is not None:
            self.held.append(("insert", (table, {c: list(v) for c, v in columns.items()}), kw))
            return len(next(iter(columns.values()), []))
        return super().insert(table, columns, **kw)

    def release(self) -> None:
        held, self.held = self.held or [], None
        for method, args, kw in held:
            getattr(self, method)(*args, **kw)


def test_two_owners_writing_one_window_converge_on_the_newest_version(worker: Worker) -> None:
    """A rebalance: the old owner computes the window from what it saw, but its writes reach the store
    only after the new owner has rewritten the window with a late label. The result is the new owner's,
    as if it had written alone; and the old owner's writes, sent again, change nothing."""
    model = f"hand{next(_runs)}"
    config = worker.settings.window_config()
    old_store, new_store = Delayed(**_params(worker)), spy(worker)
    old, new = WindowCloser(old_store, config), WindowCloser(new_store, config)
    preds = [{"prediction_id": f"h{j}", "model": model, "version": "v1", "ts": W0 + 5 + j, "prediction": 0.1 * j,
              "features": {"x": float(j)}, "segments": {"region": f"r{j % 2}"}} for j in range(10)]  # fmt: skip
    send(worker, Prediction, preds)
    send(worker, Outcome, [{"prediction_id": f"h{j}", "model": model, "outcome": j % 2, "ts": W0 + 20}
                           for j in range(5)])  # fmt: skip
    key = WindowKey(model, "v1", W0)
    old.tick(force=True)  # written: the window with 5 labels (version 1)
    first = snapshot(worker.store, model)
    old_store.held = []
    old.write([key], old.store_now())  # version 2, the old owner's, from 5 labels: its statements held back
    send(worker, Outcome, [{"prediction_id": f"h{j}", "model": model, "outcome": 1, "ts": W0 + 3600}
                           for j in range(5, 10)])  # fmt: skip
    time.sleep(0.05)
    new.write([key], new.store_now())  # version 3, the new owner's: every label
    alone = snapshot(worker.store, model)
    assert alone != first
    old_store.release()  # the old owner's writes arrive last
    assert snapshot(worker.store, model) == alone
    labelled = [r for r in alone["metrics"] if r[1] == "v1" and r[2] == "" and r[3] == "labelled"]
    assert [r[4] for r in labelled] == [10.0]


def _params(worker: Worker) -> dict[str, Any]:
    p = worker.settings.clickhouse_params()
    return {"host": p["host"], "port": p["port"], "database": worker.settings.clickhouse_database}


def test_the_looks_at_the_labels_so_far_cost_one_statement_for_3_versions_as_for_60(worker: Worker) -> None:
    """Every labelled binary version with a window not final yet has its labels so far read for an
    error-stream alarm on each 20 s mark (``windows/label_looks.py``): one statement for all of them."""
    costs = {}
    for n in (3, 60):
        names = fleet(worker, f"lbl{next(_runs)}", n, windows=2)  # both windows final below: a stream to copy
        store = spy(worker)
        closer = WindowCloser(store, worker.settings.window_config(), Shard.everything())
        closer.tick(force=True)
        # A third window, not final: its labels so far, the watermark 45 s into it (two marks reached).
        preds, outs = [], []
        for m in names:
            for j in range(3):
                pid, ts = f"{m}-2-{j}", W0 + 125 + 20 * j
                preds.append({"prediction_id": pid, "model": m, "version": "v1", "ts": ts, "prediction": 0.2 + 0.3 * j})
                outs.append({"prediction_id": pid, "model": m, "outcome": j % 2, "ts": ts + 1})
        send(worker, Prediction, preds)
        send(worker, Outcome, outs)
        closer.tick()
        mine = {mv for mv in closer.label_looks.checked if mv[0] in names}
        assert mine == {(m, "v1") for m in names}  # every version was read
        closer.label_looks.checked.clear()  # read again, counted
        closer.label_looks.copies.clear()
        before = len(store.sent)
        closer._look_labels()
        costs[n] = len(store.sent) - before
        assert {mv for mv in closer.label_looks.copies if mv[0] in names} == {(m, "v1") for m in names}
        store.close()
    assert costs == {3: 1, 60: 1}, costs


# The drift looks' events, one window at a time: the query the looks ran per armed window before they were set-based.
ONE_WINDOW = """
SELECT toUnixTimestamp64Milli(ts) AS t, features, features_cat, prediction FROM predictions FINAL
WHERE model = {model:String} AND version = {version:String}
  AND ts >= {t0:DateTime64(3, 'UTC')} AND ts < {t1:DateTime64(3, 'UTC')}
ORDER BY ts, event_id
LIMIT {cap:UInt32}
"""


def test_the_drift_looks_at_many_armed_windows_cost_one_statement_and_judge_each_as_alone(worker: Worker) -> None:
    """Windows with a per-event alarm, one per model: their looks read one query for all (the real store's
    answer to ``LOOK_EVENTS``), the same events a query per window reads, and decide what each decides alone."""
    import numpy as np

    from watchkeeper.detectors import DriftConfig
    from watchkeeper.detectors.timeutil import utc
    from watchkeeper.windows.config import WindowConfig
    from watchkeeper.windows.partial import LOOK_EVENTS, PartialLooks, _after, read_events
    from watchkeeper.windows.sample import Sample, build_reference
    from watchkeeper.windows.sequential import SHIFT_MAX_EVENTS

    w, start = 300, (W0 // 300 + 1) * 300
    run = next(_runs)
    models = [f"armed-{run}-{i:02d}" for i in range(12)]
    rng = np.random.default_rng(5)
    preds = []
    for i, m in enumerate(models):
        shift = 1.0 if i % 3 else 0.0  # every third model stable: its alarm is not confirmed
        for j in range(600):  # 2 events a second; f1 shifted from 100 s on
            ts = start + j / 2 + 0.25
            preds.append({"prediction_id": f"{m}-{j}", "model": m, "version": "v1", "ts": ts, "prediction": 0.5,
                          "features": {"f0": float(rng.normal()),
                                       "f1": float(rng.normal() + (shift if ts >= start + 100 else 0.0))}})  # fmt: skip
    send(worker, Prediction, preds)
    ref = build_reference(Sample(1000, {"f0": rng.normal(size=1000), "f1": rng.normal(size=1000)}, {}), 0, 1)
    store = spy(worker)

    def looks_on(s: Store) -> PartialLooks:
        drift = SimpleNamespace(store=s, window=WindowConfig(window_seconds=w), config=DriftConfig(alpha=0.001),
                                reference_for=lambda key: ref)  # fmt: skip
        return PartialLooks(drift)  # type: ignore[arg-type]

    keys = [WindowKey(m, "v1", start) for m in models]
    alarms = {k: {"f1": start + 110.2} for k in keys}
    looks = looks_on(store)
    looks.closed(alarms, {})
    found = looks.take()
    assert [method for method, sql in store.sent] == ["query_arrow"] and store.sent[0][1] == LOOK_EVENTS
    assert sorted(look.model for look in found) == [m for i, m in enumerate(models) if i % 3]
    for key in keys[:3]:
        alone = looks_on(store)
        alone.closed({key: alarms[key]}, {})
        assert [look for look in found if look.model == key.model] == alone.take()
    # The same events as the query per window: those after the alarm, before the last mark judged.
    last = start + 140 + 10 * 29  # the window's last mark
    many = read_events(looks.drift, {k: (round(_after([start + 110.2]) * 1000), last * 1000) for k in keys})
    for key in keys:
        one = store.query_arrow(ONE_WINDOW, {"model": key.model, "version": "v1", "t0": utc(_after([start + 110.2])),
                                             "t1": utc(last), "cap": SHIFT_MAX_EVENTS})  # fmt: skip
        assert many[key].select(["t", "features", "prediction"]).equals(one.select(["t", "features", "prediction"]))
