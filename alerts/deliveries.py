"""Which receivers each alert state change went to, recorded in ``alert_deliveries``.

A worker records a state change in ``alerts`` and then hands it to its
receivers. Both are recorded, so that a restarted worker (or a model's new
owner) knows, without guessing, what it still has to deliver:

- when the dispatcher routes a state change, one ``queued`` row per receiver
  that will get it (``unrouted``, receiver ``''``, when none wants it);
- when a receiver's request ends, a ``delivered`` or ``dead_letter`` row.

At start, :func:`pending` lists the state changes of ``alerts`` that have no
rows at all (recorded, then the worker stopped before routing them) or whose
queued receivers did not all finish; the worker delivers those — each only to
the receivers still owed it — and resumes the rest (:func:`delivered_firing`).
A state change is sent at least once; twice only if the worker dies between a
receiver's answer and the write of its ``delivered`` row.

>>> from watchkeeper.alerts.model import Alert
>>> a = Alert(alert_id="drift-1", model="m", version="v1", kind="drift", severity="warning",
...           state="firing", summary="s", evidence={}, ts=60, fired_at=61)
>>> rows = delivery_rows([a], "webhook", "queued", worker="host:1", at=a.fired_at)
>>> rows["receiver"], rows["outcome"], rows["alert_id"]
(['webhook'], ['queued'], ['drift-1'])
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from watchkeeper.alerts.dispatch import QUEUED, Dispatcher
from watchkeeper.alerts.model import ALERT_COLUMNS_SQL, Alert
from watchkeeper.sinks.protocols import StoreReader, StoreWriter
from watchkeeper.sinks.schema import DELIVERIES

log = logging.getLogger(__name__)

TABLE = DELIVERIES.name
# A receiver that was owed a state change and is no longer configured (recorded at the next start).
ABANDONED = "abandoned"
# At most this many undelivered state changes are taken up at start (oldest first); the rest next time.
PENDING_LIMIT = 10_000

# The recorded state changes not yet done: no delivery row at all, or a queued receiver that never finished.
PENDING_SQL = f"""
SELECT {ALERT_COLUMNS_SQL}, d.planned AS planned, d.done AS done
FROM (SELECT * FROM alerts FINAL) AS a
LEFT JOIN (
    SELECT model AS d_model, alert_id AS d_alert_id, state AS d_state, ts AS d_ts,
           groupUniqArray(receiver) AS planned, groupUniqArrayIf(receiver, outcome != '{QUEUED}') AS done
    FROM {TABLE}
    GROUP BY model, alert_id, state, ts
) AS d ON a.model = d.d_model AND a.alert_id = d.d_alert_id AND a.state = d.d_state AND a.ts = d.d_ts
WHERE empty(d.planned) OR NOT hasAll(d.done, d.planned)
ORDER BY a.ts, a.alert_id, a.state
LIMIT {{limit:UInt32}}
"""

# The latest state change of every alert, where it is firing and was handed to its receivers.
DELIVERED_FIRING_SQL = f"""
SELECT * FROM (
    SELECT {ALERT_COLUMNS_SQL}, ts AS change_ts FROM alerts FINAL ORDER BY alert_id, ts DESC LIMIT 1 BY alert_id
) AS a
WHERE a.state = 'firing' AND (a.model, a.alert_id, a.change_ts) IN (
    SELECT model, alert_id, ts FROM {TABLE} WHERE state = 'firing'
)
"""


@dataclass(frozen=True)
class Pending:
    """A recorded state change not yet delivered: ``done`` lists the receivers that already finished
    with it, ``planned`` those it was queued for (empty: never routed; route it now)."""

    alert: Alert
    planned: frozenset[str]
    done: frozenset[str]

    def owed(self, receivers: Iterable[str]) -> set[str]:
        """Of ``receivers`` (those that want it now), the ones still owed this state change."""
        wanted = set(receivers)
        return wanted if not self.planned else set(self.planned & wanted) - self.done


def pending(store: StoreReader, owns: Callable[[str], bool], limit: int = PENDING_LIMIT) -> list[Pending]:
    """Recorded state changes of the owned models that are not delivered yet, oldest first."""
    out = []
    for r in store.query(PENDING_SQL, {"limit": int(limit)}):
        if not owns(str(r["model"])):
            continue
        planned, done = frozenset(r.pop("planned") or ()), frozenset(r.pop("done") or ())
        out.append(Pending(Alert.from_row(r), planned, done))
    return out


def delivered_firing(store: StoreReader, owns: Callable[[str], bool]) -> list[Alert]:
    """The owned models' alerts firing now whose firing was delivered before (what re-sending keeps alive)."""
    return [a for a in (Alert.from_row(r) for r in store.query(DELIVERED_FIRING_SQL)) if owns(a.model)]


def delivery_rows(
    alerts: Sequence[Alert], receiver: str, outcome: str, *, worker: str, at: datetime
) -> dict[str, list[Any]]:
    """The ``alert_deliveries`` rows of ``alerts`` handed to (or finished by) one receiver."""
    return {
        "ts": [a.ts for a in alerts],
        "alert_id": [a.alert_id for a in alerts],
        "state": [a.state for a in alerts],
        "model": [a.model for a in alerts],
        "receiver": [receiver] * len(alerts),
        "outcome": [outcome] * len(alerts),
        "updated_at": [at] * len(alerts),
        "worker": [worker] * len(alerts),
    }


class DeliveryLog:
    """Writes delivery rows, from the pass's thread and from the receivers' threads.

    A write the store refuses is kept and retried with the next one (and by :meth:`flush`): a
    delivery is never held back for its record; a record lost with the process means that state
    change may be sent again after the restart, never that it is lost.
    """

    def __init__(self, store: StoreWriter, worker: str, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.worker = worker
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._unwritten: dict[str, list[Any]] = defaultdict(list)
        self.failures = 0

    def record(self, alerts: Sequence[Alert], receiver: str, outcome: str) -> None:
        if not alerts:
            return
        rows = delivery_rows(alerts, receiver, outcome, worker=self.worker, at=self.clock())
        with self._lock:
            for column, values in rows.items():
                self._unwritten[column].extend(values)
            self._write()

    def flush(self) -> bool:
        """Write what earlier attempts could not; true when nothing is left."""
        with self._lock:
            return self._write()

    def _write(self) -> bool:
        if not self._unwritten:
            return True
        try:
            self.store.insert(TABLE, dict(self._unwritten))
        except Exception as exc:  # the store is down: keep the rows for the next write
            self.failures += 1
            log.warning("could not record %d alert deliveries (kept, retried): %s",
                        len(self._unwritten["ts"]), type(exc).__name__)  # fmt: skip
            return False
        self._unwritten.clear()
        return True


def catch_up(
    dispatcher: Dispatcher,
    store: StoreReader,
    owns: Callable[[str], bool],
    *,
    now: datetime | None = None,
) -> int:
    """Start a dispatcher where the store says the last one stopped; returns the state changes re-queued.

    The owned models' alerts that fire and were delivered are resumed (re-sent to receivers that
    expire alerts, never delivered again now); those recorded and not delivered are delivered now,
    each to the receivers still owed it, with the silences in force now.
    """
    from watchkeeper.alerts.silences import active_silences

    todo = pending(store, owns)
    owed = {p.alert.key() for p in todo}
    dispatcher.resume([a for a in delivered_firing(store, owns) if a.key() not in owed])
    if not todo:
        return 0
    now = now or datetime.now(UTC)
    try:
        silences = active_silences(store, now)
    except Exception as exc:  # silences are advisory: never hold a page back over them
        log.warning("could not read silences: %s", type(exc).__name__)
        silences = []
    fresh: list[Alert] = []
    again: list[Alert] = []
    only: dict[tuple[str, str, int], set[str]] = {}
    for p in todo:
        alert = p.alert
        if any(s.silences(alert, now) for s in silences):
            alert = alert.model_copy(update={"silenced": True})
        if not p.planned:  # never routed: routed now, as it would have been (unwanted: recorded as unrouted)
            fresh.append(alert)
            continue
        wanting = dispatcher.receivers_for(alert)
        gone = sorted(p.planned - p.done - set(wanting) - {""})  # receivers removed from the configuration since
        if gone and dispatcher.journal is not None:
            for receiver in gone:
                dispatcher.journal.record([alert], receiver, ABANDONED)
        receivers = p.owed(wanting)
        if receivers:
            again.append(alert)
            only[alert.key()] = receivers
    dispatcher.submit(fresh)
    if again:
        dispatcher.submit(again, only=only)
    n = len(fresh) + len(again)
    log.info("delivering %d alert state changes recorded but not delivered before (%d partly delivered)",
             n, len(again))  # fmt: skip
    dispatcher.stats["caught_up"] += n
    return n
