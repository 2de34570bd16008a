"""`watchkeeper broker` and `watchkeeper store` in the foreground, as an operator runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.stack import free_port
from watchkeeper.embedded import is_listening

pytestmark = pytest.mark.integration


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "watchkeeper.cli", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not is_listening("127.0.0.1", port):
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline, "not listening after 30 s"
        time.sleep(0.1)


@pytest.mark.parametrize("command", ["broker", "store"])
def test_foreground_service_listens_on_loopback_and_stops_on_sigterm(command: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "WATCHKEEPER_BROKER_PORT": str(port),
        "WATCHKEEPER_STORE_PORT": str(port),
        "WATCHKEEPER_STORE_PATH": str(tmp_path / "ch"),
    }
    proc = _run([command], env, tmp_path)
    try:
        _wait_listening(port, proc)
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            local = {line.split()[3] for line in out.stdout.splitlines()}
            assert local == {f"127.0.0.1:{port}"}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) in (0, -signal.SIGTERM, 143)
    assert not is_listening("127.0.0.1", port)


def test_stop_leaves_a_foreground_service_alone(tmp_path: Path) -> None:
    """`watchkeeper stop` stops only what watchkeeper started in the background (a pid file): not this."""
    port = free_port()
    env = {**os.environ, "WATCHKEEPER_STORE_PORT": str(port), "WATCHKEEPER_STORE_PATH": str(tmp_path / "ch")}
    env["WATCHKEEPER_DATA_DIR"] = str(tmp_path / "faust")
    proc = _run(["store"], env, tmp_path)
    try:
        _wait_listening(port, proc)
        out = subprocess.run(
            [sys.executable, "-m", "watchkeeper.cli", "stop"], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert "store: not started in the background here" in out.stdout
        assert proc.poll() is None and is_listening("127.0.0.1", port)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
