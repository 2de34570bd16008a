"""Cluster mode as far as one embedded engine can check it (no ClickHouse cluster runs here).

Every DELETE the product issues — a late label's rewrite of a window's metrics and
mistakes, a reference reloaded — is sent as cluster mode sends it: to the local tables
``ON CLUSTER``, with its settings. The engine parses each one (``EXPLAIN AST``) with the
real parameters: the parameters must already be literals in the statement's AST, since
that AST is what the server queues for the other hosts. The replicated tables must
deduplicate inserts exactly as the single-server tables do.
"""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from watchkeeper.reference import load_reference
from watchkeeper.sinks import cluster, grants
from watchkeeper.sinks.migrations import MIGRATIONS, _ttl_changes, tables_query
from watchkeeper.sinks.schema import SILENCES, TABLES, Retention
from watchkeeper.sinks.writer import Store
from watchkeeper.streams.events import Outcome, Prediction
from watchkeeper.streams.service import Worker
from watchkeeper.windows.closer import WindowCloser

from .test_join import W0, outcome, pred, send

pytestmark = pytest.mark.integration

WORKER_SETTINGS = dict(window_seconds=300, label_delay_seconds=600, idle_flush=3600)
CLUSTER = "wk-cluster"  # hyphenated: quoted wherever it appears
_models = itertools.count()


class ClusterDeletes(Store):
    """A cluster-mode store on the embedded engine: reads and inserts reach its (single-server) tables by
    the public names, as they reach the Distributed tables on a cluster; each DELETE is parsed with its
    parameters and settings (``EXPLAIN AST``), recorded, then applied to the single-server table."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(cluster=CLUSTER, **kw)
        self.deletes: list[tuple[str, dict[str, Any], dict[str, Any], str]] = []

    def command(self, sql: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        if not sql.startswith("DELETE FROM "):
            return super().command(sql, params, **kw)
        ast = super().command(f"EXPLAIN AST {sql}", params, **kw)
        self.deletes.append((sql, dict(params or {}), dict(kw.get("settings") or {}), str(ast)))
        local = sql.replace(f"{self.database}.", "", 1).replace(f"_local ON CLUSTER `{CLUSTER}`", "", 1)
        return super().command(local, params, use_database=kw.get("use_database", True))


def cluster_store(worker: Worker) -> ClusterDeletes:
    p = worker.settings.clickhouse_params()
    return ClusterDeletes(host=p["host"], port=p["port"], database=worker.settings.clickhouse_database)


def check_delete(sql: str, settings: dict[str, Any], ast: str, table: str, literal: str) -> None:
    assert sql.startswith(f"DELETE FROM watchkeeper.{table}_local ON CLUSTER `{CLUSTER}` WHERE "), sql
    assert "QueryParameter" not in ast, ast  # substituted before the statement is queued for the cluster
    assert re.search(r"Literal .*" + re.escape(literal), ast), ast
    assert settings["distributed_ddl_output_mode"] == "throw_only_active"
    assert settings["lightweight_deletes_sync"] == 1
    # A replicated table refuses a DELETE with a subquery (nondeterministic): values only.
    assert "SELECT" not in sql.upper(), sql


def replay(store: ClusterDeletes) -> None:
    """Apply every recorded DELETE again, late, as a host that was down applies it from the cluster's queue."""
    for sql, params, _, _ in list(store.deletes):
        store.command(sql, params)


def test_a_late_label_rewrites_the_window_in_cluster_mode_without_a_delete(worker: Worker) -> None:
    """On a cluster a DELETE is a serial DDL-queue mutation: a window's rewrite is a newer version of its
    rows instead (tombstones for the keys it no longer has), read with FINAL, which a Distributed table
    applies per shard — every version of a row is on its model's shard."""
    model = f"clu{next(_models)}"
    store = cluster_store(worker)
    closer = WindowCloser(store, worker.settings.window_config())
    send(worker, Prediction, pred(model, "p1", W0 + 100, score=0.2), pred(model, "p2", W0 + 101, score=0.7))
    send(worker, Outcome, outcome(model, "p1", W0 + 150, y=1))  # a false negative: the window has a mistake
    closer.tick(force=True)
    # A label an hour later: the window is rewritten as a new version.
    send(worker, Outcome, outcome(model, "p2", W0 + 3700, y=0))
    closer.tick(force=True)
    assert store.deletes == []
    rows = dict(store.query_rows(
        "SELECT metric, sum(value) FROM metrics FINAL WHERE model = {m:String} "
        "AND metric IN ('predictions', 'labelled') AND segment = '' GROUP BY metric", {"m": model}))  # fmt: skip
    assert rows == {"predictions": 2, "labelled": 2}
    mistakes = "SELECT prediction_id, kind FROM mistakes FINAL WHERE model = {m:String} ORDER BY prediction_id"
    assert store.query_rows(mistakes, {"m": model}) == [("p1", "false_negative"), ("p2", "false_positive")]
    store.close()


def test_a_reloaded_reference_deletes_the_old_one_on_every_shard(worker: Worker, tmp_path: Path) -> None:
    model = f"clu{next(_models)}"
    store = cluster_store(worker)
    path = tmp_path / "ref.csv"
    pd.DataFrame({"f1": [0.1, 0.2, 0.3], "prediction": [0.5, 0.6, 0.7]}).to_csv(path, index=False)
    assert load_reference(store, model, path, force=True).rows == 3
    # the same file again: replaced, not doubled, not lost
    assert load_reference(store, model, path, force=True).rows == 3
    (sql, params, settings, ast), *_ = store.deletes
    check_delete(sql, settings, ast, "reference", model)
    assert store.query_rows("SELECT count() FROM reference WHERE model = {m:String}", {"m": model}) == [(3,)]
    replay(store)  # the old reference's deletes applied late remove nothing of the new one
    assert store.query_rows("SELECT count() FROM reference WHERE model = {m:String}", {"m": model}) == [(3,)]
    store.close()


def test_replicated_tables_deduplicate_as_one_server_does() -> None:
    """A table that deduplicates inserts on one server keeps as many tokens when replicated (and for a week);
    one that does not — its rows are deleted and written again — keeps none, or a rewrite identical to the
    first write would be dropped as its duplicate."""
    statements = cluster.table_statements("wk", Retention(), CLUSTER)
    for table in (*TABLES, SILENCES):
        create = next(s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS wk.{table.name}_local "))
        window = re.search(r"non_replicated_deduplication_window = (\d+)", table.settings)
        if window:
            assert f"SETTINGS replicated_deduplication_window = {window.group(1)}, " in create, table.name
            assert "replicated_deduplication_window_seconds = 604800" in create
        else:
            assert "SETTINGS replicated_deduplication_window = 0" in create, table.name
        assert "non_replicated" not in create
    for name in ("mistakes", "reference", "metrics_daily", "checkpoints"):  # rewritten by design
        assert "replicated_deduplication_window = 0" in next(
            s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS wk.{name}_local "))  # fmt: skip
    # Stores made in cluster mode before this are changed by migration 5; one server needs nothing.
    m5 = next(m for m in MIGRATIONS if m.version == 5)
    assert m5.statements("wk", Retention(), None) == []
    assert len(m5.statements("wk", Retention(), CLUSTER)) == len(TABLES) + 1


def test_a_store_error_about_the_cluster_is_retried_not_a_verdict_on_the_data(worker: Worker) -> None:
    """A replica without Keeper, a shard that does not answer: the writer sees an outage (and retries)."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    from watchkeeper.sinks import writer

    store = cluster_store(worker)
    client = store._get()
    for code, name in ((242, "TABLE_IS_READ_ONLY"), (279, "ALL_CONNECTION_TRIES_FAILED"), (999, "KEEPER_EXCEPTION")):

        def fail(*a: Any, _c: int = code, _n: str = name, **k: Any) -> Any:
            raise DatabaseError(f"HTTPDriver received ClickHouse error code {_c}\n Code: {_c}. DB::Exception: ({_n})")

        client.insert = fail  # type: ignore[method-assign]
        with pytest.raises(writer.StoreUnavailable) as busy:
            store.insert("checkpoints", {"name": ["x"]})
        assert isinstance(busy.value, writer.StoreBusy) and f"Code: {code}. DB::Exception: ({name})" in str(busy.value)
    # A statement the store refuses for itself stays an error of the statement.
    with pytest.raises(writer.ClickHouseError) as exc:
        store.command("SELECT no_such_function()")
    assert not isinstance(exc.value, writer.StoreUnavailable)
    store.close()


# Every query on a sharded schema ------------------------------------------------------------------------------


class Recording(Store):
    """A store that records the SQL (and parameters) of every query and statement it sends."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.inserts: list[str] = []

    def _call(self, fn_name: str, *args: Any, **kwargs: Any) -> Any:
        if fn_name in ("query", "query_arrow", "query_df", "raw_query", "command"):
            self.sent.append((str(args[0]), dict(kwargs.get("parameters") or {})))
        if fn_name in ("insert", "raw_insert"):
            self.inserts.append(f"INSERT INTO {args[0]} FORMAT Native")
        return super()._call(fn_name, *args, **kwargs)


_INSERT_SELECT = re.compile(r"^\s*INSERT\s+INTO\s+[\w.]+\s*(?:\([^)]*\))?\s*(?=SELECT\b|WITH\b)", re.I | re.S)


def plannable(sql: str) -> str | None:
    """The SELECT of a query (an INSERT ... SELECT's own SELECT); None for DDL, DELETE and the like."""
    m = _INSERT_SELECT.match(sql)
    if m:
        return sql[m.end() :]
    return sql if re.match(r"^\s*(SELECT|WITH)\b", sql, re.I) else None


def single_node_ddl(statements: list[str]) -> list[str]:
    """Cluster-mode DDL for one engine without Keeper: no ON CLUSTER, the local tables not replicated
    (what is checked is the Distributed tables over them)."""
    out = []
    for stmt in statements:
        stmt = stmt.replace(f" ON CLUSTER `{CLUSTER}`", "")
        stmt = re.sub(r"Replicated(\w*MergeTree)\('[^']*', '[^']*'(?:, )?", r"\1(", stmt)
        stmt = re.sub(r"Replicated(\w*MergeTree)\b", r"\1", stmt)
        out.append(stmt)
    return out


def plan_on_cluster(
    queries: list[tuple[str, dict[str, Any]]], settings: dict[str, Any]
) -> tuple[list[tuple[int, str]], list[str | None]]:
    """``EXPLAIN PLAN`` of each query on the cluster-mode schema, two shards (tests/integration/cluster_plan.py):
    the queries refused, and the plans."""
    import json
    import subprocess
    import sys

    from clickhouse_connect.driver.binding import bind_query

    from watchkeeper.sinks.migrations import _bootstrap

    db = "watchkeeper"
    ddl = [*_bootstrap(db, CLUSTER), *cluster.table_statements(db, Retention(), CLUSTER)]
    ddl += next(m for m in MIGRATIONS if m.version == 3).statements(db, Retention(), CLUSTER)
    bound = []
    for sql, params in queries:
        final, binds = bind_query(sql, params)
        bound.append([final, {k.removeprefix("param_"): v for k, v in binds.items()}])
    job = {"cluster": CLUSTER, "ddl": [*single_node_ddl(ddl), f"USE {db}"], "settings": settings, "queries": bound}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("cluster_plan.py"))],
        input=json.dumps(job, default=str),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result = json.loads(out.stdout)
    return [(i, err) for i, err in result["refused"]], result["plans"]


def client_settings() -> dict[str, Any]:
    """The settings the workers' client sends in cluster mode."""
    return dict(Store(host="h", port=1, cluster=CLUSTER)._params["settings"])


def profile_setting(profile: str, setting: str) -> str:
    """A setting of a user profile of the compose cluster (deploy/clickhouse-cluster/users.d/cluster.xml)."""
    path = Path(__file__).parents[2] / "deploy/clickhouse-cluster/users.d/cluster.xml"
    node = ET.parse(path).getroot().find(f"profiles/{profile}/{setting}")
    assert node is not None and node.text, (profile, setting)
    return node.text


def test_every_query_plans_on_a_two_shard_schema(worker: Worker, tmp_path: Path) -> None:
    """The queries the model stage, the alert engine, `watchkeeper reference`, the DataFrame API and the
    Grafana panels send, recorded on the embedded store, then analysed by the engine as a distributed
    query's initiator does on the cluster-mode schema (every table Distributed over two shards).

    With the client's ``distributed_product_mode = 'local'`` every query plans; with the server's default
    (``deny``) the joins of the model stage are refused — what cluster mode would meet without it."""
    from watchkeeper import query
    from watchkeeper.alerts.engine import AlertEngine
    from watchkeeper.dashboards.macros import TimeRange, bind
    from watchkeeper.dashboards.panels import MODEL_VARIABLE, PANELS, VERSION_VARIABLE

    model = f"clu{next(_models)}"
    p = worker.settings.clickhouse_params()
    rec = Recording(host=p["host"], port=p["port"], database=worker.settings.clickhouse_database)
    ref = tmp_path / "ref.csv"
    pd.DataFrame({"f1": [0.1 * i for i in range(50)], "prediction": [0.5] * 50}).to_csv(ref, index=False)
    load_reference(rec, model, ref)
    events = []
    for i in range(40):
        version = "v1" if i % 2 else "v2"
        events.append(pred(model, f"p{i}", W0 + 10 + i, score=(i % 10) / 10, version=version,
                           features={"f1": float(i % 7)}, segments={"region": "eu" if i % 3 else "us"}))  # fmt: skip
    send(worker, Prediction, *events)
    send(worker, Outcome, *(outcome(model, f"p{i}", W0 + 60 + i, y=i % 2) for i in range(0, 40, 2)))
    closer = WindowCloser(rec, worker.settings.window_config())
    closer.tick(force=True)
    send(worker, Outcome, *(outcome(model, f"p{i}", W0 + 3700 + i, y=1) for i in range(1, 40, 2)))  # late
    closer.tick(force=True)
    AlertEngine(rec, worker.settings.alert_config()).evaluate()
    query.metrics(model, store=rec)
    query.metric(model, "recall", store=rec)
    query.drift(model, store=rec)
    query.alerts(model, store=rec)

    queries = [(s, params) for sql, params in rec.sent if (s := plannable(sql)) is not None]
    joins = [i for i, (sql, _) in enumerate(queries) if re.search(r"\bJOIN\b|\bIN\s*\(\s*SELECT", sql, re.I)]
    assert len(queries) > 60 and len(joins) > 5, (len(queries), len(joins))  # the scenario reached the stage
    tr = TimeRange(datetime.fromtimestamp(W0, UTC), datetime.fromtimestamp(W0 + 7200, UTC))
    panels = []
    for sql in [MODEL_VARIABLE.sql, VERSION_VARIABLE.sql, *(panel.sql for panel in PANELS.values())]:
        q = bind(sql, tr, interval_s=60, model=model, versions=["v1", "v2"])
        panels.append((q.sql, q.params))

    # The workers' client sets `local` on its own queries; Grafana and analysts get `global` from their profile.
    client = client_settings()
    assert client["distributed_product_mode"] == "local"
    refused, plans = plan_on_cluster(queries, client)
    assert refused == [], "\n\n".join(f"{queries[i][0][:400]}\n-> {err}" for i, err in refused)
    readonly = {"distributed_product_mode": profile_setting("watchkeeper_readonly", "distributed_product_mode")}
    refused, _ = plan_on_cluster(panels, readonly)
    assert refused == [], "\n\n".join(f"{panels[i][0][:400]}\n-> {err}" for i, err in refused)
    assert profile_setting("watchkeeper_writer", "distributed_product_mode") == "global"
    # Without it (the server's default), the stage's joins are refused.
    refused, _ = plan_on_cluster(queries, {**client, "distributed_product_mode": "deny"})
    denied = {i for i, err in refused if "DISTRIBUTED_IN_JOIN_SUBQUERY_DENIED" in err}
    assert denied and denied <= set(joins)
    # Everything sent — queries, statements, inserts — is what the cluster's writer is granted (sinks/grants.py).
    sent = [sql for sql, _ in rec.sent] + rec.inserts
    assert rec.inserts and any(s.startswith("INSERT INTO") and "SELECT" in s for s in sent)
    required = {need for sql in sent for need in grants.needs(sql, rec.database)}
    writer = ET.parse(Path(__file__).parents[2] / "deploy/clickhouse-cluster/users.d/cluster.xml").getroot()
    granted = [" ".join((q.text or "").split()) for q in writer.iterfind("users/writer/grants/query")]
    assert grants.missing(required, granted) == set()
    rec.close()


def test_a_users_query_joins_with_global_semantics_the_workers_own_shard_by_shard(worker: Worker) -> None:
    """`watchkeeper sql` (``Store.raw``) may join anything: GLOBAL semantics, right whatever the tables' sharding."""
    store = cluster_store(worker)
    mode = "SELECT getSetting('distributed_product_mode')"
    assert store.raw(mode, fmt="TabSeparated").strip() == b"global"
    assert store.query_rows(mode) == [("local",)]
    assert store.query_rows("SELECT getSetting('load_balancing')") == [("in_order",)]
    single = Store(host=store._params["host"], port=store._params["port"])
    assert single.raw(mode, fmt="TabSeparated").strip() == b"deny"  # one server: the server's default, untouched
    single.close()
    store.close()


def test_migrations_read_every_nodes_tables_and_fix_a_ttl_any_node_lacks(worker: Worker) -> None:
    """In cluster mode the TTL check reads ``system.tables`` of every replica (``clusterAllReplicas``, the
    statement parses): a node whose table kept another retention gets the ALTER, though the node queried
    has the right one."""
    store = cluster_store(worker)
    ast = store.command(f"EXPLAIN AST {tables_query(CLUSTER)}", {"db": "watchkeeper"}, use_database=False)
    assert "clusterAllReplicas" in str(ast)
    right, stale = Retention(raw_days=30), Retention(raw_days=7)
    ddl = {s.split()[5]: s for s in cluster.table_statements("wk", right, CLUSTER) if "_local ON CLUSTER" in s}
    stale_ddl = {s.split()[5]: s for s in cluster.table_statements("wk", stale, CLUSTER) if "_local ON CLUSTER" in s}
    nodes = {name.split(".")[1]: [q] for name, q in ddl.items()}
    assert _ttl_changes("wk", right, nodes, CLUSTER) == []
    nodes["wk.predictions_local".split(".")[1]].append(stale_ddl["wk.predictions_local"])  # another node, 7 days
    assert _ttl_changes("wk", right, nodes, CLUSTER) == [
        f"ALTER TABLE wk.predictions_local ON CLUSTER `{CLUSTER}` MODIFY TTL toDateTime(ts) + toIntervalDay(30)"
    ]
    store.close()


def test_a_query_on_one_model_goes_to_its_shard_only() -> None:
    """The workers' client skips the shards a query's model does not hash to (``optimize_skip_unused_shards``):
    a per-model aggregate is planned whole on one shard (nothing to merge from the others)."""
    per_model = ("SELECT metric, sum(value) FROM metrics FINAL WHERE model = {m:String} GROUP BY metric", {"m": "x"})
    fleet = ("SELECT metric, sum(value) FROM metrics FINAL GROUP BY metric", {})
    client = client_settings()
    assert client["optimize_skip_unused_shards"] == 1
    _, (one_shard, all_shards) = plan_on_cluster([per_model, fleet], client)
    _, (without,) = plan_on_cluster([per_model], {**client, "optimize_skip_unused_shards": 0})
    assert one_shard is not None and all_shards is not None and without is not None
    assert "Merging" not in one_shard, one_shard  # the one shard aggregates it all
    assert "Merging" in all_shards and "Merging" in without  # partial results of two shards, merged here


def test_watchkeeper_sql_shows_the_stores_own_error_when_it_answers(
    store: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error about the store's state (here a query past its time limit) is retried by the worker as an
    outage, but the store did answer: `watchkeeper sql` shows its message, not "does not answer"."""
    from click.testing import CliRunner

    from watchkeeper.cli import main

    monkeypatch.setenv("WATCHKEEPER_STORE_PORT", str(store[1]))
    slow = "SELECT sleepEachRow(0.3) FROM numbers(10) SETTINGS max_execution_time = 1, max_block_size = 1"
    result = CliRunner().invoke(main, ["sql", slow])
    assert result.exit_code == 1
    assert "Code: 159. DB::Exception: Timeout exceeded" in result.output, result.output
    assert "does not answer" not in result.output


def window_queries() -> dict[str, str]:
    """The model stage's per-window queries (windows/queries.py, and the error stream's), each joining a window's
    predictions to outcomes or reading one table."""
    from watchkeeper.windows import queries as q
    from watchkeeper.windows.sequential import ERRORS

    return {"stats": q.WINDOW_STATS, "binned": q.binned_sql("prediction"), "baseline": q.binned_sql("baseline"),
            "multiclass": q.MULTICLASS, "regression": q.REGRESSION, "paired": q.PAIRED, "orphans": q.ORPHANS,
            "latency": q.LATENCY_BUCKETS, "segment_keys": q.SEGMENT_KEYS, "errors": ERRORS}  # fmt: skip


def window_params(models: list[str]) -> dict[str, Any]:
    t0 = datetime.fromtimestamp(W0, UTC)
    return {
        "w": 300, "delay": 600, "models": models, "t0": t0, "t1": datetime.fromtimestamp(W0 + 600, UTC),
        "due": [(m, "v1", W0) for m in models], "thr_m": [], "thr_v": [], "thr": 0.5, "segkeys": [], "limit": 20,
        "lmin": 0.01, "kzero": 0, "gamma": 1.02, "kmax": 2000,
    }  # fmt: skip


@pytest.mark.parametrize("models", [["m1"], ["m1", "m2", "m3", "m4"]], ids=["one-model", "fleet"])
def test_a_models_window_joins_run_on_its_shard(models: list[str]) -> None:
    """The predictions' Distributed table is the outer FROM of every window query: the whole query — the join of a
    window's predictions to their outcomes, the aggregation — goes to the shards (one ReadFromRemote) and nothing
    is joined on the node asked. A query on one model goes to its shard only, and the node asked merges nothing;
    over the fleet it merges the shards' partial aggregates (no join)."""
    named = window_queries()
    params = window_params(models)
    refused, plans = plan_on_cluster([(sql, params) for sql in named.values()], client_settings())
    assert refused == [], refused
    for name, plan in zip(named, plans, strict=True):
        assert plan is not None
        steps = [line.strip(" │└├─") for line in plan.splitlines()]
        assert sum(s.startswith("ReadFromRemote") for s in steps) == 1, (name, plan)
        assert not any(s.startswith("Join") for s in steps), (name, plan)
        if len(models) == 1:  # one shard answers: the node asked has nothing to merge
            assert not any(s.startswith(("MergingAggregated", "Aggregating")) for s in steps), (name, plan)


def test_a_node_without_the_tables_gets_them_as_the_other_nodes_have_them(store: tuple[str, int]) -> None:
    """The statements that give a new replica its tables, run for real: every table and view of a store, read
    from ``system.tables`` (DDL and UUID), then created again from those statements alone after the originals
    are gone — the same DDL and the same UUIDs (a replicated table's default Keeper path names its UUID)."""
    from watchkeeper.sinks import topology
    from watchkeeper.sinks.migrations import migrate

    donor = Store(host=store[0], port=store[1], database="topo_donor")
    migrate(donor, Retention())
    read = "SELECT name, toString(uuid), create_table_query FROM system.tables WHERE database = {db:String}"
    before = {name: (uuid, ddl) for name, uuid, ddl in donor.query_rows(read, {"db": "topo_donor"})}
    assert {"metrics", "metrics_wide", "schema_migrations"} <= set(before)
    donor.command("DROP DATABASE topo_donor SYNC", use_database=False)
    # Node b has nothing; a Replicated database's layout (no ON CLUSTER: one engine here, no cluster).
    layout = cluster.Cluster("c", replicated_database=True)
    statements = topology.check("topo_donor", layout, [("a", 1, 1), ("b", 1, 2)], {"a": before})
    assert statements[-1].startswith("CREATE VIEW IF NOT EXISTS")  # views after the tables they read
    for stmt in statements:
        donor.command(stmt, use_database=False)
    after = {name: (uuid, ddl) for name, uuid, ddl in donor.query_rows(read, {"db": "topo_donor"})}
    assert after == before
    donor.command("DROP DATABASE topo_donor SYNC", use_database=False)
    donor.close()
