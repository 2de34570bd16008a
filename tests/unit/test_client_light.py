"""The light client (clients/python, ``watchkeeper_client``) without a broker.

A fake producer stands in for kafka-python where envelopes are inspected; an
unreachable broker (a closed localhost port) is real. No assertion is on time:
"returns promptly" is shown by counts taken while the broker is unreachable.
"""

from __future__ import annotations

import asyncio
import doctest
import logging
import os
import socket
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import watchkeeper_client
from kafka.partitioner.default import murmur2
from watchkeeper_client import AsyncPublisher, Publisher, _aio, _encode, _publisher

from watchkeeper.client import Publisher as ServicePublisher
from watchkeeper.streams.decode import decode_message
from watchkeeper.streams.events import Outcome, Prediction

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "clients" / "python"


def closed_port() -> str:
    """A localhost address nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


class _Future:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def add_callback(self, fn: Any, *args: Any) -> None:
        if self.error is None:
            fn(*args, None)

    def add_errback(self, fn: Any, *args: Any) -> None:
        if self.error is not None:
            fn(*args, self.error)


class FakeProducer:
    """What the sender needs of kafka-python's producer; records what it is given."""

    def __init__(self, partitions: int = 3, error: Exception | None = None) -> None:
        self.partitions, self.error = partitions, error
        self.sent: list[dict[str, Any]] = []
        self.closed = False

    def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def send(self, topic: str, value: bytes, key: bytes | None, partition: int | None, headers: Any) -> _Future:
        self.sent.append({"topic": topic, "value": value, "key": key, "partition": partition, "headers": headers})
        return _Future(self.error)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        self.closed = True

    def events(self, topic: str = "predictions") -> list[dict[str, Any]]:
        return [e for m in self.sent if m["topic"] == topic for e in orjson.loads(m["value"])["events"]]


def with_fake(pub: Publisher, producer: FakeProducer) -> Publisher:
    def connect(stopping: bool) -> bool:
        pub._producer = producer
        return True

    pub._connect = connect  # type: ignore[method-assign]
    return pub


# Values as models and data frames hand them out --------------------------------------
def test_numpy_and_pandas_values_become_valid_events() -> None:
    # Recent times (the service refuses those older than its raw retention), to the second.
    when = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    fake = FakeProducer()
    pub = with_fake(Publisher("unused:9092"), fake)
    pub.prediction(model="m", prediction=np.float64(0.75), prediction_id=np.int64(7), features={"x": np.float64(1.5)})
    pub.prediction(model="m", prediction=np.int64(1), prediction_id="b", features={"n": np.int64(3), "f": np.bool_(1)})
    pub.prediction(
        model="m", prediction=np.bool_(True), prediction_id="c", features=np.array([1.0, 2.0, 3.0]), feature_names="abc"
    )
    pub.prediction(
        model="m",
        prediction="spam",
        prediction_id="d",
        features=pd.Series({"age": np.int64(40), "city": "Oslo", "gap": pd.NA}),
        ts=when,
        scores={"spam": np.float32(0.5), "ham": np.float64(0.5)},
        latency_ms=np.float64(3.5),
        fallback=np.bool_(False),
        baseline=np.bool_(False),
    )
    pub.prediction(model="m", prediction=0.1, prediction_id="e", features=np.arange(4).reshape(1, 4)[:, ::2])
    pub.outcome(model="m", prediction_id=np.int64(7), outcome=np.bool_(True), ts=np.datetime64(text[:16]))
    assert pub.flush(5)
    pub.close(5)

    preds = sorted(fake.events("predictions"), key=lambda e: e["prediction_id"])
    assert [p["prediction_id"] for p in preds] == ["7", "b", "c", "d", "e"]
    assert preds[0]["prediction"] == 0.75 and preds[0]["features"] == {"x": 1.5}
    assert preds[1]["features"] == {"n": 3, "f": True}
    assert preds[2]["prediction"] == 1 and preds[2]["features"] == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert preds[3]["features"] == {"age": 40, "city": "Oslo", "gap": None}
    assert preds[3]["ts"].startswith(text) and preds[3]["baseline"] == 0
    assert preds[4]["features"] == {"x0": 0, "x1": 2}
    assert fake.events("outcomes") == [
        {"prediction_id": "7", "model": "m", "outcome": 1, "ts": f"{text}+00:00"}
    ]
    # The worker's own decoder accepts every one of them.
    for msg in fake.sent:
        kind = Prediction if msg["topic"] == "predictions" else Outcome
        good, bad = decode_message(msg["value"], kind)
        assert bad == [] and good
    assert pub.stats()["rejected"] == 0


def test_what_cannot_be_encoded_is_counted_not_raised() -> None:
    pub = Publisher(closed_port())
    # Valid by the contract, but beyond what JSON numbers carry here (orjson: 64-bit integers).
    pid = pub.prediction(model="m", prediction=0.5, features={"x": 2**70})
    assert isinstance(pid, str)
    s = pub.stats()
    assert (s["rejected"], s["enqueued"], s["rejected_reasons"]) == (1, 0, {"encoding": 1})
    assert "TypeError" in s["last_error"]
    strict = Publisher(closed_port(), strict=True)
    with pytest.raises(TypeError):
        strict.prediction(model="m", prediction=0.5, features={"x": 2**70})
    with pytest.raises(ValueError, match="feature names"):
        strict.prediction(model="m", prediction=0.5, features=[1.0, 2.0], feature_names=["only"])
    pub.close(0)
    strict.close(0)


# Wire format: envelopes, partitions, limits, headers ----------------------------------
def test_envelopes_hold_the_events_of_one_partition_within_the_limits() -> None:
    fake = FakeProducer(partitions=4)
    pub = with_fake(Publisher("unused:9092", max_batch=20, max_envelope_bytes=2000, linger=60), fake)
    for i in range(500):
        pub.prediction(model="m", prediction=0.5, prediction_id=f"id-{i}", features={"pad": "x" * (i % 50)})
    assert pub.flush(5)
    pub.close(5)
    events = 0
    for msg in fake.sent:
        batch = orjson.loads(msg["value"])["events"]
        assert 1 <= len(batch) <= 20
        assert len(msg["value"]) <= 2000 + 20  # the envelope's own brackets
        assert msg["key"] == batch[0]["prediction_id"].encode()
        for e in batch:
            assert (murmur2(e["prediction_id"].encode()) & 0x7FFFFFFF) % 4 == msg["partition"]
        events += len(batch)
    assert events == 500
    s = pub.stats()
    assert (s["sent"], s["messages"], s["dropped"], s["failed"]) == (500, len(fake.sent), 0, 0)


def test_headers_per_client_and_per_call_split_envelopes() -> None:
    fake = FakeProducer(partitions=1)
    pub = with_fake(Publisher("unused:9092", headers={"service": "api"}, linger=60), fake)
    pub.prediction(model="m", prediction=1, prediction_id="a")
    pub.prediction(model="m", prediction=1, prediction_id="b", headers={"traceparent": "00-abc-01"})
    pub.prediction(model="m", prediction=1, prediction_id="c", headers=[("traceparent", b"00-abc-01")])
    pub.prediction(model="m", prediction=1, prediction_id="d")
    pub.send_message("prediction", b"not json", key=b"k", headers={"why": "judge me"})
    assert pub.flush(5)
    pub.close(5)
    by_headers = {tuple(m["headers"] or ()): m for m in fake.sent}
    plain = by_headers[(("service", b"api"),)]
    traced = by_headers[(("service", b"api"), ("traceparent", b"00-abc-01"))]
    raw = by_headers[(("service", b"api"), ("why", b"judge me"))]
    assert [e["prediction_id"] for e in orjson.loads(plain["value"])["events"]] == ["a", "d"]
    assert [e["prediction_id"] for e in orjson.loads(traced["value"])["events"]] == ["b", "c"]
    assert (raw["value"], raw["key"], raw["partition"]) == (b"not json", b"k", None)


def test_a_message_sent_as_it_is_keeps_its_place_among_the_events_in_its_partition() -> None:
    """A line the worker must judge, published after some events and before others, lands between them.

    Sent ahead of the envelopes of the events queued before it, it took a lower offset than they did, and the
    worker (which counts a dead letter in the ``dead_letter_rate`` of the windows whose messages surround
    it) counted a bad line published after a window's events in that window, or not, as the sender's rounds
    fell: the same file published twice gave two rates."""
    fake = FakeProducer(partitions=1)
    pub = with_fake(Publisher("unused:9092", linger=60), fake)  # one sender round: all of it at the flush
    pub.prediction(model="m", prediction=0.5, prediction_id="before-1")
    pub.outcome(model="m", prediction_id="before-1", outcome=1)
    pub.prediction(model="m", prediction=0.5, prediction_id="before-2")
    pub.send_message("prediction", b'{"model": "m", "prediction": NaN}')  # keyless: any partition
    pub.prediction(model="m", prediction=0.5, prediction_id="after")
    assert pub.flush(5)
    pub.close(5)
    order = [
        [e["prediction_id"] for e in orjson.loads(m["value"])["events"]] if m["value"].startswith(b'{"events"')
        else m["value"]
        for m in fake.sent
        if m["topic"] == "predictions"
    ]  # fmt: skip
    assert order == [["before-1", "before-2"], b'{"model": "m", "prediction": NaN}', ["after"]]
    # The outcome queued before it went out before it too (another topic: the order of the stream kept).
    raw = [m["value"] for m in fake.sent].index(b'{"model": "m", "prediction": NaN}')
    assert [m["topic"] for m in fake.sent].index("outcomes") < raw


def test_send_failures_are_counted() -> None:
    fake = FakeProducer(error=RuntimeError("broker said no"))
    pub = with_fake(Publisher("unused:9092", linger=60), fake)
    for i in range(10):
        pub.prediction(model="m", prediction=0.5, prediction_id=str(i))
    assert pub.flush(5) is False  # acknowledged nothing
    s = pub.stats()
    assert s["failed"] == 10 and s["send_errors"] >= 1 and s["sent"] == 0
    assert "broker said no" in s["last_error"]
    pub.close(5)


# Never blocking the caller ------------------------------------------------------------
def test_the_constructor_does_no_network_io(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("network I/O in the constructor")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    threads = threading.active_count()
    pub = Publisher(closed_port())
    assert threading.active_count() == threads  # not even a thread until there is something to send
    assert pub.stats()["connected"] is False
    pub.close(0)


def test_broker_down_ten_thousand_calls_drop_the_oldest_and_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="watchkeeper_client")
    pub = Publisher(closed_port(), capacity=1000)
    ids = [pub.prediction(model="m", prediction=np.float64(i), prediction_id=f"p{i}") for i in range(10_000)]
    s = pub.stats()
    # All 10,000 calls returned while the broker was unreachable, and none was sent.
    assert len(ids) == 10_000 and s["connected"] is False and s["sent"] == 0
    assert s["enqueued"] == 10_000
    assert s["buffered"] == 1000 and s["dropped"] == s["enqueued"] - pub.capacity == 9000
    # The buffer holds the newest events: the oldest were dropped.
    assert orjson.loads(pub._buf[0][2])["prediction_id"] == "p9000"
    assert orjson.loads(pub._buf[-1][2])["prediction_id"] == "p9999"
    assert pub.flush(0.2) is False
    pub.close(0.2)
    pub._maybe_log(force=True)
    pub._maybe_log()  # nothing new since: no second line
    lines = [r.getMessage() for r in caplog.records if r.name == "watchkeeper_client"]
    assert lines and any("dropped" in line for line in lines)


def test_drop_lines_are_logged_at_most_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="watchkeeper_client")
    pub = Publisher(closed_port(), capacity=1)
    pub._thread = threading.current_thread()  # no sender: this test drives the logging by hand
    for _ in range(3):
        pub.prediction(model="m", prediction=1)
        pub._maybe_log()
    assert len([r for r in caplog.records if r.name == "watchkeeper_client"]) == 1
    assert "1 events dropped" in caplog.records[-1].getMessage()
    pub._closed = True


def test_block_mode_waits_for_room_and_never_drops() -> None:
    fake = FakeProducer()
    pub = with_fake(Publisher("unused:9092", capacity=10, when_full="block", linger=0.01), fake)
    for i in range(1000):
        pub.prediction(model="m", prediction=0.5, prediction_id=str(i))
    assert pub.flush(10)
    pub.close(10)
    s = pub.stats()
    assert (s["sent"], s["dropped"]) == (1000, 0)
    assert sorted(int(e["prediction_id"]) for e in fake.events()) == list(range(1000))


def test_close_is_bounded_and_counts_what_is_left() -> None:
    pub = Publisher(closed_port(), capacity=100)
    for i in range(50):
        pub.prediction(model="m", prediction=0.5, prediction_id=str(i))
    pub.close(timeout=0.5)
    assert pub.closed
    pub._thread.join(30)  # the sender ends on its own once its connection attempt gives up
    s = pub.stats()
    assert (s["dropped"], s["buffered"], s["sent"]) == (50, 0, 0)
    pub.prediction(model="m", prediction=0.5)  # after close: counted, not raised
    assert pub.stats()["rejected"] == 1


# Fork safety ---------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_its_own_sender_and_forgets_the_parents_buffer() -> None:
    pub = Publisher(closed_port(), capacity=100)
    for i in range(5):
        pub.prediction(model="m", prediction=0.5, prediction_id=f"parent-{i}")
    parent_thread = pub._thread
    assert parent_thread is not None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it sees, then leave without running the parent's exit hooks
        try:
            before = (pub._thread is None, pub.stats()["buffered"], pub.stats()["enqueued"])
            fake = FakeProducer()
            with_fake(pub, fake)
            pub.prediction(model="m", prediction=0.5, prediction_id="child-1")
            ok = pub.flush(10)
            after = (pub._thread is not None and pub._thread is not parent_thread, pub._thread.is_alive(), ok)
            os.write(write, orjson.dumps([before, after, [e["prediction_id"] for e in fake.events()]]))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        report = orjson.loads(fh.read())
    os.waitpid(pid, 0)
    assert report == [[True, 0, 0], [True, True, True], ["child-1"]]
    assert pub.stats()["buffered"] == 5  # the parent's own buffer is untouched
    pub.close(0)


def test_a_fork_without_at_fork_hooks_is_caught_by_the_pid_check() -> None:
    fake = FakeProducer()
    pub = with_fake(Publisher("unused:9092", linger=60), fake)
    pub.prediction(model="m", prediction=0.5, prediction_id="a")
    pub._pid = -1  # as if this process were a child forked by C code (e.g. uwsgi) without Python's hooks
    pub.prediction(model="m", prediction=0.5, prediction_id="b")
    assert pub._pid == os.getpid() and pub.stats()["enqueued"] == 1
    pub.close(5)


# asyncio --------------------------------------------------------------------------------
def test_async_publisher() -> None:
    fake = FakeProducer()

    async def main() -> dict[str, Any]:
        async with AsyncPublisher("unused:9092", linger=60) as wk:
            with_fake(wk.sync, fake)
            ids = [wk.prediction(model="m", prediction=np.float64(0.5)) for _ in range(100)]
            wk.outcome(model="m", prediction_id=ids[0], outcome=1)
            assert await wk.flush(5)
        assert wk.closed
        return wk.stats()

    s = asyncio.run(main())
    assert (s["sent"], s["dropped"]) == (101, 0)
    assert len(fake.events("predictions")) == 100
    with pytest.raises(ValueError):
        AsyncPublisher("unused:9092", when_full="block")


# The service's adapter -----------------------------------------------------------------
def test_the_service_publisher_blocks_and_raises_where_the_old_one_did() -> None:
    fake = FakeProducer()
    pub = with_fake(ServicePublisher("unused:9092", max_batch=7, linger=0.05, capacity=5), fake)
    for i in range(100):
        pub.send_raw("prediction", orjson.dumps({"prediction_id": str(i), "model": "m", "prediction": 1}), str(i))
    pub.send_message("prediction", b"garbage")
    pub.flush()
    assert (pub.sent_events, pub.stats()["dropped"]) == (101, 0)
    assert pub.sent_messages == len(fake.sent)
    with pytest.raises(ValueError, match="feature 'x'"):
        pub.prediction(model="m", prediction=0.5, features={"x": object()})
    pub.close()
    with pytest.raises(RuntimeError):
        pub.outcome(model="m", prediction_id="x", outcome=0)


# Packaging ------------------------------------------------------------------------------
def test_the_distribution_depends_on_kafka_python_and_orjson_only() -> None:
    meta = tomllib.loads((CLIENT / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "watchkeeper-client"
    names = sorted(d.split(">")[0].split("=")[0].split("<")[0].strip() for d in meta["project"]["dependencies"])
    assert names == ["kafka-python", "orjson"]
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert any(d.startswith("watchkeeper-client") for d in root["project"]["dependencies"])


def test_imports_and_publishes_with_only_kafka_and_orjson_on_the_path(tmp_path: Path) -> None:
    """A fresh interpreter (-I -S: no site-packages) sees the client, kafka and orjson, nothing else."""
    import kafka

    site = tmp_path / "site"
    site.mkdir()
    (site / "kafka").symlink_to(Path(kafka.__file__).parent)
    (site / "orjson").symlink_to(Path(orjson.__file__).parent)
    code = (
        "import sys\n"
        f"sys.path[:0] = [{str(CLIENT / 'src')!r}, {str(site)!r}]\n"
        "import watchkeeper_client\n"
        f"pub = watchkeeper_client.Publisher({closed_port()!r}, capacity=10)\n"
        "for i in range(100):\n"
        "    pub.prediction(model='m', prediction=0.5, features={'x': 1.0})\n"
        "pub.flush(0.5)\n"
        "pub.close(0.5)\n"
        "s = pub.stats()\n"
        "heavy = ('faust', 'chdb', 'pandas', 'pyarrow', 'river', 'pydantic', 'numpy', 'grafana_client',\n"
        "         'watchkeeper')\n"
        "print(s['enqueued'], s['dropped'] + s['buffered'], sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[0] == "100 100 []"


@pytest.mark.parametrize("module", [watchkeeper_client, _aio, _encode, _publisher])
def test_client_doctests(module: Any) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
