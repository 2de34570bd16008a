"""The model stage's rebalance callbacks (streams/agents/model_stage.py), on a stand-in consumer.

A revoke takes the models away at once — the pass in progress stops writing them —
and returns only when that pass is over (bounded), so the next owner never writes
alongside it.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, NamedTuple

from watchkeeper.streams.agents import model_stage
from watchkeeper.streams.agents.model_stage import ModelStage
from watchkeeper.streams.ownership import Ownership
from watchkeeper.windows.ownership import Shard, owner_partition


class TP(NamedTuple):
    topic: str
    partition: int


class _Consumer:
    def __init__(self) -> None:
        self.assigned: set[TP] = set()

    def assignment(self) -> set[TP]:
        return self.assigned

    def topic_partitions(self, topic: str) -> int:
        return 4


def _stage() -> tuple[ModelStage, Any, Ownership]:
    app = SimpleNamespace(conf=SimpleNamespace(broker_rebalance_timeout=3.0), consumer=_Consumer())
    topics = SimpleNamespace(predictions=SimpleNamespace(get_topic_name=lambda: "predictions"))
    ownership = Ownership.sharded()
    return ModelStage(app, None, topics, ownership, partitions=4), app, ownership  # type: ignore[arg-type]


def test_the_shard_is_what_is_both_assigned_and_not_revoked() -> None:
    stage, app, ownership = _stage()

    async def run() -> None:
        app.consumer.assigned = {TP("predictions", 0), TP("predictions", 1), TP("outcomes", 2)}
        await stage.on_assigned(None, app.consumer.assigned)
        assert stage.current_shard() == Shard(4, frozenset({0, 1}))
        await stage.on_revoked(None, {TP("predictions", 1)})
        assert stage.current_shard() == Shard(4, frozenset({0}))  # still in the consumer's assignment: not ours

    asyncio.run(run())


def test_a_revoke_stops_the_pass_at_once_and_waits_for_it() -> None:
    stage, app, ownership = _stage()
    model = next(f"m{i}" for i in range(100) if owner_partition(f"m{i}", 4) == 1)

    async def run() -> list[str]:
        events: list[str] = []
        app.consumer.assigned = {TP("predictions", 1)}
        await stage.on_assigned(None, app.consumer.assigned)
        ownership.shard = stage.current_shard()
        assert ownership.owns(model)

        async def a_pass() -> None:
            async with stage.pass_lock:
                events.append("pass starts")
                while ownership.owns(model):  # a pass asks before each model it writes
                    await asyncio.sleep(0.01)
                events.append("pass sees the revoke")
                await asyncio.sleep(0.2)  # the model being written finishes
                events.append("pass ends")

        task = asyncio.create_task(a_pass())
        await asyncio.sleep(0.05)
        await stage.on_revoked(None, {TP("predictions", 1)})
        events.append("revoke returns")
        await task
        return events

    assert asyncio.run(run()) == ["pass starts", "pass sees the revoke", "pass ends", "revoke returns"]


class _Worker:
    """What a pass asks of the worker, counted; ``behind`` stands for the ingest agents' last takes."""

    def __init__(self) -> None:
        self.passes = 0
        self.behind = False
        self.closer = SimpleNamespace(looks=SimpleNamespace(found=[]), label_looks=SimpleNamespace(found=[]))
        self.shard = Shard(4, frozenset())

    def catching_up(self) -> bool:
        return self.behind

    def close_windows(self, final: bool, shard: Shard) -> int:
        self.passes += 1
        return 1

    def evaluate_alerts(self) -> list[Any]:
        return []

    def refresh_model_gauges(self) -> None:
        return None


def test_while_the_ingest_catches_up_the_stage_passes_at_most_every_catching_up_rest() -> None:
    stage, app, ownership = _stage()
    worker = _Worker()
    stage.worker = worker  # type: ignore[assignment]

    async def run() -> None:
        app.consumer.assigned = {TP("predictions", 0)}
        await stage.on_assigned(None, app.consumer.assigned)
        await stage.tick()
        assert worker.passes == 1
        worker.behind = True
        stage.next_pass = 0.0  # past its usual rest
        await stage.tick()
        assert worker.passes == 1, "a pass during a backlog's drain, right after the last one"
        stage.last_pass_end -= model_stage.CATCHING_UP_REST_S
        await stage.tick()
        assert worker.passes == 2, "a long backlog still has its windows closed every CATCHING_UP_REST_S"
        worker.behind = False
        stage.next_pass = 0.0
        await stage.tick()
        assert worker.passes == 3, "once caught up, the stage passes as soon as its usual rest allows"

    asyncio.run(run())


def test_each_pass_first_hands_the_heaps_free_memory_back(monkeypatch: Any) -> None:
    """What the ingest freed since the last pass is returned to the system before the pass allocates its own
    (watchkeeper/lean.py: the 100-model backlog's peak moved from 255-262 MB to 216-236 MB with this and the
    fixed mmap threshold)."""
    stage, app, ownership = _stage()
    worker = _Worker()
    stage.worker = worker  # type: ignore[assignment]
    order: list[str] = []
    monkeypatch.setattr(model_stage, "release_free_memory", lambda: order.append("trim") or True)
    close = worker.close_windows
    worker.close_windows = lambda final, shard: order.append("pass") or close(final, shard)  # type: ignore[method-assign]

    async def run() -> None:
        app.consumer.assigned = {TP("predictions", 0)}
        await stage.on_assigned(None, app.consumer.assigned)
        await stage.tick()
        stage.next_pass = 0.0
        await stage.tick()

    asyncio.run(run())
    assert order == ["trim", "pass", "trim", "pass"]
