"""Readiness and liveness of a worker, served on its web port: ``/ready`` and ``/live``.

*Ready* means the worker can do its job: its consumer has been given its
partitions by the group (the assignment is done; an assignment of no partitions
counts, since with more workers than partitions some stand by) and the store
answers ``/ping``. *Live* means the worker is not stuck: the event loop answers
(the web server runs on it) and runs its timers (a heartbeat every
``HEARTBEAT_S``, once Faust has started them after the first assignment), and
no write to the store has been in flight for longer than ``WRITE_STALL_S``
while the store answers. A store that
is down makes a worker not ready, never not live: restarting it would not help.

Both answer 200 or 503 with a JSON body naming each check and which failed::

    {"status": "fail", "failed": ["store"],
     "checks": {"partitions": {"ok": true, "detail": "4 partitions assigned"},
                "store": {"ok": false, "detail": "no answer to /ping at 127.0.0.1:8123"}}}

The logic is plain functions over a :class:`Progress` record, so it is tested
without a worker; the worker times its writes in it and :func:`setup` serves it
on the Faust app.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from watchkeeper.sinks.ping import STORE_PING_TIMEOUT_S, address, reachable

# The event loop beats this often (a Faust timer) ...
HEARTBEAT_S = 1.0
# ... and is taken as stuck when its last beat is older than this.
LOOP_STALE_S = 30.0
# A write (a batch, a model-stage pass) in flight this long while the store answers is stuck.
# A batch takes well under a second; a model-stage pass over a backlog, tens of seconds.
WRITE_STALL_S = 300.0


@dataclass(frozen=True)
class Check:
    """One named condition and what was found."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    """The checks of one endpoint; healthy when all pass.

    >>> v = Verdict({"store": Check(False, "down"), "partitions": Check(True, "4 partitions assigned")})
    >>> v.ok, v.status, v.body()["failed"]
    (False, 503, ['store'])
    """

    checks: dict[str, Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks.values())

    @property
    def status(self) -> int:
        return 200 if self.ok else 503

    def body(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "fail",
            "failed": [name for name, c in self.checks.items() if not c.ok],
            "checks": {name: {"ok": c.ok, "detail": c.detail} for name, c in self.checks.items()},
        }


class Progress:
    """Heartbeats of one worker: the event loop's, its writes' and its partition assignment.

    Thread-safe: writes run in threads. ``clock`` is injectable for tests.

    >>> now = [100.0]
    >>> p = Progress(clock=lambda: now[0])
    >>> p.beat()
    >>> with p.tracking("batch"):
    ...     now[0] += 2.5
    ...     p.oldest_in_flight()
    ('batch', 2.5)
    >>> p.oldest_in_flight() is None, p.last_done["batch"]
    (True, 102.5)
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.loop_beat: float | None = None
        self.last_done: dict[str, float] = {}
        # Set when the group assigns partitions to this worker (None until the first assignment).
        self.assigned: int | None = None
        self._in_flight: dict[int, tuple[str, float]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def beat(self) -> None:
        """The event loop ran (called by a timer)."""
        self.loop_beat = self.clock()

    @contextmanager
    def tracking(self, what: str) -> Iterator[None]:
        """Time one write (or model-stage pass) while it is in flight; done when it ends, even by an error."""
        key = next(self._ids)
        with self._lock:
            self._in_flight[key] = (what, self.clock())
        try:
            yield
        finally:
            with self._lock:
                del self._in_flight[key]
                self.last_done[what] = self.clock()

    def oldest_in_flight(self) -> tuple[str, float] | None:
        """What has been in flight longest, and for how many seconds (None when nothing is)."""
        with self._lock:
            if not self._in_flight:
                return None
            what, since = min(self._in_flight.values(), key=lambda item: item[1])
        return what, self.clock() - since


def liveness(
    progress: Progress,
    store_ok: Callable[[], bool],
    loop_stale_s: float = LOOP_STALE_S,
    write_stall_s: float = WRITE_STALL_S,
) -> Verdict:
    """Is the worker making progress? ``store_ok`` is asked only when a write looks stuck.

    >>> now = [0.0]
    >>> p = Progress(clock=lambda: now[0])
    >>> p.beat()
    >>> liveness(p, lambda: True).ok
    True
    >>> now[0] = 31.0
    >>> liveness(p, lambda: True).body()["failed"]
    ['event_loop']
    """
    now = progress.clock()
    if progress.loop_beat is None:
        # Faust starts timers once the group has assigned partitions, which can take a while; until then,
        # that this check runs at all (on the event loop: the web server shares it) shows the loop turns.
        loop = Check(True, f"answering; timers start once partitions are assigned ({now - progress.started:.0f} s up)")
    else:
        age = now - progress.loop_beat
        loop = Check(age <= loop_stale_s, f"last heartbeat {age:.1f} s ago (bound {loop_stale_s:.0f} s)")
    oldest = progress.oldest_in_flight()
    if oldest is None:
        done = progress.last_done
        detail = "idle; last write done " + (f"{now - max(done.values()):.1f} s ago" if done else "never")
        writers = Check(True, detail)
    else:
        what, age = oldest
        if age <= write_stall_s:
            writers = Check(True, f"{what} in flight for {age:.1f} s")
        elif store_ok():
            bound = f"bound {write_stall_s:.0f} s"
            writers = Check(False, f"{what} in flight for {age:.0f} s ({bound}) while the store answers")
        else:
            # Waiting for the store is correct behaviour: the worker is not ready, but a restart would not help.
            writers = Check(True, f"{what} waiting {age:.0f} s for the store (down: see /ready)")
    return Verdict({"event_loop": loop, "writers": writers})


def readiness(assigned: int | None, store_ok: bool, store_address: str, rebalancing: bool = False) -> Verdict:
    """Can the worker do its job?

    >>> readiness(None, True, "127.0.0.1:8123").body()["failed"]
    ['partitions']
    >>> readiness(4, False, "127.0.0.1:8123").body()["checks"]["store"]
    {'ok': False, 'detail': 'no answer to /ping at 127.0.0.1:8123'}
    >>> readiness(0, True, "127.0.0.1:8123").ok  # more workers than partitions: standing by
    True
    """
    if assigned is None:
        partitions = Check(False, "waiting for the consumer group to assign partitions")
    else:
        detail = f"{assigned} partitions assigned" if assigned else "0 partitions assigned (standing by)"
        partitions = Check(True, detail + ("; rebalancing" if rebalancing else ""))
    if store_ok:
        store = Check(True, f"{store_address} answers")
    else:
        store = Check(False, f"no answer to /ping at {store_address}")
    return Verdict({"partitions": partitions, "store": store})


def store_address(settings: Any) -> str:
    """Where the worker's store is (``host:port``): what ``/ready`` names."""
    return address(settings.clickhouse_params())


def store_reachable(settings: Any, timeout: float = STORE_PING_TIMEOUT_S) -> bool:
    """True if the worker's store answers ``GET /ping`` (``sinks.ping``)."""
    return reachable(settings.clickhouse_params(), timeout)


def setup(app: Any, progress: Progress, settings: Any) -> None:
    """Serve ``/ready`` and ``/live`` on the worker's web port, from ``progress`` (the worker's record)."""
    address = store_address(settings)

    @app.timer(interval=HEARTBEAT_S)
    async def health_heartbeat() -> None:
        progress.beat()

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        progress.assigned = len(assigned)

    @app.page("/ready")
    async def ready(self: Any, request: Any) -> Any:
        reachable = await asyncio.to_thread(store_reachable, settings)
        verdict = readiness(progress.assigned, reachable, address, rebalancing=bool(getattr(app, "rebalancing", False)))
        return self.json(verdict.body(), status=verdict.status)

    @app.page("/live")
    async def live(self: Any, request: Any) -> Any:
        verdict = await asyncio.to_thread(liveness, progress, lambda: store_reachable(settings))
        return self.json(verdict.body(), status=verdict.status)
