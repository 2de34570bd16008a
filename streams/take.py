"""Take a Faust stream's events in batches bounded by count, bytes and time, without acking them.

Faust's ``Stream.noack_take(max_, within)`` counts messages only and starts its
``within`` clock when it begins to wait: a backlog of large messages (envelopes
of hundreds of events) sat in its buffer for the whole ``within`` before the
first of them was decoded (measured: 0.5 s of a 3 s drain of 300k events).

Here a batch is taken when it holds ``max_messages`` events or ``max_bytes`` of
message values (no more, unless one message alone is larger); or when its first
event has waited ``within`` seconds; or as soon as the stream goes quiet for
``QUIET_SECONDS`` (the end of a burst or of a backlog: its last batch is written
at once instead of waiting out ``within``, measured 0.4 s of a 2.4 s drain), if
the batch is at least half full or the batch before it was full (the tail of a
backlog, however small). Other small batches wait, so that a trickle of events
still makes few, large inserts. The next batch fills while the caller works on
the last one (Faust's take stops buffering until asked again).

The caller acks each event itself, once its rows are written: nothing is acked here.

What the stream holds ahead of the batch is bounded in bytes too. Faust's
buffer (``stream_buffer_maxsize``) counts messages: 4,096 one-event messages
are a megabyte, 4,096 envelopes of 500 events a gigabyte — a whole backlog in
the worker's memory (measured: 147 of the 200 envelopes of ``make bench``'s
100-model backlog, 29 MB, held at once). After each batch, the buffer's limit
becomes ``buffer_bytes`` divided by the batch's mean message size (within
``MIN_BUFFER_MESSAGES`` and the configured size), and Faust's flow control
pauses fetching at that many messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

QUIET_SECONDS = 0.02
EARLY_FRACTION = 0.5
# Bytes of messages the stream may buffer ahead of the batch being filled (two 4 MiB batches' worth).
BUFFER_BYTES = 8 * 1024 * 1024
MIN_BUFFER_MESSAGES = 16


def bound_buffer(queue: Any, mean_message_bytes: float, buffer_bytes: int, configured: int) -> int:
    """Set a stream buffer's limit to ``buffer_bytes`` of messages of this mean size; returns the limit.

    Faust pauses a partition's fetching when its queue reaches the limit / 1.25 and resumes it at 0.4 x
    the limit (``mode.utils.queues.FlowControlQueue``, whose thresholds are cached: they are reset here).

    >>> import asyncio
    >>> q = asyncio.Queue(maxsize=4096)
    >>> bound_buffer(q, 200_000, 8 << 20, 4096), bound_buffer(q, 300, 8 << 20, 4096), q.maxsize
    (41, 4096, 4096)
    """
    limit = int(max(MIN_BUFFER_MESSAGES, min(configured, buffer_bytes // max(1.0, mean_message_bytes))))
    if queue._maxsize != limit:
        queue._maxsize = limit
        for cached in ("pressure_high_size", "pressure_drop_size"):
            queue.__dict__.pop(cached, None)
    return limit


def mark_refetch(stream: Any, quick: bool) -> None:
    """Tell the worker's consumer (``streams/app.py``) whether this stream's buffer is bounded by its bytes
    (envelopes: a full buffer is a few hundred ms of decoding, so fetch again as soon as it has room) or by
    its message count (one-event messages: ~1 s of work, which outlasts Faust's own wait; fetching sooner
    cost the worker ~15-20 % of its messages per second, 3 drains each, measured). Per topic, on the app's
    ``refetch_quickly`` set (absent: an app other than the worker's, or a stream without one: nothing to tell).

    >>> from types import SimpleNamespace
    >>> s = SimpleNamespace(app=SimpleNamespace(refetch_quickly=set()), channel=SimpleNamespace(topics=("p",)))
    >>> mark_refetch(s, True); s.app.refetch_quickly
    {'p'}
    >>> mark_refetch(s, False); s.app.refetch_quickly
    set()
    """
    topics = getattr(getattr(stream, "app", None), "refetch_quickly", None)
    if topics is None:
        return
    names = set(getattr(stream.channel, "topics", None) or ())
    if quick:
        topics |= names
    else:
        topics -= names


class _Batcher:
    """The buffer between the stream's processor (``add``) and the consumer (``batches``)."""

    def __init__(self, stream: Any, max_messages: int, max_bytes: int, within: float, buffer_bytes: int) -> None:
        self.stream, self.max_messages, self.max_bytes, self.within = stream, max_messages, max_bytes, within
        self.buffer_bytes = buffer_bytes
        self.configured = 0  # the buffer's configured size, read when its queue exists
        self.early_messages, self.early_bytes = max_messages * EARLY_FRACTION, max_bytes * EARLY_FRACTION
        self.loop = asyncio.get_running_loop()
        self.events: list[Any] = []
        self.size = 0
        self.first_at = self.last_at = 0.0
        self.started = asyncio.Event()  # the buffer holds an event
        self.early = asyncio.Event()  # the buffer is at least EARLY_FRACTION full
        self.full = asyncio.Event()  # the buffer is full: take it now
        self.after_full = False  # the last batch taken was full: this one may be a backlog's tail
        self.room = asyncio.Event()  # events may be added
        self.room.set()

    async def add(self, value: Any) -> Any:
        """The stream's processor: buffer the current event; hold the stream while the buffer is full."""
        event = self.stream.current_event
        if event is None:
            raise RuntimeError("take found no current event")
        n = len(event.message.value or b"")
        if self.events and self.size + n > self.max_bytes:  # this event starts the next batch
            await self._hold()
        self.last_at = self.loop.time()
        if not self.events:
            self.first_at = self.last_at
            self.started.set()
        self.events.append(event)
        self.size += n
        count = len(self.events)
        if count >= self.early_messages or self.size >= self.early_bytes:  # per message: no more than compares
            self.early.set()
            if count >= self.max_messages or self.size >= self.max_bytes:
                await self._hold()
        return value

    async def _hold(self) -> None:
        self.full.set()
        self.room.clear()
        await self.stream.wait(self.room)  # until the batch is taken (or the stream stops)

    async def _ready(self) -> bool:
        """Wait a while for the batch to be ready; true when it is (else ask again)."""
        if not self.events:
            await self.stream.wait_for_stopped(self.started)
            return False
        now = self.loop.time()
        remaining = self.first_at + self.within - now
        if self.full.is_set() or remaining <= 0:
            return True
        if not (self.early.is_set() or self.after_full):
            await self.stream.wait_for_stopped(self.early, timeout=remaining)  # full implies early
            return False
        quiet = self.last_at + QUIET_SECONDS - now
        if quiet <= 0:
            return True
        await self.stream.wait_for_stopped(self.full, timeout=min(remaining, quiet))
        return False

    async def batches(self) -> AsyncIterator[list[Any]]:
        while not self.stream.should_stop:
            if not await self._ready():
                continue
            taken, size, self.events, self.size = self.events, self.size, [], 0
            queue = getattr(self.stream.channel, "queue", None)  # Faust's buffer, made on first use
            if queue is not None and getattr(queue, "_maxsize", 0):
                self.configured = self.configured or queue._maxsize
                limit = bound_buffer(queue, size / len(taken), self.buffer_bytes, self.configured)
                mark_refetch(self.stream, limit < self.configured)
            self.after_full = self.full.is_set()
            for flag in (self.started, self.early, self.full):
                flag.clear()
            self.room.set()
            yield taken


async def take(
    stream: Any, max_messages: int, max_bytes: int, within: float, buffer_bytes: int = BUFFER_BYTES
) -> AsyncIterator[list[Any]]:
    """Yield lists of the stream's events (at least one each), in order, never acked; the stream buffers
    about ``buffer_bytes`` of messages ahead.

    >>> import inspect
    >>> inspect.isasyncgenfunction(take)
    True
    """
    batcher = _Batcher(stream, max_messages, max_bytes, within, buffer_bytes)
    enable_acks = stream.enable_acks
    stream.enable_acks = False  # the caller acks, after writing
    channel_it = aiter(stream.channel)
    stream.add_processor(batcher.add)
    # As Stream.noack_take does: the stream is drained in the background, through the processor.
    stream._enable_passive(channel_it)
    try:
        async for batch in batcher.batches():
            yield batch
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(batcher.add)
