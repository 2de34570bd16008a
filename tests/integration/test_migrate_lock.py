"""Deploy-job migrations: ``watchkeeper migrate`` under the store's lock (two jobs never migrate at once), and
``WATCHKEEPER_MIGRATE=false``: no DDL from workers or commands, and a store that is behind is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.test_migrations import Spy
from tests.stack import REPO, Stack
from watchkeeper.settings import Settings
from watchkeeper.sinks.migration_lock import MigrationLocked, SchemaBehind, lock_holder, migration_lock
from watchkeeper.sinks.migrations import MIGRATIONS, MIGRATIONS_TABLE
from watchkeeper.sinks.schema import Retention
from watchkeeper.sinks.writer import Store
from watchkeeper.streams.events import Prediction
from watchkeeper.streams.ingest import SourceMessage
from watchkeeper.streams.service import Worker

pytestmark = pytest.mark.integration


def cli_env(port: int, path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    env.update({"WATCHKEEPER_STORE_PORT": str(port), "WATCHKEEPER_STORE_PATH": str(path), "PYTHONPATH": str(REPO)})
    env.update({f"WATCHKEEPER_{k.upper()}": v for k, v in settings.items()})
    return env


def test_two_migrate_commands_at_once_migrate_once(store_factory: Callable[..., Any], tmp_path: Path) -> None:
    """Both deploy jobs start while a third holds the lock; once it is released one applies every migration,
    the other waits for it and then finds nothing to do."""
    proc = store_factory(tmp_path / "data")
    store = Store(host="127.0.0.1", port=proc.port)
    env = cli_env(proc.port, proc.path)
    jobs: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
    with migration_lock(store, expire_s=600, wait_s=0) as me:
        for i in range(2):
            out, err = tmp_path / f"job{i}.out", tmp_path / f"job{i}.err"
            with open(out, "wb") as o, open(err, "wb") as e:
                cmd = [sys.executable, "-m", "watchkeeper.cli", "migrate"]
                jobs.append((subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=o, stderr=e), out, err))
        deadline = time.monotonic() + 120
        while not all(f"waiting for the migration lock, held by {me}" in err.read_text() for _, _, err in jobs):
            assert time.monotonic() < deadline, [err.read_text() for _, _, err in jobs]
            assert all(job.poll() is None for job, _, _ in jobs), [err.read_text() for _, _, err in jobs]
            time.sleep(0.2)
    for job, _, err in jobs:
        assert job.wait(180) == 0, err.read_text()
    outputs = sorted(out.read_text() for _, out, _ in jobs)
    assert outputs[0].startswith("applied:") and outputs[1].startswith("nothing to migrate"), outputs
    for m in MIGRATIONS:
        assert f"-- migration {m.version}:" in outputs[0]
    versions = store.query_rows(f"SELECT version, count() FROM {MIGRATIONS_TABLE} GROUP BY version ORDER BY version")
    assert versions == [(m.version, 1) for m in MIGRATIONS]
    assert lock_holder(store) is None
    store.close()


def test_a_held_lock_makes_the_other_job_wait_and_a_stale_one_is_broken(store: tuple[str, int]) -> None:
    s = Store(host=store[0], port=store[1], database="lock_stale")
    try:
        with migration_lock(s) as first:
            with pytest.raises(MigrationLocked, match=f"held by {first}"):
                with migration_lock(s, wait_s=0):
                    pass
            # A lock older than the expiry was left by a job that died: the next one breaks it.
            with migration_lock(s, expire_s=-1) as second:
                assert lock_holder(s)[0] == second != first  # type: ignore[index]
        assert lock_holder(s) is None
    finally:
        s.command("DROP DATABASE IF EXISTS lock_stale", use_database=False)
        s.close()


def test_migrate_false_issues_no_ddl_and_refuses_a_store_that_is_behind(
    store_factory: Callable[..., Any], tmp_path: Path
) -> None:
    proc = store_factory(tmp_path / "data")
    spy = Spy(host="127.0.0.1", port=proc.port, allow_ddl=False)
    with pytest.raises(SchemaBehind, match="WATCHKEEPER_MIGRATE=false"):
        spy.migrate(Retention())
    assert spy.commands == []
    # A command refuses to start with the message; the deploy job's `watchkeeper migrate` is not refused.
    env = cli_env(proc.port, proc.path, migrate="false")
    run = [sys.executable, "-m", "watchkeeper.cli"]
    refused = subprocess.run([*run, "alerts"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1, refused.stderr
    assert "has no watchkeeper schema" in refused.stderr and "run `watchkeeper migrate`" in refused.stderr
    deploy = subprocess.run([*run, "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert deploy.returncode == 0 and deploy.stdout.startswith("applied:"), deploy.stderr
    # Migrated: a worker with MIGRATE=false writes its batches, and issues no DDL.
    assert spy.migrate(Retention()).empty and spy.commands == []
    worker = Worker(Settings(store_port=proc.port, store_path=proc.path, migrate=False))
    worker.__dict__["store"] = Spy(**worker.config.store)
    event = {"prediction_id": "p1", "model": "m", "prediction": 0.5, "ts": time.time()}
    msg = SourceMessage("predictions", 0, 1, orjson.dumps(event))
    worker.write_batch(worker.build_batch([msg], Prediction))
    assert worker.store.query_rows("SELECT count() FROM predictions") == [(1,)]
    assert worker.store.commands == []  # type: ignore[attr-defined]
    spy.close()


def test_a_worker_with_migrate_false_refuses_to_start_on_a_store_that_is_behind(tmp_path: Path) -> None:
    stack = Stack(tmp_path, migrate="false")
    try:
        stack.start_services()
        refused = stack.cli("worker", check=False, timeout=120)
    finally:
        stack.stop()
    assert refused.returncode == 1, refused.stderr
    assert "has no watchkeeper schema, and WATCHKEEPER_MIGRATE=false forbids DDL here" in refused.stderr
    assert "run `watchkeeper migrate`" in refused.stderr
