"""Cluster mode: each table as replicated local tables on every shard, with a Distributed table in front.

With ``WATCHKEEPER_CLICKHOUSE_CLUSTER=name`` every table ``t`` of ``sinks/schema.py``
becomes ``t_local`` — created ``ON CLUSTER`` with the Replicated variant of its
engine (``ReplacingMergeTree(v)`` → ``ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/t_local',
'{replica}', v)``) — and ``t``, a ``Distributed`` table over them that every reader and
writer uses by the public name. Rows are sharded by ``cityHash64(model)`` for the
tables that have a model (one model's predictions, outcomes and windows stay on one
shard, so the window join's IN subqueries run per shard), else by a hash of the table's ORDER BY key.

Exact counts: the sharding key is part of (or all of) each table's deduplication key,
so every version of a row lands on one shard and ``FINAL`` — which a Distributed table
applies per shard — still keeps one of them. Inserts go through the Distributed table
synchronously (``insert_distributed_sync = 1``, set by the store client in cluster
mode), so the ``insert_deduplication_token`` reaches the replicated table, where
deduplication is on by default.

>>> stmts = table_statements("watchkeeper", Retention(), "wk")
>>> print(stmts[0])
CREATE DATABASE IF NOT EXISTS watchkeeper ON CLUSTER wk
>>> for s in stmts[1:3]:
...     print(s.split(" (")[0].split(" ENGINE")[0])
CREATE TABLE IF NOT EXISTS watchkeeper.predictions_local ON CLUSTER wk
CREATE TABLE IF NOT EXISTS watchkeeper.predictions ON CLUSTER wk AS watchkeeper.predictions_local
"""

from __future__ import annotations

import re

from watchkeeper.sinks.schema import SILENCES, TABLES, Retention, Table

LOCAL = "_local"
_ENGINE = re.compile(r"^(\w*MergeTree)(?:\((.*)\))?$")


def checked_name(cluster: str) -> str:
    if not cluster.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"cluster name {cluster!r} must be alphanumeric (with - or _)")
    return cluster


def on_cluster(cluster: str | None) -> str:
    """`` ON CLUSTER name`` in cluster mode, else nothing."""
    return f" ON CLUSTER {checked_name(cluster)}" if cluster else ""


def physical_names(table: Table, cluster: str | None) -> list[str]:
    """The tables a column change must reach: the table, or its local tables and the Distributed one."""
    return [table.name + LOCAL, table.name] if cluster else [table.name]


def storage_names(table: Table, cluster: str | None) -> list[str]:
    """The tables that hold the rows (and their TTL)."""
    return [table.name + LOCAL] if cluster else [table.name]


def replicated_engine(engine: str, db: str, name: str, *, unique_path: bool = False) -> str:
    """The Replicated variant of a MergeTree engine, its path per shard and replica from the server's macros.

    ``unique_path``: the path names the table's UUID, not its name — for a table that a migration
    builds beside the live one and then exchanges with it (a later table of that name must not find
    the path taken).

    >>> replicated_engine("ReplacingMergeTree(computed_at)", "wk", "metrics_local")
    "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wk/metrics_local', '{replica}', computed_at)"
    >>> replicated_engine("ReplacingMergeTree(computed_at, is_deleted)", "wk", "metrics_v8_local", unique_path=True)
    "ReplicatedReplacingMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}', computed_at, is_deleted)"
    """
    m = _ENGINE.match(engine.strip())
    if m is None:
        raise ValueError(f"not a MergeTree engine: {engine!r}")
    path = "'/clickhouse/tables/{uuid}/{shard}'" if unique_path else f"'/clickhouse/tables/{{shard}}/{db}/{name}'"
    args = [path, "'{replica}'"] + ([m.group(2)] if m.group(2) else [])
    return f"Replicated{m.group(1)}({', '.join(args)})"


def sharding_key(table: Table) -> str:
    """``cityHash64(model)`` where the table has a model, else a hash of its ORDER BY key."""
    if any(c.name == "model" for c in table.columns) and "model" in table.order_by:
        return "cityHash64(model)"
    key = table.order_by.strip()
    return f"cityHash64{key}" if key.startswith("(") else f"cityHash64({key})"


# How long a replicated table remembers an insert's token (the count is the table's setting): as
# long as a non-replicated one does, whatever the server's default.
DEDUP_SECONDS = 7 * 24 * 3600


def replicated_settings(settings: str) -> str:
    """A table's settings on one server, turned into those that deduplicate alike when replicated.

    On one server a table deduplicates inserts only if it has ``non_replicated_deduplication_window``;
    a replicated table deduplicates every insert by default — by its token, or without one by the
    block's content. A table whose rows are deleted and written again (a window's mistakes after a
    late label, a model's reference reloaded from the same file) would lose the rewrite as a
    duplicate of the first write, so where one server keeps no window, the replicated table keeps none
    either.

    >>> replicated_settings("non_replicated_deduplication_window = 10000")
    'replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800'
    >>> replicated_settings("")
    'replicated_deduplication_window = 0'
    """
    kept, window = [], "0"
    for part in (p.strip() for p in settings.split(",") if p.strip()):
        name, _, value = part.partition("=")
        if name.strip() == "non_replicated_deduplication_window":
            window = value.strip()
        else:
            kept.append(part)
    kept.append(f"replicated_deduplication_window = {window}")
    if window != "0":
        kept.append(f"replicated_deduplication_window_seconds = {DEDUP_SECONDS}")
    return ", ".join(kept)


def dedup_statements(db: str, cluster: str) -> list[str]:
    """``MODIFY SETTING`` of every local table to :func:`replicated_settings` (for tables made before)."""
    on = on_cluster(cluster)
    return [
        f"ALTER TABLE {db}.{table.name}{LOCAL}{on} MODIFY SETTING {replicated_settings(table.settings)}"
        for table in (*TABLES, SILENCES)
    ]


def table_statements(db: str, retention: Retention, cluster: str) -> list[str]:
    """The CREATE statements of the database and every table, in cluster mode."""
    out = [f"CREATE DATABASE IF NOT EXISTS {db}{on_cluster(cluster)}"]
    for table in (*TABLES, SILENCES):
        out += create_statements(table, db, retention, cluster)
    return out


def create_statements(
    table: Table, db: str, retention: Retention, cluster: str, *, name: str = "", unique_path: bool = False
) -> list[str]:
    """The CREATE statements of one table in cluster mode (``name``: another name for it, e.g. a migration's
    new table): its replicated local table and the Distributed table over it."""
    on = on_cluster(cluster)
    public = name or table.name
    local = public + LOCAL
    spec = Table(
        local,
        table.columns,
        replicated_engine(table.engine, db, local, unique_path=unique_path),
        table.order_by,
        table.partition_by,
        table.indexes,
        table.ttl,
        replicated_settings(table.settings),
    )
    create = spec.create(db, retention).replace(f"{db}.{local} (", f"{db}.{local}{on} (", 1)
    return [
        create,
        f"CREATE TABLE IF NOT EXISTS {db}.{public}{on} AS {db}.{local} "
        f"ENGINE = Distributed('{cluster}', '{db}', '{local}', {sharding_key(table)})",
    ]
