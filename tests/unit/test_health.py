"""The worker's readiness and liveness logic (streams/health.py), without a worker.

A manual clock stands in for time; a stand-in worker for the real one. The
endpoints on a running worker: tests/integration/test_ops.py.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from watchkeeper.settings import Settings
from watchkeeper.streams.health import (
    LOOP_STALE_S,
    WRITE_STALL_S,
    Progress,
    liveness,
    readiness,
    store_reachable,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _never_asked() -> bool:
    raise AssertionError("the store was asked although no write looked stuck")


def test_a_beating_idle_worker_is_live(clock: Clock) -> None:
    p = Progress(clock=clock)
    p.beat()
    clock.now += LOOP_STALE_S - 1
    verdict = liveness(p, _never_asked)
    assert verdict.status == 200
    assert verdict.body()["status"] == "ok" and verdict.body()["failed"] == []
    assert "last write done never" in verdict.body()["checks"]["writers"]["detail"]


def test_a_stale_event_loop_is_not_live(clock: Clock) -> None:
    p = Progress(clock=clock)
    p.beat()
    clock.now += LOOP_STALE_S + 1
    verdict = liveness(p, _never_asked)
    assert verdict.status == 503 and verdict.body()["failed"] == ["event_loop"]


def test_before_the_first_heartbeat_answering_is_enough(clock: Clock) -> None:
    """Faust starts timers only after the first assignment, which may take minutes: no bound before it."""
    p = Progress(clock=clock)
    clock.now += 10 * LOOP_STALE_S
    verdict = liveness(p, _never_asked)
    detail = verdict.body()["checks"]["event_loop"]["detail"]
    assert verdict.ok and "timers start once partitions are assigned" in detail


def test_a_write_stuck_while_the_store_answers_is_not_live(clock: Clock) -> None:
    p = Progress(clock=clock)
    with p.tracking("batch write"):
        clock.now += WRITE_STALL_S - 1
        p.beat()
        assert liveness(p, _never_asked).ok  # in flight, within the bound: the store is not even asked
        clock.now += 2
        p.beat()
        verdict = liveness(p, lambda: True)
        assert verdict.status == 503 and verdict.body()["failed"] == ["writers"]
        assert "batch write in flight" in verdict.body()["checks"]["writers"]["detail"]
        # The same write waiting for a store that is down: not ready, but live (a restart would not help).
        waiting = liveness(p, lambda: False)
        assert waiting.ok and "waiting" in waiting.body()["checks"]["writers"]["detail"]
    assert liveness(p, _never_asked).ok  # the write finished


def test_a_failed_write_counts_as_done(clock: Clock) -> None:
    p = Progress(clock=clock)
    with pytest.raises(RuntimeError), p.tracking("batch write"):
        raise RuntimeError("store refused")
    assert p.oldest_in_flight() is None and p.last_done == {"batch write": clock.now}


def test_the_oldest_write_in_flight_is_reported(clock: Clock) -> None:
    p = Progress(clock=clock)
    with p.tracking("model-stage pass"):
        clock.now += 5
        with p.tracking("batch write"):
            clock.now += 1
            assert p.oldest_in_flight() == ("model-stage pass", 6.0)


def test_readiness_names_the_failed_check() -> None:
    assert readiness(None, True, "ch:8123").body()["failed"] == ["partitions"]
    down = readiness(3, False, "ch:8123")
    assert down.status == 503 and down.body()["failed"] == ["store"]
    assert down.body()["checks"]["store"]["detail"] == "no answer to /ping at ch:8123"
    both = readiness(None, False, "ch:8123")
    assert both.body()["failed"] == ["partitions", "store"]
    ok = readiness(3, True, "ch:8123")
    assert ok.status == 200 and ok.body()["checks"]["partitions"]["detail"] == "3 partitions assigned"


def test_the_worker_times_its_writes_even_those_that_fail(clock: Clock) -> None:
    """The worker records each write in its progress while it is in flight: a store that does not answer
    makes the write fail, and the write is still recorded as done (never stuck in flight)."""
    from watchkeeper.sinks.writer import StoreUnavailable
    from watchkeeper.streams.service import Worker

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    p = Progress(clock=clock)
    worker = Worker(Settings(store_port=port), progress=p)
    for write in (worker.evaluate_alerts, worker.close_windows):
        with pytest.raises(StoreUnavailable):
            write()
    assert set(p.last_done) == {"alert evaluation", "model-stage pass"}
    assert p.oldest_in_flight() is None


@pytest.fixture
def ping_server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            body = b"Ok.\n" if self.path == "/ping" else b"?"
            self.send_response(200 if self.path == "/ping" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_store_reachable_pings_the_configured_store(ping_server: int) -> None:
    assert store_reachable(Settings(store_port=ping_server))
    assert store_reachable(Settings(clickhouse=f"http://writer:pw@127.0.0.1:{ping_server}/watchkeeper"))
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = int(sock.getsockname()[1])
    assert not store_reachable(Settings(store_port=dead), timeout=0.5)
