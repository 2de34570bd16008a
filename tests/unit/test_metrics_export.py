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


def test_an_alert_receiver_that_fails_shows_on_metrics() -> None:
    """Delivery failures are on /metrics per receiver, not only in a log line."""
    from datetime import UTC, datetime

    from watchkeeper.alerts.dispatch import Dispatcher, Retry
    from watchkeeper.alerts.model import Alert
    from watchkeeper.alerts.notifiers import WebhookNotifier

    class Worker:
        counts: dict[str, int] = {}

    now = datetime(2026, 3, 2, tzinfo=UTC)
    a = Alert(alert_id="drift-1", model="m", version="v1", kind="drift", severity="warning", state="firing",
              summary="s", evidence={"subject": "features"}, ts=now, fired_at=now)  # fmt: skip
    # Nothing listens on port 9 (discard): every attempt fails and the alert is dead-lettered.
    dispatcher = Dispatcher([WebhookNotifier("http://127.0.0.1:9/", name="team-hook")],
                            retry=Retry(attempts=1, initial_delay=0, timeout=0.5))  # fmt: skip
    worker = Worker()
    worker.__dict__["dispatcher"] = dispatcher
    try:
        dispatcher.submit([a])
        dispatcher.flush(timeout=10)
    finally:
        dispatcher.close()
    registry = CollectorRegistry()
    registry.register(WorkerCollector(worker))
    text = generate_latest(registry).decode()
    assert 'watchkeeper_alert_deliveries_total{outcome="dead_letter",receiver="team-hook"} 1.0' in text
    assert 'watchkeeper_alert_deliveries_total{outcome="delivered",receiver="team-hook"} 0.0' in text


def test_deliveries_have_a_zero_series_per_outcome_before_any_alert() -> None:
    """A rule on outcome="dead_letter" has a series to read before the first alert (no receivers seen yet)."""

    class Worker:
        counts: dict[str, int] = {}

    registry = CollectorRegistry()
    registry.register(WorkerCollector(Worker()))
    text = generate_latest(registry).decode()
    for outcome in ("queued", "delivered", "dead_letter", "failed"):
        assert f'watchkeeper_alert_deliveries_total{{outcome="{outcome}",receiver=""}} 0.0' in text


def test_delivery_outcomes_are_spelled_as_the_alert_deliveries_table_spells_them() -> None:
    """The outcomes a receiver's rows take in ``alert_deliveries`` are the exported outcome labels."""
    from watchkeeper.alerts.dispatch import DEAD_LETTER, DELIVERED, FAILED, QUEUED
    from watchkeeper.streams.metrics_export import DELIVERY_OUTCOMES

    assert {QUEUED, DELIVERED, DEAD_LETTER, FAILED} <= set(DELIVERY_OUTCOMES.values())
    assert "dead_letters" not in DELIVERY_OUTCOMES.values()
