"""The join stage's write side: decoded events become columnar rows in the store.

Predictions and outcomes are kept raw in ClickHouse and joined there (see
``streams/windows.py``): DESIGN.md measured Faust table writes at ~3k/s per
worker, so per-prediction pending state in Faust tables would cap the service.
The store holds the pending joins instead, so a restarted worker loses nothing
and a late label simply updates its window.

Rows are buffered per topic as Arrow record batches and written in one Arrow
insert per table and batch; the Kafka messages behind them are acked only after
the write succeeded, so no offset is committed past unwritten rows.

Decoding is columnar: the raw events of a run of messages (up to
``CHUNK_EVENTS``) are checked together by :func:`watchkeeper.streams.decode.fast_columns`;
a run it cannot vouch for is halved until the events it cannot vouch for are
isolated, and those go through the pydantic models one by one, which accept
them or give the reason for their dead letter.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from watchkeeper.sinks.schema import DEAD_LETTERS, OUTCOMES, PREDICTIONS
from watchkeeper.streams.decode import Rejected, fast_columns, model_columns, parse_message, validate_event
from watchkeeper.streams.events import MAX_FUTURE_SECONDS, Outcome, Prediction

log = logging.getLogger(__name__)

# Raw events decoded together; envelopes of the usual 500 events are decoded one or two at a time.
CHUNK_EVENTS = 512
# A run the fast check refuses is halved down to runs of this size, then validated event by event.
SMALL_RUN = 8
# Raw bytes of the messages behind one batch (one insert per table): bounds the worker's memory
# when a backlog of envelopes arrives, and keeps an insert to about a second of the store's work.
BATCH_BYTES = 4 * 1024 * 1024

# Allocations (net of frees) of container objects between two collections of the youngest GC generation
# (Python's default: 700). Decoding envelopes allocates and frees millions of acyclic objects (orjson's
# dicts and lists): at 700 the collector ran ~1,200 times per 300k events, seven of them full collections.
GC_YOUNG_THRESHOLD = 10_000

EXPIRED = "ts: older than the raw-data retention (raw_ttl_days)"
NO_TIME = "ts: missing and the message has no broker time"
# The raw tables' columns are defined once, in sinks/schema.py (the DDL comes from the same definition).
PREDICTION_SCHEMA = PREDICTIONS.arrow_schema()
OUTCOME_SCHEMA = OUTCOMES.arrow_schema()
PREDICTION_COLUMNS = PREDICTION_SCHEMA.names
OUTCOME_COLUMNS = OUTCOME_SCHEMA.names
DEAD_LETTER_COLUMNS = DEAD_LETTERS.column_names(insert=True)
_TS = PREDICTION_SCHEMA.field("ts").type
_TABLES: dict[type[Prediction] | type[Outcome], tuple[str, pa.Schema]] = {
    Prediction: (PREDICTIONS.name, PREDICTION_SCHEMA),
    Outcome: (OUTCOMES.name, OUTCOME_SCHEMA),
}


def collect_young_less_often() -> None:
    """Set the youngest GC generation's threshold to ``GC_YOUNG_THRESHOLD`` (the ingest agents do, and the
    benchmark's decode ceiling, as the worker's process set-up); the older generations keep theirs.

    >>> before = gc.get_threshold()
    >>> collect_young_less_often(); gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
    True
    >>> gc.set_threshold(*before)
    """
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


@dataclass(slots=True)
class SourceMessage:
    """Where a message came from; enough to dead-letter it and to derive tokens."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp: float | None = None  # broker time, seconds


def epoch_millis(ts: np.ndarray) -> np.ndarray:
    """Epoch seconds → epoch milliseconds as a ``datetime`` at microsecond precision gives them.

    ``datetime.fromtimestamp`` rounds the fraction of a second to microseconds
    (half to even), and DateTime64(3) keeps the whole milliseconds of that.

    >>> epoch_millis(np.array([1767323045.2505, 1767323045.0009996])).tolist()
    [1767323045250, 1767323045001]
    """
    whole = np.floor(ts)
    micros = np.round((ts - whole) * 1e6).astype(np.int64)
    return whole.astype(np.int64) * 1000 + micros // 1000


# Order of a message's dead letters: no event time at all, refused by the models, older than the retention.
MISSING, BAD, EXPIRED_TS = 0, 1, 2


class _Segment:
    """The raw events of one message, waiting to be decoded with those of its neighbours.

    One per message on the hot path: a plain slotted class (no list until something is rejected).
    """

    __slots__ = ("envelope", "items", "min_ts", "msg", "rejected")

    def __init__(self, msg: SourceMessage, items: list[Any], envelope: bool, min_ts: float) -> None:
        self.msg, self.items, self.envelope, self.min_ts = msg, items, envelope, min_ts
        self.rejected: list[tuple[int, Rejected]] | None = None

    def reject(self, order: int, rej: Rejected) -> None:
        if self.rejected is None:
            self.rejected = []
        self.rejected.append((order, rej))

    def rejections(self) -> list[Rejected]:
        """Its dead letters: by kind (``MISSING``, ``BAD``, ``EXPIRED_TS``), each kind in event order."""
        if not self.rejected:
            return []
        return [rej for _, rej in sorted(self.rejected, key=lambda r: r[0])]


class _Rows:
    """The rows of one raw table: Arrow record batches, plus raw events not decoded yet."""

    def __init__(self, kind: type[Prediction] | type[Outcome], fast: bool) -> None:
        self.kind = kind
        self.table, self.schema = _TABLES[kind]
        self.fast = fast
        self.batches: list[pa.RecordBatch] = []
        self.count = 0
        self.pending: list[_Segment] = []
        self.pending_events = 0

    def arrow(self) -> pa.Table:
        return pa.Table.from_batches(self.batches, self.schema)

    def decode(self, batch: Batch) -> None:
        """Decode the pending events into rows (and dead letters)."""
        segments, self.pending, self.pending_events = self.pending, [], 0
        if not segments:
            return
        items = [item for seg in segments for item in seg.items]
        sizes = np.array([len(seg.items) for seg in segments], dtype=np.int64)
        owner = np.repeat(np.arange(len(segments)), sizes)
        first = np.cumsum(sizes) - sizes  # index of each message's first event in ``items``
        self._decode_run(items, owner, first, segments, 0, len(items), time.time() + MAX_FUTURE_SECONDS)
        # Dead letters in the order the per-message decoder gave them.
        for seg in segments:
            for rej in seg.rejections():
                batch.add_dead_letter(seg.msg, rej)

    def _decode_run(
        self,
        items: list[Any],
        owner: np.ndarray,
        first: np.ndarray,
        segments: list[_Segment],
        lo: int,
        hi: int,
        max_ts: float,
    ) -> None:
        if self.fast:
            cols = fast_columns(items[lo:hi], self.kind, max_ts)
            if cols is not None:
                self._emit(cols, owner[lo:hi], segments, where=(items, first, range(lo, hi)))
                return
            if hi - lo > SMALL_RUN:
                mid = (lo + hi) // 2
                self._decode_run(items, owner, first, segments, lo, mid, max_ts)
                self._decode_run(items, owner, first, segments, mid, hi, max_ts)
                return
        good: list[Any] = []
        good_owner: list[int] = []
        good_at: list[int] = []  # each good event's place in ``items``
        for i in range(lo, hi):
            seg = segments[owner[i]]
            assert seg.msg.value is not None
            result = validate_event(items[i], self.kind, i - int(first[owner[i]]), seg.envelope, seg.msg.value)
            if isinstance(result, Rejected):
                seg.reject(BAD, result)
            else:
                good.append(result)
                good_owner.append(int(owner[i]))
                good_at.append(i)
        if good:
            where = (items, first, good_at)
            self._emit(model_columns(good, self.kind), np.array(good_owner), segments, where=where, models=good)

    def _emit(
        self,
        cols: dict[str, Any],
        owner: np.ndarray,
        segments: list[_Segment],
        *,
        where: tuple[list[Any], np.ndarray, Sequence[int]],
        models: list[Any] | None = None,
    ) -> None:
        """Append rows; events without a usable time become dead letters.

        ``where`` places each row's event: (the raw events, each message's first event in them, each row's
        event index); ``models`` are the rows' validated events where the slow path made them (the fast
        path's events passed the same checks, so their raw ``model`` is the validated name). Expired events
        are refused here, as a mask, on both paths: a backlog with old events decodes at full speed.
        """
        broker = np.array([np.nan if s.msg.timestamp is None else s.msg.timestamp for s in segments])[owner]
        min_ts = np.array([s.min_ts for s in segments])[owner]
        ts = cols["ts"]
        ts = np.where(np.isnan(ts), broker, ts)
        with np.errstate(invalid="ignore"):
            keep = ts >= min_ts  # False for NaN: no time at all
        if not keep.all():
            items, first, at = where
            for j in np.flatnonzero(~keep):
                seg = segments[owner[j]]
                model = models[j].model if models is not None else items[at[j]]["model"]
                # An envelope's event is refused alone, at its index, with its own bytes; a single event whole.
                index = at[j] - int(first[owner[j]]) if seg.envelope else -1
                payload = orjson.dumps(items[at[j]]) if seg.envelope else b""
                if np.isnan(ts[j]):
                    seg.reject(
                        MISSING, Rejected("ts: missing and the message has no broker time", payload, index, model)
                    )
                else:
                    # ClickHouse drops rows past their TTL as it writes them: refuse them visibly instead.
                    seg.reject(EXPIRED_TS, Rejected(EXPIRED, payload, index, model))
            if not keep.any():
                return
            cols = {k: (v[keep] if isinstance(v, np.ndarray) else v.filter(pa.array(keep))) for k, v in cols.items()}
            ts, owner = ts[keep], owner[keep]
        partition = np.array([s.msg.partition for s in segments], dtype=np.int32)[owner]
        offset = np.array([s.msg.offset for s in segments], dtype=np.int64)[owner]
        published = broker[keep] if not keep.all() else broker  # the message's broker time: the lag's start
        arrays = {
            **cols,
            "ts": pa.array(epoch_millis(ts), _TS),
            "published_at": pa.array(epoch_millis(np.nan_to_num(published)), _TS, mask=np.isnan(published)),
            "src_partition": partition,
            "src_offset": offset,
        }
        self.batches.append(pa.record_batch([arrays[name] for name in self.schema.names], schema=self.schema))
        self.count += len(ts)


class Batch:
    """Columnar rows accumulated from a run of Kafka messages.

    ``fast=False`` validates every event with the pydantic models (the reference
    the fast path is tested against).
    """

    def __init__(self, fast: bool = True) -> None:
        self.fast = fast
        self._rows = {kind: _Rows(kind, fast) for kind in (Prediction, Outcome)}
        self.dead_letters: dict[str, list[Any]] = {c: [] for c in DEAD_LETTER_COLUMNS}
        self.dead_letter_messages: list[bytes] = []
        self._sources: list[tuple[str, int, int]] = []  # (topic, partition, offset) of each message
        self.messages = 0
        # Events and dead letters taken so far: the size of the batch's inserts, near enough.
        self.rows = 0
        # Offsets alone are not an identity (a memory-only broker restarts them at 0): the
        # messages' bytes are hashed too, once, when a token is first asked for.
        self._identity: list[bytes] = []
        self._digest: str | None = None

    def mark(self, label: bytes) -> None:
        """Make the batch's tokens differ from those of a batch of the same messages without this label."""
        self._identity.append(label)
        self._digest = None

    def token(self, table: str) -> str:
        """A deduplication token from the source messages: a replay of the same batch inserts nothing."""
        if self._digest is None:
            digest = hashlib.blake2b(digest_size=16)
            for part in self._identity:
                digest.update(part)
            self._digest = digest.hexdigest()
        return f"{table}:{self._spans()}:{self._digest}"

    def _spans(self) -> str:
        """The offset range of each topic partition, e.g. ``predictions/0/10-42``."""
        ranges: dict[tuple[str, int], tuple[int, int]] = {}
        for topic, partition, offset in self._sources:
            lo, hi = ranges.get((topic, partition), (offset, offset))
            ranges[topic, partition] = (min(lo, offset), max(hi, offset))
        return ",".join(f"{t}/{p}/{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))

    def tables(self) -> dict[str, pa.Table]:
        """The rows of each raw table that has any, as Arrow tables (decodes what is pending)."""
        self.finish()
        return {r.table: r.arrow() for r in self._rows.values() if r.count}

    def count(self, table: str) -> int:
        self.finish()
        return next((r.count for r in self._rows.values() if r.table == table), len(self.dead_letters["ts"]))

    def finish(self) -> None:
        """Decode every pending event."""
        for r in self._rows.values():
            r.decode(self)

    # Adding messages ------------------------------------------------------
    def add(
        self, msg: SourceMessage, kind: type[Prediction] | type[Outcome], max_bytes: int, min_ts: float = 0.0
    ) -> None:
        """Take one message; events older than ``min_ts`` (the raw retention) become dead letters."""
        self.note(msg)
        items, envelope, rejected = parse_message(msg.value, max_bytes)
        if rejected is not None:
            self.add_dead_letter(msg, rejected)
            return
        rows = self._rows[kind]
        rows.pending.append(_Segment(msg, items, envelope, min_ts))
        rows.pending_events += len(items)
        self.rows += len(items)
        if rows.pending_events >= CHUNK_EVENTS:
            rows.decode(self)

    def note(self, msg: SourceMessage) -> None:
        """Count a message into the batch's identity (its offsets and digest, hence its tokens)."""
        self._sources.append((msg.topic, msg.partition, msg.offset))
        self.messages += 1
        self._identity += (f"{msg.topic}/{msg.partition}/{msg.offset}:".encode(), msg.value or b"")
        self._digest = None

    def add_dead_letter(self, msg: SourceMessage, rej: Rejected) -> None:
        self.rows += 1
        payload = rej.payload if rej.payload else (msg.value or b"")
        c = self.dead_letters
        c["ts"].append(datetime.now(UTC))
        c["topic"].append(msg.topic)
        c["partition"].append(msg.partition)
        c["offset"].append(msg.offset)
        c["event_index"].append(rej.index)
        c["model"].append(rej.model)
        c["error"].append(rej.reason)
        c["payload"].append(payload)
        self.dead_letter_messages.append(dead_letter_record(msg, rej, payload))


def dead_letter_record(msg: SourceMessage, rej: Rejected, payload: bytes) -> bytes:
    """The JSON published to the dead-letters topic (raw bytes base64-encoded)."""
    return orjson.dumps(
        {
            "error": rej.reason,
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "event_index": rej.index,
            "model": rej.model,
            "payload_base64": base64.b64encode(payload).decode(),
        }
    )
