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

- A pass holds the stage's ``pass_lock`` from reading the assignment to the last write.
- Faust awaits ``on_partitions_revoked`` before this worker rejoins the group,
  and the group hands partitions out only once every member has rejoined; so
  no new owner starts before that callback returns.
- The callback first clears the live ownership (``Ownership.live``), which the pass
  checks before each model it writes (closer) and before recording each alert
  (engine): from then on the pass writes nothing more, and stops. The callback
  then waits on ``pass_lock`` for the model being written to finish, at most
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
import ctypes
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import faust
import orjson

from watchkeeper.alerts.links import warn_if_runbook_base_unset
from watchkeeper.streams.ownership import Ownership
from watchkeeper.streams.service import Worker
from watchkeeper.streams.topics import Topics
from watchkeeper.windows.ownership import Shard

log = logging.getLogger(__name__)

# After each pass the stage rests this many times as long as the pass took (and at least until the
# next 1 s tick): under a heavy backlog it takes at most a third of the store's time from ingest.
REST_FACTOR = 2.0
# While an ingest agent is catching up on a backlog (``Worker.catching_up``), the stage passes at most this
# often: a burst shorter than this is ingested with the store to itself, and its windows are then closed in
# one pass (a pass of one window took ~0.6 s of the store, one of 40 windows 3.6-4.6 s, and one during a
# drain slowed the drain by a third, measured); a longer backlog still has its windows closed this often.
CATCHING_UP_REST_S = 15.0
# A worker whose models wrote nothing still judges them this often: the fleet watermark moves with the
# other workers' windows, and a model that went silent must get its ``no_data`` alert.
ALERTS_EVERY_S = 10.0

T = TypeVar("T")


class ModelStage:
    """The model stage's timer and the rebalance callbacks that bound it (see the module doc).

    ``ownership`` is the worker's (the callbacks set its live partitions); ``partitions`` the
    configured partition count, used until the consumer's metadata gives the topic's.
    """

    def __init__(self, app: faust.App, worker: Worker, topics: Topics, ownership: Ownership, partitions: int) -> None:
        self.app = app
        self.worker = worker
        self.topics = topics
        self.ownership = ownership
        self.partitions = partitions
        self.topic = topics.predictions.get_topic_name()
        # How long a revoke waits for the pass in progress (bounded: the group's rebalance does not wait forever).
        self.revoke_wait_s = max(1.0, 0.8 * float(app.conf.broker_rebalance_timeout))
        self.pass_lock = asyncio.Lock()
        self.next_pass = 0.0
        self.last_pass_end = 0.0
        self.deferring = False  # a pass is being put off (logged once per backlog)
        self.last_alerts = 0.0
        self._warned_count: int | None = None

    def register(self, runbook_base_url: str) -> None:
        """Connect the rebalance callbacks and start the 1 s timer on the app; say at start-up when the
        runbook links cannot be opened (payloads then carry the runbooks' first steps)."""

        async def start_up_notes() -> None:
            warn_if_runbook_base_unset(runbook_base_url, log)

        self.app.task(start_up_notes)
        # (mode's handler type wants a keyword-only ``signal``; Faust passes it in ``kwargs``.)
        self.app.on_partitions_revoked.connect(self.on_revoked)  # type: ignore[arg-type]
        self.app.on_partitions_assigned.connect(self.on_assigned)  # type: ignore[arg-type]

        async def close_windows() -> None:
            await self.tick()

        self.app.timer(interval=1.0, name=f"{__name__}.close_windows")(close_windows)

    def partition_count(self) -> int:
        """The predictions topic's partition count: from the consumer's metadata, else the settings."""
        try:
            n = self.app.consumer.topic_partitions(self.topic)
        except Exception:  # consumer not started yet
            n = None
        if not n:
            return self.partitions
        if n != self.partitions and self._warned_count != n:
            self._warned_count = n
            log.warning(
                "topic %s has %d partitions, WATCHKEEPER_PARTITIONS says %d: models are sharded over %d",
                self.topic, n, self.partitions, n,
            )  # fmt: skip
        return int(n)

    def current_shard(self) -> Shard:
        """The partitions held now: in the consumer's assignment and not revoked since the last assignment."""
        n = self.partition_count()
        try:
            assigned = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.topic}
        except Exception:  # consumer not started yet
            assigned = set()
        live = self.ownership.live or frozenset()
        return Shard(n, frozenset(p for p in assigned & live if p < n))

    async def on_revoked(self, sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        live = self.ownership.live or frozenset()
        self.ownership.live = live - {tp.partition for tp in revoked if tp.topic == self.topic}
        try:  # let the model being written finish (the pass stops after it)
            await asyncio.wait_for(self.pass_lock.acquire(), timeout=self.revoke_wait_s)
        except TimeoutError:
            log.warning("model stage still writing after %.1fs; letting the rebalance proceed", self.revoke_wait_s)
            return
        self.pass_lock.release()

    async def on_assigned(self, sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        self.ownership.live = frozenset(tp.partition for tp in assigned if tp.topic == self.topic)

    async def tick(self) -> None:
        now = time.monotonic()
        if now < self.next_pass:
            return
        if now < self.last_pass_end + CATCHING_UP_REST_S and self.worker.catching_up():
            if not self.deferring:
                self.deferring = True
                log.info("model stage: the ingest is catching up on a backlog; "
                         "windows are closed once it has, or every %.0f s meanwhile", CATCHING_UP_REST_S)  # fmt: skip
            return  # the ingest first (see CATCHING_UP_REST_S)
        self.deferring = False
        worker = self.worker
        async with self.pass_lock:
            shard = self.current_shard()
            if shard != worker.shard:
                log.info("model stage: owns partitions %s of %d", sorted(shard.owned), shard.partitions)
            if not shard.owned:  # no work here: only drop the state of the models that left
                await asyncio.to_thread(worker.close_windows, False, shard)
                return
            started, cpu = time.monotonic(), 0.0
            written = 0
            try:
                written, cpu = await asyncio.to_thread(_timed, _trimmed(worker.close_windows), False, shard)
                # A drift alarm judged on an open window (windows/partial.py), or an error-stream alarm on the
                # labels so far (windows/label_looks.py), is decided now, not at the next timer.
                looks = bool(worker.closer.looks.found or worker.closer.label_looks.found)
                if written or looks or time.monotonic() - self.last_alerts >= ALERTS_EVERY_S:
                    self.last_alerts = time.monotonic()
                    # Alerts follow the windows they judge; each state change is recorded, published and delivered.
                    alerts, alert_cpu = await asyncio.to_thread(_timed, worker.evaluate_alerts)
                    cpu += alert_cpu
                    # The per-model gauges follow the alerts (a few statements, whatever the fleet's size).
                    _, gauge_cpu = await asyncio.to_thread(_timed, worker.refresh_model_gauges)
                    cpu += gauge_cpu
                    for alert in alerts:
                        await self.topics.alerts.send(key=alert.alert_id.encode(), value=orjson.dumps(alert.to_json()))
            except Exception as exc:  # the store may be down: try again next tick
                log.warning("closing windows failed, will retry: %s", exc)
            finally:
                self.last_pass_end = time.monotonic()
                took = self.last_pass_end - started
                self.next_pass = self.last_pass_end + REST_FACTOR * took
                # One line per pass that wrote windows: what ``bench/scale.py`` reads (per-worker work).
                level = logging.INFO if written else logging.DEBUG
                log.log(level, "model stage pass: windows=%d seconds=%.3f cpu=%.3f partitions=%s end=%.3f",
                        written, took, cpu, ",".join(map(str, sorted(shard.owned))), time.time())  # fmt: skip


def release_free_memory() -> bool:
    """Hand the free memory of malloc's heaps back to the system (``malloc_trim``: a few milliseconds);
    False if not glibc or nothing was released (see ``watchkeeper/lean.py``)."""
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):  # not glibc
        return False


def _trimmed(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn``, after handing the heap's free memory back to the system: what the ingest freed since the
    last pass no longer sits under the pass's own allocations (``watchkeeper/lean.py``)."""

    def call(*args: Any) -> T:
        release_free_memory()
        return fn(*args)

    return call


def _timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """``fn(*args)`` and the CPU time this thread spent in it."""
    t0 = time.thread_time()
    out = fn(*args)
    return out, time.thread_time() - t0
