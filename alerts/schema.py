"""DDL of the alerting tables that ``sinks/schema.py`` does not hold: ``alert_silences``.

Silences and acknowledgements are human actions in wall time. They never change
what the engine decides (the ``alerts`` table stays a function of the data, so
replays stay exact); they only hold back notifications. One row per action;
expiring a silence writes a newer row with the same ``silence_id`` (a
ReplacingMergeTree on ``created_at``, read with ``FINAL``).

``migrate`` is meant to be called from the store migration, next to
``watchkeeper.sinks.schema.ddl``; the engine and the CLI also call it once (idempotent).

>>> stmts = ddl("watchkeeper", aggregate_days=400)
>>> stmts[0].split("(")[0].strip()
'CREATE TABLE IF NOT EXISTS watchkeeper.alert_silences'
"""

from __future__ import annotations

from typing import Any

SILENCES = "alert_silences"


def ddl(db: str, aggregate_days: int = 400) -> list[str]:
    """CREATE statement of ``alert_silences`` (kept ``aggregate_days`` after it ends)."""
    if not db.replace("_", "").isalnum():
        raise ValueError(f"database name {db!r} must be alphanumeric")
    if not isinstance(aggregate_days, int) or aggregate_days < 1:
        raise ValueError("retention days must be a positive integer")
    return [
        f"""CREATE TABLE IF NOT EXISTS {db}.{SILENCES} (
            created_at DateTime64(3, 'UTC'),
            silence_id String,
            action LowCardinality(String),
            model String,
            version String,
            kind String,
            alert_id String,
            episode_ts DateTime64(3, 'UTC'),
            starts_at DateTime64(3, 'UTC'),
            ends_at DateTime64(3, 'UTC'),
            author String,
            comment String
        ) ENGINE = ReplacingMergeTree(created_at)
        ORDER BY silence_id
        TTL toDateTime(ends_at) + toIntervalDay({aggregate_days})
        SETTINGS non_replicated_deduplication_window = 10000"""
    ]


def ttl_statements(db: str, aggregate_days: int = 400) -> list[str]:
    """ALTER that applies the configured retention to an existing table."""
    return [f"ALTER TABLE {db}.{SILENCES} MODIFY TTL toDateTime(ends_at) + toIntervalDay({int(aggregate_days)})"]


def migrate(store: Any, aggregate_days: int = 400) -> None:
    """Create ``alert_silences`` if missing and apply the retention (``store``: a ``sinks.writer.Store``)."""
    for stmt in ddl(store.database, aggregate_days) + ttl_statements(store.database, aggregate_days):
        store.command(stmt)
