"""The embedded store through clickhouse-connect, exactly as watchkeeper uses ClickHouse.

The client-side checks run against the embedded store and, when
``WATCHKEEPER_TEST_CLICKHOUSE_URL`` (``http(s)://user:password@host:port``) is set,
against that ClickHouse server too: the store must answer as a server does.
The store-process checks (users, restart, binding) run against the embedded store only.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import http.client
import json
import os
import socket
import subprocess
import sys
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import clickhouse_connect
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from watchkeeper.sinks.embedded.errors import StoreError
from watchkeeper.sinks.embedded.server import StoreUser, ping, users_from_env
from watchkeeper.sinks.embedded.sql import check_statement as _check_statement
from watchkeeper.sinks.embedded.sql import split_insert as _split_insert

pytestmark = pytest.mark.integration

SERVER_URL_VAR = "WATCHKEEPER_TEST_CLICKHOUSE_URL"
DATABASE = "watchkeeper"
COLUMNS = ["ts", "model", "prediction_id", "score", "label", "features", "tags"]
EVIL = "x'); DROP TABLE t; --"
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Target:
    """Where the client-side checks run: the embedded store or a ClickHouse server."""

    name: str
    host: str
    port: int
    username: str = "default"
    password: str = ""
    secure: bool = False

    def client(self, **kwargs: Any) -> Client:
        params: dict[str, Any] = {"username": self.username, "password": self.password, "secure": self.secure}
        params.update(kwargs)
        return clickhouse_connect.get_client(host=self.host, port=self.port, **params)

    def http(
        self,
        method: str,
        params: dict[str, str],
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """A raw request, to see the HTTP interface itself; returns (status, headers, body)."""
        conn_type = http.client.HTTPSConnection if self.secure else http.client.HTTPConnection
        conn = conn_type(self.host, self.port, timeout=30)
        credentials = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        try:
            auth = {"Authorization": f"Basic {credentials}"}
            conn.request(method, "/?" + urlencode(params), body=body, headers={**auth, **(headers or {})})
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()


def _server_target() -> Target:
    url = os.environ.get(SERVER_URL_VAR)
    if not url:
        pytest.skip(f"{SERVER_URL_VAR} is not set")
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    return Target(
        "server",
        parts.hostname or "localhost",
        parts.port or (8443 if secure else 8123),
        unquote(parts.username or "default"),
        unquote(parts.password or ""),
        secure,
    )


@pytest.fixture(scope="module", params=["embedded", "server"])
def target(request: pytest.FixtureRequest) -> Target:
    if request.param == "server":
        return _server_target()
    host, port = request.getfixturevalue("store")
    return Target("embedded", host, port)


@pytest.fixture(scope="module")
def client(target: Target) -> Iterator[Client]:
    c = target.client()
    c.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    yield c
    c.close()


@pytest.fixture
def table(client: Client) -> Iterator[str]:
    # A fresh name per test so that runs against a shared server never collide; the
    # name is generated here, never from data, so formatting it into DDL is safe.
    name = f"{DATABASE}.test_store_{uuid.uuid4().hex[:12]}"
    yield name
    client.command(f"DROP TABLE IF EXISTS {name}")


def create_events(client: Client, table: str, *, dedup: bool = False) -> None:
    settings = " SETTINGS non_replicated_deduplication_window = 100" if dedup else ""
    client.command(
        f"""
        CREATE TABLE {table} (
            ts DateTime64(3, 'UTC') DEFAULT now64(3),
            model LowCardinality(String),
            prediction_id String,
            score Float64,
            label Nullable(Float64),
            features Map(String, Float64),
            tags Array(String)
        ) ENGINE = MergeTree ORDER BY (model, ts)
        TTL toDateTime(ts) + INTERVAL 3650 DAY{settings}
        """
    )


def event_rows(n: int, *, model: str = "churn", start: int = 0) -> list[list[Any]]:
    return [
        [
            T0 + dt.timedelta(milliseconds=i),
            model,
            f"{model}-{i}",
            i / 10,
            None if i % 3 == 0 else float(i % 2),
            {"age": float(i % 90), "income": i * 1.5},
            [f"t{i % 4}"] * (i % 3),
        ]
        for i in range(start, start + n)
    ]


def count(client: Client, table: str, where: str = "1", **parameters: Any) -> int:
    sql = f"SELECT count() FROM {table} WHERE {where}"
    return int(str(client.command(sql, parameters=parameters or None)))


# --- Client-side checks: embedded store and, if configured, a ClickHouse server.


def test_connects_like_a_server(target: Target, client: Client) -> None:
    assert client.server_version and client.server_version[0].isdigit()
    assert client.ping()
    assert client.command("SELECT 1") == 1
    assert client.command("SELECT version()") == client.server_version
    assert ping(target.host, target.port) or target.secure


def test_ddl_and_native_insert_round_trip_every_column_type(client: Client, table: str) -> None:
    create_events(client, table)
    rows = event_rows(3000)

    summary = client.insert(table, rows, column_names=COLUMNS)

    assert summary.written_rows == 3000
    assert count(client, table) == 3000
    got = client.query(f"SELECT {', '.join(COLUMNS)} FROM {table} ORDER BY prediction_id LIMIT 4").result_rows
    expected = sorted(rows, key=lambda r: r[2])[:4]
    for got_row, want in zip(got, expected, strict=True):
        assert got_row[0] == want[0].replace(tzinfo=None)  # naive UTC, clickhouse-connect's default
        assert list(got_row[1:]) == want[1:]
    assert "TTL" in str(client.command(f"SHOW CREATE TABLE {table}"))
    assert client.command(f"SELECT toTypeName(model) FROM {table} LIMIT 1") == "LowCardinality(String)"


def test_database_setting_is_honoured(target: Target, client: Client, table: str) -> None:
    create_events(client, table)
    scoped = target.client(database=DATABASE)
    try:
        assert scoped.command("SELECT currentDatabase()") == DATABASE
        scoped.insert(table.split(".", 1)[1], event_rows(10), column_names=COLUMNS)
        assert count(scoped, table.split(".", 1)[1]) == 10
    finally:
        scoped.close()


def test_insert_arrow_table(client: Client, table: str) -> None:
    create_events(client, table)
    n = 500
    arrow = pa.table(
        {
            "ts": pa.array([T0 + dt.timedelta(seconds=i) for i in range(n)], pa.timestamp("ms", tz="UTC")),
            "model": pa.array(["fraud"] * n).dictionary_encode(),
            "prediction_id": [f"p{i}" for i in range(n)],
            "score": pa.array(np.linspace(0, 1, n)),
            "label": pa.array([None if i % 5 == 0 else 1.0 for i in range(n)], pa.float64()),
            "features": pa.array([[("x", float(i))] for i in range(n)], pa.map_(pa.string(), pa.float64())),
            "tags": pa.array([["a", "b"][: i % 3] for i in range(n)], pa.list_(pa.string())),
        }
    )

    client.insert_arrow(table, arrow)

    back = client.query_arrow(f"SELECT * FROM {table} ORDER BY ts")
    assert back.num_rows == n
    assert back.column("prediction_id").to_pylist()[:3] == ["p0", "p1", "p2"]
    assert back.column("label").null_count == n // 5
    assert back.column("features").to_pylist()[7] == [("x", 7.0)]
    assert back.column("tags").to_pylist()[:3] == [[], ["a"], ["a", "b"]]


def test_insert_df_and_query_df(client: Client, table: str) -> None:
    create_events(client, table)
    df = pd.DataFrame(
        {
            "ts": pd.date_range("2024-05-01", periods=200, freq="1s", tz="UTC"),
            "model": "ranker",
            "prediction_id": [f"r{i}" for i in range(200)],
            "score": np.arange(200) / 200,
            "label": [None if i % 2 else 1.0 for i in range(200)],
            "features": [{"f": float(i)} for i in range(200)],
            "tags": [["x"] for _ in range(200)],
        }
    )

    client.insert_df(table, df)

    back = client.query_df(f"SELECT * FROM {table} ORDER BY ts")
    assert len(back) == 200
    assert back["prediction_id"].tolist() == df["prediction_id"].tolist()
    assert np.allclose(back["score"], df["score"])
    assert back["label"].isna().sum() == 100
    assert back["features"].iloc[3] == {"f": 3.0}


def test_query_np_and_arrow(client: Client, table: str) -> None:
    create_events(client, table)
    client.insert(table, event_rows(100), column_names=COLUMNS)

    arr = client.query_np(f"SELECT score, toFloat64(length(tags)) FROM {table} ORDER BY score")
    table_arrow = client.query_arrow(f"SELECT model, count() AS n FROM {table} GROUP BY model")

    assert arr.shape == (100, 2)
    assert arr[-1, 0] == pytest.approx(9.9)
    assert table_arrow.column("n").to_pylist() == [100]


def test_parameters_bind_as_data_never_as_sql(client: Client, table: str) -> None:
    create_events(client, table)

    insert = f"INSERT INTO {table} (prediction_id, model)"
    client.command(f"{insert} SELECT {{m:String}}, 'server-side'", parameters={"m": EVIL})
    client.command(f"{insert} SELECT %(m)s, 'client-side'", parameters={"m": EVIL})

    assert count(client, table, "prediction_id = {m:String}", m=EVIL) == 2
    echoed = client.query("SELECT {m:String} AS m, {n:UInt32} AS n", parameters={"m": EVIL, "n": 7})
    assert echoed.result_rows == [(EVIL, 7)]
    tricky = "tab\there\nnew line \\ back'slash"
    assert client.query("SELECT {m:String}", parameters={"m": tricky}).result_rows == [(tricky,)]


def test_raw_query_in_text_formats(client: Client, table: str) -> None:
    create_events(client, table)
    client.insert(table, event_rows(3), column_names=COLUMNS)
    sql = f"SELECT prediction_id, score FROM {table} ORDER BY prediction_id"

    lines = client.raw_query(sql, fmt="JSONEachRow").decode().splitlines()
    csv = client.raw_query(sql, fmt="CSV").decode()
    pretty = client.raw_query(sql, fmt="PrettyCompact").decode()
    tsv = client.raw_query(sql).decode()

    assert [json.loads(line) for line in lines][0] == {"prediction_id": "churn-0", "score": 0}
    assert csv.splitlines() == ['"churn-0",0', '"churn-1",0.1', '"churn-2",0.2']
    assert "prediction_id" in pretty and "churn-2" in pretty
    assert tsv.splitlines()[1] == "churn-1\t0.1"


def test_insert_deduplication_token_makes_a_repeat_insert_a_no_op(client: Client, table: str) -> None:
    create_events(client, table, dedup=True)
    rows = event_rows(50)

    for _ in range(2):
        client.insert(table, rows, COLUMNS, settings={"insert_deduplication_token": "part-7:0-49"})
    assert count(client, table) == 50

    client.insert(table, rows, COLUMNS, settings={"insert_deduplication_token": "part-7:50-99"})
    assert count(client, table) == 100

    arrow = pa.table({"prediction_id": ["a", "b"], "score": [1.0, 2.0]})
    for _ in range(2):
        client.insert_arrow(table, arrow, settings={"insert_deduplication_token": "arrow-1"})
    assert count(client, table) == 102


def test_errors_raise_database_error_and_the_server_keeps_serving(client: Client, table: str) -> None:
    with pytest.raises(DatabaseError, match="UNKNOWN_TABLE") as missing:
        client.query(f"SELECT * FROM {table}_missing")
    assert missing.value.code == 60
    with pytest.raises(DatabaseError, match="Syntax error") as syntax:
        client.command("SELEC 1")
    assert syntax.value.code == 62
    create_events(client, table)
    with pytest.raises(DatabaseError, match="UNKNOWN_SETTING"):
        client.query("SELECT 1", settings={"no_such_setting_here": 1})

    assert client.command("SELECT 41 + 1") == 42
    client.insert(table, event_rows(5), column_names=COLUMNS)
    assert count(client, table) == 5


@pytest.mark.parametrize("compress", [False, "lz4", "zstd", "gzip"])
def test_compressed_requests(target: Target, client: Client, table: str, compress: str | bool) -> None:
    create_events(client, table)
    c = target.client(compress=compress)
    try:
        c.insert(table, event_rows(700), column_names=COLUMNS)
        assert count(c, table) == 700
        assert len(c.query(f"SELECT * FROM {table}").result_rows) == 700
    finally:
        c.close()


def test_concurrent_client_threads_get_exact_counts(target: Target, client: Client, table: str) -> None:
    create_events(client, table)
    batches, size = 5, 200

    def work(worker: int) -> None:
        c = target.client()  # one client per thread, as clickhouse-connect requires
        try:
            for batch in range(batches):
                c.insert(table, event_rows(size, model=f"m{worker}", start=batch * size), COLUMNS)
                assert count(c, table, "model = {m:String}", m=f"m{worker}") == (batch + 1) * size
        finally:
            c.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))

    assert count(client, table) == 4 * batches * size
    assert client.command(f"SELECT uniqExact(prediction_id) FROM {table}") == 4 * batches * size


def test_concurrent_client_processes(target: Target, client: Client, table: str) -> None:
    create_events(client, table)
    script = (
        "import sys, clickhouse_connect\n"
        "host, port, user, pw, secure, table, model = sys.argv[1:]\n"
        "c = clickhouse_connect.get_client(host=host, port=int(port), username=user, password=pw,\n"
        "                                  secure=secure == 'https')\n"
        "for b in range(3):\n"
        "    c.insert(table, [[model, f'{model}-{b}-{i}', 1.0] for i in range(300)],\n"
        "             column_names=['model', 'prediction_id', 'score'])\n"
    )
    scheme = "https" if target.secure else "http"
    args = [target.host, str(target.port), target.username, target.password, scheme, table]
    procs = [subprocess.Popen([sys.executable, "-c", script, *args, f"proc{i}"]) for i in range(2)]

    assert [p.wait(60) for p in procs] == [0, 0]
    assert count(client, table) == 1800


def test_wrong_password_is_refused(target: Target) -> None:
    with pytest.raises(DatabaseError, match="Authentication failed") as refused:
        target.client(password=target.password + "-wrong")
    assert refused.value.code == 516


def test_http_interface_details(target: Target, client: Client, table: str) -> None:
    client.command(f"CREATE TABLE {table} (id String, score Float64) ENGINE = MergeTree ORDER BY id")

    # The statement in the URL, the data in the body.
    insert_csv = {"query": f"INSERT INTO {table} (id, score) FORMAT CSV"}
    status, _, _ = target.http("POST", insert_csv, b"a,1.5\nb,2.5\n")
    assert status == 200
    # The statement at the start of a chunked body, as clickhouse-connect streams inserts.
    chunks = [f"INSERT INTO {table} (id, score) FORMAT JSONEachRow\n".encode(), b'{"id":"c","score":3}\n']
    status, _, _ = target.http("POST", {}, iter(chunks))
    assert status == 200
    # The URL and the body together form one statement.
    status, _, _ = target.http("POST", {"query": f"INSERT INTO {table} (id, score) VALUES"}, b"('d', 4)")
    assert status == 200
    assert count(client, table) == 4

    status, headers, body = target.http("GET", {"query": f"SELECT id FROM {table} ORDER BY id FORMAT JSON"})
    assert status == 200 and headers["X-ClickHouse-Format"] == "JSON"
    assert [r["id"] for r in json.loads(body)["data"]] == ["a", "b", "c", "d"]
    assert headers["X-ClickHouse-Query-Id"] and headers["X-ClickHouse-Timezone"]

    # GET implies readonly, as on a server.
    status, headers, body = target.http("GET", {"query": f"INSERT INTO {table} VALUES ('e', 5)"})
    assert headers["X-ClickHouse-Exception-Code"] == "164"
    status, headers, body = target.http("POST", {"query": "SELECT * FROM no_such_table_anywhere"})
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "60")
    assert body.startswith(b"Code: 60. DB::Exception:")
    status, headers, _ = target.http("POST", {"query": "SELECT 1; SELECT 2"})
    assert headers["X-ClickHouse-Exception-Code"] == "62"
    assert count(client, table) == 4


def _lz4(data: bytes) -> bytes:
    import lz4.frame

    return lz4.frame.compress(data)


def _zstd(data: bytes) -> bytes:
    from backports import zstd

    return bytes(zstd.compress(data))


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        # Several frames in one body, as clickhouse-connect sends one per block.
        ("lz4", lambda data: _lz4(data[:20]) + _lz4(data[20:])),
        ("zstd", lambda data: _zstd(data[:20]) + _zstd(data[20:])),
    ],
)
def test_compressed_request_bodies(
    target: Target, client: Client, table: str, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    client.command(f"CREATE TABLE {table} (id String, score Float64) ENGINE = MergeTree ORDER BY id")
    body = f"INSERT INTO {table} (id, score) FORMAT CSV\n".encode() + b"".join(
        f"id{i},{i}\n".encode() for i in range(100)
    )

    status, _, answer = target.http("POST", {}, compress(body), {"Content-Encoding": encoding})

    assert status == 200, answer
    assert client.command(f"SELECT count(), sum(score) FROM {table}") == ["100", "4950"]


# --- Store-process checks: embedded store only.


def _client(proc: Any, username: str = "default", password: str = "", **kwargs: Any) -> Client:
    host, port = proc.address
    return clickhouse_connect.get_client(host=host, port=port, username=username, password=password, **kwargs)


def test_ping_and_root_answer_ok(store: tuple[str, int]) -> None:
    conn = http.client.HTTPConnection(*store, timeout=5)
    try:
        for path in ("/ping", "/"):
            conn.request("GET", path)
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"Ok.\n")
    finally:
        conn.close()


def test_server_files_are_out_of_reach(store: tuple[str, int]) -> None:
    c = clickhouse_connect.get_client(host=store[0], port=store[1])
    try:
        with pytest.raises(DatabaseError, match="server files") as read:
            c.query("SELECT * FROM file('/etc/hostname', 'LineAsString')")
        assert read.value.code == 497
        with pytest.raises(DatabaseError, match="INTO OUTFILE"):
            c.command("SELECT 1 INTO OUTFILE '/tmp/watchkeeper-should-not-exist'")
        assert not Path("/tmp/watchkeeper-should-not-exist").exists()
    finally:
        c.close()


def test_data_persists_across_a_restart(store_factory: Callable[..., Any], tmp_path: Path) -> None:
    path = tmp_path / "persistent"
    first = store_factory(path)
    c = _client(first)
    c.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    create_events(c, f"{DATABASE}.kept")
    c.insert(f"{DATABASE}.kept", event_rows(1234), column_names=COLUMNS)
    c.close()

    assert first.stop() == 0  # SIGTERM: a clean shutdown
    assert "stopped" in first.log()

    second = store_factory(path)
    c = _client(second)
    try:
        assert count(c, f"{DATABASE}.kept") == 1234
    finally:
        c.close()


def test_read_only_user_reads_but_cannot_write(store_factory: Callable[..., Any]) -> None:
    secrets = {"writer": "w-Secret-1", "analyst": "a-Secret-2"}
    proc = store_factory(
        env={
            "WATCHKEEPER_STORE_USER": "writer",
            "WATCHKEEPER_STORE_PASSWORD": secrets["writer"],
            "WATCHKEEPER_STORE_READONLY_USER": "analyst",
            "WATCHKEEPER_STORE_READONLY_PASSWORD": secrets["analyst"],
        }
    )
    table = f"{DATABASE}.events"
    writer = _client(proc, "writer", secrets["writer"])
    writer.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    create_events(writer, table)
    writer.insert(table, event_rows(10), column_names=COLUMNS)
    analyst = _client(proc, "analyst", secrets["analyst"])

    assert count(analyst, table) == 10
    assert len(analyst.query_df(f"SELECT * FROM {table}")) == 10
    refused = [
        f"INSERT INTO {table} (prediction_id) VALUES ('x')",
        f"CREATE TABLE {DATABASE}.other (a UInt8) ENGINE = MergeTree ORDER BY a",
        f"ALTER TABLE {table} DELETE WHERE 1",
        f"TRUNCATE TABLE {table}",
        f"DROP TABLE {table}",
        f"OPTIMIZE TABLE {table} FINAL",
        "SYSTEM FLUSH LOGS",
        "SET max_threads = 1",
    ]
    for statement in refused:
        with pytest.raises(DatabaseError, match="readonly mode"):
            analyst.command(statement)
    with pytest.raises(DatabaseError, match="readonly mode"):
        analyst.insert(table, event_rows(3), column_names=COLUMNS)
    host, port = proc.address
    analyst_target = Target("embedded", host, port, "analyst", secrets["analyst"])
    status, headers, body = analyst_target.http("POST", {"query": "SELECT 1", "max_threads": "1"})
    assert headers["X-ClickHouse-Exception-Code"] == "164" and b"Cannot modify 'max_threads'" in body

    assert count(writer, table) == 10
    with pytest.raises(DatabaseError, match="Authentication failed"):
        _client(proc)  # user default is gone once credentials are configured
    assert not any(secret in proc.log() for secret in secrets.values())
    writer.close()
    analyst.close()


def _listening_ipv4(port: int) -> set[str]:
    """Local addresses listening on a TCP port, from /proc/net/tcp (Linux)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.254.254.254", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = str(sock.getsockname()[0])
    return None if address.startswith("127.") else address


def test_binds_loopback_only_by_default(store_factory: Callable[..., Any]) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs /proc/net/tcp")
    proc = store_factory()

    assert _listening_ipv4(proc.port) == {"127.0.0.1"}
    other = _non_loopback_address()
    if other is not None:
        assert not ping(other, proc.port)


def test_a_second_store_on_a_path_is_refused(store_factory: Callable[..., Any], tmp_path: Path) -> None:
    first = store_factory(tmp_path / "shared")
    second = store_factory(tmp_path / "shared", start=False)

    with pytest.raises(RuntimeError, match="did not start"):
        second.start(timeout=20)
    assert "another store or worker" in second.log()
    c = _client(first)
    try:
        assert c.command("SELECT 1") == 1
    finally:
        c.close()


# --- The store's own parsing, without a server.


def test_insert_data_starts_after_one_newline() -> None:
    head = b"INSERT INTO `t` (`a`) FORMAT Native\n\n\x01rest"
    found = _split_insert(head)
    assert found is not None
    assert (found.statement, found.data_format) == (b"INSERT INTO `t` (`a`) ", "Native")
    assert head[found.data_offset :] == b"\n\x01rest"  # a Native block may itself start with a newline byte


@pytest.mark.parametrize(
    ("head", "data"),
    [
        (b"insert into t settings async_insert=0 format CSV 1,2\n", b"1,2\n"),
        (b"INSERT INTO `FORMAT` (x) /* FORMAT Nope */ FORMAT TSV\r\n1\n", b"1\n"),
        (b"INSERT INTO t (s) FORMAT JSONEachRow\t \n{}", b"{}"),
    ],
)
def test_insert_statement_and_data_are_split(head: bytes, data: bytes) -> None:
    found = _split_insert(head)
    assert found is not None and head[found.data_offset :] == data


@pytest.mark.parametrize(
    "sql",
    [b"INSERT INTO t VALUES (1)", b"INSERT INTO t SELECT 1 FORMAT CSV", b"SELECT 1 FORMAT JSON", b"", b"--"],
)
def test_statements_without_separate_data_are_sql(sql: bytes) -> None:
    assert _split_insert(sql) is None


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        (b"SELECT 1; SELECT 2", 62),
        (b" -- nothing\n", 62),
        (b";", 62),
        (b"SELECT * FROM file('/etc/passwd')", 497),
        (b"CREATE TABLE x (a String) ENGINE = File(CSV, '/tmp/x')", 497),
        (b"SELECT 1 INTO OUTFILE '/tmp/x'", 358),
        (b"INSERT INTO t FROM INFILE '/etc/passwd' FORMAT CSV", 78),
    ],
)
def test_refused_statements(sql: bytes, code: int) -> None:
    with pytest.raises(StoreError) as refused:
        _check_statement(sql)
    assert refused.value.code == code
    assert refused.value.body.startswith(f"Code: {code}. DB::Exception: ")


@pytest.mark.parametrize(
    "sql",
    [b"SELECT 'file(' AS f;", b"SELECT 1 AS file", b"SELECT `file`(1)", b"SELECT 'a; b'; ;"],
)
def test_accepted_statements(sql: bytes) -> None:
    _check_statement(sql)


def test_users_from_the_environment() -> None:
    assert users_from_env({}) == {"default": StoreUser("")}
    users = users_from_env(
        {
            "WATCHKEEPER_STORE_USER": "writer",
            "WATCHKEEPER_STORE_PASSWORD": "pw",
            "WATCHKEEPER_STORE_READONLY_USER": "analyst",
            "WATCHKEEPER_STORE_READONLY_PASSWORD": "ro",
        }
    )
    assert users == {"writer": StoreUser("pw"), "analyst": StoreUser("ro", readonly=True)}
    assert "pw" not in repr(users)
    with pytest.raises(ValueError, match="also the full-access user"):
        users_from_env({"WATCHKEEPER_STORE_USER": "x", "WATCHKEEPER_STORE_READONLY_USER": "x"})
