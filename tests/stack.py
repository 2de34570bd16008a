"""An embedded stack for tests: broker, store and workers as real subprocesses on free ports.

Everything runs as a user would run it — ``watchkeeper`` commands with
``WATCHKEEPER_*`` settings in the environment — and everything started here is
stopped at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from watchkeeper.settings import Settings
from watchkeeper.sinks.writer import Store

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    """Ports, paths and processes of one embedded deployment."""

    def __init__(self, root: Path, **settings: str) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
        self.env.update(
            {
                "WATCHKEEPER_BROKER_PORT": str(free_port()),
                "WATCHKEEPER_STORE_PORT": str(free_port()),
                "WATCHKEEPER_STORE_PATH": str(root / "clickhouse"),
                "WATCHKEEPER_DATA_DIR": str(root / "faust"),
                "WATCHKEEPER_WEB_PORT": str(free_port()),
                "WATCHKEEPER_IDLE_FLUSH": "3",
                "PYTHONPATH": str(REPO),
            }
        )
        self.env.update({f"WATCHKEEPER_{k.upper()}": v for k, v in settings.items()})
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.web_ports: list[int] = []

    @property
    def settings(self) -> Settings:
        values = {
            k.removeprefix("WATCHKEEPER_").lower(): v for k, v in self.env.items() if k.startswith("WATCHKEEPER_")
        }
        return Settings(**values)

    def start_services(self) -> None:
        from watchkeeper.admin import ensure_topics
        from watchkeeper.embedded import ensure_broker, ensure_store

        s = self.settings
        for proc in (ensure_broker(s), ensure_store(s)):
            if proc is not None:
                self.procs.append(proc)
        ensure_topics(s)

    def store(self) -> Store:
        return Store.from_settings(self.settings)

    def cli(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "watchkeeper.cli", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"watchkeeper {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc

    def start_worker(self, **extra_env: str) -> subprocess.Popen[bytes]:
        log = open(self.root / f"worker-{len(self.workers)}.log", "ab")  # noqa: SIM115
        env = {**self.env, **{f"WATCHKEEPER_{k.upper()}": v for k, v in extra_env.items()}}
        web_port = free_port()
        self.web_ports.append(web_port)
        proc = subprocess.Popen(
            [sys.executable, "-m", "watchkeeper.cli", "worker", "-l", "info", "--web-port", str(web_port)],
            env=env,
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.workers.append(proc)
        return proc

    def offsets(self, topic: str) -> tuple[int, int]:
        """(offsets the worker group has committed, offsets the broker holds), summed over the topic's
        partitions: a fault test checks its fault landed while the stream was still being read."""
        from kafka import KafkaConsumer, TopicPartition

        s = self.settings
        consumer = KafkaConsumer(bootstrap_servers=s.kafka_bootstrap, group_id=s.app_id, enable_auto_commit=False)
        try:  # no subscribe: it reads the group's offsets without joining the group
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            ends = consumer.end_offsets(parts)
            committed = sum(consumer.committed(tp) or 0 for tp in parts)
            return committed, sum(ends.values())
        finally:
            consumer.close()

    def wait_for(self, sql: str, expected: Any, timeout: float = 180, params: dict[str, Any] | None = None) -> Any:
        """Poll a query until it returns ``expected`` (or time out, returning what it last saw)."""
        store = self.store()
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = store.query_rows(sql, params)
            except Exception as exc:  # store busy or table not there yet
                last = exc
            if last == expected:
                return last
            for w in self.workers:
                if w.poll() is not None and w.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
                    raise AssertionError(f"worker exited with {w.returncode}")
            time.sleep(1.0)
        return last

    def stop(self) -> None:
        for proc in self.workers + self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers + self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
