"""The one ClickHouse client of watchkeeper (clickhouse-connect over HTTP).

Workers, the CLI, the report and the tests all use this class, against the
embedded store and a ClickHouse server alike. Inserts are columnar and carry an
``insert_deduplication_token`` so that a replayed batch inserts nothing.
Queries are parameterised: values travel as ``{name:Type}`` parameters.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from watchkeeper.sinks.cluster import on_cluster
from watchkeeper.sinks.schema import Retention

log = logging.getLogger(__name__)
AUTH_FAILED = "Authentication failed: check the store user and password (WATCHKEEPER_STORE_USER/PASSWORD or the URL)"


class StoreUnavailable(RuntimeError):
    """The store did not answer (after the retries allowed), or refused our credentials.

    A refused password is an operator's mistake to fix while the worker waits:
    it is retried like an outage, never taken as a verdict on the data.
    """


class StoreAuthFailed(StoreUnavailable):
    """The store answered but refused our user or password."""


class StoreBusy(StoreUnavailable):
    """The store answered, with an error about its state (see ``TRANSIENT_CODES``): retried like an outage."""


# ClickHouse's UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTHENTICATION_FAILED.
_AUTH_CODES = frozenset({192, 193, 194, 516})
_CODE = re.compile(r"(?:Code: |error code )(\d+)")


# Errors of the store's state, not of the statement: a replica that lost its Keeper session
# (TABLE_IS_READ_ONLY), Keeper itself, a shard no replica of which answers, too many parts or
# queries, timeouts, an insert whose outcome is unknown. Retried like an outage, never taken as a
# verdict on the data (a batch refused for one of these would be dead-lettered).
TRANSIENT_CODES = frozenset({
    159,  # TIMEOUT_EXCEEDED (also an ON CLUSTER statement some host did not finish in time)
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR (between the node we reach and a shard)
    225,  # NO_ZOOKEEPER
    242,  # TABLE_IS_READ_ONLY (a replica without its Keeper session)
    252,  # TOO_MANY_PARTS
    279,  # ALL_CONNECTION_TRIES_FAILED (no replica of a shard answered)
    285,  # TOO_FEW_LIVE_REPLICAS
    286,  # UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
    319,  # UNKNOWN_STATUS_OF_INSERT (retrying with the same token is safe)
    999,  # KEEPER_EXCEPTION
})  # fmt: skip


# Errors of the data in an insert, the only ones that dead-letter a batch (``streams/service.py``): the
# store parsed or converted a value and refused it, which would happen again on every retry. Codes and
# names as in ClickHouse's src/Common/ErrorCodes.cpp (a test checks them with the engine's errorCodeToName).
# Everything else an insert meets is an outage, retried with the batch unacked: access denied (497), an
# unknown table (60) or column (16), network and timeouts, Keeper, memory (241), a truncated body
# (ATTEMPT_TO_READ_AFTER_EOF 32, CANNOT_READ_ALL_DATA 33), and any code not listed here.
DATA_CODES: Mapping[int, str] = {
    6: "CANNOT_PARSE_TEXT",
    25: "CANNOT_PARSE_ESCAPE_SEQUENCE",
    26: "CANNOT_PARSE_QUOTED_STRING",
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    38: "CANNOT_PARSE_DATE",
    41: "CANNOT_PARSE_DATETIME",
    53: "TYPE_MISMATCH",
    70: "CANNOT_CONVERT_TYPE",
    72: "CANNOT_PARSE_NUMBER",
    117: "INCORRECT_DATA",
    128: "TOO_LARGE_ARRAY_SIZE",
    130: "CANNOT_READ_ARRAY_FROM_TEXT",
    131: "TOO_LARGE_STRING_SIZE",
    190: "SIZES_OF_ARRAYS_DONT_MATCH",
    321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    349: "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
    376: "CANNOT_PARSE_UUID",
    407: "DECIMAL_OVERFLOW",
    441: "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
    467: "CANNOT_PARSE_BOOL",
    469: "VIOLATED_CONSTRAINT",
    675: "CANNOT_PARSE_IPV4",
    676: "CANNOT_PARSE_IPV6",
}


def _codes(exc: ClickHouseError) -> list[int]:
    return [int(code) for code in _CODE.findall(str(exc))]


def _auth_failure(exc: ClickHouseError) -> bool:
    return any(code in _AUTH_CODES for code in _codes(exc))


def transient(exc: ClickHouseError) -> bool:
    """Whether the store's error is about its state (retry later), judged by its first error code.

    >>> transient(ClickHouseError("HTTPDriver received ClickHouse error code 242: Code: 242. DB::Exception: "
    ...                           "Table is in readonly mode. (TABLE_IS_READ_ONLY)"))
    True
    >>> transient(ClickHouseError("Code: 27. DB::Exception: Cannot parse input. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)"))
    False
    """
    codes = _codes(exc)
    return bool(codes) and codes[0] in TRANSIENT_CODES


def bad_data(exc: ClickHouseError) -> bool:
    """Whether an insert was refused for its data (``DATA_CODES``), judged by its first error code: the one
    verdict on a batch that dead-letters it. Anything else, an unknown code or none, is an outage.

    >>> bad_data(ClickHouseError("Code: 27. DB::Exception: Cannot parse input. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)"))
    True
    >>> bad_data(ClickHouseError("Code: 497. DB::Exception: default: Not enough privileges. (ACCESS_DENIED)"))
    False
    """
    codes = _codes(exc)
    return bool(codes) and codes[0] in DATA_CODES


class Store:
    """A thread-safe handle on the watchkeeper database."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str = "default",
        password: str = "",
        database: str = "watchkeeper",
        secure: bool = False,
        connect_timeout: float = 5.0,
        cluster: str | None = None,
        allow_ddl: bool = True,
        lock_expire_s: float = 900,
        lock_wait_s: float = 1800,
        final_by_time: bool = False,
        **client_kwargs: Any,
    ) -> None:
        self.database = database
        # The model stage's connection: its FINAL reads of a time range read only the granules of that range
        # (``FINAL_BY_TIME``), where the server knows the setting.
        self.final_by_time = final_by_time
        # ``migrate`` (sinks/migration_lock.py): under the store's lock, or (``allow_ddl`` False,
        # WATCHKEEPER_MIGRATE=false) only a check that the schema is up to date, with no DDL.
        self.allow_ddl = allow_ddl
        self.lock_expire_s = lock_expire_s
        self.lock_wait_s = lock_wait_s
        # Cluster mode (sinks/cluster.py): inserts through the Distributed tables are synchronous, so that
        # the deduplication token reaches the replicated tables and a retried insert is not counted twice.
        self.cluster = cluster
        if cluster:
            # The model stage's joins and IN subqueries are between tables sharded alike (by model), on the
            # model: each shard joins its own rows (``raw``, a user's query, uses GLOBAL semantics instead).
            client_kwargs["settings"] = {
                **client_kwargs.get("settings", {}),
                "insert_distributed_sync": 1,
                "distributed_product_mode": "local",
                # Reads and inserts go to the first live replica of a shard, in the cluster's order: with
                # 2+ replicas a pass reads what it just wrote (random replicas could lag behind it).
                "load_balancing": "in_order",
                # A query on one model (most of the model stage's) goes to that model's shard only.
                "optimize_skip_unused_shards": 1,
            }
        self._params = dict(
            host=host,
            port=port,
            username=username,
            password=password,
            secure=secure,
            connect_timeout=connect_timeout,
            send_receive_timeout=300,
            autogenerate_session_id=False,
            compress=False,
            **client_kwargs,
        )
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._read_settings: dict[str, Any] = {}  # each read's settings (``final_by_time``), once connected

    @classmethod
    def from_settings(cls, settings: Any) -> Store:
        return cls(
            database=settings.clickhouse_database,
            cluster=getattr(settings, "clickhouse_cluster", None),
            **migration_params(settings),
            **settings.clickhouse_params(),
        )

    def __repr__(self) -> str:  # never shows the password
        return f"Store({self._params['host']}:{self._params['port']}/{self.database})"

    # Connection -----------------------------------------------------------
    def _get(self) -> Client:
        if self._client is None:
            try:
                client = clickhouse_connect.get_client(**self._params)
            except OperationalError as exc:
                raise StoreUnavailable(f"{self!r} is not reachable: {_clean(exc)}") from None
            except ClickHouseError as exc:
                if _auth_failure(exc):
                    raise StoreAuthFailed(f"{self!r}: {AUTH_FAILED}") from None
                raise
            # Unqualified table names (analysts' queries) resolve in our database.
            client.database = self.database
            # Older servers without a setting keep their own FINAL (it reads more, and is right).
            if self.final_by_time:
                self._read_settings = {k: v for k, v in FINAL_BY_TIME.items() if k in client.server_settings}
            self._client = client
        return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _call(self, fn_name: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            client = self._get()
            if self._read_settings and fn_name in _READS:
                kwargs["settings"] = {**self._read_settings, **(kwargs.get("settings") or {})}
            try:
                return getattr(client, fn_name)(*args, **kwargs)
            except OperationalError as exc:
                # A dropped connection: forget the client so the next call reconnects.
                self._client = None
                raise StoreUnavailable(f"{self!r}: {_clean(exc)}") from None
            except ClickHouseError as exc:
                if _auth_failure(exc):  # e.g. the password was changed on the server
                    self._client = None
                    raise StoreAuthFailed(f"{self!r}: {AUTH_FAILED}") from None
                if transient(exc):
                    raise StoreBusy(f"{self!r}: {server_message(exc)}") from None
                raise

    def _write(self, fn_name: str, *args: Any, **kwargs: Any) -> Any:
        """An insert: refused for its data (:func:`bad_data`) it raises the store's error, which dead-letters
        the batch; any other refusal is an outage (:class:`StoreBusy`), retried with the batch unacked."""
        try:
            return self._call(fn_name, *args, **kwargs)
        except ClickHouseError as exc:  # (an outage the client recognised is a StoreUnavailable already)
            if bad_data(exc):
                raise
            raise StoreBusy(f"{self!r}: {server_message(exc)}") from None

    # Schema ---------------------------------------------------------------
    def migrate(self, retention: Retention | None = None, *, dry_run: bool = False, deploy: bool = False) -> Any:
        """Apply the pending schema migrations and, given a ``retention``, bring the TTLs to it
        (``sinks/migrations.py``), under the store's migration lock; returns the plan applied. ``dry_run``:
        only the plan. Without ``allow_ddl`` (WATCHKEEPER_MIGRATE=false) only a check that raises
        ``SchemaBehind`` if a migration is missing, unless ``deploy`` (``watchkeeper migrate`` itself)."""
        from watchkeeper.sinks import migration_lock, migrations

        if dry_run:
            return migrations.plan(self, retention, self.cluster)
        if not (self.allow_ddl or deploy):
            return migration_lock.check_schema(self, self.cluster)
        return migration_lock.migrate_locked(
            self, retention, self.cluster, expire_s=self.lock_expire_s, wait_s=self.lock_wait_s
        )

    # Reads ----------------------------------------------------------------
    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts. Use ``{name:Type}`` placeholders for every value."""
        result = self._call("query", sql, parameters=params or {})
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def query_rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        result = self._call("query", sql, parameters=params or {})
        return [tuple(r) for r in result.result_rows]

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        """The result as a pyarrow Table (String columns as Arrow strings): columnar, no Python object per row."""
        return self._call("query_arrow", sql, parameters=params or {}, use_strings=True)

    def query_df(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        return self._call("query_df", sql, parameters=params or {})

    def raw(
        self,
        sql: str,
        fmt: str | None = "PrettyCompact",
        params: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> bytes:
        """The server's own rendering of a query in a ClickHouse output format (``watchkeeper sql``),
        with ``settings`` for this query only (e.g. ``readonly``).

        In cluster mode a user's query joins Distributed tables with ``GLOBAL`` semantics: the shard-by-shard
        joins of the model stage are right only for its own queries (on tables sharded alike, on the model).
        """
        settings = {**({"distributed_product_mode": "global"} if self.cluster else {}), **(settings or {})}
        return self._call("raw_query", sql, parameters=params or {}, fmt=fmt, settings=settings or None)

    def command(
        self,
        sql: str,
        params: dict[str, Any] | None = None,
        *,
        use_database: bool = True,
        settings: dict[str, Any] | None = None,
    ) -> Any:
        """One statement; ``use_database=False`` for DDL that may run before the database exists."""
        return self._call("command", sql, parameters=params or {}, use_database=use_database, settings=settings)

    def delete(self, table: str, where: str, params: dict[str, Any] | None = None) -> Any:
        """A lightweight DELETE of the rows of ``table`` matching ``where`` (both constants; values in
        ``params``, which the server substitutes before the statement is queued for the cluster).

        In cluster mode it runs on every shard's local table (ClickHouse deletes nothing through a
        Distributed table), through the cluster's DDL queue: it waits for the hosts that are up only
        (a replica that is down applies it from the queue when it is back), and a host that does not
        finish in time raises TIMEOUT_EXCEEDED, which the caller retries (the DELETE is idempotent).
        """
        settings = (
            {
                "distributed_ddl_output_mode": "throw_only_active",
                "distributed_ddl_task_timeout": DELETE_TIMEOUT_S,
                # Done when the replica running it is: a replica that is down would otherwise hold every
                # delete for replication_wait_for_inactive_replica_timeout (120 s), past the timeout above.
                "lightweight_deletes_sync": 1,
            }
            if self.cluster
            else None
        )
        return self.command(f"DELETE FROM {self.delete_target(table)} WHERE {where}", params, settings=settings)

    def delete_target(self, table: str) -> str:
        """Where a DELETE of ``table`` goes: the table, or in cluster mode its local tables on every node."""
        return f"{self.database}.{table}_local{on_cluster(self.cluster)}" if self.cluster else table

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        """One statement without a result (an ``INSERT ... SELECT``) whose parameters may be too long for a
        URL — the model stage's due set of thousands of windows: they travel form-encoded in the request's
        body (``command`` puts them in the URL, which servers cap: the embedded store at 64 KiB)."""
        self._call("raw_query", sql, parameters=params or {})

    # Writes ---------------------------------------------------------------
    def insert(
        self,
        table: str,
        columns: Mapping[str, Sequence[Any]],
        *,
        token: str | None = None,
    ) -> int:
        """Insert columnar data; a repeated ``token`` inserts nothing. Returns the row count."""
        names = list(columns)
        if not names:
            return 0
        n = len(columns[names[0]])
        if n == 0:
            return 0
        settings = dict(INSERT_SETTINGS)
        if token:
            settings["insert_deduplication_token"] = token
        self._write(
            "insert",
            f"{self.database}.{table}",
            [columns[c] for c in names],
            column_names=names,
            column_oriented=True,
            settings=settings,
        )
        return n

    def insert_arrow(self, table: str, data: Any, *, token: str | None = None) -> int:
        """Insert an Arrow table (columns named as the table's); a repeated ``token`` inserts nothing.

        The fast path for many rows: Map and Nullable columns travel as Arrow
        buffers, with no Python object per value. A table above ``ONE_BODY_BYTES``
        is streamed one record batch at a time (ArrowStream, chunked), so no
        second copy of it is built in memory; a smaller one is sent as one body:
        each chunk costs the sending thread a round trip for the GIL, which the
        event loop pays for too (one-event messages: about half the thread
        switches and 3.5% more messages per second, medians of 5 alternating
        runs; no gain for large tables). Returns the row count.
        """
        if data.num_rows == 0:
            return 0
        settings = dict(INSERT_SETTINGS)
        if token:
            settings["insert_deduplication_token"] = token
        body: Iterator[bytes] | bytes = _arrow_stream(data)
        if data.nbytes <= ONE_BODY_BYTES:
            body = b"".join(body)
        self._write("raw_insert", f"{self.database}.{table}", data.schema.names, body, settings, "ArrowStream")
        return int(data.num_rows)

    def insert_retrying(
        self,
        table: str,
        columns: dict[str, Sequence[Any]],
        *,
        token: str | None = None,
        stop: threading.Event | None = None,
        max_wait: float = 30.0,
    ) -> int:
        """Insert, retrying with backoff while the store is unreachable (until ``stop`` is set)."""
        delay = 0.2
        while True:
            try:
                return self.insert(table, columns, token=token)
            except StoreUnavailable as exc:
                if stop is not None and stop.is_set():
                    raise
                log.warning("store unavailable, retrying %s insert in %.1fs: %s", table, delay, exc)
                time.sleep(delay)
                delay = min(delay * 2, max_wait)


def migration_params(settings: Any) -> dict[str, Any]:
    """The store's keywords about migrating, from the settings (WATCHKEEPER_MIGRATE and its lock)."""
    return {
        "allow_ddl": getattr(settings, "migrate", True),
        "lock_expire_s": getattr(settings, "migrate_lock_seconds", 900),
        "lock_wait_s": getattr(settings, "migrate_wait_seconds", 1800),
    }


# Seconds an ON CLUSTER delete waits for the hosts that are up before it counts as failed (and is retried).
DELETE_TIMEOUT_S = 60
# Every insert, whatever the server's defaults:
# - async_insert=0: the server's async queue (the default since ClickHouse 26.2, and in chdb) would merge
#   inserts that carry different deduplication tokens, and adds up to its busy timeout to each insert.
# - optimize_on_insert=0: a ReplacingMergeTree block is not collapsed while it is inserted; every reader of
#   these tables reads FINAL (the model stage, the views), which collapses at read time. It costs the store
#   a quarter of its CPU per raw row otherwise (measured: 2.8 -> 2.2 CPU-s per 300k predictions, chdb 26.9).
INSERT_SETTINGS: dict[str, Any] = {"async_insert": 0, "optimize_on_insert": 0}

# The model stage's reads (``Store(final_by_time=True)``): a FINAL read of a time range reads the parts and
# granules that the range's skip index (``ix_ts``) selects, not also every granule of the same key range in
# other parts. The raw tables are ordered by (model, event_id), and event ids do not follow time, so in
# ClickHouse's exact mode (on by default in the embedded store's ClickHouse 26.9) a FINAL read of five minutes
# read every part of the model's day (EXPLAIN, six hourly parts of random event ids: 72 of 72 granules, 12
# without FINAL), and a backlog's third drain spent 4.8 of its 6.9 s in one such read. A window's rows are in
# the young parts written since it began (merged parts of many hours are read whole either way: their granules
# hold every hour). Copies of an event that share its time lie in granules the range selects, so FINAL still
# collapses them; only copies of one event id with different times (an event re-sent without its own ``ts``,
# stamped with two broker times) may count in each window their times fall in. Every FINAL read of the model
# stage filters on ``ts``, none on ``ingested_at`` (the other skip index, whose values differ between copies).
FINAL_BY_TIME: dict[str, Any] = {"use_skip_indexes_if_final": 1, "use_skip_indexes_if_final_exact_mode": 0}
# The client calls that read (``Store._call``): they carry ``FINAL_BY_TIME`` on the model stage's connection.
_READS = frozenset({"query", "query_arrow", "query_df", "raw_query"})

# Arrow tables up to this size are inserted as one request body, larger ones streamed.
ONE_BODY_BYTES = 1 << 20


def _arrow_stream(data: Any) -> Iterator[bytes]:
    """An Arrow table in the Arrow IPC stream format, one message at a time."""
    yield data.schema.serialize().to_pybytes()
    for batch in data.to_batches():
        yield batch.serialize().to_pybytes()
    yield _ARROW_END_OF_STREAM


_ARROW_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def server_message(exc: BaseException) -> str:
    """The server's own line (``Code: N. DB::Exception: ...``), else the first line."""
    line = next((x.strip() for x in str(exc).splitlines() if "Code: " in x), None)
    return line[line.index("Code: ") :][:300] if line else _clean(exc)


def _clean(exc: BaseException) -> str:
    """An error message without anything that could carry credentials."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


__all__ = ["ClickHouseError", "Store", "StoreAuthFailed", "StoreBusy", "StoreUnavailable", "bad_data", "server_message"]
