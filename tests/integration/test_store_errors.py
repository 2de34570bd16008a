"""What a refused insert does to its batch: only the store's data and parse errors dead-letter it; every other
error (access denied, an unknown table, memory, a truncated body, a code nobody listed) is an outage, retried
with the batch unacked until it lands once, counted on /metrics.

Faults are injected at the driver boundary (clickhouse-connect's HTTP client answers with the server's error
text), so the store client's own classification runs as it would against a server.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from clickhouse_connect.driver.httpclient import HttpClient

from watchkeeper.sinks.writer import DATA_CODES, bad_data
from watchkeeper.streams.events import Prediction
from watchkeeper.streams.ingest import SourceMessage
from watchkeeper.streams.metrics_export import WorkerCollector
from watchkeeper.streams.service import Worker

pytestmark = pytest.mark.integration

_offsets = itertools.count(1_000_000)


class DeadLetterTopic:
    """Stands in for the Faust topic the worker sends dead-letter records to."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, *, value: bytes) -> None:
        self.sent.append(value)


def server_error(code: int, name: str) -> DatabaseError:
    """The exception clickhouse-connect raises when the server answers with an error."""
    return DatabaseError(
        f"HTTPDriver for http://127.0.0.1:8123 received ClickHouse error code {code}\n"
        f" Code: {code}. DB::Exception: injected by the test. ({name}) (version 26.3.1.1)"
    )


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """``faults["predictions"] = (code, name, times)``: the next ``times`` inserts into that table fail so."""
    plan: dict[str, Any] = {}
    real = HttpClient.raw_insert

    def raw_insert(self: HttpClient, table: str | None = None, *args: Any, **kwargs: Any) -> Any:
        short = (table or "").rsplit(".", 1)[-1]
        if short in plan and plan[short][2] > 0:
            code, name, times = plan[short]
            plan[short] = (code, name, times - 1)
            raise server_error(code, name)
        return real(self, table, *args, **kwargs)

    monkeypatch.setattr(HttpClient, "raw_insert", raw_insert)
    yield plan


def messages_for(model: str, n: int = 5) -> list[SourceMessage]:
    now = time.time()
    return [
        SourceMessage(
            "predictions",
            0,
            next(_offsets),
            orjson.dumps({"prediction_id": f"{model}-{i}", "model": model, "prediction": 0.5, "ts": now}),
            None,
        )
        for i in range(n)
    ]


def flush(worker: Worker, messages: list[SourceMessage], topic: DeadLetterTopic) -> None:
    asyncio.run(worker.flush(messages, worker.build_batch(messages, Prediction), topic))


def counts(worker: Worker, model: str) -> tuple[int, int]:
    (rows,) = worker.store.query_rows(
        "SELECT (SELECT count() FROM predictions WHERE model = {m:String}), "
        "(SELECT count() FROM dead_letters FINAL WHERE positionCaseInsensitive(payload, {m:String}) > 0)",
        {"m": model},
    )
    return int(rows[0]), int(rows[1])


def test_the_data_codes_are_named_as_clickhouse_names_them(worker: Worker) -> None:
    """The allow-list cites ClickHouse's codes: the engine's own errorCodeToName agrees with every name."""
    codes = sorted(DATA_CODES)
    names = worker.store.query_rows("SELECT arrayMap(c -> errorCodeToName(c), {codes:Array(Int32)})", {"codes": codes})
    assert dict(zip(codes, names[0][0], strict=True)) == dict(DATA_CODES)


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (497, "ACCESS_DENIED"),
        (60, "UNKNOWN_TABLE"),
        (241, "MEMORY_LIMIT_EXCEEDED"),
        (32, "ATTEMPT_TO_READ_AFTER_EOF"),
        (1002, "UNKNOWN_EXCEPTION"),
    ],
)
def test_an_outage_is_retried_and_the_batch_lands_once(
    worker: Worker, faults: dict[str, Any], code: int, name: str
) -> None:
    model = f"outage_{code}"
    faults["predictions"] = (code, name, 2)
    topic = DeadLetterTopic()
    before = dict(worker.store_errors)
    flush(worker, messages_for(model), topic)
    assert counts(worker, model) == (5, 0) and topic.sent == []
    assert faults["predictions"][2] == 0, "the fault was not met"
    assert worker.store_errors["outage"] - before["outage"] == 2
    assert worker.store_errors["refused"] == before["refused"]
    exported = {
        sample.labels["kind"]: sample.value
        for family in WorkerCollector(worker).collect()
        if family.name == "watchkeeper_store_write_errors"
        for sample in family.samples
    }
    assert exported["outage"] == worker.store_errors["outage"]


def test_a_data_error_dead_letters_the_batch_with_its_bytes(worker: Worker, faults: dict[str, Any]) -> None:
    model = "refused_data"
    faults["predictions"] = (27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED", 1)
    topic = DeadLetterTopic()
    messages = messages_for(model)
    before = dict(worker.store_errors)
    flush(worker, messages, topic)
    assert counts(worker, model) == (0, 5) and len(topic.sent) == 5
    rows = worker.store.query_rows(
        "SELECT payload, error FROM dead_letters FINAL WHERE positionCaseInsensitive(payload, {m:String}) > 0 "
        "ORDER BY offset",
        {"m": model},
    )
    assert [r[0].encode() for r in rows] == [m.value for m in messages]
    assert all("CANNOT_PARSE_INPUT_ASSERTION_FAILED" in r[1] for r in rows)
    assert worker.store_errors["refused"] - before["refused"] == 1
    assert worker.store_errors["outage"] == before["outage"]


def test_bad_data_is_an_allow_list() -> None:
    assert bad_data(server_error(53, "TYPE_MISMATCH"))
    for code, name in ((497, "ACCESS_DENIED"), (16, "NO_SUCH_COLUMN_IN_TABLE"), (4242, "SOMETHING_NEW")):
        assert not bad_data(server_error(code, name))
    assert not bad_data(DatabaseError("no code at all"))
