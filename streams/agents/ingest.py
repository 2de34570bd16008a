"""Agents of the join stage: predictions and outcomes in, raw rows and dead letters out.

Messages are taken in batches without automatic acks; each batch is written to
the store and only then acked, so Faust never commits an offset past rows that
are not written. Writing overlaps the rest: while batches are written (in
threads, waiting on the store; two at a time), the next is taken and decoded;
messages are acked in the order they were taken.

Where a group of messages is decoded depends on their size. Single events
(small messages) are decoded on the event loop: the loop is busy with Faust's
per-message work, and a decoding thread only made the two take turns for the
GIL (measured: tens of thousands of thread switches per 20k messages, 10-15%
fewer messages per second). Envelopes are decoded in a thread: the loop has
little else to do, and keeps feeding Faust's buffers meanwhile (measured: about
15% more events per second than decoding them on the loop).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import deque
from typing import Any

import faust

from watchkeeper.sinks.writer import StoreUnavailable
from watchkeeper.streams.events import Outcome, Prediction
from watchkeeper.streams.ingest import BATCH_BYTES, Batch, SourceMessage, collect_young_less_often
from watchkeeper.streams.service import WRITERS, Worker
from watchkeeper.streams.take import take
from watchkeeper.streams.topics import Topics

log = logging.getLogger(__name__)
TAKE_MESSAGES = 2000
# Groups whose messages average at least this many bytes (envelopes, not single events) decode in a thread.
THREAD_DECODE_BYTES = 16 * 1024
# Takes decoded but not yet acked besides the newest: these are written while the next is taken and decoded.
MAX_IN_FLIGHT = WRITERS


def _source(event: Any) -> SourceMessage:
    m = event.message
    ts = m.timestamp if m.timestamp and m.timestamp > 0 else None
    return SourceMessage(m.topic, m.partition, m.offset, m.value, ts)


def waiting(app: Any, topic: str) -> int:
    """Messages of ``topic`` still in the broker, beyond what this worker has fetched, over the partitions
    assigned to it (0 when not known). Not the exported consumer lag: committed offsets trail by a commit
    interval (seconds), and what sits in the stream's buffer is a bounded few megabytes, not a backlog.

    >>> from types import SimpleNamespace as NS
    >>> from faust.types import TP
    >>> p0, p1, o0 = TP("p", 0), TP("p", 1), TP("o", 0)
    >>> consumer = NS(assignment=lambda: [p0, p1, o0], _read_offset={p0: 59}, _committed_offset={p1: 90},
    ...               highwater=lambda tp: 100)
    >>> waiting(NS(consumer=consumer), "p")  # 40 after the last fetched of p0, 10 after p1's commit
    50
    """
    try:
        consumer = app.consumer
        read, committed = consumer._read_offset, consumer._committed_offset  # Faust's own, per partition
        total = 0
        for tp in consumer.assignment():
            if tp.topic == topic:
                last = read.get(tp)
                fetched = max(last + 1 if last is not None else 0, committed.get(tp) or 0)
                total += max(0, (consumer.highwater(tp) or 0) - fetched)
        return total
    except Exception:  # not started, or rebalancing: nothing known to wait
        return 0


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("writing a batch failed; its messages are not acked", exc_info=task.exception())


class Ingest:
    """The join stage's agents: take, decode, write, then ack (see the module doc)."""

    def __init__(self, worker: Worker, topics: Topics, flush_interval: float) -> None:
        self.worker = worker
        self.topics = topics
        self.flush_interval = flush_interval

    def register(self, app: faust.App) -> None:
        """Declare the two agents on ``app`` (under the names they always had)."""

        async def ingest_predictions(stream: Any) -> None:
            await self.consume(stream, Prediction)

        async def ingest_outcomes(stream: Any) -> None:
            await self.consume(stream, Outcome)

        app.agent(self.topics.predictions, name=f"{__name__}.ingest_predictions")(ingest_predictions)
        app.agent(self.topics.outcomes, name=f"{__name__}.ingest_outcomes")(ingest_outcomes)

    async def _write_then_ack(
        self,
        stream: Any,
        events: list[Any],
        batches: list[tuple[list[SourceMessage], Batch]],
        previous: asyncio.Task[None] | None,
    ) -> None:
        """Write a take's batches at once (takes are written concurrently, on the worker's
        WRITERS connections), then ack its messages once the take before it is acked."""
        written = asyncio.ensure_future(self._write(batches))
        try:
            if previous is not None:
                await previous  # messages are acked in the order they were taken
        except BaseException:
            if not written.cancel():
                written.exception()  # already over: its outcome no longer matters, nothing after a failure is acked
            raise
        if await written:
            for event in events:
                await stream.ack(event)

    async def _write(self, batches: list[tuple[list[SourceMessage], Batch]]) -> bool:
        """Write batches in order; false if the store is unavailable while the worker stops (then nothing is acked:
        the messages are redelivered after the restart, and inserts are idempotent)."""
        for messages, batch in batches:
            try:
                await self.worker.flush(messages, batch, self.topics.dead_letters)
            except StoreUnavailable:
                if self.worker.should_stop():
                    return False
                raise
        return True

    async def consume(self, stream: Any, kind: type[Prediction] | type[Outcome]) -> None:
        # Everything allocated so far (modules, the app) lives as long as the worker: keep it out of
        # the cyclic collector, whose full passes over it cost ~0.1 s each under a heavy stream.
        gc.freeze()
        collect_young_less_often()
        in_flight: deque[asyncio.Task[None]] = deque()
        try:
            async for events in take(stream, TAKE_MESSAGES, BATCH_BYTES, self.flush_interval):
                messages = [_source(e) for e in events]
                topic = messages[0].topic
                self.worker.note_backlog(topic, waiting(getattr(stream, "app", None), topic), len(messages))
                if sum(len(m.value or b"") for m in messages) >= THREAD_DECODE_BYTES * len(messages):
                    batches = await asyncio.to_thread(self.worker.build_batches, messages, kind)
                else:
                    batches = self.worker.build_batches(messages, kind)
                previous = in_flight[-1] if in_flight else None
                task = asyncio.create_task(self._write_then_ack(stream, events, batches, previous))
                task.add_done_callback(_report)
                in_flight.append(task)
                await asyncio.sleep(0)  # let the write start (in its thread) before decoding on
                while in_flight and (len(in_flight) > MAX_IN_FLIGHT or in_flight[0].done()):
                    await in_flight.popleft()  # raises if that write failed: the agent stops, nothing more acked
            while in_flight:
                await in_flight.popleft()
        finally:
            # Shutdown: writes still in flight ack nothing (their messages are redelivered; inserts are idempotent).
            for task in in_flight:
                task.cancel()
