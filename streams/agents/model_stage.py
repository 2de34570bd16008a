"""The model stage timer: close the owned models' windows on the watermark, write their metrics, judge them.

Sharding. Every worker of the group runs the stage for the models it owns: a
model belongs to partition ``CRC32(model) % partitions`` of the predictions
topic (``windows/ownership.py``) and is owned by the worker holding that
partition, so a rebalance moves models with partitions. A worker that holds no
partition of the topic does no model-stage work. The partition count is the
topic's, from the consumer's metadata (``WATCHKEEPER_PARTITIONS`` until it is
known; a difference is logged: the group divides the topic's partitions, so
that is the count every worker must hash with).

The guarantee: two workers never write the same model's windows or alerts at
the same time, provided a single model's write takes less than
``REVOKE_WAIT_S`` (a fraction of the group's rebalance timeout). Why:

- A pass holds ``_pass_lock`` from reading the assignment to the last write.
- Faust awaits ``on_partitions_revoked`` before this worker rejoins the group,
  and the group hands partitions out only once every member has rejoined; so
  no new owner starts before that callback returns.
- The callback first clears the live ownership (``_live``), which the pass
  checks before each model it writes (closer) and before recording each alert
  (engine): from then on the pass writes nothing more, and stops. The callback
  then waits on ``_pass_lock`` for the model being written to finish, at most
  ``REVOKE_WAIT_S``; past that it logs a warning and lets the rebalance go on
  (staying longer would get this worker dropped from the group anyway). A
  window then written twice is still exact: each write recomputes the window
  from the raw rows and replaces the rows it supersedes.
- A pass uses the partitions that are both in the consumer's assignment and in
  the last ``on_partitions_assigned`` since the last revoke: during a rebalance
  the set is empty and the pass does nothing.
- A worker killed outright (SIGKILL) writes nothing more; the group gives its
  partitions away after the session timeout, and their new owners resume from
  the per-partition checkpoints in the store.

State moves with the model through the store: the closer and the alert engine
drop the state of the models that leave and rebuild it for the ones that come
(pending windows from the partition's checkpoint, alert state from ``alerts``
and the windows of the last days; sequential detectors start afresh, as after
a restart).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from watchkeeper.alerts.links import warn_if_runbook_base_unset
from watchkeeper.streams import metrics_export, topics
from watchkeeper.streams.agents.ingest import worker
from watchkeeper.streams.app import app, settings
from watchkeeper.windows.ownership import Shard, owner_partition

log = logging.getLogger(__name__)
metrics_export.setup(app, worker, faust_sensor=settings.faust_sensor)


@app.task
async def _start_up_notes() -> None:
    warn_if_runbook_base_unset(settings.runbook_base_url, log)  # payloads then carry the runbooks' first steps

# After each pass the stage rests this many times as long as the pass took (and at least until the
# next 1 s tick): under a heavy backlog it takes at most a third of the store's time from ingest.
REST_FACTOR = 2.0
# A worker whose models wrote nothing still judges them this often: the fleet watermark moves with the
# other workers' windows, and a model that went silent must get its ``no_data`` alert.
ALERTS_EVERY_S = 10.0
# How long a revoke waits for the pass in progress (bounded: the group's rebalance does not wait forever).
REVOKE_WAIT_S = max(1.0, 0.8 * float(app.conf.broker_rebalance_timeout))

_next_pass = 0.0
_last_alerts = 0.0
_pass_lock = asyncio.Lock()
# Partitions of the predictions topic held, as the rebalance callbacks last said (empty in a rebalance).
_live: frozenset[int] = frozenset()
_warned_count: int | None = None


def _partition_count() -> int:
    """The predictions topic's partition count: from the consumer's metadata, else the settings."""
    global _warned_count
    try:
        n = app.consumer.topic_partitions(settings.topic_predictions)
    except Exception:  # consumer not started yet
        n = None
    if not n:
        return settings.partitions
    if n != settings.partitions and _warned_count != n:
        _warned_count = n
        log.warning(
            "topic %s has %d partitions, WATCHKEEPER_PARTITIONS says %d: models are sharded over %d",
            settings.topic_predictions, n, settings.partitions, n,
        )  # fmt: skip
    return int(n)


def _current_shard() -> Shard:
    """The partitions held now: in the consumer's assignment and not revoked since the last assignment."""
    n = _partition_count()
    try:
        assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.topic_predictions}
    except Exception:  # consumer not started yet
        assigned = set()
    return Shard(n, frozenset(p for p in assigned & _live if p < n))


def _still_owns(model: str) -> bool:
    """Asked before each model is written or judged: false as soon as its partition is revoked."""
    shard = worker.shard
    p = owner_partition(model, shard.partitions)
    return p in shard.owned and p in _live


worker.owns = _still_owns


@app.on_partitions_revoked.connect
async def _on_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
    global _live
    _live = _live - {tp.partition for tp in revoked if tp.topic == settings.topic_predictions}
    try:  # let the model being written finish (the pass stops after it)
        await asyncio.wait_for(_pass_lock.acquire(), timeout=REVOKE_WAIT_S)
    except TimeoutError:
        log.warning("model stage still writing after %.1fs; letting the rebalance proceed", REVOKE_WAIT_S)
        return
    _pass_lock.release()


@app.on_partitions_assigned.connect
async def _on_assigned(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
    global _live
    _live = frozenset(tp.partition for tp in assigned if tp.topic == settings.topic_predictions)


@app.timer(interval=1.0)
async def close_windows() -> None:
    global _next_pass, _last_alerts
    if time.monotonic() < _next_pass:
        return
    async with _pass_lock:
        shard = _current_shard()
        if shard != worker.shard:
            log.info("model stage: owns partitions %s of %d", sorted(shard.owned), shard.partitions)
        if not shard.owned:  # no work here: only drop the state of the models that left
            await asyncio.to_thread(worker.close_windows, False, shard)
            return
        started, cpu = time.monotonic(), 0.0
        written = 0
        try:
            written, cpu = await asyncio.to_thread(_timed, worker.close_windows, False, shard)
            if written or time.monotonic() - _last_alerts >= ALERTS_EVERY_S:
                _last_alerts = time.monotonic()
                # Alerts follow the windows they judge; each state change is recorded, published and delivered.
                alerts, alert_cpu = await asyncio.to_thread(_timed, worker.evaluate_alerts)
                cpu += alert_cpu
                for alert in alerts:
                    await topics.alerts.send(key=alert.alert_id.encode(), value=orjson.dumps(alert.to_json()))
        except Exception as exc:  # the store may be down: try again next tick
            log.warning("closing windows failed, will retry: %s", exc)
        finally:
            took = time.monotonic() - started
            _next_pass = time.monotonic() + REST_FACTOR * took
            # One line per pass that wrote windows: what ``bench/scale.py`` reads (per-worker work).
            level = logging.INFO if written else logging.DEBUG
            log.log(level, "model stage pass: windows=%d seconds=%.3f cpu=%.3f partitions=%s end=%.3f",
                    written, took, cpu, ",".join(map(str, sorted(shard.owned))), time.time())  # fmt: skip


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    """``fn(*args)`` and the CPU time this thread spent in it."""
    t0 = time.thread_time()
    out = fn(*args)
    return out, time.thread_time() - t0
