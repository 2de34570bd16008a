"""Delivery: routing, background sending with retries, dead letters. Never blocks the caller.

``Dispatcher.submit(alerts)`` routes each alert to receivers, builds their
payloads and puts them on one bounded queue per receiver; it returns at once.
Each receiver has its own thread, so a slow or dead endpoint delays only
itself. A failed request is retried with exponential backoff (honouring
``Retry-After``) when the failure is worth retrying (connection errors, 408,
425, 429, 5xx); after the last attempt, or on another 4xx, or when a queue is
full, the message becomes a :class:`DeadLetter`: kept in ``dead_letters``,
counted in ``stats``, passed to ``on_dead_letter`` if given, and re-sendable
with :meth:`Dispatcher.redeliver`.

Delivery records: given a ``journal`` (:class:`~watchkeeper.alerts.deliveries.DeliveryLog`),
the dispatcher records each state change it routes (``queued`` per receiver, ``unrouted``
when none wants it) and each receiver's outcome (``delivered``, ``dead_letter``), so that a
restarted worker delivers what it recorded but did not deliver, and nothing twice. Messages
still queued when the dispatcher closes stay ``queued``: the next worker delivers them.

Routing: the global webhook (``WATCHKEEPER_WEBHOOK_URL``), the retrain webhook
and Grafana annotations get every alert they accept. The others (Slack,
PagerDuty, Alertmanager, named receivers) follow the routes: an alert goes to
the receivers of every route that matches its owner, severity, kind and model.
Without routes, each gets every alert at or above its default severity
(PagerDuty: critical; others: info). Silenced alerts go only to the receivers
that keep records (global webhook, Grafana).

>>> from watchkeeper.alerts.model import Alert
>>> a = Alert(alert_id="retrain-1", model="fraud", version="v3", kind="retrain", severity="warning",
...           state="firing", summary="s", evidence={}, owner="payments-ml", ts=0, fired_at=0)
>>> Route(receivers=("pager",), owner="payments-ml", min_severity="critical").matches(a)
False
>>> Route(receivers=("chat",), owner="payments-ml").matches(a)
True
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from watchkeeper.alerts.model import Alert, Severity, severity_rank
from watchkeeper.alerts.notifiers import (
    AlertmanagerNotifier,
    DeliveryConfig,
    DeliveryError,
    Message,
    Notifier,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
    notifiers_from_config,
)

log = logging.getLogger(__name__)

# Outcomes recorded in a journal (alerts/deliveries.py reads them back).
QUEUED, DELIVERED, DEAD_LETTER, UNROUTED, FAILED = "queued", "delivered", "dead_letter", "unrouted", "failed"
SHUTDOWN = "shutdown"  # the reason of what a closing dispatcher did not send (not recorded: it stays owed)


class Journal(Protocol):
    """Where the dispatcher records what it routed and each receiver's outcome."""

    def record(self, alerts: Sequence[Alert], receiver: str, outcome: str) -> None: ...


class Route(BaseModel):
    """Send matching alerts to ``receivers``. Unset matchers match everything."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    receivers: tuple[str, ...]
    owner: str | None = None
    min_severity: Severity = "info"
    kinds: tuple[str, ...] = ()
    models: tuple[str, ...] = ()

    def matches(self, alert: Alert) -> bool:
        return (
            (self.owner is None or self.owner == alert.owner)
            and severity_rank(alert.severity) >= severity_rank(self.min_severity)
            and (not self.kinds or alert.kind in self.kinds)
            and (not self.models or alert.model in self.models)
        )


class ReceiverConfig(BaseModel):
    """A named receiver for routes (YAML ``alert_receivers: {name: {type: slack, url: ...}}``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["webhook", "slack", "pagerduty", "alertmanager"]
    url: SecretStr | None = None
    routing_key: SecretStr | None = None

    def build(self, name: str) -> Notifier:
        if self.type == "pagerduty":
            if self.routing_key is None:
                raise ValueError(f"receiver {name!r}: pagerduty needs routing_key")
            kw = {"url": self.url.get_secret_value()} if self.url else {}
            return PagerDutyNotifier(self.routing_key, name=name, **kw)
        if self.url is None:
            raise ValueError(f"receiver {name!r}: {self.type} needs url")
        if self.type == "slack":
            return SlackNotifier(self.url, name=name)
        if self.type == "alertmanager":
            return AlertmanagerNotifier(self.url.get_secret_value(), name=name)
        return WebhookNotifier(self.url, name=name, routed=True)


class Retry(BaseModel):
    """Attempts per message, exponential backoff between them, and the timeout of one request."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: Annotated[int, Field(ge=1)] = 5
    initial_delay: Annotated[float, Field(ge=0)] = 0.5
    max_delay: Annotated[float, Field(ge=0)] = 30.0
    factor: Annotated[float, Field(ge=1)] = 2.0
    timeout: Annotated[float, Field(gt=0)] = 5.0

    def delays(self) -> list[float]:
        """The waits between attempts.

        >>> Retry(attempts=4, initial_delay=1, max_delay=3).delays()
        [1.0, 2.0, 3.0]
        """
        return [min(self.max_delay, self.initial_delay * self.factor**i) for i in range(self.attempts - 1)]


@dataclass(frozen=True)
class DeadLetter:
    """Alerts a receiver did not get."""

    receiver: str
    error: str
    attempts: int
    alerts: tuple[Alert, ...]
    at: datetime

    @property
    def alert_ids(self) -> tuple[str, ...]:
        return tuple(a.alert_id for a in self.alerts)


class _Lane:
    """One receiver's bounded queue and sending thread."""

    def __init__(self, notifier: Notifier, owner: Dispatcher, size: int) -> None:
        self.notifier = notifier
        self.owner = owner
        self.queue: queue.Queue[Message] = queue.Queue(maxsize=size)
        self.active: dict[str, Alert] = {}  # firing alerts, for receivers that need re-sending
        self.next_resend = time.monotonic() + (notifier.resend_seconds or 0)
        self.thread = threading.Thread(target=self._run, name=f"watchkeeper-notify-{notifier.name}", daemon=True)
        self.thread.start()

    def put(self, message: Message) -> None:
        try:
            self.queue.put_nowait(message)
            self.owner._count("queued", receiver=self.notifier.name)
        except queue.Full:
            self.owner._dead(self.notifier, message, "queue full", 0)

    def track(self, alerts: Iterable[Alert]) -> None:
        if self.notifier.resend_seconds:
            for a in alerts:
                if a.firing:
                    self.active[a.alert_id] = a
                else:
                    self.active.pop(a.alert_id, None)

    def _run(self) -> None:
        stop = self.owner._stop
        while not stop.is_set():
            try:
                message = self.queue.get(timeout=0.05)
            except queue.Empty:
                self._maybe_resend()
                continue
            try:
                self._deliver(message)
            finally:
                self.queue.task_done()

    def _maybe_resend(self) -> None:
        period = self.notifier.resend_seconds
        if not period or not self.active or time.monotonic() < self.next_resend:
            return
        self.next_resend = time.monotonic() + period
        try:
            for m in self.notifier.messages(sorted(self.active.values(), key=lambda a: a.alert_id)):
                self._deliver(m, resend=True)
        except Exception as exc:
            log.warning("re-sending to %s failed: %s", self.notifier.name, type(exc).__name__)

    def _deliver(self, message: Message, resend: bool = False) -> None:
        n, retry, stop = self.notifier, self.owner.retry, self.owner._stop
        delays = retry.delays()
        attempt = 0
        while True:
            attempt += 1
            try:
                n.send(message, retry.timeout)
                self.owner._count("resent" if resend else "delivered", len(message.alerts), receiver=n.name)
                if not resend:
                    self.owner._journal(message.alerts, n.name, DELIVERED)
                return
            except DeliveryError as exc:
                err = exc
            except Exception as exc:  # a bug or an unexpected library error: same handling, no secrets
                err = DeliveryError(n.name, type(exc).__name__, retriable=True)
            if not err.retriable or attempt > len(delays) or stop.is_set():
                break
            wait = delays[attempt - 1] if err.retry_after is None else min(err.retry_after, retry.max_delay)
            self.owner._count("retries", receiver=n.name)
            log.info("delivery to %s failed (%s), retry %d in %.2fs", n.name, err.reason, attempt, wait)
            if stop.wait(wait):
                break
        if resend:
            self.owner._count("resend_failures", receiver=n.name)
        elif n.best_effort:
            self.owner._count("best_effort_failures", len(message.alerts), receiver=n.name)
            log.info("best-effort delivery to %s failed: %s", n.name, err.reason)
            self.owner._journal(message.alerts, n.name, FAILED)
        else:
            # Interrupted by the shutdown rather than given up on: it stays owed, the next worker sends it.
            self.owner._dead(n, message, err.reason, attempt, final=not (stop.is_set() and err.retriable))


class Dispatcher:
    """Routes alerts to notifiers and delivers them on background threads (see the module doc)."""

    def __init__(
        self,
        notifiers: Iterable[Notifier],
        routes: Sequence[Route] = (),
        *,
        retry: Retry | None = None,
        queue_size: int = 1000,
        on_dead_letter: Callable[[DeadLetter], Any] | None = None,
        max_dead_letters: int = 10_000,
        journal: Journal | None = None,
    ) -> None:
        self.retry = retry or Retry()
        self.journal = journal
        self.routes = tuple(routes)
        self.on_dead_letter = on_dead_letter
        self.dead_letters: deque[DeadLetter] = deque(maxlen=max_dead_letters)
        self.stats: Counter[str] = Counter()
        # The same counts per receiver, (receiver, key): what /metrics exports.
        self.receiver_stats: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._seen: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        names = [n.name for n in notifiers]
        if len(set(names)) != len(names):
            raise ValueError(f"receiver names must be unique: {names}")
        self._lanes = {n.name: _Lane(n, self, queue_size) for n in notifiers}

    @classmethod
    def from_config(
        cls,
        config: DeliveryConfig,
        *,
        routes: Sequence[Route | Mapping[str, Any]] | None = None,
        receivers: Mapping[str, ReceiverConfig | Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Dispatcher:
        """Receivers from the configured URLs and keys, plus named ``receivers`` and ``routes``
        (default: ``config.receivers`` and ``config.routes``)."""
        notifiers = notifiers_from_config(config)
        extra = receivers if receivers is not None else config.receivers
        for name, cfg in sorted(extra.items()):
            rc = cfg if isinstance(cfg, ReceiverConfig) else ReceiverConfig.model_validate(cfg)
            notifier = rc.build(name)
            notifier.grafana_url = config.links_to  # the deep link, as for the configured receivers
            notifiers.append(notifier)
        raw_routes = routes if routes is not None else config.routes
        parsed = [r if isinstance(r, Route) else Route.model_validate(r) for r in raw_routes]
        return cls(notifiers, parsed, **kwargs)

    @property
    def receivers(self) -> list[str]:
        return sorted(self._lanes)

    def __repr__(self) -> str:
        return f"Dispatcher(receivers={self.receivers})"

    # Routing ---------------------------------------------------------------------
    def wants(self, notifier: Notifier, alert: Alert) -> bool:
        """Whether ``notifier`` should get ``alert`` (routing, silences, its own filter)."""
        if not notifier.accepts(alert):
            return False
        if alert.silenced and not notifier.includes_silenced:
            return False
        if not notifier.routed:
            return True
        if self.routes:
            return any(notifier.name in r.receivers and r.matches(alert) for r in self.routes)
        return severity_rank(alert.severity) >= severity_rank(notifier.default_min_severity)

    def receivers_for(self, alert: Alert) -> list[str]:
        return [name for name, lane in sorted(self._lanes.items()) if self.wants(lane.notifier, alert)]

    # Submitting ------------------------------------------------------------------
    def submit(
        self, alerts: Iterable[Alert], *, only: Mapping[tuple[str, str, int], Iterable[str]] | None = None
    ) -> int:
        """Queue ``alerts`` for delivery; returns the number of messages queued. Never blocks.

        ``only``: per state change (``Alert.key()``), the receivers it goes to (of those that want
        it): a restarted worker delivers a state change only to the receivers still owed it.
        """
        if self._closed:
            raise RuntimeError("the dispatcher is closed")
        fresh = []
        with self._lock:
            for a in alerts:
                key = a.key()
                if key in self._seen:
                    self.stats["duplicates"] += 1
                    continue
                self._seen[key] = None
                if len(self._seen) > 100_000:
                    self._seen.popitem(last=False)
                fresh.append(a)
                if a.silenced:
                    self.stats["silenced"] += 1
        queued = 0
        allowed = None if only is None else {k: set(v) for k, v in only.items()}
        routed: set[tuple[str, str, int]] = set()
        for lane in self._lanes.values():
            name = lane.notifier.name
            chosen = [a for a in fresh if self.wants(lane.notifier, a)
                      and (allowed is None or name in allowed.get(a.key(), ()))]  # fmt: skip
            if not chosen:
                continue
            routed.update(a.key() for a in chosen)
            self._journal(chosen, name, QUEUED)
            lane.track(chosen)
            try:
                messages = lane.notifier.messages(chosen)
            except Exception as exc:  # a payload bug must not reach the caller
                self._dead(lane.notifier, Message(None, tuple(chosen)), f"payload error ({type(exc).__name__})", 0)
                continue
            for m in messages:
                lane.put(m)
                queued += 1
        if only is None:
            self._journal([a for a in fresh if a.key() not in routed], "", UNROUTED)
        return queued

    def resume(self, firing: Iterable[Alert]) -> None:
        """After a restart: remember what is firing (e.g. ``list_alerts(store, state="firing")``)
        so that receivers that expire alerts (Alertmanager) keep getting them re-sent. Sends nothing now."""
        alerts = [a for a in firing if a.firing]
        with self._lock:
            for a in alerts:
                self._seen[a.key()] = None
        for lane in self._lanes.values():
            lane.track([a for a in alerts if self.wants(lane.notifier, a)])

    def redeliver(self, dead: DeadLetter) -> int:
        """Queue a dead letter's alerts again for its receiver."""
        lane = self._lanes[dead.receiver]
        messages = lane.notifier.messages(list(dead.alerts))
        for m in messages:
            lane.put(m)
        return len(messages)

    # Waiting and closing -----------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued message was delivered or dead-lettered; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while any(lane.queue.unfinished_tasks for lane in self._lanes.values()):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued for up to ``timeout`` seconds, then stop; the rest is dead-lettered."""
        if self._closed:
            return
        self._closed = True
        self.flush(timeout)
        self._stop.set()
        for lane in self._lanes.values():
            lane.thread.join(timeout=max(1.0, lane.owner.retry.timeout + 0.5))
            while True:
                try:
                    m = lane.queue.get_nowait()
                except queue.Empty:
                    break
                self._dead(lane.notifier, m, SHUTDOWN, 0, final=False)
                lane.queue.task_done()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Book-keeping ------------------------------------------------------------------
    def _count(self, key: str, n: int = 1, *, receiver: str | None = None) -> None:
        with self._lock:
            self.stats[key] += n
            if receiver is not None:
                self.receiver_stats[(receiver, key)] += n

    def _journal(self, alerts: Sequence[Alert], receiver: str, outcome: str) -> None:
        if self.journal is None or not alerts:
            return
        try:
            self.journal.record(alerts, receiver, outcome)
        except Exception as exc:  # a record is never worth a delivery
            log.warning("could not record deliveries to %s: %s", receiver or "(none)", type(exc).__name__)

    def _dead(self, notifier: Notifier, message: Message, error: str, attempts: int, *, final: bool = True) -> None:
        dl = DeadLetter(notifier.name, error, attempts, message.alerts, datetime.now(UTC))
        with self._lock:
            self.dead_letters.append(dl)
            self.stats["dead_letters"] += 1
            self.stats["dead_lettered_alerts"] += len(message.alerts)
            self.receiver_stats[(notifier.name, "dead_letters")] += 1
        log.warning("alerts %s undeliverable to %s after %d attempts: %s",
                    ",".join(dl.alert_ids), notifier.name, attempts, error)  # fmt: skip
        if final:  # what a closing dispatcher did not send stays owed (recorded as queued)
            self._journal(message.alerts, notifier.name, DEAD_LETTER)
        if self.on_dead_letter is not None:
            try:
                self.on_dead_letter(dl)
            except Exception as exc:
                log.warning("on_dead_letter callback failed: %s", type(exc).__name__)
