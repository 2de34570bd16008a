"""The Faust application: one App, configured from the settings it is given.

Run it with ``watchkeeper worker`` (Faust's own worker options apply): the CLI
reads the settings and calls :func:`autodiscover`, which assembles the worker
(``streams/assembly.py``). Nothing is read or built at import.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

if TYPE_CHECKING:
    from watchkeeper.settings import Settings

log = logging.getLogger(__name__)

# On shutdown, how long to wait for batches being written before leaving them un-acked.
SHUTDOWN_WAIT_S = 5.0
# While a partition's stream buffer is full, the longest a fetch for the other partitions waits (_Consumer).
BUFFERED_FETCH_WAIT_S = 0.01


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer, with the fetch wait from the settings (Faust fixes it at 1500 ms)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        app = cast("App", self.app)
        consumer._fetch_max_wait_ms = app.fetch_max_wait_ms  # read by aiokafka when the fetcher starts
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    """Faust's consumer, fetching a partition again as soon as its full stream buffer has room.

    A partition whose stream buffer is full leaves Faust's fetch set until the buffer drains (the
    take bounds each buffer to ~8 MiB of messages: ``streams/take.py``), and Faust's fetch loop then
    waits up to a second for records of the *other* partitions (or, with none left, sleeps a
    second), however soon the buffer drains: a backlog of envelopes filled the buffer every ~30
    envelopes and the worker sat idle 0.3-0.5 s each time, a fifth of a 300k-event drain (measured).
    Here, while a buffer bounded by its bytes is full (the take marks its topic in the app's
    ``refetch_quickly``), the fetch waits ``BUFFERED_FETCH_WAIT_S`` at most; a buffer of one-event
    messages holds ~1 s of work and keeps Faust's wait (``take.mark_refetch``). With no partition
    left to fetch, the loop waits for the first buffer to drain (``on_buffer_drop``).
    """

    _room: asyncio.Event | None = None

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def on_buffer_drop(self, tp: Any) -> None:
        super().on_buffer_drop(tp)
        if self._room is not None:
            self._room.set()

    async def _wait_next_records(self, timeout: float) -> Any:
        if not self._buffered_partitions or not self.flow_active or self.app.client_only:
            return await super()._wait_next_records(timeout)
        if self._get_active_partitions():
            quick = getattr(self.app, "refetch_quickly", ())
            if any(tp.topic in quick for tp in self._buffered_partitions):
                timeout = min(timeout, BUFFERED_FETCH_WAIT_S)
            return await super()._wait_next_records(timeout)
        room = self._room = self._room or asyncio.Event()
        room.clear()
        await self.wait_for_stopped(room, timeout=timeout)  # type: ignore[arg-type]  # (as Faust passes one)
        return {}, self._get_active_partitions()  # nothing fetched: Faust's loop asks again at once


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer

    async def _create_topic(self, owner: Any, client: Any, topic: str, partitions: int, replication: int,
                            **kwargs: Any) -> None:  # fmt: skip
        """Every topic Faust creates (changelogs, repartition topics, the ``__assignor`` leader topic) gets
        the configured topic configs (``min.insync.replicas``); its replicas come from the App's
        ``topic_replication_factor``."""
        app = cast("App", self.app)
        kwargs["config"] = {**app.topic_configs, **(kwargs.get("config") or {})}
        await super()._create_topic(owner, client, topic, partitions, replication, **kwargs)


class App(faust.App):
    """Faust's App, except that stopping never waits forever for a write that cannot finish.

    ``fetch_max_wait_ms``: the consumer's fetch wait; ``faust_sensor``: keep Faust's own
    per-event Monitor (nothing of watchkeeper reads it); ``topic_configs``: of every topic it creates.
    """

    def __init__(
        self,
        id: str,  # noqa: A002
        *,
        fetch_max_wait_ms: int,
        faust_sensor: bool,
        topic_configs: dict[str, str] | None = None,
        **options: Any,
    ) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        # Configs of every topic Faust creates (``_Transport._create_topic``), e.g. min.insync.replicas.
        self.topic_configs = dict(topic_configs or {})
        self.faust_sensor = faust_sensor
        # Topics whose stream buffer is bounded by its bytes (envelopes): fetched again as soon as it has room.
        self.refetch_quickly: set[str] = set()
        super().__init__(id, **options)

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)

    def on_init_dependencies(self) -> Any:
        deps = super().on_init_dependencies()
        if not self.faust_sensor:
            # Faust's in-memory Monitor keeps per-event statistics that nothing here reads (``/metrics``
            # has watchkeeper's own): about 4 µs of each message's ~75 µs in Faust, measured.
            self.sensors.remove(self.monitor)
        return deps

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        if not self.should_stop:  # a rebalance: wait, so the next owner starts after our acks
            await super()._consumer_wait_empty(consumer, logger)
            return
        # Faust's wait swallows cancellation: leave it behind (it ends when the consumer stops).
        waiting = asyncio.ensure_future(super()._consumer_wait_empty(consumer, logger))
        done, _ = await asyncio.wait({waiting}, timeout=SHUTDOWN_WAIT_S)
        if not done:
            # The store is down or refuses us: what is not written is not acked, and is redelivered.
            log.warning("stopping with batches not written; their messages are redelivered after a restart")
            await consumer.commit_and_end_transactions()


def build_app(settings: Settings) -> App:
    """The worker's Faust App, configured from ``settings`` (no topics, agents or timers yet)."""
    return App(
        settings.app_id,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        faust_sensor=settings.faust_sensor,
        topic_configs=settings.topic_configs(),
        # Faust's internal topics too: changelogs, repartition topics, the __assignor leader topic.
        topic_replication_factor=settings.replication_factor,
        broker=f"kafka://{settings.kafka_bootstrap}",
        # Tansu takes 30 s to settle a group join with Faust's default (measured).
        broker_rebalance_timeout=3.0 if settings.embedded_broker else 60.0,
        broker_credentials=settings.faust_credentials(),
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(1.0, settings.session_timeout / 10),
        datadir=str(settings.data_dir),
        # No Faust tables hold per-event state (see streams/ingest.py): memory is enough.
        store="memory://",
        topic_partitions=settings.partitions,
        web_enabled=True,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        consumer_auto_offset_reset="earliest",
        # Per partition and fetch; a larger message still comes whole (it is the first of its fetch).
        consumer_max_fetch_size=1024 * 1024,
        producer_max_request_size=max(settings.max_message_bytes * 2, 4 * 1024 * 1024),
        stream_buffer_maxsize=4096,
        logging_config=None,
    )


def autodiscover(settings: Settings | None = None) -> faust.App:
    """The assembled worker's App: topics, agents, timers and web pages registered (``streams/assembly.py``).

    ``settings`` default: read now, from the environment and ``WATCHKEEPER_CONFIG``.
    """
    from watchkeeper.settings import load_settings
    from watchkeeper.streams.assembly import assemble

    return assemble(settings if settings is not None else load_settings()).app
