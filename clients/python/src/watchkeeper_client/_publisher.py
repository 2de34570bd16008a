"""The publisher: a bounded buffer on the caller's side, a sender thread on the other.

The caller's thread only builds the event, encodes it (orjson) and appends it to
a bounded buffer under a lock; nothing on that path touches the network. A
background sender thread connects (lazily, with backoff), groups events into
envelopes ``{"events": [...]}`` per topic, partition and header set, and hands
them to a kafka-python producer. The partition of an envelope is the one Kafka's
default partitioner gives its events' ``prediction_id`` (murmur2 of the key,
positive, modulo the partition count), so an envelope lands exactly where its
events would have, one by one — the worker's join on ``prediction_id`` relies
on it.

When Kafka is down or slower than the caller, the buffer fills and the oldest
events are dropped and counted (``stats()["dropped"]``, and a log line at most
once a minute). ``when_full="block"`` makes the caller wait for room instead:
for bulk loading (files, replays), never for a serving path.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from watchkeeper_client._contract import (
    ENVELOPE_OVERHEAD,
    MAX_FEATURES,
    MAX_MESSAGE_BYTES,
    MAX_NAME,
    RAW_TTL_DAYS,
    Contract,
    InvalidEvent,
    number_or_text,
)
from watchkeeper_client._encode import encode, features_dict, header_pairs, label

log = logging.getLogger("watchkeeper_client")

Headers = Mapping[str, Any] | Sequence[tuple[str, Any]]
# One buffered item: (topic, key, payload, headers, raw). ``raw`` items are sent as they are.
Item = tuple[str, bytes, bytes, tuple[tuple[str, bytes], ...], bool]
# Events of one drain to be sent in envelopes: (topic, partition, headers) -> [(key, payload), ...].
Groups = dict[tuple[str, int, tuple[tuple[str, bytes], ...]], list[tuple[bytes, bytes]]]

LOG_EVERY = 60.0  # seconds between two log lines about drops or errors
MAX_BACKOFF = 10.0
DRAIN_CHUNK = 5000  # items taken from the buffer per sender round

# Producers of a parent process, kept referenced in a forked child so that
# garbage collection never runs their close() against the parent's sockets.
_orphans: list[Any] = []
_live: weakref.WeakSet[Publisher] = weakref.WeakSet()
_ids = itertools.count(1)


def _after_fork_in_child() -> None:
    for pub in list(_live):
        pub._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _QuietKafka(logging.Filter):
    """Drops kafka-python's records from this client's threads (one connection error a second while
    the broker is down); the client's own rate-limited line reports them instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName or "").startswith("watchkeeper-client")


_QUIET = _QuietKafka()


def _quiet_kafka_loggers() -> None:
    # Logger filters are not inherited, so each kafka.* logger gets one (idempotent).
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("kafka") and isinstance(logger, logging.Logger) and _QUIET not in logger.filters:
            logger.addFilter(_QUIET)


def _envelope(payloads: list[bytes]) -> bytes:
    return b'{"events":[' + b",".join(payloads) + b"]}"


class _FlushRequest:
    __slots__ = ("done", "deadline")

    def __init__(self, deadline: float | None) -> None:
        self.done = threading.Event()
        self.deadline = deadline


class Publisher:
    """Log prediction and outcome events to watchkeeper's Kafka topics without blocking the caller.

    Parameters
    ----------
    bootstrap_servers
        Kafka bootstrap servers, ``"host:port[,host:port]"``.
    predictions_topic, outcomes_topic
        Topic names (watchkeeper's defaults).
    capacity
        Events held in the buffer (and at most as many again in flight to the
        broker). When full, the oldest event is dropped (``when_full="drop_oldest"``)
        or the caller waits for room (``"block"``, for bulk loading only).
    max_batch, max_envelope_bytes
        Limits of one envelope (one Kafka message); the worker refuses messages
        above its ``max_message_bytes`` (8 MiB by default).
    linger
        Seconds an event may wait for others before its envelope is sent.
    headers
        Kafka headers added to every message (e.g. ``{"service": "fraud-api"}``).
        Per-call ``headers=`` are merged on top of them.
    feature_names
        Names for features passed as a sequence or array (default ``x0, x1, ...``).
    strict
        Raise on events the service would refuse (:class:`InvalidEvent`, a
        ``ValueError``), on values that cannot be encoded and on use after
        close, instead of counting them in ``stats()["rejected"]``. Off by
        default: a monitoring client must not break the service it monitors.
    raw_ttl_days, max_message_bytes
        The service's settings of the same names (defaults: the service's, 30
        days and 8 MiB): an event time older than the raw retention, or an event
        larger than the worker takes, is refused at the call.
    exit_timeout
        Seconds spent delivering buffered events when the interpreter exits.
    compression
        Kafka compression codec (``gzip`` needs nothing beyond the standard library).
    kafka_logs
        Keep kafka-python's own log records from this client's threads (off: while
        the broker is down they repeat every second; the client logs a summary
        at most once a minute instead).
    **producer_config
        Passed to :class:`kafka.KafkaProducer` (security options, ``acks``, ...).

    Examples
    --------
    No network I/O happens until there is something to send, so a client for an
    unreachable broker is cheap to make and never raises:

    >>> pub = Publisher("127.0.0.1:1", capacity=2)
    >>> pub.stats()["enqueued"], pub.stats()["connected"]
    (0, False)
    >>> pub.close(timeout=0)
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str] = "127.0.0.1:9092",
        *,
        predictions_topic: str = "predictions",
        outcomes_topic: str = "outcomes",
        capacity: int = 20_000,
        when_full: Literal["drop_oldest", "block"] = "drop_oldest",
        max_batch: int = 500,
        max_envelope_bytes: int = 1024 * 1024,
        linger: float = 0.2,
        headers: Headers | None = None,
        feature_names: Sequence[str] | None = None,
        strict: bool = False,
        raw_ttl_days: float = RAW_TTL_DAYS,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        exit_timeout: float = 5.0,
        compression: str | None = "gzip",
        kafka_logs: bool = False,
        **producer_config: Any,
    ) -> None:
        if capacity < 1 or max_batch < 1:
            raise ValueError("capacity and max_batch must be positive")
        if when_full not in ("drop_oldest", "block"):
            raise ValueError("when_full must be 'drop_oldest' or 'block'")
        self.topics = {"prediction": predictions_topic, "outcome": outcomes_topic}
        self.capacity = capacity
        self.max_batch = max_batch
        # An envelope never exceeds what the worker takes (it would refuse every event in it).
        self.max_envelope_bytes = min(max_envelope_bytes, max_message_bytes - ENVELOPE_OVERHEAD)
        self.linger = linger
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.strict = strict
        self.contract = Contract(raw_ttl_days, max_message_bytes)
        self.exit_timeout = exit_timeout
        self._block = when_full == "block"
        self._kafka_logs = kafka_logs
        self._headers = header_pairs(headers)
        # Metadata waits happen on the sender thread, but they must stay short so
        # that flush() and close() deadlines hold; the user may still override.
        self._producer_config: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "compression_type": compression,
            "linger_ms": 5,
            "max_request_size": max(16 * 1024 * 1024, 2 * max_envelope_bytes),
            "max_block_ms": 1000,
            "bootstrap_timeout_ms": 2000,
            # Names kafka-python's network thread "watchkeeper-client-...", which the log filter knows.
            "client_id": f"watchkeeper-client-{next(_ids)}",
            **producer_config,
        }
        self._closed = False
        self._init_state()
        _live.add(self)

    # State (made again in a forked child) -------------------------------------
    def _init_state(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # block mode: the caller waits for room
        self._acks = threading.Lock()  # counters updated from kafka-python's I/O thread
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._buf: deque[Item] = deque()
        self._flushes: list[_FlushRequest] = []
        self._thread: threading.Thread | None = None
        self._producer: Any = None
        self._close_deadline: float | None = None
        self._enqueued = self._dropped = self._rejected = 0
        self._rejected_reasons: dict[str, int] = {}
        self._sent = self._failed = self._messages = self._send_errors = self._in_flight = 0
        self._connects = self._connect_errors = 0
        self._last_error: str | None = None
        self._logged = (0, 0, 0, 0)
        self._last_log = -LOG_EVERY

    def _reset_after_fork(self) -> None:
        """In a forked child: forget the parent's buffer, thread and producer; start afresh on first use."""
        if self._producer is not None:
            _orphans.append(self._producer)
            unregister = getattr(self._producer, "_unregister_cleanup", None)
            if unregister is not None:  # its atexit close would act on the parent's sockets
                unregister()
        self._init_state()

    # Public API -------------------------------------------------------------
    def prediction(
        self,
        *,
        model: str,
        prediction: Any,
        prediction_id: Any = None,
        version: str | None = None,
        ts: float | datetime | str | None = None,
        features: Any = None,
        feature_names: Sequence[str] | None = None,
        scores: Mapping[str, Any] | None = None,
        latency_ms: float | None = None,
        fallback: bool | None = None,
        segments: Mapping[str, str] | None = None,
        baseline: Any = None,
        event_id: str | None = None,
        headers: Headers | None = None,
    ) -> str:
        """Log one prediction; returns its ``prediction_id`` (a new UUID when not given).

        ``features`` may be a mapping, a pandas Series, or a sequence / numpy
        array (named by ``feature_names``); values may be numpy or pandas scalars.
        An event the service would refuse is refused here (see :class:`Contract`):
        counted in ``stats()["rejected"]``, or raised as :class:`InvalidEvent` when strict.
        """
        pid = uuid.uuid4().hex if prediction_id is None else prediction_id
        c = self.contract
        try:
            # The contract's checks inline, cheapest first (the common case costs well under a microsecond).
            if type(pid) is not str:
                pid = str(pid)
            if not 0 < len(pid) <= MAX_NAME:
                c.ident("prediction_id", pid)
            if type(model) is not str or model not in c._models:
                c.model(model)
            value = prediction if type(prediction) is float else label(prediction)
            if type(value) is not float or not value - value == 0.0:
                number_or_text("prediction", value)
            event: dict[str, Any] = {"prediction_id": pid, "model": model, "prediction": value}
            if version is not None:
                if type(version) is not str or version not in c._versions:
                    c.version(version)
                event["version"] = version
            if ts is None:
                event["ts"] = time.time()
            else:
                c.ts(ts)
                event["ts"] = ts
            if features is not None:
                named: Any = (
                    features if type(features) is dict else features_dict(features, feature_names or self.feature_names)
                )
                event["features"] = named
                # The common case inline: numbers only, names seen before. Bools, ints and floats sum to a
                # float, finite unless one of them is not (or the sum overflows); None, text, lists or
                # numpy scalars fail the sum or give another type. Anything else: value by value.
                try:
                    total = sum(named.values(), 0.0)
                except Exception:
                    total = None
                if (
                    type(total) is not float
                    or not total - total == 0.0
                    or len(named) > MAX_FEATURES
                    or not c._feature_names.issuperset(named)
                ):
                    c.features(named)
            if scores is not None:
                c.scores(scores)
                event["scores"] = scores
            if latency_ms is not None:
                c.latency(latency_ms)
                event["latency_ms"] = latency_ms
            if fallback is not None:
                event["fallback"] = bool(fallback)
            if segments is not None:
                c.segments(segments)
                event["segments"] = segments
            if baseline is not None:
                event["baseline"] = base = label(baseline)
                number_or_text("baseline", base)
            if event_id is not None:
                c.ident("event_id", event_id)
                event["event_id"] = event_id
            payload = encode(event)
            if len(payload) > self.max_envelope_bytes:
                c.size(payload)
        except Exception as exc:
            self._reject(exc)
            return pid if type(pid) is str else ""
        self._put(self.topics["prediction"], pid.encode(), payload, headers, False)
        return pid

    def outcome(
        self,
        *,
        model: str,
        prediction_id: Any,
        outcome: Any,
        ts: float | datetime | str | None = None,
        event_id: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Log the true outcome of an earlier prediction (refused like a prediction when the service would)."""
        try:
            pid = prediction_id if type(prediction_id) is str else str(prediction_id)
            event: dict[str, Any] = {"prediction_id": pid, "model": model, "outcome": label(outcome)}
            event["ts"] = time.time() if ts is None else ts
            if event_id is not None:
                event["event_id"] = event_id
            self.contract.outcome(event, ts_checked=ts is None)
            payload = encode(event)
            if len(payload) > self.max_envelope_bytes:
                self.contract.size(payload)
        except Exception as exc:
            self._reject(exc)
            return
        self._put(self.topics["outcome"], pid.encode(), payload, headers, False)

    def send(self, kind: str, event: Mapping[str, Any], headers: Headers | None = None) -> None:
        """Queue an already-built event (``kind`` is ``"prediction"`` or ``"outcome"``), checked as the calls are."""
        try:
            if kind == "prediction":
                self.contract.prediction(event)
            else:
                self.contract.outcome(event)
            payload = encode(event)
            self.contract.size(payload)
        except Exception as exc:
            self._reject(exc)
            return
        self.send_raw(kind, payload, str(event.get("prediction_id", "")), headers)

    def send_raw(self, kind: str, event_json: bytes, prediction_id: str, headers: Headers | None = None) -> None:
        """Queue one event's JSON bytes as they are (no re-encoding, no checks: the fast path for files)."""
        self._put(self.topics[kind], prediction_id.encode(), event_json, headers, False)

    def send_message(self, kind: str, value: bytes, key: bytes | None = None, headers: Headers | None = None) -> None:
        """Queue one Kafka message sent as it is, outside any envelope (e.g. a line the worker must judge)."""
        self._put(self.topics[kind], key or b"", value, headers, True)

    def stats(self) -> dict[str, Any]:
        """Counters of this process's client.

        ``enqueued`` items accepted into the buffer; ``sent`` acknowledged by the
        broker (in ``messages`` Kafka messages); ``dropped`` evicted from a full
        buffer or left over at close; ``failed`` refused by the broker or timed
        out; ``rejected`` refused at the call, and ``rejected_reasons`` the same
        per reason: the field the service would have refused (``model``,
        ``features``, ``ts``, ...), ``size``, ``encoding`` (a value that cannot be
        encoded) or ``closed`` (offered after close); ``send_errors`` failed
        sends; ``buffered`` waiting in the buffer and ``in_flight`` handed to
        the producer but not yet acknowledged.
        """
        with self._lock:
            out: dict[str, Any] = {
                "enqueued": self._enqueued,
                "dropped": self._dropped,
                "rejected": self._rejected,
                "rejected_reasons": dict(self._rejected_reasons),
                "buffered": len(self._buf),
            }
        with self._acks:
            out.update(
                sent=self._sent,
                messages=self._messages,
                failed=self._failed,
                send_errors=self._send_errors,
                in_flight=self._in_flight,
            )
        out.update(
            capacity=self.capacity,
            connected=self._producer is not None,
            connects=self._connects,
            connect_errors=self._connect_errors,
            last_error=self._last_error,
        )
        return out

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Send what is buffered and wait (at most ``timeout`` seconds; None: no bound) for the broker.

        Returns True when everything enqueued before the call was acknowledged,
        with nothing dropped or failed meanwhile.
        """
        if self._pid != os.getpid():
            self._reset_after_fork()
        before = self._losses()
        deadline = None if timeout is None else time.monotonic() + timeout
        req = _FlushRequest(deadline)
        with self._lock:
            if not self._buf and self._thread is None:
                return True
            self._flushes.append(req)
        self._ensure_sender()
        self._wake.set()
        done = req.done.wait(timeout)
        return done and self._losses() == before

    def close(self, timeout: float | None = 10.0) -> None:
        """Deliver what is buffered (at most ``timeout`` seconds), then stop the sender.

        Events still buffered when the time is up are counted as dropped.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._room.notify_all()
            thread = self._thread
        _live.discard(self)
        if thread is None:
            return
        self._close_deadline = None if timeout is None else time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"<{type(self).__name__} {self._producer_config['bootstrap_servers']!r} "
            f"enqueued={s['enqueued']} sent={s['sent']} dropped={s['dropped']}>"
        )

    # Caller side ------------------------------------------------------------
    def _put(self, topic: str, key: bytes, payload: bytes, headers: Headers | None, raw: bool) -> None:
        if self._pid != os.getpid():  # forked without at-fork hooks (e.g. uwsgi without py-call-osafterfork)
            self._reset_after_fork()
        hdrs = self._headers if headers is None else self._headers + header_pairs(headers)
        with self._lock:
            if self._closed:
                self._count_rejected("closed")
                if self.strict:
                    raise RuntimeError("publisher is closed")
                return
            buf = self._buf
            if len(buf) >= self.capacity:
                if self._block:
                    self._wake.set()
                    while len(buf) >= self.capacity and not self._closed:
                        self._room.wait(0.5)
                    if self._closed:  # closed while waiting for room
                        self._count_rejected("closed")
                        if self.strict:
                            raise RuntimeError("publisher is closed")
                        return
                else:
                    buf.popleft()
                    self._dropped += 1
            buf.append((topic, key, payload, hdrs, raw))
            self._enqueued += 1
            n = len(buf)
            start = self._thread is None
        if start:
            self._ensure_sender()
        if n == self.max_batch or n >= self.capacity:
            self._wake.set()

    def _reject(self, exc: Exception) -> None:
        reason = exc.reason if isinstance(exc, InvalidEvent) else "encoding"
        with self._lock:
            self._count_rejected(reason)
        self._last_error = f"{type(exc).__name__}: {exc}"
        if self.strict:
            raise exc
        self._ensure_sender()  # its loop writes the (rate-limited) log line

    def _count_rejected(self, reason: str) -> None:
        """Count a refusal (the caller holds the lock)."""
        self._rejected += 1
        self._rejected_reasons[reason] = self._rejected_reasons.get(reason, 0) + 1

    def _ensure_sender(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="watchkeeper-client-sender", daemon=True)
        self._thread.start()

    def _losses(self) -> tuple[int, int]:
        with self._acks:
            failed = self._failed
        with self._lock:
            return self._dropped, failed

    # Sender side ------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.0
        while True:
            stopping = self._stop.is_set()
            if not stopping:
                self._wake.wait(backoff or self.linger)
                self._wake.clear()
                stopping = self._stop.is_set()
            self._maybe_log()
            if self._producer is None and not self._connect(stopping):
                backoff = min(MAX_BACKOFF, max(0.5, backoff * 2))
                if stopping:
                    break
                self._expire_flushes()
                continue
            backoff = 0.0
            with self._lock:
                flushes, self._flushes = self._flushes, []
                target = len(self._buf) if (flushes or stopping) else 0
            try:
                if target:
                    while target > 0 and self._drain(target, force=True):
                        target -= DRAIN_CHUNK
                else:
                    # Everything on waking (the linger is up or a batch is full), then more only
                    # while full batches wait: lone events left over go on the next round.
                    first = True
                    while (first and self._buf) or len(self._buf) >= self.max_batch:
                        first = False
                        if not self._drain(DRAIN_CHUNK, force=False):
                            backoff = 0.5
                            break
                if flushes or stopping:
                    self._flush_producer(flushes)
            except Exception as exc:  # never let the sender die: count, log, retry
                self._error(exc)
                backoff = 0.5
            if stopping:
                break
        self._finish()

    def _connect(self, stopping: bool) -> bool:
        if stopping and self._close_deadline is not None and time.monotonic() >= self._close_deadline:
            return False
        from kafka import KafkaProducer  # here, not at import: importing the client stays cheap

        if not self._kafka_logs:
            _quiet_kafka_loggers()
        try:
            self._producer = KafkaProducer(**self._producer_config)
        except Exception as exc:
            self._connect_errors += 1
            self._last_error = f"connect: {type(exc).__name__}: {exc}"
            return False
        self._connects += 1
        atexit.register(self._at_exit)  # after kafka-python's own hook, so it runs before it
        return True

    def _drain(self, limit: int, force: bool) -> bool:
        """Send up to ``limit`` buffered items; False when nothing could be sent (come back later)."""
        if not force and self._in_flight >= self.capacity:
            return False  # the broker is slow: let the buffer fill and drop its oldest
        with self._lock:
            n = min(limit, DRAIN_CHUNK, len(self._buf))
            items = [self._buf.popleft() for _ in range(n)]
            if self._block:
                self._room.notify_all()
        if not items:
            return False
        producer = self._producer
        counts: dict[str, int] = {}
        for topic in {it[0] for it in items}:
            try:
                counts[topic] = len(producer.partitions_for(topic) or ()) or 1
            except Exception as exc:
                self._error(exc, metadata=topic)
        if len(counts) < len({it[0] for it in items}):
            self._push_back([it for it in items if it[0] not in counts])
            items = [it for it in items if it[0] in counts]
        from kafka.partitioner.default import murmur2

        groups: Groups = {}
        for topic, key, payload, hdrs, raw in items:
            if raw:
                # After the envelopes of the events queued before it: sent ahead of them, a message queued
                # later took a lower offset than they did in its partition (a keyless one may land on any),
                # and the worker, which places a bad message among the messages of a window by its offset,
                # counted a dead letter published after a window's events in that window's rate.
                self._send_envelopes(groups)
                groups = {}
                self._send(topic, None, key or None, payload, hdrs, 1)
                continue
            # Kafka's default partitioner, so the envelope lands where its events would have.
            part = (murmur2(key) & 0x7FFFFFFF) % counts[topic]
            groups.setdefault((topic, part, hdrs), []).append((key, payload))
        self._send_envelopes(groups)
        return bool(items)

    def _send_envelopes(self, groups: Groups) -> None:
        """Send each group's events in envelopes within ``max_batch`` and ``max_envelope_bytes``, in order."""
        for (topic, part, hdrs), events in groups.items():
            batch: list[bytes] = []
            size = 0
            first = events[0][0]
            for key, payload in events:
                if batch and (len(batch) >= self.max_batch or size + len(payload) + 1 > self.max_envelope_bytes):
                    self._send(topic, part, first, _envelope(batch), hdrs, len(batch))
                    batch, size, first = [], 0, key
                batch.append(payload)
                size += len(payload) + 1
            self._send(topic, part, first, _envelope(batch), hdrs, len(batch))

    def _send(
        self, topic: str, part: int | None, key: bytes | None, value: bytes, hdrs: tuple[Any, ...], n: int
    ) -> None:
        with self._acks:
            self._in_flight += n
        try:
            future = self._producer.send(topic, value=value, key=key, partition=part, headers=list(hdrs) or None)
        except Exception as exc:
            self._on_error(n, exc)
            return
        future.add_callback(self._on_sent, n)
        future.add_errback(self._on_error, n)

    def _on_sent(self, n: int, _metadata: Any) -> None:
        with self._acks:
            self._in_flight -= n
            self._sent += n
            self._messages += 1

    def _on_error(self, n: int, exc: BaseException) -> None:
        with self._acks:
            self._in_flight -= n
            self._failed += n
            self._send_errors += 1
        self._last_error = f"send: {type(exc).__name__}: {exc}"

    def _error(self, exc: BaseException, metadata: str | None = None) -> None:
        with self._acks:
            self._send_errors += 1
        where = f"metadata of {metadata!r}" if metadata else "sender"
        self._last_error = f"{where}: {type(exc).__name__}: {exc}"

    def _push_back(self, items: list[Item]) -> None:
        """Return items to the front of the buffer; in drop mode the oldest that no longer fit are dropped."""
        with self._lock:
            keep = items if self._block else items[max(0, len(items) - (self.capacity - len(self._buf))) :]
            self._dropped += len(items) - len(keep)
            self._buf.extendleft(reversed(keep))

    def _flush_producer(self, flushes: list[_FlushRequest]) -> None:
        """Wait for the producer's acknowledgements, in short steps so that deadlines hold."""
        from kafka.errors import KafkaTimeoutError

        while True:
            now = time.monotonic()
            flushes = [f for f in flushes if f.deadline is None or f.deadline > now]
            deadlines = [f.deadline for f in flushes]
            if self._stop.is_set():
                deadlines.append(self._close_deadline)
            if not deadlines:
                return
            step = 0.5 if None in deadlines else min(0.5, max(0.0, max(d for d in deadlines if d) - now))
            try:
                self._producer.flush(step)
            except KafkaTimeoutError:
                if step == 0.0:
                    return
                continue
            for f in flushes:
                f.done.set()
            return

    def _expire_flushes(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._flushes = [f for f in self._flushes if f.deadline is None or f.deadline > now]

    def _finish(self) -> None:
        """The sender's last act: count what is left as dropped, close the producer within the deadline."""
        with self._lock:
            self._dropped += len(self._buf)
            self._buf.clear()
            for f in self._flushes:
                f.done.set()
            self._flushes = []
        producer = self._producer
        if producer is not None:
            left = None if self._close_deadline is None else max(0.0, self._close_deadline - time.monotonic())
            try:
                producer.close(timeout=left)
            except Exception as exc:
                self._error(exc)
            atexit.unregister(self._at_exit)
        self._maybe_log(force=True)

    def _at_exit(self) -> None:
        self.close(self.exit_timeout)

    def _maybe_log(self, force: bool = False) -> None:
        """One log line per minute at most, about what was dropped, failed or rejected since the last one."""
        now = time.monotonic()
        if now - self._last_log < LOG_EVERY and not force:
            return
        with self._lock:
            counts = (self._dropped, 0, self._rejected, 0)
        with self._acks:
            counts = (counts[0], self._failed, counts[2], self._send_errors)
        if counts == self._logged:
            return
        d = [a - b for a, b in zip(counts, self._logged, strict=True)]
        self._logged, self._last_log = counts, now
        log.warning(
            "watchkeeper client: %d events dropped (buffer full: Kafka unreachable or slow), %d failed, "
            "%d rejected, %d send errors since the last report; last error: %s",
            d[0],
            d[1],
            d[2],
            d[3],
            self._last_error,
        )
