"""``dead_letter_replays``: which dead letters ``watchkeeper dead-letters replay`` re-published, and when.

One row per dead letter sent back to its topic (keyed like ``dead_letters``: topic,
partition, offset, event index), written after the broker acknowledged it: a
second replay skips what the first sent, so running it twice publishes nothing
twice. Created by migration 13 (``sinks/migrations.py``).

>>> print(REPLAYS.create("wk", Retention()).splitlines()[0])
CREATE TABLE IF NOT EXISTS wk.dead_letter_replays (
>>> statements("wk", Retention(), None) == [REPLAYS.create("wk", Retention())], names(None)
(True, ['dead_letter_replays'])
"""

from __future__ import annotations

from watchkeeper.sinks import cluster as cluster_ddl
from watchkeeper.sinks.schema import DEAD_LETTERS, DEDUP, Column, Retention, Table, Ttl

REPLAYS = Table(
    "dead_letter_replays",
    (
        Column("replayed_at", "DateTime64(3, 'UTC')"),
        # The dead letter's identity, as in dead_letters.
        *(DEAD_LETTERS.column(name) for name in ("topic", "partition", "offset", "event_index", "model")),
        Column("replay_id", "String"),
    ),
    engine="ReplacingMergeTree(replayed_at)",
    order_by="(topic, partition, offset, event_index)",
    ttl=Ttl("toDateTime(replayed_at)", "raw"),
    settings=DEDUP,
)


def statements(db: str, retention: Retention, cluster: str | None) -> list[str]:
    """Migration 13: the replays table (in cluster mode, its local tables and the Distributed one)."""
    if cluster:
        return cluster_ddl.create_statements(REPLAYS, db, retention, cluster)
    return [REPLAYS.create(db, retention)]


def names(cluster: str | None) -> list[str]:
    return cluster_ddl.physical_names(REPLAYS, cluster)
