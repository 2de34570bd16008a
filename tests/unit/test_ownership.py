"""Ownership of models by partitions (the sharded model stage): the hash, the shard, the closer's state."""

from __future__ import annotations

import random
import string
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.windows.closer import WindowCloser
from watchkeeper.windows.config import WindowConfig, WindowKey
from watchkeeper.windows.ownership import (
    CHECKPOINT,
    OWNED_SQL,
    Shard,
    checkpoint_name,
    owner_partition,
    parse_checkpoint,
)


def names(n: int = 1000, seed: int = 7) -> list[str]:
    """Model names as users write them: dotted, dashed, some non-ASCII, a few very short."""
    rng = random.Random(seed)
    alphabet = string.ascii_lowercase + string.digits + "._-"
    out = {"", "a", "demo.churn", "fraud", "modèle-é", "模型", "x" * 300}
    while len(out) < n:
        out.add("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
    return sorted(out)


def test_owner_partition_is_crc32_of_the_utf8_name_modulo_the_partitions() -> None:
    for name in names():
        for n in (1, 2, 3, 4, 6, 7, 64):
            p = owner_partition(name, n)
            assert p == zlib.crc32(name.encode("utf-8")) % n
            assert 0 <= p < n


def test_owner_partition_is_stable_across_releases() -> None:
    # Fixed values: changing the hash would move every model at an upgrade (and orphan checkpoints).
    assert [owner_partition(m, 6) for m in ("fraud", "churn", "spam", "a", "b")] == [4, 0, 1, 3, 5]


def test_models_spread_over_the_partitions() -> None:
    counts = Counter(owner_partition(m, 6) for m in names())
    assert set(counts) == set(range(6))
    assert min(counts.values()) > 1000 / 6 * 0.7  # no partition starved (binomial spread is ~ +-10 %)


def test_owner_partition_refuses_no_partitions() -> None:
    with pytest.raises(ValueError):
        owner_partition("m", 0)


def test_every_model_has_exactly_one_owner_in_any_split() -> None:
    n = 6
    for split in ([{0, 1, 2}, {3, 4, 5}], [{0, 3}, {1, 4}, {2, 5}], [{0, 1, 2, 3, 4, 5}, set()]):
        shards = [Shard(n, frozenset(s)) for s in split]
        for name in names(200):
            assert sum(s.owns(name) for s in shards) == 1


def test_shard_basics() -> None:
    assert Shard.everything().owns("anything") and Shard.everything().checkpoint(0) == CHECKPOINT
    assert not Shard.none(4).owned
    with pytest.raises(ValueError):
        Shard(4, frozenset({4}))
    assert Shard(6, frozenset({1, 5})).params({5}) == {"shard_n": 6, "shard_owned": [5]}


def test_checkpoint_names_round_trip() -> None:
    for n in (1, 2, 6, 12):
        for p in range(n):
            assert parse_checkpoint(checkpoint_name(p, n)) == (p, n)
    assert parse_checkpoint("model_stage/x/1") is None
    assert parse_checkpoint("other") is None


# The closer's per-partition state, against a store that records what it is asked -----------------


class FakeStore:
    def __init__(self, checkpoints: list[tuple[str, float]] = ()) -> None:  # type: ignore[assignment]
        self.checkpoints = list(checkpoints)
        self.inserts: list[tuple[str, dict[str, Any]]] = []
        self.queries: list[tuple[str, dict[str, Any] | None]] = []

    def query_rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        self.queries.append((sql, params))
        if "FROM checkpoints" in sql:
            return list(self.checkpoints)
        return []

    def insert(self, table: str, columns: dict[str, Any], **kwargs: Any) -> None:
        self.inserts.append((table, columns))


def model_of(partition: int, n: int, prefix: str = "m") -> str:
    return next(f"{prefix}{i}" for i in range(10_000) if owner_partition(f"{prefix}{i}", n) == partition)


def test_assign_drops_the_state_of_the_models_that_leave() -> None:
    n = 6
    closer = WindowCloser(FakeStore(), WindowConfig(), Shard(n, frozenset({0, 1})))  # type: ignore[arg-type]
    stay, leave = model_of(0, n), model_of(1, n)
    for m in (stay, leave):
        key = WindowKey(m, "v1", 0)
        closer.pending[key], closer.pending_since[key], closer.computed[key] = 1.0, 0.0, 1.0
        closer.watermark[m] = 10.0
        closer.drift.references[(m, "v1")] = None
        closer.drift.sequential.error_streams[(m, "v1")] = object()  # type: ignore[assignment]
    closer.cursors = {0: 5.0, 1: 5.0}
    closer.sinces = {0: 4.0, 1: 4.0}
    closer.assign(Shard(n, frozenset({0, 2})))
    assert {k.model for k in closer.pending} == {stay} == {k.model for k in closer.computed}
    assert set(closer.watermark) == {stay}
    assert set(closer.drift.references) == {(stay, "v1")} == set(closer.drift.sequential.error_streams)
    assert closer.cursors == {0: 5.0}  # partition 2 is new: discovered from its checkpoint next pass


def test_a_closer_that_owns_nothing_does_nothing() -> None:
    store = FakeStore()
    closer = WindowCloser(store, WindowConfig(), Shard.none(6))  # type: ignore[arg-type]
    assert closer.tick(force=True) == []
    assert store.queries == [] and store.inserts == []


def test_checkpoints_are_saved_per_partition_below_their_pending_windows() -> None:
    n = 6
    store = FakeStore()
    closer = WindowCloser(store, WindowConfig(), Shard(n, frozenset({2, 3})))  # type: ignore[arg-type]
    closer.sinces = {2: 100.0, 3: 100.0}
    waiting = WindowKey(model_of(3, n), "v1", 0)
    closer.pending[waiting], closer.pending_since[waiting] = 90.0, 40.0
    closer._save_checkpoint(now=200.0)
    ((table, cols),) = store.inserts
    assert table == "checkpoints"
    saved = {name: v.timestamp() for name, v in zip(cols["name"], cols["value"], strict=True)}
    assert saved == {"model_stage/6/2": 100.0, "model_stage/6/3": 40.0}


def test_resume_points_fall_back_to_a_complete_earlier_layout() -> None:
    rows = [
        ("model_stage/6/0", 50.0),  # this layout: partition 0 has its own
        ("model_stage", 10.0),  # the fleet-wide one of a single-worker deployment
        ("model_stage/2/0", 30.0),  # a complete 2-partition layout: valid for every model from 20
        ("model_stage/2/1", 20.0),
        ("model_stage/3/0", 99.0),  # an incomplete one: ignored
    ]
    closer = WindowCloser(FakeStore(rows), WindowConfig(), Shard(6, frozenset({0, 1})))  # type: ignore[arg-type]
    assert closer._resume_points([0, 1], 1000.0) == {0: 50.0, 1: 20.0}
    fresh = WindowCloser(FakeStore(), WindowConfig(), Shard(6, frozenset({0})))  # type: ignore[arg-type]
    assert fresh._resume_points([0], 1000.0) == {0: 0.0}  # no checkpoint at all: the whole history


# The store computes the same hash (needs the embedded store) --------------------------------------


@pytest.mark.integration
def test_the_store_filters_owned_models_exactly_as_python(tmp_path: Path) -> None:
    from tests.integration.conftest import StoreProcess
    from watchkeeper.settings import Settings
    from watchkeeper.sinks.writer import Store

    all_names = names()
    with StoreProcess(tmp_path / "store") as proc:
        store = Store(database="default", **Settings(store_port=proc.port).clickhouse_params())
        for n in (1, 4, 6, 7):
            rows = store.query_rows(
                "SELECT name, CRC32(toLowCardinality(name)) % {n:UInt32} "
                "FROM (SELECT arrayJoin({names:Array(String)}) AS name)",
                {"n": n, "names": all_names},
            )
            assert {name: int(p) for name, p in rows} == {m: owner_partition(m, n) for m in all_names}
            shard = Shard(n, frozenset(range(0, n, 2)))
            owned = store.query_rows(
                f"SELECT model FROM (SELECT toLowCardinality(arrayJoin({{names:Array(String)}})) AS model) "
                f"WHERE {OWNED_SQL} ORDER BY model",
                {"names": all_names, **shard.params()},
            )
            assert [m for (m,) in owned] == sorted(m for m in all_names if shard.owns(m))
        store.close()


# The alert engine judges only the models it owns ----------------------------------------------


class CatalogueStore:
    """A store whose metrics show two models, one window each; every other query finds nothing."""

    def __init__(self, models: list[str]) -> None:
        self.models = models

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if "GROUP BY model, version" in sql and "min(window_start)" in sql and "window_end >" in sql:
            return [{"model": m, "version": "v1", "first_start": 0, "last_end": 300, "last_final": 300}
                    for m in self.models]
        if "max(window_end)" in sql:
            return [{"last_end": 300}]
        return []

    def query_rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return []


def test_the_alert_engine_keeps_state_only_for_owned_models() -> None:
    from watchkeeper.alerts.engine import AlertEngine

    n = 6
    mine, theirs = model_of(0, n), model_of(1, n)
    shard = {"now": Shard(n, frozenset({0, 1}))}
    engine = AlertEngine(CatalogueStore([mine, theirs]), owns=lambda m: shard["now"].owns(m))
    engine.evaluate()
    assert set(engine._evaluators) == {mine, theirs}
    shard["now"] = Shard(n, frozenset({0}))  # partition 1 moved to another worker
    engine.evaluate()
    assert set(engine._evaluators) == {mine}
    shard["now"] = Shard(n, frozenset({0, 1}))  # and came back: rebuilt from the store
    engine.evaluate()
    assert set(engine._evaluators) == {mine, theirs}
    assert engine.stats["rebuilds"] == 3
