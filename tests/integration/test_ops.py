"""Operator commands on the real embedded services: status, stop, sql without a store, the worker's health.

Every command runs as an operator runs it (``watchkeeper ...`` in a subprocess,
``WATCHKEEPER_*`` settings in its environment), in a temporary data directory
on free ports. Services are started the way an operator's commands start them:
detached, in the background, recorded in pid files.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.stack import Stack
from watchkeeper import __version__
from watchkeeper.embedded import is_listening, pid_file, process_cmdline

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    yield s
    s.stop()
    s.cli("stop", "--timeout", "5", check=False)  # whatever the test left running in the background


def _start_in_background(stack: Stack) -> dict[str, int]:
    """Start the store and the broker as operators' commands do; their pids, from the pid files."""
    stack.cli("sql", "--start-store", "SELECT 1")
    empty = stack.root / "empty.jsonl"
    empty.write_text("")
    stack.cli("publish", "--quiet", str(empty))  # starts the broker and creates the topics
    return {name: json.loads(pid_file(stack.settings, name).read_text())["pid"] for name in ("broker", "store")}


def _status(stack: Stack, *args: str) -> tuple[int, dict[str, Any]]:
    out = stack.cli("status", "--json", *args, check=False)
    return out.returncode, json.loads(out.stdout)


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _poll(fetch: Any, until: Any, timeout: float = 120) -> Any:
    """Call ``fetch`` until ``until(result)`` (or time out, returning the last result)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fetch()
        except (OSError, ValueError) as exc:  # not listening yet
            last = exc
        if not isinstance(last, Exception) and until(last):
            return last
        time.sleep(0.5)
    return last


def test_version(stack: Stack) -> None:
    out = stack.cli("--version")
    assert out.stdout.strip() == f"watchkeeper {__version__}"


def test_status_then_stop_the_services_started_in_the_background(stack: Stack) -> None:
    pids = _start_in_background(stack)
    s = stack.settings
    for pid in pids.values():
        assert process_cmdline(pid) is not None

    code, report = _status(stack)
    assert code == 0
    assert report["version"] == __version__
    assert report["broker"] == {"up": True, "address": s.kafka_bootstrap, "embedded": True, "pid": pids["broker"]}
    assert report["store"] == {
        "up": True,
        "address": f"127.0.0.1:{s.store_port}",
        "embedded": True,
        "pid": pids["store"],
    }
    assert report["lag"] == {s.topic_predictions: 0, s.topic_outcomes: 0}
    assert report["last_window_end"] is None  # nothing written yet
    (worker,) = report["workers"]
    assert worker["url"] == f"http://127.0.0.1:{s.web_port}" and worker["state"] == "down"

    # A window written (as the model stage writes them): status shows the latest end.
    end = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
    store = stack.store()
    store.insert(
        "metrics",
        {
            "window_start": [datetime(2026, 3, 1, 12, 0, tzinfo=UTC), datetime(2026, 3, 1, 11, 55, tzinfo=UTC)],
            "window_end": [end, datetime(2026, 3, 1, 12, 0, tzinfo=UTC)],
            "model": ["m", "m"],
            "version": ["v1", "v1"],
            "segment": ["", ""],
            "metric": ["accuracy", "accuracy"],
            "value": [0.9, 0.8],
            "n": [10, 10],
            "computed_at": [datetime.now(UTC), datetime.now(UTC)],
        },
    )
    store.close()
    assert _status(stack)[1]["last_window_end"] == end.isoformat()

    table = stack.cli("status").stdout
    assert f"broker   up     {s.kafka_bootstrap}" in table
    assert f"started by watchkeeper (pid {pids['store']})" in table
    assert f"last window written: {end.isoformat()}" in table
    assert "predictions  0" in table

    out = stack.cli("stop")
    for name, pid in pids.items():
        assert f"{name}: stopped pid {pid}" in out.stdout
        assert process_cmdline(pid) is None
        assert not pid_file(s, name).exists()
    assert not is_listening("127.0.0.1", s.broker_port) and not is_listening("127.0.0.1", s.store_port)

    code, report = _status(stack)
    assert code == 1 and not report["broker"]["up"] and not report["store"]["up"]
    assert report["lag"] is None and report["broker"]["pid"] is None
    assert "DOWN" in stack.cli("status", check=False).stdout
    again = stack.cli("stop")
    assert "broker: not started in the background here" in again.stdout
    assert "store: not started in the background here" in again.stdout


def _record(stack: Stack, service: str, proc: subprocess.Popen[bytes]) -> None:
    """Write a pid file for ``proc`` as embedded.py writes one for a service it started."""
    cmdline = None
    for _ in range(100):  # the child has exec'd once its command line is python's
        cmdline = process_cmdline(proc.pid)
        if cmdline and cmdline[0] == sys.executable:
            break
        time.sleep(0.05)
    path = pid_file(stack.settings, service)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": proc.pid, "cmdline": cmdline, "address": "127.0.0.1:1"}))


def test_stop_kills_what_ignores_sigterm_and_leaves_other_processes_alone(stack: Stack) -> None:
    deaf = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"]
    )
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        _record(stack, "store", deaf)
        # The broker's pid file names a pid that now runs another program (the pid was reused).
        _record(stack, "broker", other)
        path = pid_file(stack.settings, "broker")
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "cmdline": ["/opt/tansu", "broker", "--listener-url", "tcp://x"]}))

        out = stack.cli("stop", "--timeout", "1")
        assert f"store: stopped pid {deaf.pid} on 127.0.0.1:1 (SIGKILL after 1 s)" in out.stdout
        assert deaf.wait(10) == -signal.SIGKILL
        assert f"broker: pid {other.pid} runs something else now: left alone" in out.stdout
        assert other.poll() is None
        assert not pid_file(stack.settings, "broker").exists() and not pid_file(stack.settings, "store").exists()
    finally:
        for proc in (deaf, other):
            proc.kill()
            proc.wait()


def test_sql_without_a_store_says_so_and_starts_one_only_when_asked(stack: Stack) -> None:
    s = stack.settings
    out = stack.cli("sql", "SELECT 1", check=False)
    assert out.returncode != 0
    assert f"no store answers at 127.0.0.1:{s.store_port}" in out.stderr
    assert "watchkeeper store" in out.stderr and "--start-store" in out.stderr
    assert not is_listening("127.0.0.1", s.store_port) and not pid_file(s, "store").exists()
    assert not s.store_path.exists()  # no empty store invented on the way

    out = stack.cli("sql", "--start-store", "SELECT 41 + 1", "--format", "CSV")
    assert out.stdout.strip() == "42"
    assert pid_file(s, "store").exists()
    assert stack.cli("sql", "SELECT 2", "--format", "CSV").stdout.strip() == "2"  # running now: no flag needed

    stack.env["WATCHKEEPER_CLICKHOUSE"] = "http://writer:pw@127.0.0.1:1/watchkeeper"
    server = stack.cli("sql", "--start-store", "SELECT 1", check=False)
    assert server.returncode != 0 and "--start-store starts the embedded store" in server.stderr
    unreachable = stack.cli("sql", "SELECT 1", check=False)
    assert unreachable.returncode != 0 and "127.0.0.1:1" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr and ":pw@" not in unreachable.stderr


def test_sql_is_read_only_unless_write_and_takes_clickhouse_formats(stack: Stack) -> None:
    """`watchkeeper sql "DROP TABLE metrics"` dropped the table; `--format Vertical` was refused."""
    stack.cli("sql", "--start-store", "SELECT 1")
    for statement in ("DROP TABLE metrics", "INSERT INTO checkpoints (name, value) VALUES ('x', now64(3))",
                      "CREATE TABLE scratch (a UInt8) ENGINE = Memory", "SELECT 1 SETTINGS readonly = 0"):  # fmt: skip
        out = stack.cli("sql", statement, check=False)
        assert out.returncode == 1 and "readonly" in out.stderr.lower(), (statement, out.stderr)
        assert "add --write" in out.stderr or "readonly" in statement, out.stderr
        assert "Traceback" not in out.stderr
    assert stack.cli("sql", "EXISTS TABLE metrics", "--format", "TSV").stdout.strip() == "1"
    assert stack.cli("sql", "SELECT count() FROM checkpoints", "--format", "TSV").stdout.strip() == "0"
    # Reads may still change their own settings.
    assert stack.cli("sql", "SELECT 7 SETTINGS max_threads = 1", "--format", "CSV").stdout.strip() == "7"
    stack.cli("sql", "--write", "CREATE TABLE scratch (a UInt8, b String) ENGINE = Memory")
    stack.cli("sql", "--write", "INSERT INTO scratch VALUES (1, 'x')")
    formats = {
        "Vertical": "Row 1:",
        "TSV": "1\tx",
        "TabSeparated": "1\tx",
        "JSON": '"rows": 1',
        "Pretty": "┃ a ┃ b ┃",
        "PrettyCompact": "─a─┬─b─",
        "Markdown": "| a | b |",
        "CSVWithNames": '"a","b"',
        "JSONEachRow": '{"a":1,"b":"x"}',
    }
    for fmt, expected in formats.items():
        out = stack.cli("sql", "SELECT a, b FROM scratch", "--format", fmt)
        assert expected in out.stdout, (fmt, out.stdout)
    # A query with its own FORMAT clause, as clickhouse-client users write it.
    assert stack.cli("sql", "SELECT a, b FROM scratch FORMAT Vertical").stdout.startswith("Row 1:")
    assert stack.cli("sql", "select a from scratch format JSONEachRow;").stdout.strip() == '{"a":1}'
    unknown = stack.cli("sql", "SELECT 1", "--format", "Bogus", check=False)
    assert unknown.returncode == 1 and "unknown output format 'Bogus' (--format)" in unknown.stderr
    bad = stack.cli("sql", "SELECT 1", "--format", "CSV; DROP TABLE metrics", check=False)
    assert bad.returncode == 2 and "not a ClickHouse output format name" in bad.stderr


def test_worker_health_endpoints_and_status(stack: Stack) -> None:
    """/ready and /live on a real worker: ready once assigned; the store stopped makes it not ready but still live."""
    pids = _start_in_background(stack)
    stack.start_worker()
    url = f"http://127.0.0.1:{stack.web_ports[0]}"

    code, body = _poll(lambda: _get(f"{url}/ready"), lambda r: r[0] == 200)
    assert code == 200, body
    assert body["status"] == "ok" and body["failed"] == []
    assert set(body["checks"]) == {"partitions", "store"}
    assigned = re.fullmatch(r"(\d+) partitions assigned.*", body["checks"]["partitions"]["detail"])
    assert assigned and int(assigned[1]) >= 2 * stack.settings.partitions  # predictions and outcomes, at least
    # Faust starts the heartbeat timer once the partitions are assigned.
    code, body = _poll(
        lambda: _get(f"{url}/live"), lambda r: r[1]["checks"]["event_loop"]["detail"].startswith("last heartbeat")
    )
    assert code == 200 and set(body["checks"]) == {"event_loop", "writers"} and body["failed"] == [], body

    code, report = _status(stack, "--worker", url)
    assert code == 0
    (worker,) = report["workers"]
    assert (worker["url"], worker["state"], worker["live"], worker["ready"]) == (url, "ready", True, True)

    # The store goes away: the worker is not ready, says why, and stays live (a restart would not help).
    assert f"store: stopped pid {pids['store']}" in stack.cli("stop", "store").stdout
    code, body = _poll(lambda: _get(f"{url}/ready"), lambda r: r[0] == 503)
    assert code == 503 and body["status"] == "fail" and body["failed"] == ["store"], body
    assert body["checks"]["store"]["detail"] == f"no answer to /ping at 127.0.0.1:{stack.settings.store_port}"
    code, body = _get(f"{url}/live")
    assert code == 200, body

    code, report = _status(stack, "--worker", url)
    assert code == 1 and not report["store"]["up"] and report["broker"]["up"]
    assert report["workers"][0]["state"] == "live"
    table = stack.cli("status", "--worker", url, check=False).stdout
    assert f"worker   live   {url}" in table and "store: no answer to /ping" in table
