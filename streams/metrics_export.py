"""Prometheus metrics on the worker's web port (``/metrics``).

Faust's own sensor exports its consumer, producer, table and agent metrics;
this collector adds watchkeeper's counters (messages, rows and dead letters
written by this worker, windows closed, alert deliveries per receiver and outcome,
and alerts that could not be delivered).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector


class WorkerCollector(Collector):
    """Reads the worker's counters when Prometheus scrapes."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        counts = dict(self.worker.counts)
        rows = CounterMetricFamily(
            "watchkeeper_ingested", "Events and messages this worker wrote to the store", labels=["kind"]
        )
        for kind in ("messages", "predictions", "outcomes", "dead_letters"):
            rows.add_metric([kind], float(counts.get(kind, 0)))
        yield rows
        closer = self.worker.__dict__.get("closer")  # only once the model stage has run here
        windows = CounterMetricFamily("watchkeeper_windows_written", "Windows whose metrics this worker wrote")
        windows.add_metric([], float(closer.windows_written if closer is not None else 0))
        yield windows
        pending = GaugeMetricFamily("watchkeeper_windows_pending", "Windows waiting for their watermark")
        pending.add_metric([], float(len(closer.pending) if closer is not None else 0))
        yield pending
        yield from delivery_metrics(self.worker.__dict__.get("dispatcher"))


# Dispatcher counts exported per receiver (the rest — queued, retries — are in its log and stats()).
DELIVERY_OUTCOMES = ("delivered", "resent", "retries", "dead_letters", "resend_failures", "best_effort_failures")


def delivery_metrics(dispatcher: Any) -> Iterator[CounterMetricFamily]:
    """``watchkeeper_alert_deliveries{receiver, outcome}``: alerts delivered, retried, dead-lettered per receiver.

    A receiver that fails shows up here (``outcome="dead_letters"`` grows) rather than only in a log line.

    >>> from collections import Counter
    >>> class D:
    ...     receiver_stats = Counter({("slack", "delivered"): 3, ("slack", "dead_letters"): 1})
    >>> [(s.labels, s.value) for s in next(delivery_metrics(D())).samples if s.value]
    [({'receiver': 'slack', 'outcome': 'dead_letters'}, 1.0), ({'receiver': 'slack', 'outcome': 'delivered'}, 3.0)]
    """
    family = CounterMetricFamily(
        "watchkeeper_alert_deliveries",
        "Alert deliveries per receiver and outcome (dead_letters: given up; see the worker log for why)",
        labels=["receiver", "outcome"],
    )
    counts = dict(getattr(dispatcher, "receiver_stats", {}) or {})
    for receiver in sorted({r for r, _ in counts}):
        for outcome in sorted(DELIVERY_OUTCOMES):
            family.add_metric([receiver, outcome], float(counts.get((receiver, outcome), 0)))
    yield family


class LagCollector(Collector):
    """Consumer lag per assigned partition: the broker's high watermark minus our committed offset."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "watchkeeper_consumer_lag",
            "Messages not yet committed, per assigned partition",
            labels=["topic", "partition"],
        )
        for tp, behind in sorted(consumer_lag(self.app).items()):
            lag.add_metric([tp.topic, str(tp.partition)], float(behind))
        yield lag


def consumer_lag(app: Any) -> dict[Any, int]:
    """Lag of each partition this worker is assigned (empty before the consumer has started)."""
    try:
        consumer = app.consumer
        assigned = consumer.assignment()
        committed = consumer._committed_offset  # Faust keeps it per partition; no public accessor
        return {tp: max(0, consumer.highwater(tp) - (committed.get(tp) or 0)) for tp in assigned}
    except Exception:  # not started, or rebalancing: no numbers rather than a failed scrape
        return {}


def setup(app: Any, worker: Any, faust_sensor: bool = False) -> None:
    """Serve watchkeeper's metrics (and, if ``faust_sensor``, Faust's) at ``/metrics`` on the web port."""
    if faust_sensor:
        from faust.sensors.prometheus import setup_prometheus_sensors

        setup_prometheus_sensors(app, name_prefix="watchkeeper_faust")  # also serves /metrics
    else:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        @app.page("/metrics")
        async def metrics(self: Any, request: Any) -> Any:
            return self.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    REGISTRY.register(WorkerCollector(worker))
    REGISTRY.register(LagCollector(app))
