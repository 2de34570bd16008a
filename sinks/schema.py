"""The public tables (database ``watchkeeper``): one definition each, giving the DDL and the Arrow schema.

Each table is a :class:`Table` of :class:`Column` s: its ``CREATE TABLE``
statement (:func:`ddl`) and the Arrow schema of the rows a writer inserts
(:meth:`Table.arrow_schema`, the columns without a ``DEFAULT``) both come from
it, so the store and the writers cannot disagree about a column.

Raw tables (``predictions``, ``outcomes``, ``dead_letters``) keep a short TTL;
aggregates (``metrics``, ``drift``, ``alerts``) a long one. Both come from the
settings. Every table that a replay could write twice is a MergeTree with
``non_replicated_deduplication_window`` (so a repeated insert deduplication
token inserts nothing) and, where rows are rewritten by design (late labels
update a window), a ReplacingMergeTree keyed on the row's identity. The
window-keyed tables (``metrics``, ``drift``, ``mistakes``, ``metrics_daily``)
are insert-only: ``ReplacingMergeTree(computed_at, is_deleted)``, a rewrite
being a newer version of its rows and a tombstone (``is_deleted = 1``) where a
key disappears; ``FINAL`` reads the latest version and hides the tombstones.

Only validated integers from the settings are formatted into DDL; no event
value ever is.

>>> PREDICTIONS.arrow_schema().field("features").type
MapType(map<string, double>)
>>> OUTCOMES.column_names(insert=True)
['ts', 'model', 'prediction_id', 'event_id', 'outcome', 'outcome_class', 'src_partition', 'src_offset']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pyarrow as pa

DEDUP = "non_replicated_deduplication_window = 10000"


@dataclass(frozen=True)
class Retention:
    """Days to keep raw rows and aggregates."""

    raw_days: int = 30
    aggregate_days: int = 400

    def __post_init__(self) -> None:
        for v in (self.raw_days, self.aggregate_days):
            if not isinstance(v, int) or v < 1:
                raise ValueError("retention days must be positive integers")


@dataclass(frozen=True)
class Column:
    """A column: its ClickHouse type and, if the store fills it, its ``DEFAULT``.

    >>> Column("ingested_at", "DateTime64(3, 'UTC')", default="now64(3, 'UTC')").ddl()
    "ingested_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')"
    """

    name: str
    type: str
    default: str = ""  # a column with a DEFAULT is left out of inserts (and of the Arrow schema)

    def ddl(self) -> str:
        return f"{self.name} {self.type} DEFAULT {self.default}" if self.default else f"{self.name} {self.type}"

    def arrow_type(self) -> pa.DataType:
        return arrow_type(self.type)


@dataclass(frozen=True)
class Ttl:
    """Rows expire ``expression`` + the raw or the aggregate retention."""

    expression: str
    keep: Literal["raw", "aggregate"]

    def clause(self, retention: Retention) -> str:
        days = retention.raw_days if self.keep == "raw" else retention.aggregate_days
        return f"TTL {self.expression} + toIntervalDay({days})"


@dataclass(frozen=True)
class Table:
    """One table: its columns and the clauses of its ``CREATE TABLE`` statement."""

    name: str
    columns: tuple[Column, ...]
    engine: str
    order_by: str
    partition_by: str = ""
    indexes: tuple[str, ...] = ()  # "name expression TYPE t GRANULARITY n"
    ttl: Ttl | None = None
    settings: str = ""

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def column_names(self, *, insert: bool = False) -> list[str]:
        """Every column's name, or with ``insert`` only those an insert gives (no ``DEFAULT``)."""
        return [c.name for c in self.columns if not (insert and c.default)]

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of an insert: the columns without a ``DEFAULT``, in table order."""
        import pyarrow as pa  # only writers need it: the tables are read by processes without pyarrow

        return pa.schema([(c.name, c.arrow_type()) for c in self.columns if not c.default])

    def comment(self, column: str) -> str:
        """What a column holds, for analysts (``DESCRIBE TABLE``, ``system.columns``)."""
        return COMMENTS.get((self.name, column)) or COMMENTS[("", column)]

    def comment_sql(self, column: str) -> str:
        """The column's comment as a SQL string literal (the comments are constants of this module)."""
        return _quote(self.comment(column))

    def column_ddl(self, column: Column) -> str:
        """The column's definition with its comment."""
        return f"{column.ddl()} COMMENT {self.comment_sql(column.name)}"

    def create(self, db: str, retention: Retention) -> str:
        """The ``CREATE TABLE IF NOT EXISTS`` statement (``db`` is checked by :func:`ddl`)."""
        items = [self.column_ddl(c) for c in self.columns] + [f"INDEX {index}" for index in self.indexes]
        clauses = [
            f"PARTITION BY {self.partition_by}" if self.partition_by else "",
            f"ORDER BY {self.order_by}",
            self.ttl.clause(retention) if self.ttl is not None else "",
            f"SETTINGS {self.settings}" if self.settings else "",
        ]
        return (
            f"CREATE TABLE IF NOT EXISTS {db}.{self.name} (\n"
            + ",\n".join(" " * 12 + item for item in items)
            + f"\n        ) ENGINE = {self.engine}"
            + "".join("\n        " + clause for clause in clauses if clause)
        )


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# Column comments: by (table, column), else by column name alone (("", name)).
COMMENTS: dict[tuple[str, str], str] = {
    ("", "ts"): "event time (UTC)",
    ("", "model"): "model name",
    ("", "version"): "model version ('' = not version-specific; 'v2 vs v1' = an A/B comparison row)",
    ("", "prediction_id"): "joins an outcome to its prediction",
    ("", "event_id"): "idempotency key of the event (default: prediction_id)",
    ("", "prediction"): "the score or value predicted (NULL for class predictions)",
    ("", "prediction_class"): "the class predicted, for multiclass models",
    ("", "scores"): "class -> probability, for multiclass models",
    ("", "features"): "numeric and boolean model inputs, name -> value",
    ("", "features_cat"): "categorical model inputs, name -> value",
    ("", "segments"): "slices and protected attributes, name -> value (not model inputs)",
    ("", "latency_ms"): "serving latency in milliseconds",
    ("", "fallback"): "1 when the service fell back to a default answer",
    ("", "baseline"): "what a simple baseline predicted (score or value)",
    ("", "baseline_class"): "what a simple baseline predicted (class)",
    ("", "ingested_at"): "when the row reached the store (UTC)",
    ("", "published_at"): "the Kafka message's broker time (UTC), for the lag metric",
    ("", "src_partition"): "Kafka partition the event came from",
    ("", "src_offset"): "Kafka offset of the message that carried the event",
    ("", "outcome"): "the true outcome (number)",
    ("", "outcome_class"): "the true outcome (class)",
    ("", "window_start"): "start of the event-time window (UTC)",
    ("", "window_end"): "end of the event-time window (UTC, exclusive)",
    ("", "segment"): "'' = all traffic; 'attr=value' = one group; 'attr' = gaps between its groups",
    ("", "metric"): "metric name (README: ClickHouse tables)",
    ("", "value"): "the metric's value",
    ("", "n"): "the events behind the value (weight rates by it)",
    ("", "computed_at"): "when the row was computed; the latest version of a row wins (read with FINAL)",
    ("", "computed_by"): "the worker that computed the window (host:pid; '' before sharding)",
    ("", "feature"): "input feature, or __prediction__, __label__, __error__, __multivariate__",
    ("", "detector"): "the test or detector that decided",
    ("", "statistic"): "the test statistic",
    ("", "threshold"): "the test's level or threshold",
    ("", "drifted"): "1 when the detector flagged drift",
    ("", "fired_at"): "wall time of the decision (UTC)",
    ("", "alert_id"): "stable id of the alert (model, version, kind, subject)",
    ("", "kind"): "alert kind (drift, performance, retrain, sunset, fairness, challenger, no_data, ops)",
    ("", "severity"): "info, warning or critical",
    ("", "state"): "firing or resolved",
    ("", "summary"): "one line for humans",
    ("", "evidence"): "the decision's evidence (JSON)",
    ("", "owner"): "team that owns the model and receives its alerts",
    ("", "runbook_url"): "what to do: the runbook section of this kind",
    ("alerts", "ts"): "decision time (UTC): the event-time watermark at which the alert could be decided "
    "(its window written, its labels arrived); replays give the same",
    ("", "evidence_ts"): "event time of the evidence (UTC): the per-event alarm, or the end of the window "
    "that decided it; at or before ts (migration 10 sets it to ts for older rows)",
    ("alert_deliveries", "ts"): "decision time of the alert state change delivered (alerts.ts)",
    ("", "receiver"): "the receiver it was handed to ('' = none wanted it)",
    ("alert_deliveries", "outcome"): "queued, then delivered, dead_letter, failed or abandoned; unrouted; "
    "before_tracking (recorded before migration 9)",
    ("alert_deliveries", "updated_at"): "when this outcome was recorded (UTC)",
    ("", "worker"): "the worker that delivered it (host:pid)",
    ("", "day"): "the UTC day rolled up",
    ("", "windows"): "windows rolled into the day",
    ("", "row_id"): "row number in the loaded reference file",
    ("", "loaded_at"): "when the reference was loaded (UTC)",
    ("mistakes", "computed_at"): "when the window's mistakes were written; the latest version wins (read with FINAL)",
    ("", "is_deleted"): "1 = a tombstone: a newer version of the window lacks this row (FINAL hides it)",
    ("", "name"): "what the checkpoint is of (model_stage/<partitions>/<partition>)",
    ("", "updated_at"): "when the checkpoint was saved (UTC)",
    ("", "topic"): "Kafka topic of the rejected message",
    ("", "partition"): "Kafka partition of the rejected message",
    ("", "offset"): "Kafka offset of the rejected message",
    ("", "event_index"): "index of the event in its envelope (-1 = the whole message)",
    ("", "error"): "why it was rejected",
    ("", "payload"): "the rejected bytes, as text",
    ("", "created_at"): "when the silence or acknowledgement was made (UTC)",
    ("", "silence_id"): "id of the silence (a newer row with the same id replaces it)",
    ("", "action"): "silence or ack",
    ("", "episode_ts"): "the firing episode acknowledged",
    ("", "starts_at"): "silence start (UTC)",
    ("", "ends_at"): "silence end (UTC)",
    ("", "author"): "who made it",
    ("", "comment"): "note for the others on call",
    ("checkpoints", "value"): "rows ingested before this time are reflected in the metrics",
    ("mistakes", "kind"): "false_positive or false_negative",
    ("dead_letters", "ts"): "when the message was rejected (UTC)",
    ("", "replayed_at"): "when the dead letter was re-published to its topic (UTC)",
    ("", "replay_id"): "the replay run (one per `watchkeeper dead-letters replay`) that re-published it",
    ("mistakes", "threshold"): "the decision threshold the prediction was judged at",
    ("mistakes", "ts"): "event time of the prediction (UTC)",
    ("reference", "prediction"): "the reference score distribution (from the loaded file)",
}


_WRAPPED = re.compile(r"^(\w+)\((.*)\)$")


def arrow_type(clickhouse_type: str) -> pa.DataType:
    """The Arrow type that ClickHouse reads into (and writes from) a column of this type.

    Arrow fields are nullable, so ``Nullable`` and ``LowCardinality`` change nothing here.

    >>> arrow_type("Map(String, Float64)"), arrow_type("Nullable(DateTime64(3, 'UTC'))")
    (MapType(map<string, double>), TimestampType(timestamp[ms, tz=UTC]))
    >>> arrow_type("LowCardinality(String)"), arrow_type("DateTime('UTC')")
    (DataType(string), TimestampType(timestamp[s, tz=UTC]))
    """
    import pyarrow as pa

    plain = {
        "String": pa.string(),
        "Float64": pa.float64(),
        "UInt8": pa.uint8(),
        "UInt32": pa.uint32(),
        "UInt64": pa.uint64(),
        "Int32": pa.int32(),
        "Int64": pa.int64(),
        "Date": pa.date32(),
    }
    if clickhouse_type in plain:
        return plain[clickhouse_type]
    match = _WRAPPED.match(clickhouse_type)
    if match is not None:
        outer, inner = match.groups()
        if outer in ("Nullable", "LowCardinality"):
            return arrow_type(inner)
        if outer == "Map":
            key, value = (part.strip() for part in inner.split(",", 1))
            return pa.map_(arrow_type(key), arrow_type(value))
        if outer == "DateTime64" and inner == "3, 'UTC'":
            return pa.timestamp("ms", tz="UTC")
        if outer == "DateTime" and inner == "'UTC'":
            return pa.timestamp("s", tz="UTC")
    raise ValueError(f"no Arrow type for the ClickHouse type {clickhouse_type!r}")


# Types spelled once: the columns below use them throughout.
_MS = "DateTime64(3, 'UTC')"
_SECONDS = "DateTime('UTC')"
_NAME = "LowCardinality(String)"
_NUMBERS = "Map(String, Float64)"
_TEXTS = "Map(String, String)"
_NOW = "now64(3, 'UTC')"

PREDICTIONS = Table(
    "predictions",
    (
        Column("ts", _MS),
        Column("model", _NAME),
        Column("version", _NAME),
        Column("prediction_id", "String"),
        Column("event_id", "String"),
        Column("prediction", "Nullable(Float64)"),
        Column("prediction_class", "String"),
        Column("scores", _NUMBERS),
        Column("features", _NUMBERS),
        Column("features_cat", _TEXTS),
        Column("segments", _TEXTS),
        Column("latency_ms", "Nullable(Float64)"),
        Column("fallback", "UInt8"),
        Column("baseline", "Nullable(Float64)"),
        Column("baseline_class", "String"),
        Column("ingested_at", _MS, default=_NOW),
        Column("published_at", f"Nullable({_MS})"),
        Column("src_partition", "Int32"),
        Column("src_offset", "Int64"),
    ),
    engine="ReplacingMergeTree",
    partition_by="toYYYYMMDD(ts)",
    order_by="(model, event_id)",
    indexes=("ix_ingested ingested_at TYPE minmax GRANULARITY 1", "ix_ts ts TYPE minmax GRANULARITY 1"),
    ttl=Ttl("toDateTime(ts)", "raw"),
    settings=DEDUP,
)
OUTCOMES = Table(
    "outcomes",
    (
        Column("ts", _MS),
        Column("model", _NAME),
        Column("prediction_id", "String"),
        Column("event_id", "String"),
        Column("outcome", "Nullable(Float64)"),
        Column("outcome_class", "String"),
        Column("ingested_at", _MS, default=_NOW),
        Column("src_partition", "Int32"),
        Column("src_offset", "Int64"),
    ),
    engine="ReplacingMergeTree",
    partition_by="toYYYYMMDD(ts)",
    order_by="(model, prediction_id, event_id)",
    indexes=("ix_ingested ingested_at TYPE minmax GRANULARITY 1",),
    ttl=Ttl("toDateTime(ts)", "raw"),
    settings=DEDUP,
)
METRICS = Table(
    "metrics",
    (
        Column("window_start", _SECONDS),
        Column("window_end", _SECONDS),
        Column("model", _NAME),
        Column("version", _NAME),
        Column("segment", "String"),
        Column("metric", _NAME),
        Column("value", "Float64"),
        Column("n", "UInt64"),
        Column("computed_at", _MS),
        # Which worker computed the window (the sharded model stage; '' for rows written before it).
        Column("computed_by", "String", default="''"),
        # 1 = a tombstone: the window's newer version no longer has this key (FINAL hides it).
        Column("is_deleted", "UInt8", default="0"),
    ),
    engine="ReplacingMergeTree(computed_at, is_deleted)",
    partition_by="toYYYYMM(window_start)",
    order_by="(model, version, metric, segment, window_start)",
    ttl=Ttl("toDateTime(window_start)", "aggregate"),
    settings=DEDUP,
)
DRIFT = Table(
    "drift",
    (
        Column("ts", _MS),
        Column("window_start", _SECONDS),
        Column("window_end", _SECONDS),
        Column("model", _NAME),
        Column("version", _NAME),
        Column("feature", "String"),
        Column("detector", _NAME),
        Column("statistic", "Float64"),
        Column("threshold", "Float64"),
        Column("drifted", "UInt8"),
        Column("computed_at", _MS),
        # 1 = a tombstone: the window's newer version no longer has this key (FINAL hides it).
        Column("is_deleted", "UInt8", default="0"),
    ),
    engine="ReplacingMergeTree(computed_at, is_deleted)",
    partition_by="toYYYYMM(window_start)",
    order_by="(model, version, feature, detector, window_start)",
    ttl=Ttl("toDateTime(window_start)", "aggregate"),
    settings=DEDUP,
)
ALERTS = Table(
    "alerts",
    (
        Column("ts", _MS),
        Column("fired_at", _MS),
        Column("alert_id", "String"),
        Column("model", _NAME),
        Column("version", _NAME),
        Column("kind", _NAME),
        Column("severity", _NAME),
        Column("state", _NAME),
        Column("summary", "String"),
        Column("evidence", "String"),
        Column("owner", "String"),
        Column("runbook_url", "String"),
        Column("evidence_ts", _MS),
    ),
    engine="ReplacingMergeTree",
    partition_by="toYYYYMM(ts)",
    order_by="(model, alert_id, ts, state)",
    ttl=Ttl("toDateTime(ts)", "aggregate"),
    settings=DEDUP,
)
# Which receivers each alert state change went to (alerts/deliveries.py): a restarted worker delivers
# what was recorded but not delivered, and nothing twice. One row per (state change, receiver) and
# outcome: ``queued`` when handed to the receiver, then ``delivered``, ``dead_letter`` or ``failed``.
DELIVERIES = Table(
    "alert_deliveries",
    (
        Column("ts", _MS),
        Column("alert_id", "String"),
        Column("state", _NAME),
        Column("model", _NAME),
        Column("receiver", _NAME),
        Column("outcome", _NAME),
        Column("updated_at", _MS),
        Column("worker", "String"),
    ),
    engine="ReplacingMergeTree(updated_at)",
    partition_by="toYYYYMM(ts)",
    order_by="(model, alert_id, ts, state, receiver, outcome)",
    ttl=Ttl("toDateTime(ts)", "aggregate"),
    settings=DEDUP,
)
# Daily rollup of metrics, rewritten with its day, so months of dashboards read few rows.
METRICS_DAILY = Table(
    "metrics_daily",
    (
        Column("day", "Date"),
        Column("model", _NAME),
        Column("version", _NAME),
        Column("segment", "String"),
        Column("metric", _NAME),
        Column("value", "Float64"),
        Column("n", "UInt64"),
        Column("windows", "UInt32"),
        # The version of the day's row (rows from before the column count as the oldest).
        Column("computed_at", _MS, default="toDateTime64(0, 3, 'UTC')"),
        # 1 = a tombstone: the window's newer version no longer has this key (FINAL hides it).
        Column("is_deleted", "UInt8", default="0"),
    ),
    engine="ReplacingMergeTree(computed_at, is_deleted)",
    partition_by="toYYYYMM(day)",
    order_by="(model, version, metric, segment, day)",
    ttl=Ttl("day", "aggregate"),
)
# A bounded sample of each window's wrong answers, for analysts studying mistakes.
MISTAKES = Table(
    "mistakes",
    (
        Column("window_start", _SECONDS),
        Column("window_end", _SECONDS),
        Column("model", _NAME),
        Column("version", _NAME),
        Column("prediction_id", "String"),
        Column("ts", _MS),
        Column("features", _NUMBERS),
        Column("features_cat", _TEXTS),
        Column("segments", _TEXTS),
        Column("prediction", "Float64"),
        Column("outcome", "Float64"),
        Column("threshold", "Float64"),
        Column("kind", _NAME),
        # Rows from before the column count as the oldest version.
        Column("computed_at", _MS, default="toDateTime64(0, 3, 'UTC')"),
        # 1 = a tombstone: the window's newer version no longer has this key (FINAL hides it).
        Column("is_deleted", "UInt8", default="0"),
    ),
    engine="ReplacingMergeTree(computed_at, is_deleted)",
    partition_by="toYYYYMMDD(window_start)",
    order_by="(model, version, window_start, prediction_id)",
    ttl=Ttl("toDateTime(window_start)", "raw"),
)
# Training data loaded with `watchkeeper reference`: a model's drift reference.
REFERENCE = Table(
    "reference",
    (
        Column("model", _NAME),
        Column("version", _NAME),
        Column("row_id", "UInt64"),
        Column("features", _NUMBERS),
        Column("features_cat", _TEXTS),
        Column("prediction", "Nullable(Float64)"),
        Column("loaded_at", _MS, default=_NOW),
    ),
    engine="MergeTree",
    order_by="(model, version, row_id)",
)
# Internal: how far the model stage has scanned (a restarted stage resumes there).
CHECKPOINTS = Table(
    "checkpoints",
    (
        Column("name", _NAME),
        Column("value", _MS),
        Column("updated_at", _MS),
    ),
    engine="ReplacingMergeTree(updated_at)",
    order_by="name",
)
DEAD_LETTERS = Table(
    "dead_letters",
    (
        Column("ts", _MS),
        Column("topic", _NAME),
        Column("partition", "Int32"),
        Column("offset", "Int64"),
        Column("event_index", "Int32"),
        Column("model", "String"),
        Column("error", "String"),
        Column("payload", "String"),
    ),
    engine="ReplacingMergeTree",
    partition_by="toYYYYMMDD(ts)",
    order_by="(topic, partition, offset, event_index)",
    ttl=Ttl("toDateTime(ts)", "raw"),
    settings=DEDUP,
)
# Silences and acknowledgements of alerts (alerts/silences.py): human actions in wall time.
SILENCES = Table(
    "alert_silences",
    (
        Column("created_at", _MS),
        Column("silence_id", "String"),
        Column("action", "LowCardinality(String)"),
        Column("model", "String"),
        Column("version", "String"),
        Column("kind", "String"),
        Column("alert_id", "String"),
        Column("episode_ts", _MS),
        Column("starts_at", _MS),
        Column("ends_at", _MS),
        Column("author", "String"),
        Column("comment", "String"),
    ),
    engine="ReplacingMergeTree(created_at)",
    order_by="silence_id",
    ttl=Ttl("toDateTime(ends_at)", "aggregate"),
    settings=DEDUP,
)
# Every table, in the order they are created.
TABLES = (
    PREDICTIONS, OUTCOMES, METRICS, DRIFT, ALERTS, METRICS_DAILY, MISTAKES, REFERENCE, CHECKPOINTS, DEAD_LETTERS,
    DELIVERIES,
)  # fmt: skip
# Columns added since the first release, for tables created before them.
# ``alerts.evidence_ts`` (migration 10): older rows' ``ts`` was the evidence's time.
ALERTS_EVIDENCE_TS = ((ALERTS, "evidence_ts"),)
ADDED_COLUMNS = ((PREDICTIONS, "published_at"), (METRICS, "computed_by"))


def ddl(db: str, retention: Retention) -> list[str]:
    """The CREATE statements of the database and every table, in dependency order."""
    if not db.replace("_", "").isalnum():
        raise ValueError(f"database name {db!r} must be alphanumeric")
    return [f"CREATE DATABASE IF NOT EXISTS {db}"] + [table.create(db, retention) for table in (*TABLES, SILENCES)]
