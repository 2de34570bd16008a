"""Versioned schema migrations: numbered, applied once, recorded in ``schema_migrations``.

Every start calls :func:`migrate`; a store with nothing to migrate gets no DDL at
all — only two reads (``system.tables`` and ``schema_migrations``; in cluster mode each node's shard too,
``sinks/topology.py``). A migration is
a numbered list of statements; a schema change is a new migration appended to
:data:`MIGRATIONS` (never an edit of an applied one):

1. the tables (``sinks/schema.py``), with the configured retention;
2. columns added since the first release, for stores created before them
   (``ADD COLUMN IF NOT EXISTS``: a no-op where migration 1 made them);
3. the analysts' views (``sinks/views.py``);
4. column comments, for stores created before them;
5. in cluster mode, replicated tables that deduplicate inserts as one server does
   (:func:`watchkeeper.sinks.cluster.replicated_settings`; nothing to do on one server);
6. ``mistakes.computed_at``, for stores created before it;
7. the views again: NULL (not 0) in ``metrics_wide`` where a metric does not apply, a comment on
   every view column, ``alerts_current.evidence``;
8. insert-only windows: ``metrics``, ``drift``, ``mistakes`` and ``metrics_daily`` become
   ``ReplacingMergeTree(computed_at, is_deleted)`` — a recomputed window is a new version of its rows,
   with tombstones for the keys it no longer has, so the model stage rewrites nothing in place
   (:func:`_insert_only`);
9. ``alert_deliveries`` (which receivers each alert state change went to), for stores created
   before it; the state changes already recorded count as delivered before tracking began, so
   an upgraded worker does not send them again. (It declares nothing it ``creates``: a dropped
   ``alert_deliveries`` is made again, empty, by migration 1's repair — re-running this one would
   mark every recorded state change delivered.)
10. ``alerts.evidence_ts``: ``alerts.ts`` becomes the decision time (the event-time watermark at
    which the alert could be decided) and the evidence's time moves to its own column; rows
    recorded before it get ``evidence_ts = ts`` (their ``ts`` was the evidence's time), through the
    column's ``DEFAULT`` — no rewrite of the table (:func:`_evidence_ts`).
11. two clocks per window: ``provisional`` on ``metrics``, ``drift`` and ``metrics_daily`` (1 = a
    label-based result written before the label delay passed; rows written before it are final,
    the column's default), and the views again, which expose it (:func:`_two_clocks`).
13. ``dead_letter_replays``: the dead letters ``watchkeeper dead-letters replay`` re-published
    (``sinks/replays.py``), so that a second replay sends nothing twice.

A migration applied once is not forgotten: the tables and views that migrations
create are checked on every start (by name, in the same read of ``system.tables``),
and one that is missing — a view dropped by hand — is created again by re-running
the migrations that create it (their statements are idempotent). ``migrate --dry-run``
lists them under ``-- repair``.

Retention is a setting, not a migration: a table's TTL is changed only when the
configured days differ from the table's (read from ``system.tables``), so a start
with the same retention rewrites nothing. A changed TTL is materialized — the
table's parts are rewritten once, in the background, so that rows past a shortened
retention do expire (with ``materialize_ttl_after_modify = 0`` they would keep the
TTL they were written with until they merge).

Two workers starting together may both apply a pending migration: every statement
is idempotent (``IF NOT EXISTS``, ``CREATE OR REPLACE``), and the record of a
migration is inserted with a deduplication token, so the result is the same as
one worker's.

In cluster mode (``WATCHKEEPER_CLICKHOUSE_CLUSTER``) the same migrations run
``ON CLUSTER`` with the tables laid out by :func:`watchkeeper.sinks.cluster.table_statements`.

>>> [m.version for m in MIGRATIONS]
[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13]
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from watchkeeper.sinks import cluster as cluster_ddl
from watchkeeper.sinks import replays, topology
from watchkeeper.sinks.schema import (
    ADDED_COLUMNS,
    ALERTS,
    ALERTS_EVIDENCE_TS,
    DELIVERIES,
    DRIFT,
    METRICS,
    METRICS_DAILY,
    MISTAKES,
    PROVISIONAL_COLUMNS,
    SILENCES,
    TABLES,
    Retention,
    Table,
    ddl,
)
from watchkeeper.sinks.views import view_statements

MIGRATIONS_TABLE = "schema_migrations"
_DAYS = re.compile(r"\bTTL\b.*?toIntervalDay\((\d+)\)", re.S)

Statements = Callable[[str, Retention, "str | None"], list[str]]
# The names of the tables and views a migration creates, in cluster mode or not.
Creates = Callable[["str | None"], list[str]]


def _nothing(cluster: str | None) -> list[str]:
    return []


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Statements
    # What it creates: checked on every start, and created again (the statements re-run) when missing.
    creates: Creates = _nothing

    def checksum(self, db: str) -> str:
        """What the migration does, fingerprinted (with the default retention, which it does not depend on)."""
        text = "\n".join(self.statements(db, Retention(), None))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _tables(db: str, retention: Retention, cluster: str | None) -> list[str]:
    if cluster:
        return cluster_ddl.table_statements(db, retention, cluster)
    return ddl(db, retention)


def _add_columns(columns: tuple[tuple[Table, str], ...], *, comment: bool = True) -> Statements:
    """A migration that adds ``columns`` (``ADD COLUMN IF NOT EXISTS``: a no-op where migration 1 made them),
    with their comments (migration 2 predates them: migration 4 comments its columns)."""

    def statements(db: str, retention: Retention, cluster: str | None) -> list[str]:
        out = []
        for table, column in columns:
            said = f" COMMENT {table.comment_sql(column)}" if comment else ""
            for name in cluster_ddl.physical_names(table, cluster):
                out.append(
                    f"ALTER TABLE {db}.{name}{cluster_ddl.on_cluster(cluster)} "
                    f"ADD COLUMN IF NOT EXISTS {table.column(column).ddl()}{said}"
                )
        return out

    return statements


MISTAKES_COMPUTED_AT = ((MISTAKES, "computed_at"),)


def _comments(db: str, retention: Retention, cluster: str | None) -> list[str]:
    """Column comments for stores created before them (migration 1 writes them into new tables)."""
    out = []
    for table in (*TABLES, SILENCES):
        for name in cluster_ddl.physical_names(table, cluster):
            parts = ", ".join(f"COMMENT COLUMN IF EXISTS {c.name} {table.comment_sql(c.name)}" for c in table.columns)
            out.append(f"ALTER TABLE {db}.{name}{cluster_ddl.on_cluster(cluster)} {parts}")
    return out


def _table_names(cluster: str | None) -> list[str]:
    return [name for table in (*TABLES, SILENCES) for name in cluster_ddl.physical_names(table, cluster)]


def _views(db: str, retention: Retention, cluster: str | None) -> list[str]:
    on = cluster_ddl.on_cluster(cluster)
    return [stmt.replace(f"VIEW {db}.{name} (", f"VIEW {db}.{name}{on} (", 1) for name, stmt in view_statements(db)]


def _view_names(cluster: str | None) -> list[str]:
    return [name for name, _ in view_statements("db")]


def _replicated_dedup(db: str, retention: Retention, cluster: str | None) -> list[str]:
    return cluster_ddl.dedup_statements(db, cluster) if cluster else []


# The window-keyed tables that migration 8 turns insert-only, and the columns it adds to each.
INSERT_ONLY = ((METRICS, ("is_deleted",)), (DRIFT, ("is_deleted",)), (MISTAKES, ("is_deleted",)),
               (METRICS_DAILY, ("computed_at", "is_deleted")))  # fmt: skip
NEW = "_v8"


def _insert_only(db: str, retention: Retention, cluster: str | None) -> list[str]:
    """Each window-keyed table rebuilt with the engine of ``sinks/schema.py`` (an engine cannot be altered):
    a new table beside it, the rows copied, the two exchanged, the old one dropped.

    Safe to run again, from any step: the new table is dropped first, and the copy reads the live table's
    latest rows (``FINAL``: one version of each key, no tombstone).
    Where migration 1 has just made the tables with the new engine (a new store), it exchanges two empty
    tables. In cluster mode the new local tables' replication paths name their UUID, so that the name
    stays free for a later migration.
    """
    on = cluster_ddl.on_cluster(cluster)
    out: list[str] = []
    for table, added in INSERT_ONLY:
        new = table.name + NEW
        # Columns of later migrations (``provisional``, 11) are not in the table being copied yet.
        copied = ", ".join(c for c in table.column_names() if c not in added and c != "provisional")
        if cluster:
            local, new_local = table.name + cluster_ddl.LOCAL, new + cluster_ddl.LOCAL
            out += [f"DROP TABLE IF EXISTS {db}.{new}{on} SYNC", f"DROP TABLE IF EXISTS {db}.{new_local}{on} SYNC"]
            out += cluster_ddl.create_statements(table, db, retention, cluster, name=new, unique_path=True)
            out += [
                f"INSERT INTO {db}.{new} ({copied}) SELECT {copied} FROM {db}.{table.name} FINAL",
                f"EXCHANGE TABLES {db}.{local} AND {db}.{new_local}{on}",
                f"DROP TABLE IF EXISTS {db}.{new}{on} SYNC",
                f"DROP TABLE IF EXISTS {db}.{new_local}{on} SYNC",
            ]
        else:
            spec = Table(new, table.columns, table.engine, table.order_by, table.partition_by, table.indexes,
                         table.ttl, table.settings)  # fmt: skip
            out += [
                f"DROP TABLE IF EXISTS {db}.{new} SYNC",
                spec.create(db, retention),
                f"INSERT INTO {db}.{new} ({copied}) SELECT {copied} FROM {db}.{table.name} FINAL",
                f"EXCHANGE TABLES {db}.{table.name} AND {db}.{new}",
                f"DROP TABLE IF EXISTS {db}.{new} SYNC",
            ]
    return out


def _deliveries(db: str, retention: Retention, cluster: str | None) -> list[str]:
    """The deliveries table, and every state change recorded so far marked as delivered before tracking."""
    if cluster:
        create = cluster_ddl.create_statements(DELIVERIES, db, retention, cluster)
    else:
        create = [DELIVERIES.create(db, retention)]
    keys = "ts, alert_id, state, model"
    return [
        *create,
        f"INSERT INTO {db}.{DELIVERIES.name} ({keys}, receiver, outcome, updated_at, worker) "
        f"SELECT {keys}, '', 'before_tracking', now64(3, 'UTC'), 'migration 9' FROM {db}.{ALERTS.name}",
    ]


def _evidence_ts(db: str, retention: Retention, cluster: str | None) -> list[str]:
    """``alerts.evidence_ts``, defaulting to ``ts`` for the rows already recorded (a no-op where
    migration 1 made the column: new rows always give it)."""
    out = []
    for table, column in ALERTS_EVIDENCE_TS:
        col = table.column(column)
        for name in cluster_ddl.physical_names(table, cluster):
            out.append(
                f"ALTER TABLE {db}.{name}{cluster_ddl.on_cluster(cluster)} ADD COLUMN IF NOT EXISTS "
                f"{col.name} {col.type} DEFAULT ts COMMENT {table.comment_sql(column)}"
            )
    return out


def _two_clocks(db: str, retention: Retention, cluster: str | None) -> list[str]:
    """``provisional`` on the window-keyed tables (default 0: the rows already written count as final),
    then the views that expose it."""
    return _add_columns(PROVISIONAL_COLUMNS)(db, retention, cluster) + _views(db, retention, cluster)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "tables", _tables, _table_names),
    Migration(2, "columns added since the first release", _add_columns(ADDED_COLUMNS, comment=False)),
    Migration(3, "analysts' views", _views, _view_names),
    Migration(4, "column comments", _comments),
    Migration(5, "replicated deduplication as on one server", _replicated_dedup),
    Migration(6, "mistakes.computed_at: a recompute deletes the older mistakes", _add_columns(MISTAKES_COMPUTED_AT)),
    Migration(7, "views: NULL where a metric does not apply, column comments, alert evidence", _views, _view_names),
    Migration(8, "insert-only windows: versions and tombstones, no mutation", _insert_only),
    Migration(9, "alert_deliveries: alerts recorded before it count as delivered", _deliveries),
    Migration(10, "alerts.evidence_ts: ts is the decision time, the evidence's time beside it", _evidence_ts),
    Migration(11, "two clocks: provisional label-based rows, final label-free ones", _two_clocks),
    Migration(13, "dead_letter_replays: what `dead-letters replay` re-published", replays.statements, replays.names),
)


@dataclass
class Plan:
    """What :func:`migrate` would run: the bootstrap, the pending migrations, the repairs of applied
    migrations whose objects are missing, the retention changes."""

    bootstrap: list[str] = field(default_factory=list)
    topology: list[str] = field(default_factory=list)  # tables some nodes lack, as the others have them
    pending: list[tuple[Migration, list[str]]] = field(default_factory=list)
    repair: list[tuple[Migration, list[str], list[str]]] = field(default_factory=list)  # (m, missing, statements)
    ttl: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.bootstrap or self.topology or self.pending or self.repair or self.ttl)

    def statements(self) -> list[str]:
        return [
            *self.topology,
            *self.bootstrap,
            *(s for _, _, stmts in self.repair for s in stmts),
            *(s for _, stmts in self.pending for s in stmts),
            *self.ttl,
        ]

    def describe(self) -> str:
        """The plan in words and SQL (``watchkeeper migrate --dry-run``)."""
        if self.empty:
            return "nothing to migrate: the schema and the retention are up to date"
        lines = []
        if self.topology:
            lines.append("-- nodes without the tables the others have (then the migrations, planned again)")
            lines += [s + ";" for s in self.topology]
        for stmt in self.bootstrap:
            lines += ["-- bootstrap: the migrations table", stmt + ";"]
        for m, missing, stmts in self.repair:
            lines.append(f"-- repair: migration {m.version} ({m.name}) created {', '.join(missing)}, now missing")
            lines += [s + ";" for s in stmts]
        for m, stmts in self.pending:
            lines.append(f"-- migration {m.version}: {m.name}")
            lines += [s + ";" for s in stmts]
        if self.ttl:
            lines.append("-- retention changed: new TTLs (each table's parts are rewritten once, in the background)")
            lines += [s + ";" for s in self.ttl]
        return "\n".join(lines)


def _check(db: str) -> None:
    if not db.replace("_", "").isalnum():
        raise ValueError(f"database name {db!r} must be alphanumeric")


def _bootstrap(db: str, cluster: str | None) -> list[str]:
    on = cluster_ddl.on_cluster(cluster)
    c = cluster_ddl.as_cluster(cluster)
    # One replicated table over every node of every shard (not per shard: any node may be the one asked).
    # A Replicated database takes no engine arguments: the table replicates within a shard there.
    engine = (
        "ReplacingMergeTree(applied_at)"
        if c is None
        else "ReplicatedReplacingMergeTree(applied_at)"
        if c.replicated_database
        else f"ReplicatedReplacingMergeTree('/clickhouse/tables/{{uuid}}/{MIGRATIONS_TABLE}', '{{shard}}-{{replica}}', "
        "applied_at)"
    )
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}{on}",
        f"CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE}{on} (\n"
        "            version UInt32 COMMENT 'the migration number',\n"
        "            name String COMMENT 'what it does',\n"
        "            checksum String COMMENT 'fingerprint of its statements',\n"
        "            applied_at DateTime64(3, 'UTC') COMMENT 'when it was applied'\n"
        f"        ) ENGINE = {engine}\n"
        "        ORDER BY version"
        + ("" if cluster else "\n        SETTINGS non_replicated_deduplication_window = 1000"),
    ]


def ttl_days(create_table_query: str) -> int | None:
    """The days of a table's TTL as the server reports it (``system.tables.create_table_query``).

    >>> ttl_days("CREATE TABLE t (ts DateTime) ENGINE = MergeTree ORDER BY ts TTL toDateTime(ts) + toIntervalDay(30)")
    30
    >>> ttl_days("CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x") is None
    True
    """
    m = _DAYS.search(create_table_query)
    return int(m.group(1)) if m else None


def _ttl_changes(db: str, retention: Retention, existing: dict[str, list[str]], cluster: str | None) -> list[str]:
    out = []
    for table in (*TABLES, SILENCES):
        if table.ttl is None:
            continue
        for name in cluster_ddl.storage_names(table, cluster):
            nodes = existing.get(name)
            if not nodes:
                continue  # not created yet: its migration creates it with the configured retention
            want = retention.raw_days if table.ttl.keep == "raw" else retention.aggregate_days
            if any(ttl_days(q) != want for q in nodes):
                out.append(
                    f"ALTER TABLE {db}.{name}{cluster_ddl.on_cluster(cluster)} MODIFY {table.ttl.clause(retention)}"
                )
    return out


def tables_query(cluster: str | None) -> str:
    """The tables of the database with their DDL: in cluster mode, on every node that answers (a TTL changed
    on the node queried only would leave the others keeping rows for another span), with the node and the
    table's UUID (``sinks/topology.py``).

    >>> print(tables_query("wk"))  # doctest: +NORMALIZE_WHITESPACE
    SELECT name, create_table_query, hostName(), toString(uuid) FROM clusterAllReplicas('wk', system.tables)
    WHERE database = {db:String}
    SETTINGS skip_unavailable_shards = 1
    """
    if not cluster:
        return "SELECT name, create_table_query FROM system.tables WHERE database = {db:String}"
    return topology.tables_query(cluster)


def _layout(store: Any, db: str, cluster: str | None) -> tuple[bool, cluster_ddl.Cluster | None]:
    """Whether the database exists on the node queried, and the cluster with what its database's engine implies
    (a ``Replicated`` database replicates the DDL itself)."""
    count, engine = store.command(
        "SELECT count(), any(engine) FROM system.databases WHERE name = {db:String}", {"db": db}, use_database=False
    )
    c = cluster_ddl.as_cluster(cluster)
    if c is not None and engine == "Replicated" and not c.replicated_database:
        c = cluster_ddl.Cluster(c, keeper_path=c.keeper_path, replicated_database=True)
    return int(count) > 0, c


def plan(store: Any, retention: Retention | None, cluster: str | None = None) -> Plan:
    """What to run on ``store`` (a ``sinks.writer.Store``); ``retention`` None: leave TTLs as they are.

    In cluster mode the nodes come first: when a node lacks tables that others have, the plan is only their
    creation (``topology``), and :func:`migrate` plans again once they exist."""
    db = store.database
    _check(db)
    # The database may not exist yet (a query in its context would fail): ask the server first.
    exists, layout = _layout(store, db, cluster)
    out = Plan()
    existing: dict[str, list[str]] = {}
    if exists and layout and not layout.replicated_database:
        # Every node's tables (:func:`migrate` creates the database on a new node first, to query from it).
        sql, params = topology.nodes_query(layout)
        nodes = [(str(h), int(s), int(r)) for h, s, r in store.query_rows(sql, params)]
        # Only what the migrations make counts (not another application's tables, not a migration's leftovers).
        ours = {MIGRATIONS_TABLE, *(name for m in MIGRATIONS for name in m.creates(layout))}
        by_host: dict[str, dict[str, tuple[str, str]]] = {}
        for name, query, host, uuid in store.query_rows(tables_query(layout), {"db": db}):
            existing.setdefault(str(name), []).append(str(query))
            if str(name) in ours:
                by_host.setdefault(str(host), {})[str(name)] = (str(uuid), str(query))
        out.topology = topology.check(db, layout, nodes, by_host)
        if out.topology:
            return out
    elif exists:  # one server, or a Replicated database (every replica has the same tables)
        for name, query in store.query_rows(tables_query(None), {"db": db}):
            existing.setdefault(str(name), []).append(str(query))
    applied: set[int] = set()
    if MIGRATIONS_TABLE in existing:
        applied = {int(v) for (v,) in store.query_rows(f"SELECT version FROM {db}.{MIGRATIONS_TABLE} FINAL")}
    else:
        out.bootstrap = _bootstrap(db, layout)
    out.pending = [(m, m.statements(db, retention or Retention(), layout)) for m in MIGRATIONS
                   if m.version not in applied]  # fmt: skip
    # What a pending migration creates is its to make: not a repair (an upgrade adds a table to migration 1's).
    made = {name for _, stmts in out.pending for name in created_by(stmts, db)}
    out.repair = _repairs(db, retention, layout, applied, set(existing) | made)
    if retention is not None:
        out.ttl = _ttl_changes(db, retention, existing, layout)
    return out


def created_by(statements: list[str], db: str) -> set[str]:
    """The tables and views that ``CREATE`` statements make.

    >>> sorted(created_by(["CREATE TABLE IF NOT EXISTS wk.a (x UInt8) ENGINE = Memory",
    ...                    "CREATE OR REPLACE VIEW wk.v ON CLUSTER c (x UInt8) AS SELECT 1", "DROP TABLE wk.b"], "wk"))
    ['a', 'v']
    """
    pattern = re.compile(
        rf"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?{db}\.(\w+)", re.I
    )
    return {m.group(1) for stmt in statements if (m := pattern.match(stmt))}


def _repairs(
    db: str, retention: Retention | None, cluster: str | None, applied: set[int], existing: set[str]
) -> list[tuple[Migration, list[str], list[str]]]:
    """The applied migrations whose tables or views are gone, with the statements that create them again.

    A statement two of them share (migrations 3 and 7 both create the views) runs once, in the later one.
    """
    out: list[tuple[Migration, list[str], list[str]]] = []
    for m in MIGRATIONS:
        missing = [name for name in m.creates(cluster) if name not in existing]
        if m.version in applied and missing:
            out.append((m, missing, m.statements(db, retention or Retention(), cluster)))
    seen: set[str] = set()
    for i in range(len(out) - 1, -1, -1):
        m, missing, stmts = out[i]
        out[i] = (m, missing, [s for s in stmts if s not in seen])
        seen.update(stmts)
    return [r for r in out if r[2]]


def migrate(store: Any, retention: Retention | None, cluster: str | None = None) -> Plan:
    """Apply what :func:`plan` finds; returns the plan that was applied."""
    db = store.database
    _check(db)
    if cluster and not _layout(store, db, cluster)[0]:
        # A new node asked first: the database (on every node), so that queries can run in it; then the plan
        # sees what the other nodes have.
        store.command(f"CREATE DATABASE IF NOT EXISTS {db}{cluster_ddl.on_cluster(cluster)}", use_database=False)
    p = plan(store, retention, cluster)
    if p.topology:
        for stmt in p.topology:
            store.command(stmt, use_database=False)
        p = plan(store, retention, cluster)
    for stmt in p.bootstrap:
        store.command(stmt, use_database=False)
    for _, _, stmts in p.repair:
        for stmt in stmts:
            store.command(stmt, use_database=False)
    for m, stmts in p.pending:
        for stmt in stmts:
            store.command(stmt, use_database=False)
        store.insert(
            MIGRATIONS_TABLE,
            {"version": [m.version], "name": [m.name], "checksum": [m.checksum(db)],
             "applied_at": [datetime.now(UTC)]},
            token=f"migration-{m.version}",
        )  # fmt: skip
    for stmt in p.ttl:
        store.command(stmt, use_database=False)
    return p
