"""Versioned migrations: applied once, a second start runs no DDL, a TTL changes only when the retention does,
cluster DDL that parses, ``watchkeeper migrate --dry-run``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from watchkeeper.sinks import cluster
from watchkeeper.sinks.migrations import MIGRATIONS, MIGRATIONS_TABLE, migrate, plan, ttl_days
from watchkeeper.sinks.schema import ALERTS, METRICS, SILENCES, TABLES, Retention
from watchkeeper.sinks.writer import Store

pytestmark = pytest.mark.integration


class Spy(Store):
    """A store that records every statement that changes something (reads are not recorded)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.commands: list[str] = []

    def command(self, sql: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        if not sql.lstrip().upper().startswith("SELECT"):
            self.commands.append(sql)
        return super().command(sql, params, **kw)


@pytest.fixture
def spy(store: tuple[str, int], request: pytest.FixtureRequest) -> Iterator[Spy]:
    db = "mig_" + request.node.name.replace("test_", "")[:20].replace("-", "_")
    s = Spy(host=store[0], port=store[1], database=db)
    yield s
    s.command(f"DROP DATABASE IF EXISTS {db}", use_database=False)
    s.close()


def tables_ttl(s: Store) -> dict[str, int | None]:
    rows = s.query_rows("SELECT name, create_table_query FROM system.tables WHERE database = {d:String}",
                        {"d": s.database})  # fmt: skip
    return {name: ttl_days(q) for name, q in rows}


def tables_without(spy: Spy, column: str, tables: tuple[str, ...]) -> None:
    """Every table, those named in ``tables`` without ``column`` (a store from before it)."""
    spy.command(f"CREATE DATABASE IF NOT EXISTS {spy.database}", use_database=False)
    for table in TABLES:
        if table.name in tables:
            table = dataclasses.replace(table, columns=tuple(c for c in table.columns if c.name != column))
        spy.command(table.create(spy.database, Retention()), use_database=False)


def applied_before(spy: Spy, version: int) -> None:
    """Record the migrations before ``version`` as applied (a store that had them)."""
    spy.command(
        f"CREATE TABLE {spy.database}.{MIGRATIONS_TABLE} (version UInt32, name String, checksum String, "
        "applied_at DateTime64(3, 'UTC')) ENGINE = ReplacingMergeTree(applied_at) ORDER BY version",
        use_database=False,
    )
    for m in MIGRATIONS:
        if m.version < version:
            spy.command(f"INSERT INTO {MIGRATIONS_TABLE} VALUES ({m.version}, 'x', 'x', now64(3))")


def test_a_fresh_store_gets_every_migration_once(spy: Spy) -> None:
    first = migrate(spy, Retention())
    assert [m.version for m, _ in first.pending] == [m.version for m in MIGRATIONS] and first.bootstrap
    ttl = tables_ttl(spy)
    assert {t.name for t in (*TABLES, SILENCES)} | {MIGRATIONS_TABLE, "metrics_wide"} <= set(ttl)
    assert ttl["predictions"] == 30 and ttl["metrics"] == 400 and ttl["alert_silences"] == 400
    recorded = spy.query_rows(f"SELECT version, name, checksum FROM {MIGRATIONS_TABLE} FINAL ORDER BY version")
    assert [r[0] for r in recorded] == [m.version for m in MIGRATIONS] and all(r[2] for r in recorded)
    # Every column of every table and view says what it holds.
    uncommented = spy.query_rows(
        "SELECT table, name FROM system.columns WHERE database = {d:String} AND comment = ''", {"d": spy.database}
    )
    assert uncommented == []
    view_rows = spy.query_rows(
        "SELECT DISTINCT table FROM system.columns WHERE database = {d:String} AND table IN "
        "(SELECT name FROM system.tables WHERE database = {d:String} AND engine = 'View')",
        {"d": spy.database},
    )
    views = {n for (n,) in view_rows}
    assert views == {"metrics_wide", "drift_flags", "alerts_current"}
    # A second start: nothing to migrate, and not one statement run (no CREATE, no ALTER).
    spy.commands.clear()
    again = migrate(spy, Retention())
    assert again.empty and spy.commands == []
    assert "nothing to migrate" in again.describe()


def test_a_retention_change_modifies_only_the_changed_ttls(spy: Spy) -> None:
    migrate(spy, Retention())
    spy.commands.clear()
    changed = migrate(spy, Retention(raw_days=10, aggregate_days=400))
    assert not changed.pending and not changed.bootstrap
    assert all("MODIFY TTL" in s for s in spy.commands)
    raw = {t.name for t in (*TABLES, SILENCES) if t.ttl is not None and t.ttl.keep == "raw"}
    assert {s.split()[2].split(".")[1] for s in spy.commands} == raw  # only the tables whose TTL changed
    ttl = tables_ttl(spy)
    assert all(ttl[name] == 10 for name in raw) and ttl["metrics"] == 400
    spy.commands.clear()
    assert migrate(spy, Retention(raw_days=10)).empty and spy.commands == []
    # No retention given (e.g. a CLI command that only reads): TTLs are left as they are.
    assert plan(spy, None).empty


def test_a_store_from_before_migrations_gets_the_added_columns(spy: Spy) -> None:
    spy.command(f"CREATE DATABASE IF NOT EXISTS {spy.database}", use_database=False)
    # The metrics table as the first release made it: no computed_by.
    first_release = dataclasses.replace(METRICS, columns=tuple(c for c in METRICS.columns if c.name != "computed_by"))
    spy.command(first_release.create(spy.database, Retention()), use_database=False)
    migrate(spy, Retention())
    columns = {n for (n,) in spy.query_rows(
        "SELECT name FROM system.columns WHERE database = {d:String} AND table = 'metrics'", {"d": spy.database})}
    assert "computed_by" in columns
    comments = dict(spy.query_rows(
        "SELECT name, comment FROM system.columns WHERE database = {d:String} AND table = 'metrics'",
        {"d": spy.database}))  # fmt: skip
    assert all(comments.values()) and "events behind" in comments["n"]


def test_a_dropped_view_or_table_is_created_again(spy: Spy) -> None:
    """`watchkeeper migrate` said "nothing to migrate" after a view was dropped by hand: it stayed gone."""
    migrate(spy, Retention())
    spy.command(f"DROP VIEW {spy.database}.metrics_wide", use_database=False)
    spy.command(f"DROP TABLE {spy.database}.dead_letters", use_database=False)
    dry = plan(spy, Retention())
    assert not dry.empty and not dry.pending
    text = dry.describe()
    assert "-- repair: migration 1 (tables) created dead_letters, now missing" in text
    assert "created metrics_wide, now missing" in text and "nothing to migrate" not in text
    spy.commands.clear()
    migrate(spy, Retention())
    names = {n for (n,) in spy.query_rows("SELECT name FROM system.tables WHERE database = {d:String}",
                                          {"d": spy.database})}  # fmt: skip
    assert {"metrics_wide", "dead_letters", "drift_flags", "alerts_current"} <= names
    assert sum("VIEW" in c and "metrics_wide" in c for c in spy.commands) == 1  # 3 and 7 share it: run once
    assert spy.query_rows("SELECT comment FROM system.columns WHERE database = {d:String} "
                          "AND table = 'metrics_wide' AND name = 'mae'", {"d": spy.database})[0][0]  # fmt: skip
    # Repaired: the next start is quiet again.
    spy.commands.clear()
    assert migrate(spy, Retention()).empty and spy.commands == []
    # What a pending migration creates is not a repair: it makes it itself (an upgrade that adds a table).
    spy.command(f"DROP VIEW {spy.database}.drift_flags", use_database=False)
    spy.command(f"DELETE FROM {MIGRATIONS_TABLE} WHERE version = 7")
    upgrade = plan(spy, Retention())
    assert [m.version for m, _ in upgrade.pending] == [7] and upgrade.repair == []
    migrate(spy, Retention())
    assert spy.query_rows("EXISTS TABLE drift_flags") == [(1,)]


def test_migration_8_makes_the_window_tables_insert_only_and_keeps_their_rows(spy: Spy) -> None:
    """A store from before versions and tombstones: its window tables get the new engine, every row is kept,
    and a tombstone then hides its key from FINAL (a rewrite needs no DELETE)."""
    spy.command(f"CREATE DATABASE IF NOT EXISTS {spy.database}", use_database=False)
    old_engines = {"metrics": "ReplacingMergeTree(computed_at)", "drift": "ReplacingMergeTree(computed_at)",
                   "mistakes": "ReplacingMergeTree", "metrics_daily": "ReplacingMergeTree"}  # fmt: skip
    for table in TABLES:
        if table.name in old_engines:
            dropped = ("is_deleted", "computed_at") if table.name == "metrics_daily" else ("is_deleted",)
            table = dataclasses.replace(table, engine=old_engines[table.name],
                                        columns=tuple(c for c in table.columns if c.name not in dropped))  # fmt: skip
        spy.command(table.create(spy.database, Retention()), use_database=False)
    spy.command(
        "INSERT INTO metrics (window_start, window_end, model, version, segment, metric, value, n, computed_at) "
        "VALUES ('2026-01-01 00:00:00', '2026-01-01 00:05:00', 'm', 'v1', '', 'predictions', 3, 3, now64(3)), "
        "('2026-01-01 00:00:00', '2026-01-01 00:05:00', 'm', 'v1', '', 'tpr', 0.5, 2, now64(3))"
    )
    spy.command("INSERT INTO metrics_daily (day, model, version, segment, metric, value, n, windows) "
                "VALUES ('2026-01-01', 'm', 'v1', '', 'predictions', 3, 3, 1)")  # fmt: skip
    # Applied as a store that had migrations 1-6 (the tables above are theirs).
    applied_before(spy, 8)
    applied = migrate(spy, None)
    # 9: alert_deliveries, since; 10: evidence_ts; and every later one
    assert [m.version for m, _ in applied.pending] == [m.version for m in MIGRATIONS if m.version >= 8]
    engines = dict(spy.query_rows("SELECT name, engine_full FROM system.tables WHERE database = {d:String}",
                                  {"d": spy.database}))  # fmt: skip
    for name in old_engines:
        assert "is_deleted" in engines[name], engines[name]
    assert not any(name.endswith("_v8") for name in engines)
    assert spy.query_rows("SELECT metric, value FROM metrics FINAL ORDER BY metric") == [("predictions", 3.0),
                                                                                         ("tpr", 0.5)]  # fmt: skip
    assert spy.query_rows("SELECT metric, value, n FROM metrics_daily FINAL") == [("predictions", 3.0, 3)]
    # A newer version without 'tpr': its tombstone hides the old row, no DELETE needed.
    spy.command(
        "INSERT INTO metrics (window_start, window_end, model, version, segment, metric, value, n, computed_at, "
        "is_deleted) VALUES ('2026-01-01 00:00:00', '2026-01-01 00:05:00', 'm', 'v1', '', 'tpr', 0.5, 2, "
        "now64(3) + 1, 1)"
    )
    assert spy.query_rows("SELECT metric FROM metrics FINAL") == [("predictions",)]
    # Run again (a worker that crashed mid-migration): the same result, the rows still there once.
    for stmt in next(m for m in MIGRATIONS if m.version == 8).statements(spy.database, Retention(), None):
        spy.command(stmt, use_database=False)
    assert spy.query_rows("SELECT metric, value FROM metrics FINAL") == [("predictions", 3.0)]
    assert migrate(spy, None).empty


def test_migration_10_keeps_recorded_alerts_with_their_time_as_the_evidence_time(spy: Spy) -> None:
    """A store from before ``alerts.evidence_ts``: recorded alerts read their ``ts`` (then the evidence's
    time) as ``evidence_ts``; new alerts are recorded with both times."""
    from watchkeeper.alerts.engine import list_alerts
    from watchkeeper.alerts.model import Alert

    tables_without(spy, "evidence_ts", ("alerts",))
    spy.command(
        "INSERT INTO alerts (ts, fired_at, alert_id, model, version, kind, severity, state, summary, evidence, "
        "owner, runbook_url) VALUES ('2026-01-01 00:05:00', '2026-01-01 01:00:00', 'drift-1', 'm', 'v1', "
        "'drift', 'warning', 'firing', 'old', '{}', 'team', '')"
    )
    applied_before(spy, 10)
    assert [m.version for m, _ in migrate(spy, None).pending] == [m.version for m in MIGRATIONS if m.version >= 10]
    [old] = list_alerts(spy)
    assert old.evidence_ts == old.ts and old.ts.isoformat() == "2026-01-01T00:05:00+00:00"
    new = old.model_copy(update={"alert_id": "drift-2", "ts": old.ts.replace(minute=20)})
    spy.insert(ALERTS.name, {c: [v] for c, v in new.to_row().items()}, token=new.token)
    got = {a.alert_id: (a.ts.minute, a.evidence_ts.minute if a.evidence_ts else None) for a in list_alerts(spy)}
    assert got == {"drift-1": (5, 5), "drift-2": (20, 5)}
    assert migrate(spy, None).empty
    assert isinstance(new, Alert)


def test_migration_11_adds_the_provisional_flag_and_keeps_written_windows_final(spy: Spy) -> None:
    """A store from before the two clocks: its window tables get ``provisional`` (the rows already written
    read as final), the views expose it, and a provisional row of a new version replaces the old one."""
    tables_without(spy, "provisional", ("metrics", "drift", "metrics_daily"))
    spy.command(
        "INSERT INTO metrics (window_start, window_end, model, version, segment, metric, value, n, computed_at) "
        "VALUES ('2026-01-01 00:00:00', '2026-01-01 00:05:00', 'm', 'v1', '', 'predictions', 4, 4, now64(3)), "
        "('2026-01-01 00:00:00', '2026-01-01 00:05:00', 'm', 'v1', '', 'labelled', 2, 4, now64(3))"
    )
    applied_before(spy, 11)
    assert [m.version for m, _ in migrate(spy, None).pending] == [m.version for m in MIGRATIONS if m.version >= 11]
    for table in ("metrics", "drift", "metrics_daily"):
        assert spy.query_rows("SELECT count() FROM system.columns WHERE database = {d:String} AND table = {t:String} "
                              "AND name = 'provisional'", {"d": spy.database, "t": table}) == [(1,)]  # fmt: skip
    assert spy.query_rows("SELECT metric, provisional FROM metrics FINAL ORDER BY metric") == [
        ("labelled", 0), ("predictions", 0)]  # fmt: skip
    assert spy.query_rows("SELECT labelled, provisional, label_coverage FROM metrics_wide") == [(2, 0, 0.5)]
    spy.command(
        "INSERT INTO metrics (window_start, window_end, model, version, segment, metric, value, n, computed_at, "
        "provisional) VALUES ('2026-01-01 00:00:00', '2026-01-01 00:05:00', 'm', 'v1', '', 'labelled', 3, 4, "
        "now64(3) + 1, 1)"
    )
    assert spy.query_rows("SELECT labelled, provisional, label_coverage FROM metrics_wide") == [(3, 1, 0.75)]
    assert spy.query_rows("SELECT provisional FROM drift_flags") == []
    assert migrate(spy, None).empty


def test_the_dry_run_prints_and_changes_nothing(store: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    from watchkeeper.cli import main

    monkeypatch.setenv("WATCHKEEPER_STORE_PORT", str(store[1]))
    monkeypatch.setenv("WATCHKEEPER_CLICKHOUSE", f"http://default:@127.0.0.1:{store[1]}/mig_dry")
    result = CliRunner().invoke(main, ["migrate", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "-- migration 1: tables" in result.output
    assert "CREATE TABLE IF NOT EXISTS mig_dry.predictions" in result.output
    s = Store(host=store[0], port=store[1], database="mig_dry")
    try:
        assert int(s.command("SELECT count() FROM system.databases WHERE name = 'mig_dry'", use_database=False)) == 0
        applied = CliRunner().invoke(main, ["migrate"])
        assert applied.exit_code == 0 and "applied" in applied.output
        assert "nothing to migrate" in CliRunner().invoke(main, ["migrate", "--dry-run"]).output
    finally:
        s.command("DROP DATABASE IF EXISTS mig_dry", use_database=False)
        s.close()


def test_cluster_ddl_parses(spy: Spy) -> None:
    """Every statement of cluster mode, as the ClickHouse engine parses it (EXPLAIN AST): a hyphenated name
    (quoted), the server's {cluster} macro, a configured Keeper path."""
    for name in ("wk_cluster", "my-cluster", "{cluster}", cluster.Cluster("wk", keeper_path="/ch/{shard}/{table}")):
        check_cluster_ddl(spy, name)
    # One model's rows stay on one shard: the model tables are sharded by the model.
    assert cluster.sharding_key(TABLES[0]) == "cityHash64(model)"


def check_cluster_ddl(spy: Spy, name: str) -> None:
    from watchkeeper.sinks import topology
    from watchkeeper.sinks.migrations import _bootstrap

    statements = [*_bootstrap("wk", name), *cluster.table_statements("wk", Retention(), name)]
    for m in MIGRATIONS[1:]:
        statements += m.statements("wk", Retention(), name)
    # Every table, the silences, migration 8's new tables (made beside the old, then exchanged) and
    # alert_deliveries again in migration 9 (for stores made before it), dead_letter_replays in migration 13.
    assert sum(f"ENGINE = Distributed('{name}', 'wk'" in s for s in statements) == len(TABLES) + 1 + 4 + 1 + 1
    assert all("ReplicatedR" in s or "ReplicatedMergeTree" in s for s in statements
               if f"_local ON CLUSTER `{name}`" in s and s.startswith("CREATE TABLE"))  # fmt: skip
    # A table on node a only, node b a new replica of the same shard.
    uuid = "5c0e0000-0000-0000-0000-000000000001"
    made = (uuid, "CREATE TABLE wk.t (x UInt8) ENGINE = ReplicatedMergeTree ORDER BY x")
    new_node = topology.check("wk", name, [("a", 1, 1), ("b", 1, 2)], {"a": {"t": made}})
    assert len(new_node) == 2
    statements += [*new_node, topology.tables_query(name)]
    nodes_sql, nodes_params = topology.nodes_query(name)
    for stmt, params in [*((s, {"db": "wk"}) for s in statements), (nodes_sql, nodes_params)]:
        ast = spy.command(f"EXPLAIN AST {stmt}", params, use_database=False)
        assert ast, stmt


def test_deletes_reach_the_local_tables_in_cluster_mode(spy: Spy) -> None:
    """ClickHouse deletes nothing through a Distributed table: in cluster mode a DELETE goes to every
    shard's local table (the statement parses); on one server it names the table, as before."""
    clustered = Store(host="127.0.0.1", port=1, database="wk", cluster="wk_cluster")
    target = clustered.delete_target("metrics")
    assert target == "wk.metrics_local ON CLUSTER `wk_cluster`"
    spy.command(f"EXPLAIN AST DELETE FROM {target} WHERE model = 'm'", use_database=False)
    assert spy.delete_target("metrics") == "metrics"
    migrate(spy, Retention())
    spy.command("INSERT INTO checkpoints (name, value, updated_at) VALUES ('a', now64(3), now64(3)), "
                "('b', now64(3), now64(3))")  # fmt: skip
    spy.delete("checkpoints", "name = {n:String}", {"n": "a"})
    assert spy.query_rows("SELECT name FROM checkpoints") == [("b",)]
