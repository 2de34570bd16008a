"""The worker, assembled in one place: every stage, what it is given, and how it reaches Faust.

Read top to bottom, :func:`assemble` is the whole worker:

1. the Faust App and its topics, from the settings (read by the caller, in ``main``);
2. the worker's shared state (``streams/service.py``): the store connections, the
   join stage's batches, the model stage's window closer (``windows``), the alert
   stage (``streams/alert_stage.py``: engine and dispatcher), each built from its
   typed configuration (``WorkerConfig``: ``IngestConfig``, ``WindowConfig``,
   ``AlertConfig``, ``DeliveryConfig``, ``Retention``, read once from the settings),
   and the ownership of models that the consumer group decides;
3. the join stage's agents (``agents/ingest.py``): predictions and outcomes in,
   rows and dead letters out;
4. the model stage's timer and rebalance callbacks (``agents/model_stage.py``):
   windows closed, alerts judged, published and delivered;
5. the web pages: ``/metrics`` (``metrics_export.py``), ``/ready`` and ``/live``
   (``health.py``).

Nothing here is a module global: two assemblies (two apps) in one process are
independent, and importing any module of the worker builds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchkeeper.settings import Settings
from watchkeeper.streams import health, metrics_export
from watchkeeper.streams.agents.ingest import Ingest
from watchkeeper.streams.agents.model_stage import ModelStage
from watchkeeper.streams.app import App, build_app
from watchkeeper.streams.health import Progress
from watchkeeper.streams.ownership import Ownership
from watchkeeper.streams.service import Worker
from watchkeeper.streams.topics import Topics, declare


@dataclass(frozen=True)
class Assembly:
    """One worker: its App and what the App's agents, timers and pages were given."""

    app: App
    topics: Topics
    worker: Worker
    ingest: Ingest
    model_stage: ModelStage
    progress: Progress


def assemble(settings: Settings, *, register_metrics: bool = True) -> Assembly:
    """Build the worker from ``settings``; ``register_metrics``: serve ``/metrics`` from the process's
    Prometheus registry (one worker per process does)."""
    app = build_app(settings)
    topics = declare(
        app,
        predictions=settings.topic_predictions,
        outcomes=settings.topic_outcomes,
        alerts=settings.topic_alerts,
        dead_letters=settings.topic_dead_letters,
    )
    progress = Progress()
    ownership = Ownership.sharded()
    # A write waiting for the store (down, or refusing our password) gives up when the worker stops.
    worker = Worker(settings, ownership=ownership, should_stop=lambda: bool(app.should_stop), progress=progress)

    ingest = Ingest(worker, topics, flush_interval=settings.flush_interval)
    ingest.register(app)
    model_stage = ModelStage(app, worker, topics, ownership, partitions=settings.partitions)
    model_stage.register(runbook_base_url=settings.runbook_base_url)

    if register_metrics:
        metrics_export.setup(app, worker, faust_sensor=settings.faust_sensor)
    health.setup(app, progress, settings)  # /ready and /live, beside /metrics
    return Assembly(app, topics, worker, ingest, model_stage, progress)
