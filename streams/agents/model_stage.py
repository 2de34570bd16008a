"""The model stage timer: close windows on the watermark and write their metrics.

It runs on the worker that holds partition 0 of the predictions topic, so one
worker of the group does it at a time, and it moves with the partition on a
rebalance. All its state can be rebuilt from the store.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from faust.types import TP

from watchkeeper.streams import metrics_export, topics
from watchkeeper.streams.agents.ingest import worker
from watchkeeper.streams.app import app, settings

log = logging.getLogger(__name__)
metrics_export.setup(app, worker, faust_sensor=settings.faust_sensor)


def _owns_model_stage() -> bool:
    try:
        return TP(settings.topic_predictions, 0) in app.consumer.assignment()
    except Exception:  # consumer not started yet
        return False


# After each pass the stage rests this many times as long as the pass took (and at least until the
# next 1 s tick): under a heavy backlog it takes at most a third of the store's time from ingest.
REST_FACTOR = 2.0
_next_pass = 0.0


@app.timer(interval=1.0)
async def close_windows() -> None:
    global _next_pass
    if time.monotonic() < _next_pass or not _owns_model_stage():
        return
    started = time.monotonic()
    try:
        written = await asyncio.to_thread(worker.close_windows)
        if not written:
            return
        # Alerts follow the windows they judge; each state change is recorded, published and delivered.
        for alert in await asyncio.to_thread(worker.evaluate_alerts):
            await topics.alerts.send(key=alert.alert_id.encode(), value=orjson.dumps(alert.to_json()))
    except Exception as exc:  # the store may be down: try again next tick
        log.warning("closing windows failed, will retry: %s", exc)
    finally:
        took = time.monotonic() - started
        _next_pass = time.monotonic() + REST_FACTOR * took
        log.debug("model stage pass took %.3fs", took)
