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

from dataclasses import dataclass

from watchkeeper.sinks import cluster as cluster_ddl
from watchkeeper.sinks.schema import COMMENTS, DEDUP, Column, Retention, Table, Ttl

_COMMENTS = {
    "replayed_at": "when the dead letter was re-published (UTC)",
    "topic": "the topic the dead letter came from, and was re-published to",
    "partition": "the partition of the dead-lettered message",
    "offset": "the offset of the dead-lettered message",
    "event_index": "the event's index in its envelope (-1: the whole message)",
    "model": "model name, when the dead letter named one",
    "replay_id": "the replay run that re-published it (one per command)",
}


@dataclass(frozen=True)
class _Table(Table):
    def comment(self, column: str) -> str:
        return _COMMENTS.get(column) or COMMENTS[("", column)]


REPLAYS = _Table(
    "dead_letter_replays",
    (
        Column("replayed_at", "DateTime64(3, 'UTC')"),
        Column("topic", "LowCardinality(String)"),
        Column("partition", "Int32"),
        Column("offset", "Int64"),
        Column("event_index", "Int32"),
        Column("model", "String"),
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
