"""Prometheus metrics on the worker's web port (``/metrics``).

Faust's own sensor exports its consumer, producer, table and agent metrics;
this collector adds watchkeeper's counters (messages, rows and dead letters
written by this worker, windows closed, alert deliveries per receiver and outcome,
alerts that could not be delivered, duplicates suppressed and state changes
delivered after a restart).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from watchkeeper.streams.model_gauges import ModelGauges


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
        errors = CounterMetricFamily(
            "watchkeeper_store_write_errors",
            "Failed writes of batches: outage (retried, the batch stays unacked), refused (its data, dead-lettered)",
            labels=["kind"],
        )
        for kind, n in sorted(getattr(self.worker, "store_errors", {}).items()):
            errors.add_metric([kind], float(n))
        yield errors
        closer = self.worker.__dict__.get("closer")  # only once the model stage has run here
        windows = CounterMetricFamily("watchkeeper_windows_written", "Windows whose metrics this worker wrote")
        windows.add_metric([], float(closer.windows_written if closer is not None else 0))
        yield windows
        pending = GaugeMetricFamily("watchkeeper_windows_pending", "Windows waiting for their watermark")
        pending.add_metric([], float(len(closer.pending) if closer is not None else 0))
        yield pending
        stats, per_receiver = delivery_counts(self.worker)
        yield from delivery_metrics(per_receiver)
        duplicates = CounterMetricFamily(
            "watchkeeper_alert_duplicates_suppressed",
            "Alert state changes submitted again and not sent again (already delivered by this worker)",
        )
        duplicates.add_metric([], float(stats.get("duplicates", 0)))
        yield duplicates
        caught_up = CounterMetricFamily(
            "watchkeeper_alert_redelivered",
            "Alert state changes recorded before this worker started but not delivered then, delivered by it",
        )
        caught_up.add_metric([], float(stats.get("caught_up", 0)))
        yield caught_up
        gauges = getattr(self.worker, "model_gauges", None)
        if gauges is not None:
            yield from model_metrics(gauges)


def model_metrics(g: ModelGauges) -> Iterator[GaugeMetricFamily]:
    """The owned models' gauges (``streams/model_gauges.py``), from the last snapshot."""
    family = GaugeMetricFamily(
        "watchkeeper_model_metric",
        "The model's latest window: accuracy, est_accuracy (estimated without labels), mae, rmse, macro_f1",
        labels=["model", "version", "metric"],
    )
    for (model, version, metric), value in sorted(g.metrics.items()):
        family.add_metric([model, version, metric], value)
    yield family
    family = GaugeMetricFamily(
        "watchkeeper_model_label_coverage",
        "Share of the model's latest window's predictions that have their label",
        labels=["model", "version"],
    )
    for (model, version), value in sorted(g.coverage.items()):
        family.add_metric([model, version], value)
    yield family
    family = GaugeMetricFamily(
        "watchkeeper_model_last_window_end_seconds",
        "End of the model's latest window written (Unix time)",
        labels=["model"],
    )
    for model, value in sorted(g.last_window_end.items()):
        family.add_metric([model], value)
    yield family
    family = GaugeMetricFamily(
        "watchkeeper_model_drifted",
        "1 if a drift test flagged the feature (__prediction__: the score) in the model's latest window",
        labels=["model", "feature"],
    )
    for (model, feature), value in sorted(g.drifted.items()):
        family.add_metric([model, feature], float(value))
    yield family
    family = GaugeMetricFamily(
        "watchkeeper_alerts_firing", "Alerts firing now, per model, kind and severity",
        labels=["model", "kind", "severity"],
    )
    for (model, kind, severity), n in sorted(g.firing.items()):
        family.add_metric([model, kind, severity], float(n))
    yield family


def delivery_counts(worker: Any) -> tuple[Mapping[str, int], Mapping[tuple[str, str], int]]:
    """The worker's dispatcher counts: (totals, per (receiver, outcome)), since the process started."""
    if hasattr(worker, "delivery_stats"):
        return worker.delivery_stats()  # type: ignore[no-any-return]
    dispatcher = worker.__dict__.get("dispatcher")
    return dict(getattr(dispatcher, "stats", {}) or {}), dict(getattr(dispatcher, "receiver_stats", {}) or {})


# The outcomes exported per receiver, spelled as ``alert_deliveries.outcome`` spells them (the table is the
# contract), then the dispatcher's own counts that have no row there. Dispatcher key -> exported outcome.
DELIVERY_OUTCOMES = {
    "queued": "queued",
    "delivered": "delivered",
    "dead_letters": "dead_letter",
    "best_effort_failures": "failed",
    "resent": "resent",
    "retries": "retries",
    "resend_failures": "resend_failures",
}


def delivery_metrics(counts: Mapping[tuple[str, str], int]) -> Iterator[CounterMetricFamily]:
    """``watchkeeper_alert_deliveries{receiver, outcome}``: alerts queued, delivered, dead-lettered per receiver.

    Every outcome of every receiver seen is a series from the start (zero until it happens), so a rate or
    an alert rule on ``outcome="dead_letter"`` has a series to read; before any alert was routed, the
    series are those of ``receiver=""`` (as ``alert_deliveries`` writes a state change no receiver wanted).

    >>> from collections import Counter
    >>> counts = Counter({("slack", "delivered"): 3, ("slack", "dead_letters"): 1})
    >>> [(s.labels["outcome"], s.value) for s in next(delivery_metrics(counts)).samples][:4]
    [('queued', 0.0), ('delivered', 3.0), ('dead_letter', 1.0), ('failed', 0.0)]
    >>> sorted({s.labels["receiver"] for s in next(delivery_metrics(Counter())).samples})
    ['']
    """
    family = CounterMetricFamily(
        "watchkeeper_alert_deliveries",
        "Alert deliveries per receiver and outcome, spelled as in alert_deliveries "
        "(dead_letter: given up; see the worker log for why)",
        labels=["receiver", "outcome"],
    )
    for receiver in sorted({r for r, _ in counts}) or [""]:
        for key, outcome in DELIVERY_OUTCOMES.items():
            family.add_metric([receiver, outcome], float(counts.get((receiver, key), 0)))
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
