"""Shared integration fixtures: free ports and embedded stores in subprocesses.

- ``free_tcp_port``: a free TCP port on 127.0.0.1.
- ``store``: an embedded store for the test module, as (host, port); user ``default``, no password.
- ``store_factory``: starts more stores (own path, port, host or credentials); all stopped at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.sinks.embedded.server import ping

REPO = Path(__file__).resolve().parents[2]

# The store reads its credentials from these; a test gives them explicitly or not at all.
STORE_CREDENTIAL_VARS = (
    "WATCHKEEPER_STORE_USER",
    "WATCHKEEPER_STORE_PASSWORD",
    "WATCHKEEPER_STORE_READONLY_USER",
    "WATCHKEEPER_STORE_READONLY_PASSWORD",
)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (good enough for tests)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class StoreProcess:
    """An embedded store (``python -m watchkeeper.sinks.embedded.server``) running in a subprocess.

    ``env`` adds to the inherited environment, from which store credentials are
    removed, so that by default user ``default`` with no password has full access.
    """

    def __init__(
        self,
        path: Path,
        port: int | None = None,
        *,
        host: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.port = port or free_port()
        self.host = host  # None: the store's default (loopback)
        self.env = dict(env or {})
        self.log_path = self.path.parent / f"store-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host or "127.0.0.1", self.port)

    def start(self, timeout: float = 30.0) -> StoreProcess:
        """Start the store and wait until it answers /ping."""
        env = {k: v for k, v in os.environ.items() if k not in STORE_CREDENTIAL_VARS}
        env.update(self.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "watchkeeper.sinks.embedded.server"]
        cmd += ["--path", str(self.path), "--port", str(self.port)]
        if self.host is not None:
            cmd += ["--host", self.host]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not ping(*self.address, timeout=0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the store did not start; its log:\n{self.log()}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        code = self.process.returncode
        self.process = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> StoreProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def free_tcp_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """An embedded store for the test module, user ``default`` without password: (host, port)."""
    with StoreProcess(tmp_path_factory.mktemp("store") / "data") as proc:
        yield proc.address


@pytest.fixture
def store_factory(tmp_path: Path) -> Iterator[Callable[..., StoreProcess]]:
    """``store_factory(path=None, *, port=None, host=None, env=None, start=True) -> StoreProcess``."""
    started: list[StoreProcess] = []

    def make(path: Path | None = None, *, start: bool = True, **kwargs: Any) -> StoreProcess:
        proc = StoreProcess(path or tmp_path / f"store{len(started)}", **kwargs)
        started.append(proc)
        return proc.start() if start else proc

    yield make
    for proc in started:
        proc.stop()


# --- dashboards: a store populated by a real stream run (tests/integration/test_panels.py, test_report.py) ---

from dataclasses import dataclass  # noqa: E402


@dataclass
class StreamRun:
    """The embedded stack after a scenario went through it: broker, store and a worker, all running."""

    stack: Any
    store: Any  # watchkeeper.sinks.writer.Store
    scenario: Any  # watchkeeper.scenario.Scenario
    models: list[str]


# What the one-hour scenario raises: demo.churn drifts half-way, loses accuracy and falls below its baseline.
SCENARIO_ALERTS = [("demo.churn", "drift"), ("demo.churn", "retrain"), ("demo.churn", "sunset")]


@pytest.fixture(scope="session")
def stream_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamRun]:
    """Publish 60 minutes of the demo scenario (4 models, drift, malformed lines) and wait until counted."""
    from tests.stack import Stack
    from watchkeeper.scenario import MALFORMED, Scenario, write_scenario

    root = tmp_path_factory.mktemp("stream-run")
    stack = Stack(root)
    try:
        stack.start_services()
        scenario = Scenario(start=(time.time() - 3 * 3600) // 300 * 300, minutes=60)
        path = root / "scenario.jsonl"
        write_scenario(path, scenario)
        stack.start_worker()
        stack.cli("publish", "--quiet", str(path))
        expected = [(m, e["predictions"], e["labelled"]) for m, e in sorted(scenario.expected.items())]
        seen = stack.wait_for(
            "SELECT model, toUInt64(sumIf(n, metric = 'predictions')), toUInt64(sumIf(value, metric = 'labelled')) "
            "FROM metrics FINAL WHERE segment = '' AND version != '' GROUP BY model ORDER BY model",
            expected,
            timeout=240,
        )
        assert seen == expected, f"the worker did not count the scenario: {seen}"
        dead = stack.wait_for("SELECT count() FROM dead_letters FINAL", [(len(MALFORMED),)], timeout=30)
        assert dead == [(len(MALFORMED),)], dead
        # The alerts judge the windows after they are written (the same model-stage pass, a moment
        # later): wait for the drifting model's alerts, the sunset one judged on the last window.
        firing = stack.wait_for(
            "SELECT model, kind FROM alerts FINAL WHERE state = 'firing' GROUP BY model, kind ORDER BY model, kind",
            SCENARIO_ALERTS,
            timeout=60,
        )
        assert firing == SCENARIO_ALERTS, f"the scenario's alerts did not all fire: {firing}"
        store = stack.store()
        yield StreamRun(stack, store, scenario, sorted(scenario.expected))
        store.close()
    finally:
        stack.stop()


@pytest.fixture
def worker(store: tuple[str, int], request: pytest.FixtureRequest) -> Iterator[Any]:
    """A worker (``streams.service.Worker``) on the module's store, schema created.

    Settings come from the test module's ``WORKER_SETTINGS`` dict (e.g. window and label delay).
    """
    from watchkeeper.settings import Settings
    from watchkeeper.streams.service import Worker

    # Its batches are written synchronously before a test ticks the closer: nothing to settle.
    defaults = {"settle_seconds": 0.0}
    w = Worker(Settings(store_port=store[1], **{**defaults, **getattr(request.module, "WORKER_SETTINGS", {})}))
    w.ensure_schema()
    yield w
    w.store.close()
