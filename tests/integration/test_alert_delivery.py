"""Every alert state change a worker records reaches its receivers once, across restarts.

A real webhook receiver (an HTTP server on loopback), the embedded store (chdb)
and the worker's own assembly (``streams.service.Worker``): the synthetic fleet
of ``test_alert_engine`` written in two halves, a worker per half.

- A fresh worker whose first pass raises alerts delivers every one of them (the
  dispatcher used to be created after the first pass recorded its alerts, and
  took them for delivered: nothing reached any receiver).
- A restarted worker delivers the second half's alerts once and nothing of the
  first half again.
- State changes recorded by a worker that died before handing them to its
  receivers are delivered by the next one; a receiver that was owed one by a
  dead worker gets it, the others do not get it twice.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_alert_engine import N_WINDOWS, _load
from watchkeeper.alerts.engine import AlertEngine, list_alerts
from watchkeeper.alerts.testing import HttpReceiver
from watchkeeper.settings import Settings
from watchkeeper.sinks.writer import Store
from watchkeeper.streams.metrics_export import WorkerCollector
from watchkeeper.streams.service import Worker

pytestmark = pytest.mark.integration

HALF = N_WINDOWS // 2


def _settings(port: int, database: str, **receivers: Any) -> Settings:
    return Settings(clickhouse=f"http://127.0.0.1:{port}/{database}", window_seconds=300, **receivers)


def _received(rx: HttpReceiver, path: str = "/hook") -> Counter[tuple[str, str, str]]:
    """(alert_id, state, ts) of every alert the webhook got, counted."""
    return Counter(
        (a["alert_id"], a["state"], a["ts"]) for r in rx.requests if r.path == path for a in r.json["alerts"]
    )


def _recorded(store: Store) -> Counter[tuple[str, str, str]]:
    """Every state change in ``alerts``, as the webhook would show it."""
    return Counter((a.alert_id, a.state, a.to_json()["ts"]) for a in list_alerts(store, history=True, limit=100_000))


def _run_pass(worker: Worker) -> int:
    """One model-stage pass's alert evaluation, then wait until the receivers have everything queued."""
    n = len(worker.evaluate_alerts())
    assert worker.dispatcher.flush(20)
    return n


@pytest.fixture
def fresh(store: tuple[str, int], request: pytest.FixtureRequest) -> Iterator[tuple[int, str]]:
    """A database of its own for each test: (port, name)."""
    name = "wkdeliver_" + re.sub(r"\W", "_", request.node.name)[:40]
    st = Store(host=store[0], port=store[1], database=name)
    st.command(f"DROP DATABASE IF EXISTS {name}", use_database=False)
    yield store[1], name
    st.close()


def _stop(worker: Worker) -> None:
    worker.dispatcher.close(timeout=10)
    worker.store.close()


def test_a_fresh_worker_delivers_its_first_alerts_and_a_restart_sends_nothing_twice(fresh: tuple[int, str]) -> None:
    port, db = fresh
    with HttpReceiver() as rx:
        settings = _settings(port, db, webhook_url=rx.url("/hook"))
        first = Worker(settings)
        first.ensure_schema()
        _load(first.store, range(0, HALF))
        raised = _run_pass(first)
        recorded = _recorded(first.store)
        assert raised > 0 and sum(recorded.values()) == raised
        # Every state change the first pass recorded arrived, once.
        assert _received(rx) == recorded
        _stop(first)

        # A restart: the second half of the data; the new state changes arrive once, the old ones not again.
        second = Worker(settings)
        _load(second.store, range(HALF, N_WINDOWS))
        more = _run_pass(second)
        assert more > 0
        recorded = _recorded(second.store)
        assert sum(recorded.values()) == raised + more
        assert _received(rx) == recorded
        # A third start with nothing new sends nothing at all.
        before = len(rx.requests)
        third = Worker(settings)
        assert _run_pass(third) == 0
        assert len(rx.requests) == before
        _stop(second)
        _stop(third)


def test_what_a_dead_worker_recorded_but_did_not_deliver_is_delivered_by_the_next(fresh: tuple[int, str]) -> None:
    port, db = fresh
    with HttpReceiver() as rx:
        settings = _settings(port, db, webhook_url=rx.url("/hook"))
        crashed = Worker(settings)
        crashed.ensure_schema()
        _load(crashed.store, range(0, HALF))
        # The alert engine records the state changes; the worker dies before its dispatcher routes them.
        lost = AlertEngine(crashed.store, settings.alert_config()).evaluate()
        assert lost and not rx.requests
        crashed.store.close()

        restarted = Worker(settings)
        assert _run_pass(restarted) == 0  # nothing new to decide...
        assert _received(rx) == _recorded(restarted.store)  # ...and what was owed is delivered, once
        assert sum(_received(rx).values()) == len(lost)
        _stop(restarted)
        again = Worker(settings)
        _run_pass(again)
        assert sum(_received(rx).values()) == len(lost)
        _stop(again)


def test_a_receiver_owed_an_alert_gets_it_and_the_one_that_had_it_does_not(fresh: tuple[int, str]) -> None:
    """Two receivers: the webhook answered; the team's kept failing until the worker stopped."""
    port, db = fresh
    with HttpReceiver() as ok, HttpReceiver(statuses=[503] * 1000) as down:
        team = {"team": {"type": "webhook", "url": down.url("/team")}}
        settings = _settings(port, db, webhook_url=ok.url("/hook"), alert_receivers=team)
        first = Worker(settings)
        first.ensure_schema()
        _load(first.store, range(0, HALF))
        first.dispatcher.retry = first.dispatcher.retry.model_copy(update={"attempts": 1000, "initial_delay": 0.05})
        first.evaluate_alerts()
        recorded = _recorded(first.store)
        deadline = time.monotonic() + 20
        while _received(ok) != recorded and time.monotonic() < deadline:
            time.sleep(0.05)
        assert down.wait_for(2)
        assert first.dispatcher.flush(0.5) is False  # the team's receiver still fails
        first.dispatcher.close(timeout=0.1)  # stopping: what the team did not get stays owed
        first.store.close()
        assert _received(ok) == recorded

        down.statuses.clear()  # the team's endpoint is back
        failed_requests = len(down.requests)
        restarted = Worker(settings)
        assert _run_pass(restarted) == 0
        assert _received(ok) == recorded  # the webhook had them all: none sent again
        after = Counter(
            (a["alert_id"], a["state"], a["ts"]) for r in down.requests[failed_requests:] for a in r.json["alerts"]
        )
        assert after == recorded  # the team gets each, once
        _stop(restarted)


def test_suppressed_duplicates_are_exported(fresh: tuple[int, str]) -> None:
    port, db = fresh
    with HttpReceiver() as rx:
        settings = _settings(port, db, webhook_url=rx.url("/hook"))
        worker = Worker(settings)
        worker.ensure_schema()
        _load(worker.store, range(0, HALF))
        alerts = worker.evaluate_alerts()
        worker.dispatcher.submit(alerts)  # the same state changes again: suppressed, counted
        assert worker.dispatcher.flush(20)
        families = {f.name: f for f in WorkerCollector(worker).collect()}
        samples = {s.name: s.value for s in families["watchkeeper_alert_duplicates_suppressed"].samples}
        assert samples == {"watchkeeper_alert_duplicates_suppressed_total": float(len(alerts))}
        assert _received(rx) == _recorded(worker.store)
        _stop(worker)


def test_an_upgraded_store_does_not_send_the_alerts_it_recorded_before_again(fresh: tuple[int, str]) -> None:
    """Migration 9 takes the state changes recorded before delivery records existed for delivered."""
    port, db = fresh
    with HttpReceiver() as rx:
        settings = _settings(port, db, webhook_url=rx.url("/hook"))
        old = Worker(settings)
        old.ensure_schema()
        _load(old.store, range(0, HALF))
        recorded = AlertEngine(old.store, settings.alert_config()).evaluate()
        assert recorded
        # The store as a release before migration 9 left it: no deliveries table, the migration not applied.
        old.store.command(f"DROP TABLE {db}.alert_deliveries", use_database=False)
        old.store.command(f"DELETE FROM {db}.schema_migrations WHERE version = 9")
        old.store.close()

        upgraded = Worker(settings)
        upgraded.ensure_schema()
        _load(upgraded.store, range(HALF, N_WINDOWS))
        new = _run_pass(upgraded)
        assert new > 0
        before = Counter((a.alert_id, a.state, a.to_json()["ts"]) for a in recorded)
        assert not set(_received(rx)) & set(before)  # nothing recorded before the upgrade is sent again
        assert sum(_received(rx).values()) == new  # what the upgraded worker decided is sent, once
        _stop(upgraded)
