"""Cluster mode: each table as replicated local tables on every shard, with a Distributed table in front.

With ``WATCHKEEPER_CLICKHOUSE_CLUSTER=name`` every table ``t`` of ``sinks/schema.py``
becomes ``t_local`` — created ``ON CLUSTER`` with the Replicated variant of its
engine (``ReplacingMergeTree(v)`` → ``ReplicatedReplacingMergeTree(v)``: no path, so the
server's ``default_replica_path`` and ``default_replica_name`` apply, or the path
``WATCHKEEPER_CLICKHOUSE_KEEPER_PATH`` names) — and ``t``, a ``Distributed`` table over
them that every reader and writer uses by the public name. Rows are sharded by
``cityHash64(model)`` for the tables that have a model (one model's predictions, outcomes
and windows stay on one shard, so a model's window joins run on its shard), else by a
hash of the table's ORDER BY key.

The cluster's name is quoted wherever it appears (``ON CLUSTER `my-cluster```), and may be
the server's ``{cluster}`` macro. In a database of the ``Replicated`` engine the database
replicates the DDL itself: no ``ON CLUSTER`` and no engine arguments there (:class:`Cluster`).

Exact counts: the sharding key is part of (or all of) each table's deduplication key,
so every version of a row lands on one shard and ``FINAL`` — which a Distributed table
applies per shard — still keeps one of them. Inserts go through the Distributed table
synchronously (``insert_distributed_sync = 1``, set by the store client in cluster
mode), so the ``insert_deduplication_token`` reaches the replicated table, where
deduplication is on by default.

>>> stmts = table_statements("watchkeeper", Retention(), "wk")
>>> print(stmts[0])
CREATE DATABASE IF NOT EXISTS watchkeeper ON CLUSTER `wk`
>>> for s in stmts[1:3]:
...     print(s.split(" (")[0].split(" ENGINE")[0])
CREATE TABLE IF NOT EXISTS watchkeeper.predictions_local ON CLUSTER `wk`
CREATE TABLE IF NOT EXISTS watchkeeper.predictions ON CLUSTER `wk` AS watchkeeper.predictions_local
"""

from __future__ import annotations

import re

from watchkeeper.sinks.schema import SILENCES, TABLES, Retention, Table

LOCAL = "_local"
_ENGINE = re.compile(r"^(\w*MergeTree)(?:\((.*)\))?$")
# A cluster's name as remote_servers spells it, or a macro of the server (``{cluster}``).
CLUSTER_NAME = re.compile(r"^(?:[A-Za-z0-9_-]+|\{[A-Za-z0-9_]+\})$")
# A Keeper path template: macros ({shard}, {database}, {table}, {uuid}, ...) are the server's to expand.
KEEPER_PATH = re.compile(r"^/[A-Za-z0-9_{}/.-]+$")


class Cluster(str):
    """A cluster's name (as ``ON CLUSTER`` and ``Distributed`` name it), with how its tables replicate.

    ``keeper_path``: the replicated tables' Keeper path template; None: the server's
    ``default_replica_path`` (``ReplicatedMergeTree`` without arguments). ``replicated_database``: the
    database is of the ``Replicated`` engine, which replicates the DDL itself (no ``ON CLUSTER``, no
    engine arguments). A plain ``str`` names a cluster with the defaults.

    >>> c = Cluster("my-cluster", keeper_path="/clickhouse/tables/{shard}/{database}/{table}")
    >>> c, c.keeper_path, on_cluster(c)
    ('my-cluster', '/clickhouse/tables/{shard}/{database}/{table}', ' ON CLUSTER `my-cluster`')
    >>> on_cluster(Cluster("{cluster}", replicated_database=True))
    ''
    """

    keeper_path: str | None
    replicated_database: bool

    def __new__(cls, name: str, keeper_path: str | None = None, replicated_database: bool = False) -> Cluster:
        self = super().__new__(cls, checked_name(name))
        if keeper_path is not None and not KEEPER_PATH.match(keeper_path):
            raise ValueError(f"Keeper path {keeper_path!r} must start with / and hold letters, digits, _ . - / {{}}")
        self.keeper_path = keeper_path
        self.replicated_database = replicated_database
        return self


def as_cluster(cluster: str | None) -> Cluster | None:
    """``cluster`` as a :class:`Cluster` (a plain name gets the defaults); None stays None."""
    if not cluster:
        return None
    return cluster if isinstance(cluster, Cluster) else Cluster(cluster)


def checked_name(cluster: str) -> str:
    if not CLUSTER_NAME.match(cluster):
        raise ValueError(f"cluster name {cluster!r} must be alphanumeric (with - or _), or a macro like {{cluster}}")
    return cluster


def quoted(name: str) -> str:
    """An identifier in back quotes (``my-cluster`` is not a bare identifier).

    >>> quoted("my-cluster"), quoted("{cluster}")
    ('`my-cluster`', '`{cluster}`')
    """
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def literal(text: str) -> str:
    """A string literal (the cluster's name in ``Distributed(...)`` and ``clusterAllReplicas(...)``)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def on_cluster(cluster: str | None) -> str:
    """`` ON CLUSTER `name` `` in cluster mode; nothing on one server or in a ``Replicated`` database."""
    c = as_cluster(cluster)
    return f" ON CLUSTER {quoted(c)}" if c and not c.replicated_database else ""


def physical_names(table: Table, cluster: str | None) -> list[str]:
    """The tables a column change must reach: the table, or its local tables and the Distributed one."""
    return [table.name + LOCAL, table.name] if cluster else [table.name]


def storage_names(table: Table, cluster: str | None) -> list[str]:
    """The tables that hold the rows (and their TTL)."""
    return [table.name + LOCAL] if cluster else [table.name]


def replicated_engine(engine: str, cluster: str | None, *, unique_path: bool = False) -> str:
    """The Replicated variant of a MergeTree engine: without arguments (the server's ``default_replica_path``,
    ``/clickhouse/tables/{uuid}/{shard}`` unless configured otherwise, and ``default_replica_name``), or
    under the cluster's configured Keeper path, the replica named by the server's ``{replica}`` macro.

    ``unique_path``: for a table that a migration builds beside the live one and then exchanges with it
    (a later table of that name must not find the path taken): a configured path gets the table's UUID.

    >>> replicated_engine("ReplacingMergeTree(computed_at)", "wk")
    'ReplicatedReplacingMergeTree(computed_at)'
    >>> replicated_engine("MergeTree", "wk")
    'ReplicatedMergeTree'
    >>> c = Cluster("wk", keeper_path="/ch/{shard}/{database}/{table}")
    >>> print(replicated_engine("ReplacingMergeTree(computed_at, is_deleted)", c, unique_path=True))
    ReplicatedReplacingMergeTree('/ch/{shard}/{database}/{table}/{uuid}', '{replica}', computed_at, is_deleted)
    """
    m = _ENGINE.match(engine.strip())
    if m is None:
        raise ValueError(f"not a MergeTree engine: {engine!r}")
    c = as_cluster(cluster)
    args = [m.group(2)] if m.group(2) else []
    if c is not None and c.keeper_path and not c.replicated_database:
        path = c.keeper_path + ("/{uuid}" if unique_path else "")
        args = [literal(path), "'{replica}'", *args]
    return f"Replicated{m.group(1)}" + (f"({', '.join(args)})" if args else "")


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


def dedup_statements(db: str, cluster: str | None) -> list[str]:
    """``MODIFY SETTING`` of every local table to :func:`replicated_settings` (for tables made before)."""
    on = on_cluster(cluster)
    return [
        f"ALTER TABLE {db}.{table.name}{LOCAL}{on} MODIFY SETTING {replicated_settings(table.settings)}"
        for table in (*TABLES, SILENCES)
    ]


def table_statements(db: str, retention: Retention, cluster: str | None) -> list[str]:
    """The CREATE statements of the database and every table, in cluster mode."""
    out = [f"CREATE DATABASE IF NOT EXISTS {db}{on_cluster(cluster)}"]
    for table in (*TABLES, SILENCES):
        out += create_statements(table, db, retention, cluster)
    return out


def create_statements(
    table: Table, db: str, retention: Retention, cluster: str | None, *, name: str = "", unique_path: bool = False
) -> list[str]:
    """The CREATE statements of one table in cluster mode (``name``: another name for it, e.g. a migration's
    new table): its replicated local table and the Distributed table over it."""
    on = on_cluster(cluster)
    public = name or table.name
    local = public + LOCAL
    spec = Table(
        local,
        table.columns,
        replicated_engine(table.engine, cluster, unique_path=unique_path),
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
        f"ENGINE = Distributed({literal(str(cluster))}, '{db}', '{local}', {sharding_key(table)})",
    ]
