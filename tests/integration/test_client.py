"""The publisher client against the real broker: envelopes, partitions, flush on size, time and close."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest
from kafka import KafkaConsumer
from kafka.partitioner.default import murmur2

from tests.stack import free_port
from watchkeeper.admin import ensure_topics
from watchkeeper.client import Publisher
from watchkeeper.embedded import ensure_broker
from watchkeeper.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = Settings(broker_port=free_port(), data_dir=tmp_path_factory.mktemp("client") / "faust", partitions=3)
    proc = ensure_broker(settings)
    ensure_topics(settings)
    yield settings
    if proc is not None:
        proc.terminate()
        proc.wait(10)


def consume(settings: Settings, topic: str, expect: int, timeout: float = 20) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
        group_id=None,
    )
    out: list = []
    deadline = time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < deadline:
        out.extend(consumer)
    consumer.close()
    return out


def test_envelopes_land_on_the_partition_of_their_prediction_ids(broker: Settings) -> None:
    pub = Publisher(broker.kafka_bootstrap, predictions_topic="predictions", max_batch=50, linger=60)
    ids = [pub.prediction(model="m", prediction=0.5, prediction_id=f"id-{i}") for i in range(300)]
    pub.close()
    msgs = consume(broker, "predictions", expect=1)
    events = 0
    for m in msgs:
        doc = orjson.loads(m.value)
        assert len(doc["events"]) <= 50
        for e in doc["events"]:
            assert (murmur2(e["prediction_id"].encode()) & 0x7FFFFFFF) % 3 == m.partition
        events += len(doc["events"])
    assert events == len(ids) == 300
    assert len(msgs) < 300  # batched, not one message per event


def test_flush_on_time_without_close(broker: Settings) -> None:
    pub = Publisher(broker.kafka_bootstrap, outcomes_topic="outcomes", linger=0.2)
    pub.outcome(model="m", prediction_id="late-1", outcome=1)
    msgs = consume(broker, "outcomes", expect=1, timeout=10)
    assert [orjson.loads(m.value)["events"][0]["prediction_id"] for m in msgs] == ["late-1"]
    pub.close()
    with pytest.raises(RuntimeError):
        pub.outcome(model="m", prediction_id="x", outcome=0)
