"""The worker's consumer fetches a partition again as soon as its full stream buffer has room (streams/app.py).

Faust takes a partition whose stream buffer is full out of its fetch set, then waited up to a second for
records of the other partitions (or slept a second with none left), however soon the buffer drained:
the worker sat idle 0.3-0.5 s every ~30 envelopes of a backlog.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from faust.types import TP

from watchkeeper.settings import Settings
from watchkeeper.streams.app import BUFFERED_FETCH_WAIT_S, build_app

FULL, OTHER = TP("predictions", 0), TP("outcomes", 0)


def _consumer(tmp_path: Path, active: set[TP]) -> Any:
    consumer = build_app(Settings(data_dir=tmp_path)).consumer
    consumer._active_partitions = set(active)
    consumer.on_buffer_full(FULL)  # what Faust does when the partition's stream buffer fills up
    return consumer


def test_while_a_buffer_of_envelopes_is_full_the_fetch_for_the_other_partitions_waits_briefly(
    tmp_path: Path,
) -> None:
    consumer = _consumer(tmp_path, {FULL, OTHER})
    consumer.app.refetch_quickly.add(FULL.topic)  # the take's mark: its buffer is bounded by bytes
    asked: list[tuple[set[TP], float]] = []

    async def getmany(active_partitions: set[TP], timeout: float) -> dict[TP, list[Any]]:
        asked.append((set(active_partitions), timeout))
        return {}

    consumer._getmany = getmany
    asyncio.run(consumer._wait_next_records(1.0))
    assert asked == [({OTHER}, BUFFERED_FETCH_WAIT_S)]  # Faust's own: the full second
    assert BUFFERED_FETCH_WAIT_S <= 0.05

    # With no buffer full, Faust's own wait, as before.
    consumer.on_buffer_drop(FULL)
    asyncio.run(consumer._wait_next_records(1.0))
    assert asked[-1] == ({FULL, OTHER}, 1.0)


def test_with_every_partition_full_the_fetch_loop_resumes_when_a_buffer_drains(tmp_path: Path) -> None:
    consumer = _consumer(tmp_path, {FULL})

    async def never(*args: Any) -> None:  # Faust's blind sleep, made endless: only the drain may end the wait
        await asyncio.Event().wait()

    consumer.sleep = never

    async def run() -> tuple[Any, set[TP]]:
        waiting = asyncio.ensure_future(consumer._wait_next_records(1.0))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not waiting.done()  # nothing to fetch until the buffer has room
        consumer.on_buffer_drop(FULL)
        return await asyncio.wait_for(waiting, 30)

    records, active = asyncio.run(run())
    assert not records and active == {FULL}


def test_a_full_buffer_of_one_event_messages_keeps_fausts_wait(tmp_path: Path) -> None:
    """Its 4,096 messages are ~1 s of work, which outlasts Faust's wait: fetching sooner cost the worker."""
    consumer = _consumer(tmp_path, {FULL, OTHER})
    asked: list[float] = []

    async def getmany(active_partitions: set[TP], timeout: float) -> dict[TP, list[Any]]:
        asked.append(timeout)
        return {}

    consumer._getmany = getmany
    asyncio.run(consumer._wait_next_records(1.0))
    assert asked == [1.0]
