"""The publisher clients against the real broker: envelopes, partitions, flush on size, time and close;
the light client's numpy values, headers, fork safety, asyncio variant and late broker."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafka.partitioner.default import murmur2

from tests.stack import free_port
from watchkeeper.admin import ensure_topics
from watchkeeper.client import AsyncPublisher, LightPublisher, Publisher
from watchkeeper.embedded import ensure_broker
from watchkeeper.settings import Settings
from watchkeeper.streams.decode import decode_message
from watchkeeper.streams.events import Prediction

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


def make_topic(settings: Settings, name: str, partitions: int = 3) -> str:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()
    return name


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


# The light client (watchkeeper_client) against the real broker -------------------------
def test_light_client_numpy_values_arrive_as_valid_events(broker: Settings) -> None:
    pub = LightPublisher(broker.kafka_bootstrap, predictions_topic=make_topic(broker, "np-preds"), linger=0.05)
    ids = [
        pub.prediction(
            model="m",
            prediction=np.float64(i / 10),
            prediction_id=np.int64(i),
            features=np.array([i, i * 2.0]),
            feature_names=["a", "b"],
            scores={"1": np.float32(0.25), "0": np.float64(0.75)},
            fallback=np.bool_(False),
        )
        for i in range(20)
    ]
    assert pub.flush(30)
    s = pub.stats()
    pub.close(10)
    assert (s["sent"], s["dropped"], s["failed"], s["rejected"]) == (20, 0, 0, 0)
    good = []
    for m in consume(broker, "np-preds", expect=1):
        events, bad = decode_message(m.value, Prediction)
        assert bad == []
        good.extend(events)
    assert sorted(e.prediction_id for e in good) == sorted(ids)
    assert {e.prediction_id: e.features["b"] for e in good}["3"] == 6.0


def test_light_client_headers_arrive(broker: Settings) -> None:
    pub = LightPublisher(
        broker.kafka_bootstrap, outcomes_topic=make_topic(broker, "hdr-outcomes"), headers={"service": "api"}
    )
    pub.outcome(model="m", prediction_id="h1", outcome=1, headers={"traceparent": "00-4bf92f-00f067-01"})
    pub.outcome(model="m", prediction_id="h2", outcome=0)
    assert pub.flush(30)
    pub.close(10)
    got = {}
    for m in consume(broker, "hdr-outcomes", expect=2):
        for e in orjson.loads(m.value)["events"]:
            got[e["prediction_id"]] = dict(m.headers)
    assert got == {
        "h1": {"service": b"api", "traceparent": b"00-4bf92f-00f067-01"},
        "h2": {"service": b"api"},
    }


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_light_client_in_a_forked_child_publishes_with_its_own_sender(broker: Settings) -> None:
    pub = LightPublisher(broker.kafka_bootstrap, predictions_topic=make_topic(broker, "fork-preds"), linger=0.05)
    pub.prediction(model="m", prediction=0.5, prediction_id="parent")
    assert pub.flush(30) and pub.stats()["connected"]
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fresh = pub.stats()["connected"] is False and pub._thread is None
            pub.prediction(model="m", prediction=0.5, prediction_id="child")
            code = 0 if fresh and pub.flush(30) and pub.stats()["sent"] == 1 else 2
            pub.close(10)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    pub.prediction(model="m", prediction=0.5, prediction_id="parent-after")
    assert pub.flush(30)  # the parent's producer still works after the child closed its own
    pub.close(10)
    ids = sorted(
        e["prediction_id"] for m in consume(broker, "fork-preds", expect=3) for e in orjson.loads(m.value)["events"]
    )
    assert ids == ["child", "parent", "parent-after"]


def test_async_light_client(broker: Settings) -> None:
    async def main() -> dict:
        async with AsyncPublisher(
            broker.kafka_bootstrap, predictions_topic=make_topic(broker, "async-preds"), linger=0.05
        ) as wk:
            for i in range(50):
                wk.prediction(model="m", prediction=np.float64(0.5), prediction_id=f"a{i}")
            assert await wk.flush(30)
            return wk.stats()

    s = asyncio.run(main())
    assert (s["sent"], s["dropped"]) == (50, 0)
    events = [e for m in consume(broker, "async-preds", expect=1) for e in orjson.loads(m.value)["events"]]
    assert len(events) == 50


def test_light_client_sends_what_was_buffered_while_the_broker_was_down() -> None:
    """Started against a broker that is not up yet: it connects with backoff once the broker comes."""
    settings = Settings(broker_port=free_port(), data_dir=Path(tempfile.mkdtemp()) / "faust", partitions=2)
    pub = LightPublisher(settings.kafka_bootstrap, capacity=100)
    for i in range(300):
        pub.prediction(model="m", prediction=0.5, prediction_id=f"late-{i}")
    s = pub.stats()
    assert (s["enqueued"], s["dropped"], s["connected"]) == (300, 200, False)
    proc = ensure_broker(settings)
    try:
        ensure_topics(settings)
        assert pub.flush(60)
        s = pub.stats()
        assert (s["sent"], s["dropped"]) == (100, 200)
        pub.close(10)
        events = [e for m in consume(settings, "predictions", expect=1) for e in orjson.loads(m.value)["events"]]
        assert sorted(e["prediction_id"] for e in events) == sorted(f"late-{i}" for i in range(200, 300))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
