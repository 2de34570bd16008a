"""The two-shard router runs a join across sharding keys as a cluster's node asked runs it (tests/shard_router.py).

A window's dead letters join its predictions (sharded by model) with ``dead_letters`` (sharded by topic,
partition and offset): most of a model's dead letters are on the other shard. The router must give one
store's answer, not each shard's own join.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.shard_router import Router
from watchkeeper.sinks.writer import Store
from watchkeeper.windows.config import WindowConfig, WindowKey
from watchkeeper.windows.due import due_params
from watchkeeper.windows.queries import DEAD_LETTERS_OF_WINDOWS

from .conftest import StoreProcess

# Three stores: run with the two-shard comparison it serves (make test-slow).
pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODELS = ("demo.churn", "demo.credit", "demo.fraud", "demo.spam")
WINDOW = 300
# Recent: raw rows older than their retention are dropped as they are inserted.
START = datetime.fromtimestamp(time.time() // WINDOW * WINDOW - 3600, UTC)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Store, list[Store]]]:
    """(the router's two shards as one store, one store, each shard alone), each holding the same rows."""
    root = tmp_path_factory.mktemp("router-join")
    procs = [StoreProcess(root / name).start() for name in ("shard0", "shard1", "single")]
    router = Router(0, [p.address for p in procs[:2]])
    thread = threading.Thread(target=router.serve_forever, daemon=True)
    thread.start()
    sharded = Store(host="127.0.0.1", port=router.server_address[1])
    single = Store(host=procs[2].address[0], port=procs[2].address[1])
    shards = [Store(host=p.address[0], port=p.address[1]) for p in procs[:2]]
    try:
        for store in (sharded, single):
            store.migrate()
            fill(store)
        yield sharded, single, shards
    finally:
        for store in (sharded, single, *shards):
            store.close()
        router.shutdown()
        router.server_close()
        for p in procs:
            p.stop()


def fill(store: Store) -> None:
    """Each model: 20 predictions per window, one per offset of partition 0, and a dead letter at every
    fifth offset among them; one more dead letter after every model's last offset (in no window)."""
    preds: dict[str, list[object]] = {c: [] for c in ("ts", "model", "version", "prediction_id", "event_id",
                                                       "prediction", "src_partition", "src_offset")}  # fmt: skip
    dead: dict[str, list[object]] = {c: [] for c in ("ts", "topic", "partition", "offset", "event_index", "model",
                                                      "error", "payload")}  # fmt: skip
    offset = 0
    for w in range(3):
        for i in range(20):
            for model in MODELS:
                pid = f"{model}-{w}-{i}"
                row = (START + timedelta(seconds=w * WINDOW + i * 10), model, "v1", pid, pid, 0.5, 0, offset)
                for c, v in zip(preds, row, strict=True):
                    preds[c].append(v)
                if i % 5 == 2:
                    for c, v in zip(dead, (START, "predictions", 0, offset, 1, model, "bad", b"{}"), strict=True):
                        dead[c].append(v)
                offset += 1
    for c, v in zip(dead, (START, "predictions", 0, offset + 5, -1, "demo.spam", "bad", b"{}"), strict=True):
        dead[c].append(v)
    store.insert("predictions", preds, token="preds")
    store.insert("dead_letters", dead, token="dead")


def test_a_windows_dead_letters_joined_across_shards_give_one_stores_counts(
    stores: tuple[Store, Store, list[Store]],
) -> None:
    sharded, single, shards = stores
    keys = [WindowKey(m, "v1", int(START.timestamp()) + w * WINDOW) for m in MODELS for w in range(3)]
    params = {**due_params(WindowConfig(window_seconds=WINDOW), keys), "topic": "predictions"}
    expected = sorted(single.query_rows(DEAD_LETTERS_OF_WINDOWS, params))
    assert expected and all(n == 4 for *_, n in expected), expected  # 4 dead letters per window
    # The rows are spread: each shard holds some models' predictions and some dead letters of other models.
    held = [dict(s.query_rows("SELECT model, count() FROM dead_letters GROUP BY model")) for s in shards]
    assert all(held), held
    per_shard = sorted(r for s in shards for r in s.query_rows(DEAD_LETTERS_OF_WINDOWS, params))
    assert per_shard != expected  # each shard's own join misses dead letters: the case is tested
    assert sorted(sharded.query_rows(DEAD_LETTERS_OF_WINDOWS, params)) == expected


def test_the_join_with_no_dead_letters_on_either_shard_gives_no_rows(stores: tuple[Store, Store, list[Store]]) -> None:
    sharded, single, _ = stores
    keys = [WindowKey(m, "v1", int(START.timestamp())) for m in MODELS]
    params = {**due_params(WindowConfig(window_seconds=WINDOW), keys), "topic": "outcomes"}  # none on that topic
    assert single.query_rows(DEAD_LETTERS_OF_WINDOWS, params) == []
    assert sharded.query_rows(DEAD_LETTERS_OF_WINDOWS, params) == []
