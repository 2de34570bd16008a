"""The worker's Prometheus collectors, on a stand-in consumer."""

from __future__ import annotations

from typing import Any

from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from watchkeeper.streams.metrics_export import LagCollector, WorkerCollector, consumer_lag


class _Consumer:
    def __init__(self, highwater: dict[TP, int], committed: dict[TP, int | None]) -> None:
        self._highwater = highwater
        self._committed_offset = committed

    def assignment(self) -> set[TP]:
        return set(self._highwater)

    def highwater(self, tp: TP) -> int:
        return self._highwater[tp]


class _App:
    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer


def test_lag_is_the_high_watermark_minus_the_committed_offset() -> None:
    p0, p1, p2 = TP("predictions", 0), TP("predictions", 1), TP("outcomes", 0)
    app = _App(_Consumer({p0: 120, p1: 7, p2: 0}, {p0: 100, p1: None}))
    assert consumer_lag(app) == {p0: 20, p1: 7, p2: 0}  # nothing committed yet: everything is lag


def test_lag_is_empty_while_the_consumer_is_not_started() -> None:
    class NotStarted:
        @property
        def consumer(self) -> Any:
            raise RuntimeError("consumer not started")

    assert consumer_lag(NotStarted()) == {}


def test_collectors_render_in_the_prometheus_text_format() -> None:
    registry = CollectorRegistry()
    app = _App(_Consumer({TP("predictions", 3): 50}, {TP("predictions", 3): 45}))

    class Worker:
        counts = {"messages": 3, "predictions": 1000, "outcomes": 10, "dead_letters": 2}

    registry.register(LagCollector(app))
    registry.register(WorkerCollector(Worker()))
    text = generate_latest(registry).decode()
    assert 'watchkeeper_consumer_lag{partition="3",topic="predictions"} 5.0' in text
    assert 'watchkeeper_ingested_total{kind="predictions"} 1000.0' in text
    assert 'watchkeeper_ingested_total{kind="dead_letters"} 2.0' in text
