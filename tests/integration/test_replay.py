"""Operators' side on the embedded stack: dead letters replayed once their cause is gone, and the replication
factor of every topic watchkeeper and Faust create (Tansu reports each partition's replicas)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from clickhouse_connect.driver.httpclient import HttpClient

from tests.stack import Stack
from watchkeeper.admin import admin_client, topic_names
from watchkeeper.streams.events import Prediction
from watchkeeper.streams.ingest import SourceMessage
from watchkeeper.streams.service import Worker

pytestmark = pytest.mark.integration

REPLICATION = 2


class DeadLetterTopic:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, *, value: bytes) -> None:
        self.sent.append(value)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("replay"), replication_factor=str(REPLICATION), min_insync_replicas="1")
    try:
        s.start_services()
        s.start_worker()
        yield s
    finally:
        s.stop()


def test_every_topic_carries_the_replication_factor(stack: Stack) -> None:
    leader = f"{stack.settings.app_id}-__assignor-__leader"  # Faust's own, created by the worker
    wanted = [*topic_names(stack.settings), leader]
    admin = admin_client(stack.settings)
    try:
        deadline = time.monotonic() + 120
        while True:
            described = {t["name"]: t for t in admin.describe_topics(wanted) if not t.get("error_code")}
            if len(described) == len(wanted) or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        admin.close()
    assert sorted(described) == sorted(wanted)
    replicas = {name: {len(p["replica_nodes"]) for p in t["partitions"]} for name, t in described.items()}
    assert replicas == dict.fromkeys(wanted, {REPLICATION})


def test_dead_letters_of_a_refused_batch_are_replayed_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model = "replayed"
    count = f"SELECT count() FROM predictions WHERE model = '{model}'"
    # The store refuses the batch's data (injected at the driver): its messages become dead letters.
    real = HttpClient.raw_insert

    def refuse(self: HttpClient, table: str | None = None, *args: object, **kwargs: object) -> object:
        if (table or "").endswith(".predictions"):
            raise DatabaseError("Code: 27. DB::Exception: Cannot parse input. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)")
        return real(self, table, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(HttpClient, "raw_insert", refuse)
    worker = Worker(stack.settings)
    now = time.time()
    messages = [
        SourceMessage(
            "predictions",
            0,
            10_000 + i,
            orjson.dumps({"prediction_id": f"r{i}", "model": model, "prediction": 0.25, "ts": now}),
        )  # fmt: skip
        for i in range(5)
    ]
    import asyncio

    asyncio.run(worker.flush(messages, worker.build_batch(messages, Prediction), DeadLetterTopic()))
    worker.store.close()
    monkeypatch.setattr(HttpClient, "raw_insert", real)  # the fault is gone
    store = stack.store()
    assert store.query_rows(count) == [(0,)]
    dead = f"SELECT count() FROM dead_letters FINAL WHERE positionCaseInsensitive(payload, '{model}') > 0"
    assert store.query_rows(dead) == [(5,)]

    dry = stack.cli("dead-letters", "replay", "--reason", "cannot_parse", "--model", model, "--dry-run")
    assert dry.stdout.startswith("would replay 5 dead letters (predictions: 5)"), dry.stdout
    first = stack.cli("dead-letters", "replay", "--reason", "cannot_parse", "--model", model, "--since", "1h")
    assert first.stdout.startswith("replayed 5 dead letters (predictions: 5)"), first.stdout
    assert stack.wait_for(count, [(5,)], timeout=120) == [(5,)]
    assert sorted(store.query_rows(f"SELECT prediction_id FROM predictions WHERE model = '{model}'")) == [
        (f"r{i}",) for i in range(5)
    ]
    second = stack.cli("dead-letters", "replay", "--reason", "cannot_parse", "--model", model)
    assert second.stdout.startswith("replayed 0 dead letters"), second.stdout
    assert "skipped 5 replayed before" in second.stdout
    # One record per dead letter, from the first run: the second sent and recorded nothing.
    replays = f"SELECT count(), uniqExact(replay_id) FROM dead_letter_replays FINAL WHERE model = '{model}'"
    assert store.query_rows(replays) == [(5, 1)] and store.query_rows(count) == [(5,)]
    store.close()
