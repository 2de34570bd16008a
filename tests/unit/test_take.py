"""watchkeeper.streams.take: batches bounded by count, bytes and time, the next filling while the last is worked on."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from watchkeeper.streams import take as take_module
from watchkeeper.streams.take import take


class FakeStream:
    """What ``take`` uses of a Faust stream; ``feed`` plays Faust's passive drain through the processor."""

    def __init__(self) -> None:
        self.enable_acks = True
        self.should_stop = False
        self.channel = self  # aiter(stream.channel) is all take asks of it
        self.current_event: Any = None
        self._processors: list[Any] = []
        self.passive = False

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> Any:
        raise StopAsyncIteration

    def add_processor(self, fn: Any) -> None:
        self._processors.append(fn)

    def _enable_passive(self, channel: Any) -> None:
        self.passive = True

    async def wait(self, event: asyncio.Event) -> None:
        await event.wait()

    async def wait_for_stopped(self, event: asyncio.Event, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        return False

    async def feed(self, sizes: list[int], gap: float = 0.0) -> None:
        for i, n in enumerate(sizes):
            self.current_event = SimpleNamespace(n=i, message=SimpleNamespace(value=b"x" * n))
            for fn in list(self._processors):
                await fn(i)
            if gap:
                await asyncio.sleep(gap)


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _collect(stream: FakeStream, count: int, **kwargs: Any) -> list[tuple[float, list[int]]]:
    """The first ``count`` batches, with the loop time each was yielded at (relative to the start)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    out: list[tuple[float, list[int]]] = []
    gen = take(stream, **kwargs)
    async for batch in gen:
        out.append((loop.time() - start, [e.n for e in batch]))
        if len(out) == count:
            break
    await gen.aclose()
    return out


def test_batches_hold_at_most_max_messages_in_order_and_nothing_is_acked() -> None:
    async def main() -> tuple[list[tuple[float, list[int]]], FakeStream]:
        stream = FakeStream()
        feeder = asyncio.ensure_future(stream.feed([10] * 5))
        got = await _collect(stream, 3, max_messages=2, max_bytes=1 << 20, within=0.05)
        await feeder
        return got, stream

    got, stream = _run(main())
    assert [b for _, b in got] == [[0, 1], [2, 3], [4]]
    assert stream.passive
    # Restored after the take, and the processor removed.
    assert stream.enable_acks is True and stream._processors == []


def test_batches_hold_at_most_max_bytes_unless_one_message_is_larger() -> None:
    async def main() -> list[tuple[float, list[int]]]:
        stream = FakeStream()
        feeder = asyncio.ensure_future(stream.feed([400, 400, 400, 2500, 100]))
        got = await _collect(stream, 4, max_messages=100, max_bytes=1000, within=0.05)
        await feeder
        return got

    assert [b for _, b in _run(main())] == [[0, 1], [2], [3], [4]]


def test_a_half_full_batch_is_taken_when_the_stream_goes_quiet_not_after_within() -> None:
    async def main() -> list[tuple[float, list[int]]]:
        stream = FakeStream()
        feeder = asyncio.ensure_future(stream.feed([10] * 6))  # 6 of 10: the end of a burst
        got = await _collect(stream, 1, max_messages=10, max_bytes=1 << 20, within=60.0)
        await feeder
        return got

    ((_, batch),) = _run(main())  # within 60 s would time the test out (30 s)
    assert batch == [0, 1, 2, 3, 4, 5]


def test_the_small_tail_of_a_backlog_is_taken_when_the_stream_goes_quiet() -> None:
    async def main() -> list[tuple[float, list[int]]]:
        stream = FakeStream()
        feeder = asyncio.ensure_future(stream.feed([10] * 13))  # a full batch, then 3 of 10
        got = await _collect(stream, 2, max_messages=10, max_bytes=1 << 20, within=60.0)
        await feeder
        return got

    got = _run(main())  # within 60 s would time the test out (30 s)
    assert [b for _, b in got] == [list(range(10)), [10, 11, 12]]


def test_a_small_batch_waits_within_for_more_events() -> None:
    within = 0.3

    async def main() -> list[tuple[float, list[int]]]:
        stream = FakeStream()
        feeder = asyncio.ensure_future(stream.feed([10] * 3))  # 3 of 10: a trickle
        got = await _collect(stream, 1, max_messages=10, max_bytes=1 << 20, within=within)
        await feeder
        return got

    ((at, batch),) = _run(main())
    assert batch == [0, 1, 2]
    assert at >= within * 0.9  # not taken as soon as the stream went quiet
    assert take_module.EARLY_FRACTION > 0.3


def test_the_next_batch_fills_while_the_caller_works_on_the_last() -> None:
    async def main() -> tuple[list[int], int]:
        stream = FakeStream()
        feeder = asyncio.ensure_future(stream.feed([10] * 4))
        gen = take(stream, max_messages=2, max_bytes=1 << 20, within=60.0)
        first = await anext(gen)
        await asyncio.sleep(0.05)  # the caller is busy: events 2 and 3 are buffered meanwhile
        buffered = stream.current_event.n
        second = await anext(gen)
        await gen.aclose()
        await feeder
        return [e.n for e in first] + [e.n for e in second], buffered

    order, last_fed = _run(main())
    assert order == [0, 1, 2, 3]
    assert last_fed == 3  # the whole next batch had arrived before the caller asked for it


def test_the_stream_buffers_about_buffer_bytes_of_large_messages_and_its_configured_count_of_small_ones() -> None:
    """Faust's buffer counts messages (4,096): a backlog of envelopes sat in it whole. After each batch
    its limit is the byte budget over the batch's mean message size, never above the configured count."""

    class BufferedStream(FakeStream):
        def __init__(self) -> None:
            super().__init__()
            self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=4096)

    async def main() -> list[int]:
        stream = BufferedStream()
        limits = []
        gen = take(stream, max_messages=4, max_bytes=1 << 30, within=0.05, buffer_bytes=1_000_000)
        for sizes in ([100_000] * 4, [50] * 4, [250_000] * 4):
            feeder = asyncio.ensure_future(stream.feed(sizes))
            await gen.__anext__()
            await feeder
            limits.append(stream.queue.maxsize)
        await gen.aclose()
        return limits

    assert _run(main()) == [take_module.MIN_BUFFER_MESSAGES, 4096, take_module.MIN_BUFFER_MESSAGES]


def test_bound_buffer_resets_faust_flow_control_thresholds() -> None:
    from mode.utils.queues import FlowControlEvent, FlowControlQueue

    async def main() -> tuple[int, int, int]:
        queue: FlowControlQueue[Any] = FlowControlQueue(maxsize=4096, flow_control=FlowControlEvent())
        assert queue.pressure_high_size == 3276  # cached by mode
        limit = take_module.bound_buffer(queue, 100_000, 4_000_000, 4096)
        return limit, queue.pressure_high_size, queue.pressure_drop_size

    assert _run(main()) == (40, 32, 16)
