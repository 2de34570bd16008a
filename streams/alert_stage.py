"""The alert stage: judge the windows written, record each state change, deliver it once.

Built by the worker's assembly from its typed configurations — the policies and
owners (:class:`~watchkeeper.alerts.config.AlertConfig`), the receivers and
routes (:class:`~watchkeeper.alerts.notifiers.DeliveryConfig`) — and the store
it reads and records in. The engine decides and records (``alerts``); the
dispatcher delivers and records each delivery (``alert_deliveries``); the
gauges of the owned models are read after each evaluation.

The dispatcher is created before the first evaluation, so that what the first
pass records is delivered: at creation it resumes what was delivered before this
process started and delivers what was recorded and not delivered
(``alerts/deliveries.py``). When models move to another worker it is closed
(what is queued is delivered first, the rest stays owed) and the next one starts
from the store again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import cached_property

from watchkeeper.alerts.config import AlertConfig
from watchkeeper.alerts.deliveries import DeliveryLog, catch_up
from watchkeeper.alerts.dispatch import Dispatcher
from watchkeeper.alerts.engine import AlertEngine
from watchkeeper.alerts.model import Alert
from watchkeeper.alerts.notifiers import DeliveryConfig
from watchkeeper.sinks.protocols import StoreClient, StoreWriter
from watchkeeper.streams.model_gauges import ModelGauges, read_model_gauges

# How long a closing dispatcher delivers what it has queued before the rest is left owed.
HANDOVER_WAIT_S = 5.0


class AlertStage:
    """Judges, records and delivers the owned models' alerts (see the module doc).

    ``store``: reads windows and alerts, records state changes (the pass's connection);
    ``journal_store``: makes the connection deliveries are recorded on (receivers' threads
    write while a pass queries); ``owns``: the models this worker handles now.
    """

    def __init__(
        self,
        store: StoreClient,
        config: AlertConfig,
        delivery: DeliveryConfig,
        *,
        journal_store: Callable[[], StoreWriter],
        owns: Callable[[str], bool],
        worker_id: str,
    ) -> None:
        self.store = store
        self.config = config
        self.delivery = delivery
        self.journal_store = journal_store
        self.owns = owns
        self.worker_id = worker_id
        self.gauges = ModelGauges()
        # Counts of the dispatchers a handover closed (``delivery_stats``).
        self._retired: Counter[str] = Counter()
        self._retired_receivers: Counter[tuple[str, str]] = Counter()
        self._dispatcher: Dispatcher | None = None

    @cached_property
    def engine(self) -> AlertEngine:
        return AlertEngine(self.store, self.config, owns=self.owns)

    @cached_property
    def delivery_log(self) -> DeliveryLog:
        return DeliveryLog(self.journal_store(), self.worker_id)

    @property
    def dispatcher(self) -> Dispatcher:
        """The current dispatcher; the first use (or the first after a handover) catches up from the store."""
        if self._dispatcher is None:
            dispatcher = Dispatcher.from_config(self.delivery, journal=self.delivery_log)
            # Re-sending what fires is the owner's job: each worker tracks its own models' alerts.
            catch_up(dispatcher, self.store, self.owns)
            self._dispatcher = dispatcher
        return self._dispatcher

    @property
    def started(self) -> bool:
        """Whether a dispatcher is running (its counts are on /metrics)."""
        return self._dispatcher is not None

    def evaluate(self) -> list[Alert]:
        """Run the policies over the windows written so far; returns the state changes (recorded, queued)."""
        dispatcher = self.dispatcher  # first: it must not take what this pass records for delivered
        alerts = self.engine.evaluate()
        if alerts:
            dispatcher.submit(alerts)
        return alerts

    def refresh_gauges(self) -> ModelGauges:
        """Read the owned models' gauges from the store (three statements), for the next scrapes."""
        self.gauges = read_model_gauges(self.store, self.owns)
        return self.gauges

    def hand_over(self) -> None:
        """Models moved: re-sending firing alerts (Alertmanager) is their new owner's job now.

        The dispatcher tracks the firing alerts it re-sends; one that kept a departed model's
        alert would re-send it as firing after its new owner resolved it. So it is closed
        (what is queued is delivered first) and the next one resumes the owned models' alerts.
        """
        old, self._dispatcher = self._dispatcher, None
        if old is not None:
            old.close(timeout=HANDOVER_WAIT_S)
            self._retired.update(old.stats)
            self._retired_receivers.update(old.receiver_stats)

    def delivery_stats(self) -> tuple[Counter[str], Counter[tuple[str, str]]]:
        """The dispatchers' counts since this process started: (totals, per (receiver, outcome))."""
        stats, per_receiver = Counter(self._retired), Counter(self._retired_receivers)
        if self._dispatcher is not None:
            stats.update(self._dispatcher.stats)
            per_receiver.update(self._dispatcher.receiver_stats)
        return stats, per_receiver
