"""Cluster settings reach the schema's DDL: a quoted name or the {cluster} macro, the Keeper path."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from watchkeeper.settings import Settings
from watchkeeper.sinks import cluster
from watchkeeper.sinks.schema import Retention
from watchkeeper.sinks.writer import Store
from watchkeeper.streams.service import WorkerConfig


def test_the_keeper_path_and_the_cluster_reach_the_workers_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHKEEPER_CLICKHOUSE", "http://writer:pw@ch:8123/watchkeeper")
    monkeypatch.setenv("WATCHKEEPER_CLICKHOUSE_CLUSTER", "my-cluster")
    monkeypatch.setenv("WATCHKEEPER_CLICKHOUSE_KEEPER_PATH", "/clickhouse/tables/{shard}/{database}/{table}")
    store = Store(**WorkerConfig.from_settings(Settings()).store)
    create = cluster.table_statements("watchkeeper", Retention(), store.cluster)[1]
    assert " ON CLUSTER `my-cluster` (" in create
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')" in create
    assert (
        Store.from_settings(Settings()).delete_target("metrics") == "watchkeeper.metrics_local ON CLUSTER `my-cluster`"
    )


def test_without_a_keeper_path_the_servers_default_replica_path_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHKEEPER_CLICKHOUSE", "http://writer:pw@ch:8123/watchkeeper")
    monkeypatch.setenv("WATCHKEEPER_CLICKHOUSE_CLUSTER", "{cluster}")
    statements = cluster.table_statements("watchkeeper", Retention(), Settings().clickhouse_cluster)
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS watchkeeper ON CLUSTER `{cluster}`"
    assert "ENGINE = ReplicatedReplacingMergeTree\n" in statements[1]  # no arguments
    assert "ENGINE = Distributed('{cluster}', 'watchkeeper', 'predictions_local', cityHash64(model))" in statements[2]


@pytest.mark.parametrize(
    ("name", "value"),
    [("CLICKHOUSE_CLUSTER", "a b"), ("CLICKHOUSE_CLUSTER", "c`;DROP"), ("CLICKHOUSE_KEEPER_PATH", "tables/x'")],
)
def test_a_bad_cluster_setting_fails_at_start(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv("WATCHKEEPER_CLICKHOUSE_CLUSTER", "wk")
    monkeypatch.setenv(f"WATCHKEEPER_{name}", value)
    with pytest.raises(ValidationError, match=name.lower()):
        Settings()


def test_every_insert_is_synchronous(monkeypatch: pytest.MonkeyPatch) -> None:
    """``async_insert = 0`` on every insert: the server's default since 26.2 queues inserts and merges those of
    different deduplication tokens. Both insert paths, with and without a token."""
    import pyarrow as pa

    sent: list[dict[str, object]] = []

    def call(self: Store, fn_name: str, *args: object, **kwargs: object) -> None:
        settings = kwargs.get("settings", args[3] if fn_name == "raw_insert" else None)
        assert isinstance(settings, dict)
        sent.append(settings)

    monkeypatch.setattr(Store, "_call", call)
    store = Store(host="h", port=1)
    store.insert("checkpoints", {"name": ["a"]})
    store.insert("checkpoints", {"name": ["a"]}, token="t")
    store.insert_arrow("checkpoints", pa.table({"name": ["a"]}))
    store.insert_arrow("checkpoints", pa.table({"name": ["a"]}), token="t")
    assert [s["async_insert"] for s in sent] == [0, 0, 0, 0]
    assert [s.get("insert_deduplication_token") for s in sent] == [None, "t", None, "t"]


def test_a_new_shard_stops_the_start_with_the_reshard_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    """The refusal reaches the operator as one message (no traceback), saying what to do instead."""
    from click.testing import CliRunner

    from watchkeeper.cli import main
    from watchkeeper.sinks import topology

    def refuse(self: Store, *a: object, **k: object) -> None:
        raise topology.NewShardRefused(topology.reshard_message("wk", [3], [1, 2]))

    monkeypatch.setenv("WATCHKEEPER_CLICKHOUSE", "http://writer:pw@ch:8123/watchkeeper")
    monkeypatch.setenv("WATCHKEEPER_CLICKHOUSE_CLUSTER", "wk")
    monkeypatch.setattr(Store, "migrate", refuse)
    result = CliRunner().invoke(main, ["migrate"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: cluster wk: shard(s) 3 have no watchkeeper tables"), result.output
    assert "new cluster" in result.output and "backfill" in result.output and "Traceback" not in result.output
