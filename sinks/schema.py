"""ClickHouse DDL for the public tables (database ``watchkeeper``).

Raw tables (``predictions``, ``outcomes``, ``dead_letters``) keep a short TTL;
aggregates (``metrics``, ``drift``, ``alerts``) a long one. Both come from the
settings. Every table that a replay could write twice is a MergeTree with
``non_replicated_deduplication_window`` (so a repeated insert deduplication
token inserts nothing) and, where rows are rewritten by design (late labels
update a window), a ReplacingMergeTree keyed on the row's identity.

Only validated integers from the settings are formatted into DDL; no event
value ever is.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def ddl(db: str, retention: Retention) -> list[str]:
    """The CREATE statements of every table, in dependency order."""
    if not db.replace("_", "").isalnum():
        raise ValueError(f"database name {db!r} must be alphanumeric")
    raw = f"TTL toDateTime(ts) + toIntervalDay({retention.raw_days})"
    agg = f"TTL toDateTime(window_start) + toIntervalDay({retention.aggregate_days})"
    agg_ts = f"TTL toDateTime(ts) + toIntervalDay({retention.aggregate_days})"
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"""CREATE TABLE IF NOT EXISTS {db}.predictions (
            ts DateTime64(3, 'UTC'),
            model LowCardinality(String),
            version LowCardinality(String),
            prediction_id String,
            event_id String,
            prediction Nullable(Float64),
            prediction_class String,
            scores Map(String, Float64),
            features Map(String, Float64),
            features_cat Map(String, String),
            segments Map(String, String),
            latency_ms Nullable(Float64),
            fallback UInt8,
            baseline Nullable(Float64),
            baseline_class String,
            ingested_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'),
            published_at Nullable(DateTime64(3, 'UTC')),
            src_partition Int32,
            src_offset Int64,
            INDEX ix_ingested ingested_at TYPE minmax GRANULARITY 1,
            INDEX ix_ts ts TYPE minmax GRANULARITY 1
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMMDD(ts)
        ORDER BY (model, event_id)
        {raw}
        SETTINGS {DEDUP}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.outcomes (
            ts DateTime64(3, 'UTC'),
            model LowCardinality(String),
            prediction_id String,
            event_id String,
            outcome Nullable(Float64),
            outcome_class String,
            ingested_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'),
            src_partition Int32,
            src_offset Int64,
            INDEX ix_ingested ingested_at TYPE minmax GRANULARITY 1
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMMDD(ts)
        ORDER BY (model, prediction_id, event_id)
        {raw}
        SETTINGS {DEDUP}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.metrics (
            window_start DateTime('UTC'),
            window_end DateTime('UTC'),
            model LowCardinality(String),
            version LowCardinality(String),
            segment String,
            metric LowCardinality(String),
            value Float64,
            n UInt64,
            computed_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree(computed_at)
        PARTITION BY toYYYYMM(window_start)
        ORDER BY (model, version, metric, segment, window_start)
        {agg}
        SETTINGS {DEDUP}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.drift (
            ts DateTime64(3, 'UTC'),
            window_start DateTime('UTC'),
            window_end DateTime('UTC'),
            model LowCardinality(String),
            version LowCardinality(String),
            feature String,
            detector LowCardinality(String),
            statistic Float64,
            threshold Float64,
            drifted UInt8,
            computed_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree(computed_at)
        PARTITION BY toYYYYMM(window_start)
        ORDER BY (model, version, feature, detector, window_start)
        {agg}
        SETTINGS {DEDUP}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.alerts (
            ts DateTime64(3, 'UTC'),
            fired_at DateTime64(3, 'UTC'),
            alert_id String,
            model LowCardinality(String),
            version LowCardinality(String),
            kind LowCardinality(String),
            severity LowCardinality(String),
            state LowCardinality(String),
            summary String,
            evidence String,
            owner String,
            runbook_url String
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(ts)
        ORDER BY (model, alert_id, ts, state)
        {agg_ts}
        SETTINGS {DEDUP}""",
        # Daily rollup of metrics, rewritten with its day, so months of dashboards read few rows.
        f"""CREATE TABLE IF NOT EXISTS {db}.metrics_daily (
            day Date,
            model LowCardinality(String),
            version LowCardinality(String),
            segment String,
            metric LowCardinality(String),
            value Float64,
            n UInt64,
            windows UInt32
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(day)
        ORDER BY (model, version, metric, segment, day)
        TTL day + toIntervalDay({retention.aggregate_days})""",
        # A bounded sample of each window's wrong answers, for analysts studying mistakes.
        f"""CREATE TABLE IF NOT EXISTS {db}.mistakes (
            window_start DateTime('UTC'),
            window_end DateTime('UTC'),
            model LowCardinality(String),
            version LowCardinality(String),
            prediction_id String,
            ts DateTime64(3, 'UTC'),
            features Map(String, Float64),
            features_cat Map(String, String),
            segments Map(String, String),
            prediction Float64,
            outcome Float64,
            threshold Float64,
            kind LowCardinality(String)
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMMDD(window_start)
        ORDER BY (model, version, window_start, prediction_id)
        TTL toDateTime(window_start) + toIntervalDay({retention.raw_days})""",
        # Training data loaded with `watchkeeper reference`: a model's drift reference.
        f"""CREATE TABLE IF NOT EXISTS {db}.reference (
            model LowCardinality(String),
            version LowCardinality(String),
            row_id UInt64,
            features Map(String, Float64),
            features_cat Map(String, String),
            prediction Nullable(Float64),
            loaded_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
        ) ENGINE = MergeTree
        ORDER BY (model, version, row_id)""",
        # Internal: how far the model stage has scanned (a restarted stage resumes there).
        f"""CREATE TABLE IF NOT EXISTS {db}.checkpoints (
            name LowCardinality(String),
            value DateTime64(3, 'UTC'),
            updated_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree(updated_at)
        ORDER BY name""",
        f"""CREATE TABLE IF NOT EXISTS {db}.dead_letters (
            ts DateTime64(3, 'UTC'),
            topic LowCardinality(String),
            partition Int32,
            offset Int64,
            event_index Int32,
            model String,
            error String,
            payload String
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMMDD(ts)
        ORDER BY (topic, partition, offset, event_index)
        {raw}
        SETTINGS {DEDUP}""",
    ]


def ttl_statements(db: str, retention: Retention) -> list[str]:
    """ALTERs that bring existing tables to the configured retention (settings may change)."""
    stmts = []
    # Columns added since the first release, for tables created before them.
    stmts.append(f"ALTER TABLE {db}.predictions ADD COLUMN IF NOT EXISTS published_at Nullable(DateTime64(3, 'UTC'))")
    # Which worker computed a window (the sharded model stage; '' for rows written before it).
    stmts.append(f"ALTER TABLE {db}.metrics ADD COLUMN IF NOT EXISTS computed_by String DEFAULT ''")
    stmts.append(f"ALTER TABLE {db}.metrics_daily MODIFY TTL day + toIntervalDay({retention.aggregate_days})")
    stmts.append(f"ALTER TABLE {db}.mistakes MODIFY TTL toDateTime(window_start) + toIntervalDay({retention.raw_days})")
    for table in ("predictions", "outcomes", "dead_letters"):
        stmts.append(f"ALTER TABLE {db}.{table} MODIFY TTL toDateTime(ts) + toIntervalDay({retention.raw_days})")
    for table in ("metrics", "drift"):
        stmts.append(
            f"ALTER TABLE {db}.{table} MODIFY TTL toDateTime(window_start) + toIntervalDay({retention.aggregate_days})"
        )
    stmts.append(f"ALTER TABLE {db}.alerts MODIFY TTL toDateTime(ts) + toIntervalDay({retention.aggregate_days})")
    return stmts
