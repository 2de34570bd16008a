"""Commands without surprises: help starts nothing, a dry run starts nothing, an instance keeps its pid files
and logs under its own data directory, `dashboards build` writes where the user is, and a silence for a model
never seen is refused.

Every command runs as a user runs it: ``watchkeeper ...`` in a subprocess, ``WATCHKEEPER_*`` settings in
its environment, in a temporary directory on free ports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import Stack
from watchkeeper.embedded import is_listening, pid_file, started
from watchkeeper.settings import Settings

pytestmark = pytest.mark.integration
PACKAGE_DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    yield s
    s.stop()
    s.cli("stop", "--timeout", "5", check=False)


def _nothing_started(stack: Stack) -> None:
    s = stack.settings
    assert not is_listening("127.0.0.1", s.broker_port) and not is_listening("127.0.0.1", s.store_port)
    assert not s.store_path.exists() and not s.data_dir.exists(), "a data directory was created"


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_worker_help_starts_nothing_and_h_is_help(stack: Stack, flag: str) -> None:
    """`watchkeeper worker --help` started the embedded broker and store, and documented -h as --web-host."""
    out = stack.cli("worker", flag)
    assert "Usage: watchkeeper worker" in out.stdout and "--web-port" in out.stdout
    assert "-h, --help" in out.stdout and "--web-host" in out.stdout and "-h, --web-host" not in out.stdout
    assert "starts the embedded broker and store if they are not running" in out.stdout
    _nothing_started(stack)


def test_worker_h_with_a_value_says_to_use_web_host(stack: Stack) -> None:
    out = stack.cli("worker", "-l", "info", "-h", "0.0.0.0", check=False)
    assert out.returncode == 2 and "use --web-host 0.0.0.0" in out.stderr, out.stderr
    _nothing_started(stack)


def test_migrate_dry_run_starts_nothing_and_migrate_says_what_it_started(stack: Stack) -> None:
    """`migrate --dry-run` started the embedded store without saying so."""
    dry = stack.cli("migrate", "--dry-run", check=False)
    assert dry.returncode == 1 and "no store answers" in dry.stderr and "a dry run starts nothing" in dry.stderr
    assert "Traceback" not in dry.stderr
    _nothing_started(stack)

    applied = stack.cli("migrate")
    entry = started(stack.settings, "store")
    assert entry is not None
    assert f"started the embedded store in the background (pid {entry.pid}" in applied.stderr
    assert "applied:" in applied.stdout
    again = stack.cli("migrate", "--dry-run")  # the store runs now: compared, nothing started, nothing said
    assert "nothing to migrate" in again.stdout and "started" not in again.stderr


def test_silence_for_a_model_never_seen_is_refused_without_force(stack: Stack) -> None:
    """`silence add --model frud` (a typo) was accepted silently, and silenced nothing."""
    stack.cli("sql", "--start-store", "SELECT 1")
    insert = (
        "INSERT INTO metrics (window_start, window_end, model, version, segment, metric, value, n, computed_at) "
        "VALUES (now(), now(), 'fraud', 'v1', '', 'predictions', 10, 10, now64(3))"
    )
    stack.cli("sql", "--write", insert)
    typo = stack.cli("silence", "add", "--model", "frud", "--for", "1h", check=False)
    assert typo.returncode == 1, typo.stderr
    assert "no model 'frud' has been seen (known: fraud); did you mean fraud? --force" in typo.stderr
    assert json.loads(stack.cli("silence", "list", "--format", "json").stdout) == []

    assert stack.cli("silence", "add", "--model", "fraud", "--for", "1h").stdout.startswith("silence ")
    forced = stack.cli("silence", "add", "--model", "next-model", "--for", "1h", "--force")
    assert forced.stdout.startswith("silence ")
    models = {s["model"] for s in json.loads(stack.cli("silence", "list", "--format", "json").stdout)}
    assert models == {"fraud", "next-model"}
    # A kind-only silence names no model: nothing to check.
    stack.cli("silence", "add", "--kind", "drift", "--for", "1h")


def test_two_instances_under_one_parent_share_no_pid_file_or_log(tmp_path: Path) -> None:
    """Pid files and logs went to the parent of WATCHKEEPER_DATA_DIR: two instances there shared them."""
    a = Stack(tmp_path / "a", data_dir=str(tmp_path / "a"), store_path=str(tmp_path / "a" / "clickhouse"))
    b = Stack(tmp_path / "b", data_dir=str(tmp_path / "b"), store_path=str(tmp_path / "b" / "clickhouse"))
    for stack in (a, b):
        stack.root.mkdir()
    try:
        for stack in (a, b):
            stack.cli("sql", "--start-store", "SELECT 1")
        pids = {}
        for name, stack in (("a", a), ("b", b)):
            path = pid_file(stack.settings, "store")
            assert path == tmp_path / name / "run" / "store.pid" and path.exists()
            record = json.loads(path.read_text())
            assert record["log"] == str(tmp_path / name / "logs" / "store.log")
            pids[name] = record["pid"]
        assert pids["a"] != pids["b"] and not (tmp_path / "run").exists() and not (tmp_path / "logs").exists()

        out = a.cli("stop", "store")
        assert f"stopped pid {pids['a']}" in out.stdout
        assert not is_listening("127.0.0.1", a.settings.store_port)
        assert is_listening("127.0.0.1", b.settings.store_port), "stopping one instance stopped the other"
        assert b.cli("sql", "SELECT 1", "--format", "CSV").stdout.strip() == "1"
    finally:
        for stack in (a, b):
            stack.cli("stop", "--timeout", "5", check=False)


def test_a_pid_file_of_an_earlier_release_is_found_for_its_own_address_only(tmp_path: Path) -> None:
    """Upgrading leaves services recorded in <parent>/run/: `stop` still finds this instance's, never another's."""
    mine = Settings(data_dir=tmp_path / "faust", store_port=18123)
    other = Settings(data_dir=tmp_path / "other", store_port=18124)
    legacy = tmp_path / "run" / "store.pid"
    legacy.parent.mkdir()
    legacy.write_text(json.dumps({"pid": 1, "cmdline": ["python"], "address": "127.0.0.1:18123"}))
    entry = started(mine, "store")
    assert entry is not None and entry.path == legacy and entry.pid == 1
    assert started(other, "store") is None


def test_dashboards_build_writes_into_the_current_directory(tmp_path: Path) -> None:
    """`dashboards build` wrote into the installed package's folder unless --out was given."""
    stack = Stack(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in PACKAGE_DASHBOARDS.rglob("*") if p.suffix in (".json", ".yaml")}
    out = stack.cli("dashboards", "build")
    written = [Path(line.removeprefix("wrote ")) for line in out.stdout.splitlines()]
    assert written and all(p.is_relative_to("dashboards") for p in written), out.stdout
    assert (tmp_path / "dashboards" / "json").is_dir() and (tmp_path / "dashboards" / "provisioning").is_dir()
    assert {p: p.stat().st_mtime_ns for p in before} == before, "the package's files were rewritten"
    help_text = stack.cli("dashboards", "build", "--help").stdout
    assert "--out" in help_text and "current directory" in help_text
