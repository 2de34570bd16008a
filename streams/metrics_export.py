"""Prometheus metrics on the worker's web port (``/metrics``).

Faust's own sensor exports its consumer, producer, table and agent metrics;
this collector adds watchkeeper's counters (messages, rows and dead letters
written by this worker, windows closed and alert state changes).
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


def setup(app: Any, worker: Any) -> None:
    """Serve Faust's and watchkeeper's metrics at ``/metrics`` on the worker's web port."""
    from faust.sensors.prometheus import setup_prometheus_sensors

    setup_prometheus_sensors(app, name_prefix="watchkeeper_faust")
    REGISTRY.register(WorkerCollector(worker))
