"""The publisher client: a model-serving process logs predictions and outcomes.

Events are batched into envelopes (``{"events": [...]}``) per partition, so that
one Kafka message carries up to ``max_batch`` events; the partition is the one
Kafka's default partitioner gives the event's ``prediction_id``, so an envelope
lands exactly where its events would have, one by one. Batches flush on size,
on time (``linger`` seconds, from a background thread) and on close.

Example (three lines in a serving process):

    from watchkeeper.client import Publisher
    wk = Publisher("127.0.0.1:9092")
    wk.prediction(model="fraud", prediction=0.93, prediction_id=req_id, features={"amount": 12.5})
    ...
    wk.outcome(model="fraud", prediction_id=req_id, outcome=1)   # later, when the truth is known
"""

from __future__ import annotations

import atexit
import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.partitioner.default import murmur2


def _ts(ts: float | datetime | str | None) -> float | str | None:
    if isinstance(ts, datetime):
        return ts.isoformat()
    return ts


class Publisher:
    """Batches prediction and outcome events into envelopes and sends them to Kafka."""

    def __init__(
        self,
        bootstrap_servers: str = "127.0.0.1:9092",
        *,
        predictions_topic: str = "predictions",
        outcomes_topic: str = "outcomes",
        max_batch: int = 500,
        linger: float = 0.2,
        compression: str | None = "gzip",
        **producer_config: Any,
    ) -> None:
        self.topics = {"prediction": predictions_topic, "outcome": outcomes_topic}
        self.max_batch = max_batch
        self.linger = linger
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            compression_type=compression,
            linger_ms=5,
            max_request_size=16 * 1024 * 1024,
            **producer_config,
        )
        self._partitions: dict[str, int] = {}
        self._buffers: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        self._keys: dict[tuple[str, int], bytes] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.sent_events = 0
        self.sent_messages = 0
        self._flusher = threading.Thread(target=self._flush_loop, name="watchkeeper-publisher", daemon=True)
        self._flusher.start()
        atexit.register(self.close)

    # Public API -------------------------------------------------------------
    def prediction(
        self,
        *,
        model: str,
        prediction: float | str,
        prediction_id: str | None = None,
        version: str | None = None,
        ts: float | datetime | str | None = None,
        features: dict[str, Any] | None = None,
        scores: dict[str, float] | None = None,
        latency_ms: float | None = None,
        fallback: bool | None = None,
        segments: dict[str, str] | None = None,
        baseline: float | str | None = None,
        event_id: str | None = None,
    ) -> str:
        """Log one prediction; returns its prediction_id (generated when not given)."""
        pid = prediction_id or uuid.uuid4().hex
        event: dict[str, Any] = {"prediction_id": pid, "model": model, "prediction": prediction}
        for name, value in (
            ("version", version),
            ("ts", _ts(ts if ts is not None else time.time())),
            ("features", features),
            ("scores", scores),
            ("latency_ms", latency_ms),
            ("fallback", fallback),
            ("segments", segments),
            ("baseline", baseline),
            ("event_id", event_id),
        ):
            if value is not None:
                event[name] = value
        self.send("prediction", event)
        return pid

    def outcome(
        self,
        *,
        model: str,
        prediction_id: str,
        outcome: float | str,
        ts: float | datetime | str | None = None,
        event_id: str | None = None,
    ) -> None:
        """Log the true outcome of an earlier prediction."""
        event: dict[str, Any] = {"prediction_id": prediction_id, "model": model, "outcome": outcome}
        event["ts"] = _ts(ts if ts is not None else time.time())
        if event_id is not None:
            event["event_id"] = event_id
        self.send("outcome", event)

    def send(self, kind: str, event: dict[str, Any]) -> None:
        """Queue an already-built event dict ("prediction" or "outcome")."""
        self.send_raw(kind, orjson.dumps(event), str(event.get("prediction_id", "")))

    def send_raw(self, kind: str, event_json: bytes, prediction_id: str) -> None:
        """Queue one event's JSON bytes (no re-encoding: the fast path for files)."""
        if self._closed.is_set():
            raise RuntimeError("publisher is closed")
        topic = self.topics[kind]
        key = prediction_id.encode()
        part = self._partition(topic, key)
        full = None
        with self._lock:
            buf = self._buffers[(topic, part)]
            if not buf:
                self._keys[(topic, part)] = key
            buf.append(event_json)
            if len(buf) >= self.max_batch:
                full = self._take(topic, part)
        if full:
            self._send_envelope(*full)

    def send_message(self, kind: str, value: bytes, key: bytes | None = None) -> None:
        """Send one message as it is (for raw lines a worker must judge, e.g. in ``publish``)."""
        self._producer.send(self.topics[kind], value=value, key=key)
        self.sent_messages += 1

    def flush(self) -> None:
        """Send everything buffered and wait for the broker to acknowledge it."""
        with self._lock:
            batches = [self._take(t, p) for (t, p), buf in list(self._buffers.items()) if buf]
        for b in batches:
            self._send_envelope(*b)
        self._producer.flush()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self.flush()
        self._closed.set()
        self._producer.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Internals --------------------------------------------------------------
    def _partition(self, topic: str, key: bytes) -> int:
        n = self._partitions.get(topic)
        if n is None:
            parts = self._producer.partitions_for(topic)
            n = len(parts) if parts else 1
            self._partitions[topic] = n
        # Kafka's default partitioner: murmur2 of the key, positive, modulo partitions.
        return (murmur2(key) & 0x7FFFFFFF) % n

    def _take(self, topic: str, part: int) -> tuple[str, int, bytes, list[bytes]]:
        events = self._buffers.pop((topic, part))
        return topic, part, self._keys.pop((topic, part)), events

    def _send_envelope(self, topic: str, part: int, key: bytes, events: list[bytes]) -> None:
        value = b'{"events":[' + b",".join(events) + b"]}"
        self._producer.send(topic, value=value, key=key, partition=part)
        self.sent_events += len(events)
        self.sent_messages += 1

    def _flush_loop(self) -> None:
        while not self._closed.wait(self.linger):
            with self._lock:
                batches = [self._take(t, p) for (t, p), buf in list(self._buffers.items()) if buf]
            for b in batches:
                try:
                    self._send_envelope(*b)
                except Exception:  # the next explicit flush/close reports it
                    pass
