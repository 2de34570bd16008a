"""The model stage: close event-time windows and write their metrics.

Raw predictions and outcomes live in the store; this stage finds the windows
that new rows touched ("dirty"), joins predictions to outcomes in ClickHouse,
aggregates sufficient statistics per (model, version, window), computes the
metrics and writes them. Two clocks per window (the model's watermark is the
largest event time seen):

- once the watermark passes the window's end plus the grace (``grace_seconds``,
  10 s), the window is written: its label-free results (counts, feature and
  score drift, latency, fallback, segments) are final then and never wait for
  labels; its label-based ones (accuracy, calibration, cost, fairness, lift,
  label drift) are written from the labels so far, marked ``provisional``;
- while the label delay runs, a pass that finds new labels for the window
  writes it again (a new version, with its label coverage: ``labelled``);
- once the watermark passes its end plus the label delay (or the stream has
  been idle for ``idle_flush`` seconds), it is written a last time, final
  (``provisional = 0``). Only then are its errors fed to the error-stream
  detector, which sees each event once.

Outcome windows (outcomes without a prediction) are written once, after the
orphan horizon.

A pass writes every ready window of every model it owns at once (the due set),
in a fixed number of statements whatever the number of models: each table gets
one insert. A window written once and touched again later (more or late
labels) is recomputed as a new version of its rows — insert-only:
the window-keyed tables keep the latest version of each row (ReplacingMergeTree
on ``computed_at``), and the keys the new version no longer has get a tombstone
(``is_deleted``), so readers with ``FINAL`` see each window once and no
DELETE is ever needed. Two owners writing one window during a rebalance
converge on the newest version. All state can be rebuilt from the
store: a restarted leader rediscovers windows whose raw rows are newer than
their metrics. It resumes from the stage's checkpoint: every row ingested
before it is reflected in stored metrics or was rescanned, so a restart scans
what came since, not the whole raw history (a full join of predictions and
outcomes took seconds per million rows).

Sharded (``windows/ownership.py``): a closer works on the models of the
partitions its :class:`~watchkeeper.windows.ownership.Shard` holds, and every
query filters by them in the store. Scan cursor and checkpoint are kept per
owned partition (``checkpoints`` row ``model_stage/<partitions>/<p>``), so a
partition that moves to another worker is resumed there from where this one
was for its models. :meth:`WindowCloser.assign` takes a new shard: state of the
models that left (pending windows, watermarks, drift references, sequential
detectors) is dropped, and a partition that arrives is discovered from its
checkpoint on the next pass, its detectors starting afresh as after a restart.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, cast

from watchkeeper.detectors.timeutil import epoch, utc
from watchkeeper.sinks.schema import DRIFT, METRICS, METRICS_DAILY, MISTAKES, Table, label_free, label_free_drift
from watchkeeper.sinks.writer import Store
from watchkeeper.windows.ab import ab_rows
from watchkeeper.windows.config import WindowConfig, WindowKey
from watchkeeper.windows.counting import CountingStore
from watchkeeper.windows.drift import DriftStage
from watchkeeper.windows.due import due_params
from watchkeeper.windows.label_looks import LabelLooks
from watchkeeper.windows.metrics import metrics_rows
from watchkeeper.windows.ownership import CHECKPOINT, OWNED_SQL, Shard, parse_checkpoint
from watchkeeper.windows.partial import PartialLooks
from watchkeeper.windows.queries import BINARY_OUTCOMES, DUE, THRESHOLD, WS

log = logging.getLogger(__name__)

# Rows being inserted while a tick runs carry an ingest time slightly before the
# tick: look back this far so none is missed (recomputation is idempotent).
LOOKBACK_SECONDS = 30.0
# An insert stamped (server-side, ``ingested_at DEFAULT now64()``) this long before
# a pass started is assumed committed by then; later ones make the window dirty again.
INSERT_SAFETY_SECONDS = 5.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A provisional window with new labels is written again at most this often (store time): labels trickle in
# on every pass, and each rewrite re-reads the window; its final write does not wait for this.
REWRITE_EVERY_SECONDS = 10.0
# The checkpoints (rows ``model_stage/<partitions>/<p>`` of ``checkpoints``, or ``CHECKPOINT`` for the
# whole fleet) are saved at most this often: a stale one only makes a restart scan a little more.
CHECKPOINT_EVERY_SECONDS = 5.0
# Saved with them, per partition: the computed time of the last pass written whole (row ``<checkpoint>/written``).
WRITTEN = "/written"
READ_CHECKPOINTS = """
SELECT name, toUnixTimestamp64Milli(argMax(value, updated_at)) / 1000 AS since
FROM checkpoints WHERE name = {legacy:String} OR startsWith(name, {prefix:String})
GROUP BY name
"""
# A restart that resumes from a checkpoint still needs each model's watermark (largest event time).
# Settled rows only, as in discovery (see DIRTY_PREDICTIONS).
WATERMARKS = f"""
SELECT model, max(toUnixTimestamp64Milli(ts)) / 1000 AS max_ts FROM predictions
WHERE {OWNED_SQL} AND ingested_at <= {{settled:DateTime64(3, 'UTC')}} GROUP BY model
UNION ALL
SELECT model, max(toUnixTimestamp64Milli(ts)) / 1000 AS max_ts FROM outcomes
WHERE {OWNED_SQL} AND ingested_at <= {{settled:DateTime64(3, 'UTC')}} GROUP BY model
"""


# Every discovery query reads only the models of the shard's partitions (``OWNED_SQL``).
# ``max_ts`` (what moves the model's watermark) counts only rows inserted ``settle_seconds`` (5 s) before
# the pass (``settled``): two writers commit their batches in any order, and a watermark moved by a later
# batch while an earlier one is still being inserted closed the later windows first — the per-event
# detectors, which see each window once and in order, then skipped the earlier ones (seen in a demo run:
# its drift decided 40 minutes late). Newer rows still make their windows pending.
DIRTY_PREDICTIONS = f"""
SELECT model, version, toUnixTimestamp(toStartOfInterval(ts, toIntervalSecond({{w:UInt32}}))) AS ws,
       maxIf(toUnixTimestamp64Milli(ts), ingested_at <= {{settled:DateTime64(3, 'UTC')}}) / 1000 AS max_ts,
       max(ingested_at) AS last_in
FROM predictions WHERE ingested_at > {{since:DateTime64(3, 'UTC')}} AND {OWNED_SQL}
GROUP BY model, version, ws
"""

DIRTY_OUTCOMES = f"""
SELECT model, toUnixTimestamp(toStartOfInterval(ts, toIntervalSecond({{w:UInt32}}))) AS ws,
       maxIf(toUnixTimestamp64Milli(ts), ingested_at <= {{settled:DateTime64(3, 'UTC')}}) / 1000 AS max_ts,
       max(ingested_at) AS last_in
FROM outcomes WHERE ingested_at > {{since:DateTime64(3, 'UTC')}} AND {OWNED_SQL}
GROUP BY model, ws
"""


# Prediction windows that a new outcome completes (found through the primary key).
DIRTY_JOINED = f"""
SELECT t.model AS model, t.version AS version,
       toUnixTimestamp(toStartOfInterval(t.ts, toIntervalSecond({{w:UInt32}}))) AS ws, max(n.last_in) AS last_in
FROM predictions AS t
INNER JOIN (
    SELECT model, prediction_id, max(ingested_at) AS last_in FROM outcomes
    WHERE ingested_at > {{since:DateTime64(3, 'UTC')}} AND {OWNED_SQL} GROUP BY model, prediction_id) AS n
    ON t.model = n.model AND t.prediction_id = n.prediction_id
WHERE (t.model, t.prediction_id) IN (
    SELECT model, prediction_id FROM outcomes WHERE ingested_at > {{since:DateTime64(3, 'UTC')}} AND {OWNED_SQL})
GROUP BY model, version, ws
"""
# Outcome windows whose orphans a newly arrived prediction adopts (the outcome came first). Only a
# window written with orphans can change: the join is built from their outcomes, usually none, not
# from every new prediction (0.7 s per 900k predictions, on every pass of a backlog, for nothing).
# Read without FINAL: a window just rewritten may show its old row too, which only widens the search.
DIRTY_ADOPTED = f"""
SELECT o.model AS model, '' AS version, o.ws AS ws, max(p.ingested_at) AS last_in
FROM predictions AS p
INNER JOIN (
    SELECT model, prediction_id, toUnixTimestamp(toStartOfInterval(ts, toIntervalSecond({{w:UInt32}}))) AS ws
    FROM outcomes
    WHERE (model, toStartOfInterval(ts, toIntervalSecond({{w:UInt32}}))) IN (
        SELECT model, window_start FROM metrics
        WHERE version = '' AND segment = '' AND metric = 'orphaned_outcomes' AND value > 0 AND {OWNED_SQL})
) AS o ON p.model = o.model AND p.prediction_id = o.prediction_id
WHERE p.ingested_at > {{since:DateTime64(3, 'UTC')}}
GROUP BY model, version, ws
"""

LAST_COMPUTED = f"""
SELECT model, version, toUnixTimestamp(window_start) AS ws, max(computed_at) AS computed
FROM metrics WHERE metric IN ('predictions', 'orphaned_outcomes') AND {OWNED_SQL}
GROUP BY model, version, ws
"""
# Windows whose latest version is provisional (their final write is still to come), after a restart.
PROVISIONAL = f"""
SELECT model, version, toUnixTimestamp(window_start) AS ws FROM metrics FINAL
WHERE metric = 'labelled' AND segment = '' AND provisional = 1 AND {OWNED_SQL}
"""


# Metrics that add up across windows; every other one is averaged, weighted by its n.
COUNT_METRICS = (
    "predictions",
    "labelled",
    "tp",
    "fp",
    "tn",
    "fn",
    "late_labels",
    "orphaned_outcomes",
    "score_hist_pos",
    "score_hist_neg",
    "latency_bucket",
)
# The due windows as rows of a window-keyed table (``window_start`` a DateTime column).
DUE_WINDOWS = (
    "model IN {models:Array(String)} AND (model, version, toUnixTimestamp(window_start)) "
    "IN {due:Array(Tuple(String, String, UInt32))}"
)
# The daily rollup of the days the pass's windows fall in, every model's, as a new version of each day.
ROLLUP_DAYS = """
INSERT INTO metrics_daily (day, model, version, segment, metric, value, n, windows, computed_at, provisional)
SELECT toDate(window_start) AS day, model, version, segment, metric,
       multiIf(metric IN {counts:Array(String)}, sum(value),
               startsWith(metric, 'ab_'), argMax(value, window_start),
               sum(n) > 0, sum(value * n) / sum(n), avg(value)) AS rolled_value,
       sum(n) AS rolled_n, count() AS windows, {t:DateTime64(3, 'UTC')} AS computed_at,
       max(provisional) AS rolled_provisional
FROM metrics FINAL
WHERE model IN {models:Array(String)} AND (model, toDate(window_start)) IN {days:Array(Tuple(String, Date))}
GROUP BY day, model, version, segment, metric
"""
MISTAKES_PER_WINDOW = 20
# Misclassified examples, a deterministic sample (lowest hash of the event id first), of every labelled
# binary window of the pass.
INSERT_MISTAKES = f"""
INSERT INTO mistakes (window_start, window_end, model, version, prediction_id, ts, features, features_cat,
                      segments, prediction, outcome, threshold, kind, computed_at)
SELECT toDateTime(p.ws, 'UTC') AS window_start, toDateTime(p.ws + {{w:UInt32}}, 'UTC') AS window_end, p.model,
       p.version, p.prediction_id, p.ts, p.features, p.features_cat, p.segments, p.prediction, o.y AS outcome,
       p.thr AS threshold, if(o.y = 1, 'false_negative', 'false_positive') AS kind,
       {{t:DateTime64(3, 'UTC')}} AS computed_at
FROM (
    SELECT model, prediction_id, event_id, version, ts, features, features_cat, segments,
           assumeNotNull(prediction) AS prediction, {WS} AS ws, {THRESHOLD} AS thr
    FROM predictions FINAL
    WHERE {DUE} AND prediction IS NOT NULL
) AS p
INNER JOIN {BINARY_OUTCOMES}
WHERE (p.prediction >= p.thr) != (o.y = 1)
ORDER BY p.model, p.version, p.ws, cityHash64(p.event_id)
LIMIT {{cap:UInt32}} BY p.model, p.version, p.ws
"""


def tombstones_sql(table: Table, where: str) -> str:
    """Tombstones, at version ``t``, of the rows of ``table`` selected by ``where`` that the pass did not
    rewrite (their latest version is older than ``t``): a key that the new version of its window no
    longer has. ``table`` is one of the schema's tables and ``where`` a constant; values are parameters."""
    cols = [c for c in table.column_names() if c not in ("computed_at", "is_deleted")]
    return (
        f"INSERT INTO {table.name} ({', '.join(cols)}, computed_at, is_deleted)\n"
        f"SELECT {', '.join(cols)}, {{t:DateTime64(3, 'UTC')}}, 1 FROM {table.name} FINAL\n"
        f"WHERE {where} AND computed_at < {{t:DateTime64(3, 'UTC')}}"
    )


TOMBSTONES = {table.name: tombstones_sql(table, DUE_WINDOWS) for table in (METRICS, DRIFT, MISTAKES)}
TOMBSTONES["metrics_daily"] = tombstones_sql(
    METRICS_DAILY, "model IN {models:Array(String)} AND (model, day) IN {days:Array(Tuple(String, Date))}"
)


class WindowCloser:
    """Finds dirty windows in the store, closes them on the watermark, writes their metrics.

    All wall times here are the store's clock (``now64()``), the same clock that
    stamps ``ingested_at`` on insert, so worker clock skew cannot lose a row.

    ``shard``: the models this closer works on (default: all of them).
    ``still_owns``: asked before each model is written; a model it disowns is
    not written (the model stage's way to stop at once when its partitions are
    revoked mid-pass). ``computed_by``: written to the ``metrics`` rows, to tell
    which worker computed a window (empty: the column's default).
    """

    def __init__(
        self,
        store: Store,
        config: WindowConfig,
        shard: Shard | None = None,
        *,
        still_owns: Callable[[str], bool] | None = None,
        computed_by: str = "",
    ) -> None:
        self.counter = CountingStore.wrap(store)  # counts the statements of each pass
        self.store = cast(Store, self.counter)
        self.config = config
        self.shard = shard or Shard.everything()
        self.still_owns = still_owns or (lambda model: True)
        self.computed_by = computed_by
        self.pending: dict[WindowKey, float] = {}  # window -> newest ingest time seen
        self.pending_since: dict[WindowKey, float] = {}  # window -> its unwritten rows were ingested after this
        self.computed: dict[WindowKey, float] = {}  # window -> ingest time its last write covers
        self.provisional: set[WindowKey] = set()  # windows written before their label delay passed
        self.written_at: dict[WindowKey, float] = {}  # provisional window -> when it was last written
        self.rewrite_every = REWRITE_EVERY_SECONDS
        self.watermark: dict[str, float] = {}  # model -> largest event time seen
        self.cursors: dict[int, float] = {}  # owned partition -> ingest time already scanned
        self.sinces: dict[int, float] = {}  # owned partition -> rows ingested after this were scanned last pass
        self.saved: dict[int, float] = {}  # owned partition -> the value of its saved checkpoint
        self.saved_at = 0.0  # when the checkpoints were last saved (store time)
        self.written: dict[int, float] = {}  # owned partition -> computed time of the last pass written whole
        self.saved_written: dict[int, float] = {}  # owned partition -> the value of its saved ``written`` row
        self.found_written: dict[int, float] = {}  # gained partition -> its saved ``written`` row (a predecessor's)
        self.last_activity: float | None = None
        self.windows_written = 0
        self.last_pass_statements = 0  # statements of the last pass's write (logged with each pass)
        self.drift = DriftStage(self.store, config)
        self.looks = PartialLooks(self.drift)  # drift alarms judged on the window so far (windows/partial.py)
        # Error-stream alarms judged on the labels so far (windows/label_looks.py).
        self.label_looks = LabelLooks(self.store, config, self.drift.sequential)

    @property
    def since(self) -> float:
        """The earliest ingest time the last pass scanned from (over the owned partitions)."""
        return min(self.sinces.values(), default=0.0)

    @property
    def cursor(self) -> float | None:
        return min(self.cursors.values(), default=None)

    def store_now(self) -> float:
        return epoch(self.store.query_rows("SELECT now64(3, 'UTC')")[0][0])

    # Ownership ------------------------------------------------------------
    def assign(self, shard: Shard) -> None:
        """Work on ``shard`` from now on: forget the models that left, discover the partitions that came.

        A model that leaves takes nothing along: its new owner rebuilds its state from the store
        (and the checkpoint of its partition). A model that comes back later starts afresh too.
        """
        if shard == self.shard:
            return
        per_partition = (self.cursors, self.sinces, self.saved, self.written, self.saved_written, self.found_written)
        if shard.partitions != self.shard.partitions:  # another layout: every partition is new
            for state in per_partition:
                state.clear()
        else:
            for p in set(self.cursors) - shard.owned:
                for state in per_partition:
                    state.pop(p, None)
        self.shard = shard
        self._forget(lambda model: not shard.owns(model))

    def _forget(self, gone: Callable[[str], bool]) -> None:
        """Drop the in-memory state of the models ``gone`` selects (all of it is rebuilt from the store)."""
        for windows in (self.pending, self.pending_since, self.computed):
            for key in [k for k in windows if gone(k.model)]:
                del windows[key]
        self.provisional = {k for k in self.provisional if not gone(k.model)}
        self.written_at = {k: t for k, t in self.written_at.items() if not gone(k.model)}
        for model in [m for m in self.watermark if gone(m)]:
            del self.watermark[model]
        self.looks.forget(gone)
        self.label_looks.forget(gone)
        self.drift.carry.forget(gone)
        seq = self.drift.sequential
        for per_version in (self.drift.references, self.drift.loaded_refs, seq.error_streams, seq.shift_streams):
            for mv in [mv for mv in per_version if gone(mv[0])]:
                del per_version[mv]  # type: ignore[attr-defined]

    # Discovery ------------------------------------------------------------
    def _discover(self, now: float) -> None:
        fresh = sorted(self.shard.owned - set(self.cursors))
        groups: dict[float, set[int]] = defaultdict(set)  # scan start -> partitions scanned from there
        for p in self.shard.owned & set(self.cursors):
            groups[max(0.0, self.cursors[p] - LOOKBACK_SECONDS)].add(p)
        if fresh:
            for p, since in self._resume_points(fresh, now).items():
                groups[since].add(p)
            self._load_computed(set(fresh))
        found: dict[WindowKey, float] = {}
        found_since: dict[WindowKey, float] = {}

        def note(key: WindowKey, last_in: datetime, since: float) -> None:
            found[key] = max(found.get(key, 0.0), epoch(last_in))
            found_since[key] = min(found_since.get(key, since), since)

        for since, parts in sorted(groups.items()):
            params = {"w": self.config.window_seconds, "since": utc(since),
                      "settled": utc(now - self.config.settle_seconds), **self.shard.params(parts)}  # fmt: skip
            for r in self.store.query(DIRTY_PREDICTIONS, params):
                note(WindowKey(r["model"], r["version"], int(r["ws"])), r["last_in"], since)
                self._advance(r["model"], float(r["max_ts"]))
            for r in self.store.query(DIRTY_OUTCOMES, params):
                note(WindowKey(r["model"], "", int(r["ws"])), r["last_in"], since)
                self._advance(r["model"], float(r["max_ts"]))
            for sql in (DIRTY_JOINED, DIRTY_ADOPTED):
                for r in self.store.query(sql, params):
                    note(WindowKey(r["model"], r["version"], int(r["ws"])), r["last_in"], since)
            for p in parts:
                self.sinces[p] = since
                self.cursors[p] = now
        if self.last_activity is None:
            self.last_activity = max(found.values(), default=now)
        for key, last_in in found.items():
            if last_in > self.computed.get(key, 0.0):
                self.pending[key] = max(self.pending.get(key, 0.0), last_in)
                self.pending_since.setdefault(key, found_since[key])
                self.last_activity = max(self.last_activity, last_in)
        # Forget what the look-back can no longer rediscover.
        horizon = now - 2 * LOOKBACK_SECONDS
        self.computed = {k: t for k, t in self.computed.items() if t >= horizon or k in self.pending}

    def _resume_points(self, partitions: list[int], now: float) -> dict[int, float]:
        """Where the first scan of each partition starts: its checkpoint, else 0 (the whole history).

        A partition without its own checkpoint (the first sharded start, or a new partition count)
        resumes from the latest complete earlier layout: the fleet-wide ``model_stage`` row, or the
        earliest checkpoint of a layout whose every partition has one (both cover all models).
        """
        n = self.shard.partitions
        rows = self.store.query_rows(READ_CHECKPOINTS, {"legacy": CHECKPOINT, "prefix": CHECKPOINT + "/"})
        saved = {name: float(since) for name, since in rows}
        for p in partitions:
            if (written := saved.get(self.shard.checkpoint(p) + WRITTEN)) is not None:
                self.found_written[p] = written
        layouts: dict[int, dict[int, float]] = defaultdict(dict)
        for name, since in rows:
            if (parsed := parse_checkpoint(name)) is not None:
                layouts[parsed[1]][parsed[0]] = float(since)
        complete = [min(ps.values()) for m, ps in layouts.items() if m != n and len(ps) == m]
        fallback = max(complete, default=0.0)
        out = {p: layouts.get(n, {}).get(p, fallback) for p in partitions}
        resumed = {p for p, since in out.items() if since > 0}
        for p in resumed:
            self.saved[p] = out[p]
        if resumed:
            # Rows before the checkpoint are not scanned again: the watermarks come from all of them.
            params = {"settled": utc(now - self.config.settle_seconds), **self.shard.params(resumed)}
            for model, max_ts in self.store.query_rows(WATERMARKS, params):
                self._advance(model, float(max_ts))
        return out

    def _save_checkpoint(self, now: float) -> None:
        """Record, per owned partition, how far the scan is complete: before the last pass's start and
        every pending window's rows; and the computed time of the last pass written whole."""
        if now - self.saved_at < CHECKPOINT_EVERY_SECONDS:
            return
        low = dict(self.sinces)
        for key, since in self.pending_since.items():
            p = self.shard.partition_of(key.model)
            if p in low:
                low[p] = min(low[p], since)
        due = sorted(p for p, t in low.items() if t > self.saved.get(p, 0.0))
        written = sorted(p for p, t in self.written.items() if t > self.saved_written.get(p, 0.0))
        if not due and not written:
            return
        names = [self.shard.checkpoint(p) for p in due] + [self.shard.checkpoint(p) + WRITTEN for p in written]
        values = [utc(low[p]) for p in due] + [utc(self.written[p]) for p in written]
        self.store.insert("checkpoints", {"name": names, "value": values, "updated_at": [utc(now)] * len(names)})
        self.saved_at = now
        self.saved.update({p: low[p] for p in due})
        self.saved_written.update({p: self.written[p] for p in written})

    def _load_computed(self, partitions: set[int]) -> None:
        """After a restart or a gained partition: what each window's stored metrics already cover.

        The windows of the last pass that wrote these partitions are written again, unless that pass
        was written whole: a pass inserts its metrics first (the rollup and the mistakes read them), then
        its drift rows, and a worker killed in between left windows whose metrics say "computed" without
        their drift. Every window of a pass carries the pass's ``computed_at``, so the last pass is the
        latest ``computed_at`` found, and one written whole is on record (the partition's ``written`` row,
        saved with its checkpoint: a pass ended less than ``CHECKPOINT_EVERY_SECONDS`` before the worker
        stopped may not be). Writing a window again is a new version of its rows (insert-only)."""
        params = self.shard.params(partitions)
        last: list[WindowKey] = []
        latest = None
        for r in self.store.query(LAST_COMPUTED, params):
            key = WindowKey(r["model"], r["version"], int(r["ws"]))
            self.computed[key] = epoch(r["computed"]) - INSERT_SAFETY_SECONDS
            if latest is None or r["computed"] > latest:
                latest, last = r["computed"], [key]
            elif r["computed"] == latest:
                last.append(key)
        at = epoch(latest) if latest is not None else 0.0
        for key in last:
            done = self.found_written.get(self.shard.partition_of(key.model))
            if done is not None and done >= at - 0.0005:  # (stored to the millisecond)
                continue  # that pass was written whole
            self.pending[key] = max(self.pending.get(key, 0.0), at)
            self.pending_since.setdefault(key, at)
        for model, version, ws in self.store.query_rows(PROVISIONAL, params):
            self.provisional.add(WindowKey(model, version, int(ws)))

    def _advance(self, model: str, ts: float) -> None:
        if ts > self.watermark.get(model, 0.0):
            self.watermark[model] = ts

    # Closing --------------------------------------------------------------
    def closed(self, idle: bool, now: float | None = None) -> dict[WindowKey, bool]:
        """The windows to write now, each with whether the write is final (see the module doc): a pending
        window once the watermark passes its end plus the grace (provisional; a provisional one again at
        most every ``rewrite_every`` seconds of store time ``now``), every pending or provisional one once it
        passes its end plus the label delay, or the stream is idle (final)."""
        w = self.config.window_seconds
        delay, grace = self.config.label_delay_seconds, self.config.grace_seconds
        out: dict[WindowKey, bool] = {}
        for key in sorted(set(self.pending) | self.provisional):
            end, mark = key.start + w, self.watermark.get(key.model, 0.0)
            if key.version == "":  # outcomes without a prediction: written once, after the orphan horizon
                if idle or mark >= end + self.config.orphan_after_seconds:
                    out[key] = True
            elif idle or mark >= end + delay:
                out[key] = True
            elif key in self.pending and mark >= end + grace:
                last = self.written_at.get(key)
                if now is None or last is None or now - last >= self.rewrite_every:
                    out[key] = False
        return out

    def tick(self, force: bool = False, shard: Shard | None = None) -> list[WindowKey]:
        """Discover, close and write; returns the windows written. ``force`` writes every open window.

        ``shard``: the partitions held now (see :meth:`assign`); a closer that holds none does nothing.
        """
        if shard is not None:
            self.assign(shard)
        if not self.shard.owned:
            return []
        now = self.store_now()
        self._discover(now)
        # Idle only once the last rows seen are settled too (see DIRTY_PREDICTIONS).
        idle = force or (now - (self.last_activity or now) >= max(self.config.idle_flush, self.config.settle_seconds))
        due = self.closed(idle, now)
        written = self._write_ready(due, now) if due else []
        self._look_open(set(due))
        self._look_labels()
        self._save_checkpoint(now)
        return written

    def _look_open(self, due: set[WindowKey]) -> None:
        """Look at the windows not written yet whose per-event detector is fed up to their start (no earlier
        window of the version pending): a drift alarm on their events so far is judged now, with the alarms of
        the windows this pass wrote (windows/partial.py): two queries at most, however many windows."""
        waiting = sorted(k for k in self.pending if k not in due and k.version and self.still_owns(k.model))
        first: dict[tuple[str, str], WindowKey] = {}
        for key in waiting:
            first.setdefault((key.model, key.version), key)
        self.looks.open({key: self.watermark.get(key.model, 0.0) for key in first.values()})
        # The written and the open windows' looks: one query for all of them (windows/partial.py).
        self.looks.run()

    def _look_labels(self) -> None:
        """Look at the labels so far of the versions with windows not final yet (not fed to their error stream):
        an error-stream alarm on them is judged now (windows/label_looks.py)."""
        first: dict[tuple[str, str], int] = {}
        for key in sorted(set(self.pending) | self.provisional):
            if key.version and self.still_owns(key.model):
                first.setdefault((key.model, key.version), key.start)
        self.label_looks.open(first, self.watermark)  # one statement for every version

    def _write_ready(self, ready: dict[WindowKey, bool], now: float) -> list[WindowKey]:
        """Write the ready windows of the models still ours, all in one pass; returns those written."""
        owned = {m for m in {k.model for k in ready} if self.still_owns(m)}
        if len(owned) < len({k.model for k in ready}):
            # Revoked mid-pass: their new owner writes them; the next pass's shard drops the rest.
            log.info("model stage: %d models no longer owned, not written", len({k.model for k in ready}) - len(owned))
        written = [k for k in sorted(ready) if k.model in owned]
        if not written:
            return []
        final = {k for k in written if ready[k]}
        self.write(written, now, final=final)
        for key in written:
            self.pending.pop(key, None)
            self.pending_since.pop(key, None)
            if key in final:
                self.provisional.discard(key)
                self.written_at.pop(key, None)
            else:
                self.provisional.add(key)
                self.written_at[key] = now
            # Rows stamped up to a moment before this pass were visible to it.
            self.computed[key] = now - INSERT_SAFETY_SECONDS
        self.windows_written += len(written)
        return written

    # Writing --------------------------------------------------------------
    def write(self, keys: Iterable[WindowKey], now: float, final: Iterable[WindowKey] | None = None) -> int:
        """Compute and write the given windows of every model: each table gets one insert of the new version
        of its rows and one of the tombstones of the keys that version no longer has — a fixed number of
        statements, whatever the number of models. Returns the metric rows written.

        ``final``: the windows whose label delay has passed (default: all); the label-based rows of the
        others are written ``provisional``, and their errors are not fed to the error stream yet."""
        keys = sorted(set(keys))
        if not keys:
            return 0
        done = set(keys) if final is None else set(final)
        early = {k for k in keys if k not in done}
        before = self.counter.statements
        started = time.perf_counter()
        computed_at = utc(now)
        rows = metrics_rows(self.store, self.config, keys)
        # Champion/challenger rows: from the counts being written and the stored ones of earlier windows.
        ab = ab_rows(self.store, self.config, keys, rows)
        ab_keys = {WindowKey(r["model"], r["version"], int(r["window_start"].timestamp())) for r in ab}
        for row in rows + ab:
            row["provisional"] = int(_early(row, early) and not label_free(row["metric"]))
        self._insert("metrics", rows + ab, computed_at, sorted(set(keys) | ab_keys))
        self._rollup(keys, computed_at)
        labelled_binary = binary_keys(rows)
        self._mistakes(labelled_binary, computed_at)
        sizes = {WindowKey(r["model"], r["version"], int(r["window_start"].timestamp())): int(r["value"])
                 for r in rows if r["metric"] == "predictions" and r["segment"] == ""}  # fmt: skip
        drift = self.drift.pass_rows(keys, labelled_binary, computed_at, sizes, final=done)
        self.looks.closed(self.drift.sequential.take_alarms(), self.watermark, self.drift.carry.take())
        self.label_looks.closed(self.drift.sequential.take_error_alarms(), self.watermark)
        for row in drift:
            row["provisional"] = int(_early(row, early) and not label_free_drift(row["feature"]))
        self._insert("drift", drift, computed_at, keys)
        for p in {self.shard.partition_of(k.model) for k in keys} & self.shard.owned:
            self.written[p] = now  # written whole: saved with the next checkpoint
        self.last_pass_statements = self.counter.statements - before
        log.info(
            "model stage write: windows=%d models=%d statements=%d seconds=%.2f",
            len(keys), len({k.model for k in keys}), self.last_pass_statements, time.perf_counter() - started,
        )  # fmt: skip
        return len(rows)

    def _rollup(self, keys: list[WindowKey], computed_at: datetime) -> None:
        """Rewrite the daily rollup of the days these windows fall in (every model's at once), then
        tombstone the daily keys those days no longer have: a reader never finds a day missing while it is
        rewritten."""
        days = sorted({(k.model, utc(k.start).date()) for k in keys})
        params = {"models": sorted({m for m, _ in days}), "days": days, "counts": list(COUNT_METRICS),
                  "t": computed_at}  # fmt: skip
        self.store.execute(ROLLUP_DAYS, params)
        self.store.execute(TOMBSTONES["metrics_daily"], params)

    def _mistakes(self, keys: list[WindowKey], computed_at: datetime) -> None:
        """Keep up to MISTAKES_PER_WINDOW wrong answers of each labelled binary window: a recompute writes a
        new version of them, and tombstones the older ones it no longer has."""
        if not keys:
            return
        params = {**due_params(self.config, keys), "cap": MISTAKES_PER_WINDOW, "t": computed_at}
        self.store.execute(INSERT_MISTAKES, params)
        self.store.execute(TOMBSTONES["mistakes"], params)

    def _insert(self, table: str, rows: list[dict[str, Any]], computed_at: datetime, keys: list[WindowKey]) -> None:
        """Insert the windows' new rows (one insert), then tombstone the keys of those windows that the new
        version lacks (one ``INSERT ... SELECT``): insert-only, no mutation, and ``FINAL`` reads the newest.

        ``table`` is ``metrics`` or ``drift`` (not user input).
        """
        if not keys:
            return
        for row in rows:
            row["computed_at"] = computed_at
            if table == "metrics" and self.computed_by:
                row["computed_by"] = self.computed_by
        if rows:
            columns = list(dict.fromkeys(c for r in rows for c in r))
            self.store.insert(table, {c: [r.get(c, _DEFAULTS.get(c)) for r in rows] for c in columns})
        self.store.execute(TOMBSTONES[table], {**due_params(self.config, keys), "t": computed_at})


# Values of a column that some rows of one insert lack (``computed_by`` is set on every row or none).
_DEFAULTS: dict[str, Any] = {"computed_by": ""}


def _early(row: dict[str, Any], early: set[WindowKey]) -> bool:
    """Whether a row belongs to a window written before its label delay passed (an A/B pair's row
    ``'v2 vs v1'``: when one of its versions' windows was)."""
    start = int(row["window_start"].timestamp())
    versions = str(row["version"]).split(" vs ")
    return any(WindowKey(row["model"], v, start) in early for v in versions)


def binary_keys(rows: list[dict[str, Any]]) -> list[WindowKey]:
    """The windows whose metric rows show a labelled binary model (they have confusion counts)."""
    return sorted(
        {WindowKey(r["model"], r["version"], int(r["window_start"].timestamp())) for r in rows if r["metric"] == "tp"}
    )


__all__ = ["WindowCloser", "WindowKey"]
