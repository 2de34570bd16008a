"""Shared worker state: the store handle, the flush of a batch, the window closer.

Agents stay thin (decode, validate, call a function, emit); what they share
lives here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

from clickhouse_connect.driver.exceptions import ClickHouseError

from watchkeeper.alerts.config import AlertConfig
from watchkeeper.alerts.deliveries import DeliveryLog
from watchkeeper.alerts.dispatch import Dispatcher
from watchkeeper.alerts.engine import AlertEngine
from watchkeeper.alerts.model import Alert
from watchkeeper.alerts.notifiers import DeliveryConfig
from watchkeeper.settings import Settings
from watchkeeper.sinks.schema import Retention
from watchkeeper.sinks.writer import Store, StoreBusy, StoreUnavailable, migration_params, server_message
from watchkeeper.streams.alert_stage import AlertStage
from watchkeeper.streams.decode import Rejected
from watchkeeper.streams.events import Outcome, Prediction
from watchkeeper.streams.health import Progress
from watchkeeper.streams.ingest import Batch, SourceMessage
from watchkeeper.streams.model_gauges import ModelGauges
from watchkeeper.streams.ownership import Ownership
from watchkeeper.windows.closer import WindowCloser
from watchkeeper.windows.config import WindowConfig
from watchkeeper.windows.ownership import Shard

log = logging.getLogger(__name__)
# Connections the ingest path writes batches on, concurrently (see Worker.writers).
WRITERS = 2
# A take's finding that its agent is catching up counts for this long (an agent that stopped taking, the store
# being down say, is not catching up).
CATCHING_UP_FRESH_S = 5.0


def migrate(store: Store, settings: Settings) -> None:
    """Create or update every table watchkeeper owns, with the configured retention (``sinks.migrations``)."""
    store.migrate(settings.retention())


@dataclass(frozen=True)
class IngestConfig:
    """What the join stage needs: rows per insert, the largest message accepted, the raw retention
    (an event older than it is refused: it would expire at once)."""

    flush_rows: int
    max_message_bytes: int
    raw_ttl_days: int


@dataclass(frozen=True)
class WorkerConfig:
    """The typed configuration of every stage, read once from the settings (``from_settings``)."""

    store: Mapping[str, Any]  # the store client's keywords (sinks.writer.Store): address, database, cluster
    ingest: IngestConfig
    windows: WindowConfig
    alerts: AlertConfig
    delivery: DeliveryConfig
    retention: Retention

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        return cls(
            store={
                "database": settings.clickhouse_database,
                "cluster": settings.clickhouse_cluster,
                **migration_params(settings),
                **settings.clickhouse_params(),
            },
            ingest=IngestConfig(settings.flush_rows, settings.max_message_bytes, settings.raw_ttl_days),
            windows=settings.window_config(),
            alerts=settings.alert_config(),
            delivery=settings.delivery_config(),
            retention=settings.retention(),
        )

    def connect(self, *, final_by_time: bool = False) -> Store:
        """A new connection to the store (each is used by one thread at a time); ``final_by_time``: the
        model stage's (``sinks.writer.FINAL_BY_TIME``)."""
        return Store(**self.store, final_by_time=final_by_time)


F = TypeVar("F", bound=Callable[..., Any])


def _tracked(what: str) -> Callable[[F], F]:
    """Time the method's calls in the worker's ``progress`` while they are in flight (even one that raises)."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def tracked(self: Worker, *args: Any, **kwargs: Any) -> Any:
            with self.progress.tracking(what):
                return method(self, *args, **kwargs)

        return tracked  # type: ignore[return-value]

    return wrap


class Worker:
    """Everything one worker process shares between its agents."""

    def __init__(
        self,
        settings: Settings,
        *,
        ownership: Ownership | None = None,
        should_stop: Callable[[], bool] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        # Every stage is built from these, not from the settings.
        self.config = WorkerConfig.from_settings(settings)
        # Times each write while in flight: what the worker's /live reads (streams/health.py).
        self.progress = progress or Progress()
        # True once the worker is shutting down (read from the writing thread): the app's, in the worker.
        self.should_stop: Callable[[], bool] = should_stop or (lambda: False)
        self._migrated = False
        self._lock = threading.Lock()
        self.counts = {"messages": 0, "predictions": 0, "outcomes": 0, "dead_letters": 0}
        # Writes the store failed: ``outages`` retried (the batch stays unacked), ``refused`` batches whose
        # data the store refused, dead-lettered (``sinks.writer.bad_data``). Both on /metrics.
        self.store_errors = {"outage": 0, "refused": 0}
        # The models whose windows and alerts this worker handles: in a consumer group, the model stage
        # sets the shard at the start of a pass and the rebalance callbacks the live partitions.
        self.ownership = ownership or Ownership.everything()
        # Written with each window's metrics (``metrics.computed_by``): which worker computed it.
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        # Per ingest agent: whether more messages waited than its last take held, and when that was seen.
        self._backlog: dict[str, tuple[bool, float]] = {}

    def note_backlog(self, topic: str, waiting: int, taken: int) -> None:
        """After a take of ``taken`` messages of ``topic``, ``waiting`` more were still in the broker: its agent
        is catching up on a backlog when that is more than another such take (a stream that keeps up leaves
        about none there)."""
        self._backlog[topic] = (waiting > taken, time.monotonic())

    def catching_up(self, fresh: float = CATCHING_UP_FRESH_S) -> bool:
        """Whether an ingest agent is catching up on a backlog, as its last take (at most ``fresh`` s ago) found.

        >>> w = Worker.__new__(Worker); w._backlog = {}
        >>> w.note_backlog("predictions", 5000, 30); w.catching_up()
        True
        >>> w.note_backlog("predictions", 12, 30); w.catching_up()
        False
        """
        now = time.monotonic()
        return any(behind and now - seen <= fresh for behind, seen in self._backlog.values())

    @property
    def shard(self) -> Shard:
        return self.ownership.shard

    def owns(self, model: str) -> bool:
        """Whether this worker handles ``model`` now (asked before each model is written or judged)."""
        return self.ownership.owns(model)

    @cached_property
    def store(self) -> Store:
        """The model stage's and the alert stage's connection (the ingest path writes on ``writers``)."""
        return self.config.connect(final_by_time=True)

    @cached_property
    def writers(self) -> queue.SimpleQueue[Store]:
        """The ingest path's own connections, never waiting behind the model stage's queries.

        WRITERS of them, so that consecutive batches are written concurrently: the store
        (chdb) inserts one batch while it receives the next. Measured on the envelope
        backlog, medians of 5 alternating runs: 133k events/s with two against 111k with one.
        """
        writers: queue.SimpleQueue[Store] = queue.SimpleQueue()
        for _ in range(WRITERS):
            writers.put(self.config.connect())
        return writers

    @contextmanager
    def _writer(self) -> Iterator[Store]:
        """One of the writer connections, for one batch (others write concurrently on the rest)."""
        writer = self.writers.get()
        try:
            yield writer
        finally:
            self.writers.put(writer)

    @cached_property
    def closer(self) -> WindowCloser:
        return WindowCloser(
            self.store, self.config.windows, still_owns=self.owns, computed_by=self.worker_id
        )

    def ensure_schema(self) -> None:
        """Migrate the store once (with ``WATCHKEEPER_MIGRATE=false``: check that it is migrated).

        Any error here is about the store, never about a batch: an outage (``StoreBusy``), retried.
        """
        with self._lock:
            if not self._migrated:
                try:
                    self.store.migrate(self.config.retention)
                except ClickHouseError as exc:
                    raise StoreBusy(f"{self.store!r}: migrating the schema: {server_message(exc)}") from None
                self._migrated = True

    def build_batch(self, messages: list[SourceMessage], kind: type[Prediction] | type[Outcome]) -> Batch:
        """Decode messages into one batch of columnar rows (CPU only: no I/O)."""
        return self._decode(messages, kind, max_rows=None)[0][1]

    def build_batches(
        self, messages: list[SourceMessage], kind: type[Prediction] | type[Outcome]
    ) -> list[tuple[list[SourceMessage], Batch]]:
        """Decode consecutive messages into batches of about ``flush_rows`` rows (one insert per table each)."""
        return self._decode(messages, kind, max_rows=self.config.ingest.flush_rows)

    def _decode(
        self, messages: list[SourceMessage], kind: type[Prediction] | type[Outcome], max_rows: int | None
    ) -> list[tuple[list[SourceMessage], Batch]]:
        min_ts = time.time() - self.config.ingest.raw_ttl_days * 86400
        batches: list[tuple[list[SourceMessage], Batch]] = []
        try:
            batch, start = Batch(), 0
            for i, msg in enumerate(messages):
                batch.add(msg, kind, self.config.ingest.max_message_bytes, min_ts)  # bad input is a value, never raises
                if max_rows is not None and batch.rows >= max_rows and i + 1 < len(messages):
                    batches.append((messages[start : i + 1], batch))
                    batch, start = Batch(), i + 1
            batches.append((messages[start:], batch))
            for _, batch in batches:
                batch.finish()
        except Exception as exc:  # a bug in the decoder: keep every message, as a dead letter
            log.exception("unexpected error decoding %d messages", len(messages))
            return [(messages, self.reject_batch(messages, f"internal error: {type(exc).__name__}", refused=False))]
        return batches

    @_tracked("batch write")
    def write_batch(self, batch: Batch) -> None:
        """Write a batch to the store (one insert per table), blocking and retrying while the store is unreachable.

        It never gives up: raising here would crash the agent, and Faust acks the
        messages of a crashed agent — they would be lost. Shutdown cancels the
        awaiting agent instead, which acks nothing; this thread then gives up too.
        """
        tables = batch.tables()
        delay = 0.2
        with self._writer() as writer:
            while True:
                try:
                    self.ensure_schema()
                    for table, data in tables.items():
                        writer.insert_arrow(table, data, token=batch.token(table))
                    if batch.dead_letters["ts"]:
                        writer.insert("dead_letters", batch.dead_letters, token=batch.token("dead_letters"))
                    break
                except StoreUnavailable as exc:
                    with self._lock:
                        self.store_errors["outage"] += 1
                    log.warning("store unavailable, batch not acked, retrying in %.1fs: %s", delay, exc)
                    deadline = time.monotonic() + delay
                    while not self.should_stop() and time.monotonic() < deadline:
                        time.sleep(0.25)
                    if self.should_stop():
                        raise  # the batch stays un-acked and is redelivered after the restart
                    delay = min(delay * 2, 10.0)
        with self._lock:  # batches are written from several threads
            self.counts["messages"] += batch.messages
            self.counts["predictions"] += batch.count("predictions")
            self.counts["outcomes"] += batch.count("outcomes")
            self.counts["dead_letters"] += len(batch.dead_letters["ts"])

    def reject_batch(self, messages: list[SourceMessage], reason: str, refused: bool = True) -> Batch:
        """A batch the store refused (not a transient fault): its messages become dead letters, bytes kept."""
        batch = Batch()
        # Its own tokens: the messages' identity, marked so they differ from the refused batch's.
        batch.mark(b"rejected:")
        if refused:
            reason = f"store refused the batch: {reason}"
        for msg in messages:
            batch.note(msg)
            batch.add_dead_letter(msg, Rejected(reason[:2000], msg.value or b""))
        return batch

    async def flush(self, messages: list[SourceMessage], batch: Batch, dead_letter_topic: Any) -> None:
        """Write a batch; if the store refuses it for good, dead-letter its messages instead."""
        try:
            await asyncio.to_thread(self.write_batch, batch)
        except ClickHouseError as exc:  # its data (sinks.writer.bad_data): every other error was retried
            with self._lock:
                self.store_errors["refused"] += 1
            log.error("store refused the data of a batch of %d messages: %s", len(messages), exc)
            # The server's own line (``Code: 27. DB::Exception: ... (CANNOT_PARSE_...)``): `--reason` finds it.
            batch = self.reject_batch(messages, server_message(exc))
            await asyncio.to_thread(self.write_batch, batch)
        for record in batch.dead_letter_messages:
            await dead_letter_topic.send(value=record)

    @_tracked("model-stage pass")
    def close_windows(self, force: bool = False, shard: Shard | None = None) -> int:
        """One pass of the model stage over ``shard``'s models (default: the worker's ``shard``)."""
        if shard is not None and shard != self.shard:
            self.ownership.shard = shard
            if "alert_stage" in self.__dict__:
                self.alert_stage.hand_over()
        if not self.shard.owned:  # owns no model: no model-stage work (the closer drops what it held)
            if "closer" in self.__dict__:
                self.closer.assign(self.shard)
            return 0
        self.ensure_schema()
        return len(self.closer.tick(force=force, shard=self.shard))

    @cached_property
    def alert_stage(self) -> AlertStage:
        """Judges, records and delivers the owned models' alerts (``streams/alert_stage.py``)."""
        return AlertStage(
            self.store,
            self.config.alerts,
            self.config.delivery,
            journal_store=self.config.connect,
            owns=self.owns,
            worker_id=self.worker_id,
        )

    # The alert stage's parts, as tests and tools reach them.
    @property
    def alert_engine(self) -> AlertEngine:
        return self.alert_stage.engine

    @property
    def dispatcher(self) -> Dispatcher:
        return self.alert_stage.dispatcher

    @property
    def delivery_log(self) -> DeliveryLog:
        return self.alert_stage.delivery_log

    @property
    def model_gauges(self) -> ModelGauges:
        return self.alert_stage.gauges if "alert_stage" in self.__dict__ else ModelGauges()

    def delivery_stats(self) -> tuple[Counter[str], Counter[tuple[str, str]]]:
        """The dispatchers' counts since this process started (a handover replaces the dispatcher)."""
        if "alert_stage" not in self.__dict__:
            return Counter(), Counter()
        return self.alert_stage.delivery_stats()

    @_tracked("alert evaluation")
    def evaluate_alerts(self) -> list[Alert]:
        """Run the alert policies over the windows written so far; returns the state changes (recorded)."""
        self.ensure_schema()
        if "closer" in self.__dict__:  # drift alarms the model stage judged on open windows (windows/partial.py)
            self.alert_stage.engine.add_looks([*self.closer.looks.take(), *self.closer.label_looks.take()])
        return self.alert_stage.evaluate()

    def refresh_model_gauges(self) -> ModelGauges:
        """Read the owned models' gauges from the store (three statements), for the next scrapes."""
        return self.alert_stage.refresh_gauges()
