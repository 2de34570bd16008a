"""Who may migrate the store, and when: the deploy job's lock, and the workers' version check.

**The lock.** ``watchkeeper migrate`` (and a worker that migrates at start) runs the
migrations (``sinks/migrations.py``) while holding a lock kept in the store itself:
the table ``migration_lock``, created with a plain ``CREATE TABLE`` (no ``IF NOT
EXISTS``). ClickHouse creates a name once: of two jobs racing, one creates it and
the other is refused with TABLE_ALREADY_EXISTS (57), then waits for it to be
dropped — no clock, no read-then-write race, and nothing but the DDL rights a
deploy user has anyway. In cluster mode the lock is created ``ON CLUSTER`` (the
distributed DDL queue orders the two creations; ClickHouse Cloud's Replicated
database does the same through Keeper). The table's comment names the holder;
its age is the server's ``metadata_modification_time``: a lock older than
``WATCHKEEPER_MIGRATE_LOCK_SECONDS`` was left by a job that died, and is dropped
by the next one (two jobs breaking the same stale lock at the same instant could
both go on: the migrations are idempotent, so the result is still one job's).

**The check.** With ``WATCHKEEPER_MIGRATE=false`` nothing but ``watchkeeper
migrate`` issues DDL: a worker or command reads the schema version
(``schema_migrations``) and stops with :class:`SchemaBehind` if a migration it
knows is not applied — run the deploy job first.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError

from watchkeeper.sinks import cluster as cluster_ddl
from watchkeeper.sinks import migrations
from watchkeeper.sinks.schema import Retention
from watchkeeper.sinks.writer import StoreBusy

log = logging.getLogger(__name__)

LOCK_TABLE = "migration_lock"
TABLE_ALREADY_EXISTS = 57
# How often a job waiting for the lock looks again.
POLL_S = 0.5


class SchemaBehind(StoreBusy):
    """The store lacks migrations this watchkeeper needs, and it may not migrate (``WATCHKEEPER_MIGRATE=false``).

    A worker that meets it at start refuses to start; one that meets it later waits, as for an outage.
    """


class MigrationLocked(StoreBusy):
    """Another job held the migration lock for longer than we were allowed to wait (a worker retries)."""


def holder_id() -> str:
    """This process, as the lock's comment names it: ``host:pid:random`` (no quote can appear in it)."""
    raw = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", raw)


def lock_holder(store: Any) -> tuple[str, int] | None:
    """The lock's holder and its age in seconds (by the server's clock), or None when nobody holds it."""
    rows = store.query_rows(
        "SELECT comment, dateDiff('second', metadata_modification_time, now()) FROM system.tables "
        "WHERE database = {db:String} AND name = {name:String}",
        {"db": store.database, "name": LOCK_TABLE},
    )
    if not rows:
        return None
    comment, age = rows[0]
    return str(comment).removeprefix("watchkeeper migrate: "), int(age)


@contextmanager
def migration_lock(
    store: Any,
    cluster: str | None = None,
    *,
    expire_s: float = 900,
    wait_s: float = 1800,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[str]:
    """Hold the store's migration lock for the block (yields our holder id); wait up to ``wait_s`` for it."""
    db = store.database
    on = cluster_ddl.on_cluster(cluster)
    me = holder_id()
    store.command(f"CREATE DATABASE IF NOT EXISTS {db}{on}", use_database=False)
    deadline = time.monotonic() + wait_s
    announced = False
    while True:
        try:
            store.command(
                f"CREATE TABLE {db}.{LOCK_TABLE}{on} (held UInt8) ENGINE = Memory COMMENT 'watchkeeper migrate: {me}'",
                use_database=False,
            )
            break
        except ClickHouseError as exc:
            if TABLE_ALREADY_EXISTS not in [int(c) for c in re.findall(r"Code: (\d+)", str(exc))]:
                raise
        held = lock_holder(store)
        if held is not None and held[1] > expire_s:
            log.warning("breaking the migration lock of %s, held for %d s (more than %d s)", held[0], held[1],
                        expire_s)  # fmt: skip
            _drop(store, on)
            continue
        if time.monotonic() > deadline:
            who = f"{held[0]} for {held[1]} s" if held else "another job"
            raise MigrationLocked(
                f"the migration lock is held by {who}; waited {wait_s:.0f} s. If that job died, the lock is "
                f"broken after WATCHKEEPER_MIGRATE_LOCK_SECONDS ({expire_s:.0f}), or drop {db}.{LOCK_TABLE}"
            )
        if not announced and held is not None:
            log.info("waiting for the migration lock, held by %s", held[0])
            announced = True
        sleep(POLL_S)
    try:
        yield me
    finally:
        held = lock_holder(store)
        if held is not None and held[0] == me:
            _drop(store, on)
        else:  # we took longer than the expiry, and another job broke our lock
            log.warning("the migration lock was no longer ours at the end (now: %s)", held[0] if held else "nobody")


def _drop(store: Any, on: str) -> None:
    store.command(f"DROP TABLE IF EXISTS {store.database}.{LOCK_TABLE}{on} SYNC", use_database=False)


def migrate_locked(
    store: Any, retention: Retention | None, cluster: str | None = None, *, expire_s: float = 900,
    wait_s: float = 1800,
) -> migrations.Plan:  # fmt: skip
    """Apply the pending migrations under the lock; returns what was applied (empty: another job did it).

    A store with nothing to migrate is only read: no lock, no DDL.
    """
    if migrations.plan(store, retention, cluster).empty:
        return migrations.Plan()
    with migration_lock(store, cluster, expire_s=expire_s, wait_s=wait_s):
        return migrations.migrate(store, retention, cluster)  # planned again: a job we waited for did its part


def check_schema(store: Any, cluster: str | None = None) -> migrations.Plan:
    """Refuse (:class:`SchemaBehind`) a store that lacks a migration; otherwise issue no DDL and return what
    ``watchkeeper migrate`` would still do (repairs, retention changes), which is logged, not done."""
    p = migrations.plan(store, None, cluster)
    if p.bootstrap or p.pending:
        missing = ", ".join(f"{m.version} ({m.name})" for m, _ in p.pending)
        where = "has no watchkeeper schema" if p.bootstrap else f"lacks migrations {missing}"
        raise SchemaBehind(
            f"the store's database {store.database!r} {where}, and WATCHKEEPER_MIGRATE=false forbids DDL here: "
            "run `watchkeeper migrate` (the deploy job, with a user that may create tables) first"
        )
    if not p.empty:
        log.warning("the store needs repairs that only `watchkeeper migrate` makes:\n%s", p.describe())
    return p
