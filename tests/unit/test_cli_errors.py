"""The CLI's answers to a user's usual mistakes: one ``Error:`` line and exit 1 or 2, never a traceback.

Each command runs as a user runs it (a subprocess of ``watchkeeper``), against settings that point
nowhere: a ClickHouse server on a port where nothing listens, a config file that is not there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack import free_port


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    return subprocess.run(
        [sys.executable, "-m", "watchkeeper.cli", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_one_clean_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode in (1, 2), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    # clickhouse-connect's own warning must not precede our message.
    assert "Unexpected Http Driver Exception" not in proc.stderr, proc.stderr
    assert fragment in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["sql", "SELECT 1"],
        ["alerts"],
        ["sunset-candidates"],
        ["silence", "list"],
        ["migrate", "--dry-run"],
        ["report", "--out", "out"],
        ["reference", "fraud", "train.csv"],
    ],
    ids=lambda a: a[0],
)
def test_a_clickhouse_server_that_does_not_answer_is_one_line_naming_its_address(
    args: list[str], tmp_path: Path
) -> None:
    (tmp_path / "train.csv").write_text("amount\n1.5\n")
    port = free_port()
    proc = _run(args, {"WATCHKEEPER_CLICKHOUSE": f"http://writer:s3cret@127.0.0.1:{port}/wk"}, tmp_path)
    _assert_one_clean_error(proc, f"Error: the store at 127.0.0.1:{port} does not answer (WATCHKEEPER_CLICKHOUSE")
    assert "s3cret" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"WATCHKEEPER_CONFIG": "missing.yaml"}, "WATCHKEEPER_CONFIG='missing.yaml': no such file"),
        ({"WATCHKEEPER_PARTITIONS": "many"}, "partitions: Input should be a valid integer"),
        ({"WATCHKEEPER_BROKER": "localhost:9092"}, "broker: Value error"),
    ],
)
def test_bad_settings_stop_every_command_with_a_message(env: dict[str, str], fragment: str, tmp_path: Path) -> None:
    proc = _run(["status"], env, tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("watchkeeper: bad configuration:") and fragment in proc.stderr


def test_an_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    proc = _run(["frobnicate"], {}, tmp_path)
    assert proc.returncode == 2 and "No such command 'frobnicate'" in proc.stderr


def test_a_kafka_broker_that_does_not_answer_is_one_line_naming_its_address(monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process: kafka-python takes 30 s to give up on a bootstrap, so the error is made here.
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError

    from watchkeeper.cli import _unreachable

    for name in [k for k in os.environ if k.startswith("WATCHKEEPER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WATCHKEEPER_BROKER", "kafka://k1:9092,k2:9092")
    for exc in (KafkaTimeoutError("Unable to bootstrap from k1:9092"), KafkaConnectionError("refused")):
        clean = _unreachable(exc)
        assert clean is not None
        message = clean.format_message()
        assert message.startswith("no Kafka broker answers at k1:9092,k2:9092 (WATCHKEEPER_BROKER)")
        assert "\n" not in message
    assert _unreachable(RuntimeError("a bug")) is None  # anything else keeps its traceback


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["sql", "  "], "QUERY is empty"),
        # --minutes 0 used to delete the previous demo's rows and report four empty models.
        (["demo", "--minutes", "0"], "'--minutes': 0 is not in the range x>=10"),
    ],
)
def test_nonsense_arguments_are_usage_errors_before_anything_runs(
    args: list[str], fragment: str, tmp_path: Path
) -> None:
    # The settings point at a store that does not exist: a usage error must come before any connection.
    proc = _run(args, {"WATCHKEEPER_CLICKHOUSE": f"http://127.0.0.1:{free_port()}/wk"}, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in proc.stderr
