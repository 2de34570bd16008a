"""Two embedded stores behind one ClickHouse HTTP interface, sharded as the cluster mode shards them.

No ClickHouse cluster runs here. This router stands where a cluster's Distributed
tables stand, for a worker that talks to it as to one server:

- an insert with data (``INSERT INTO t ... FORMAT X`` and its rows) is split by the
  table's sharding key from the product itself (:func:`watchkeeper.sinks.cluster.sharding_key`,
  ``cityHash64(model)`` for tables with a model), computed by the ClickHouse engine
  (chdb) as a server computes it, ``% 2``; each part goes to its shard;
- DDL, DELETE and OPTIMIZE go to both shards (as ``ON CLUSTER`` would), as do inserts
  into ``schema_migrations`` (replicated to every node on a cluster, not sharded);
- a query whose parameters name models that all live on one shard goes to that
  shard only (``optimize_skip_unused_shards``), if it reads only tables sharded by model;
- another query on the database's tables runs on both shards — its subqueries over each
  shard's own rows, as the cluster mode's ``distributed_product_mode = local`` runs them —
  and the results are merged where that gives the single server's answer: a union where
  every output row comes from one shard's rows (no aggregate in the outermost query unless
  grouped by the sharding key of the tables read); under a top-level ``ORDER BY``/``LIMIT``,
  merged by model (each model's rows come whole and in order from one shard) where the
  ORDER BY starts with the model, else sorted again by the engine on the output columns,
  then cut to the LIMIT;
- a fleet-wide ``max``/``min`` (no GROUP BY) is the max/min of the shards' rows;
- the statements of ``ON_INITIATOR`` join subqueries over tables sharded on different keys (a
  window's predictions, sharded by model, and its dead letters, sharded by offset): their outermost
  query reads no table, so a cluster runs it on the node asked, each subquery over the whole fleet.
  The router does the same: each subquery on both shards (merged as above), the join in its own engine;
- an ``INSERT ... SELECT`` between tables sharded by model runs on each shard (each
  computes its own models' rows and keeps them, as ``parallel_distributed_insert_select = 2``);
- anything else is refused with ClickHouse error 48 (NOT_IMPLEMENTED) and logged as
  ``REFUSED``, so a test cannot pass on a query the router answered wrongly.

Every decision is logged (``route <kind> ...``) to stderr, which the test reads.
Run: ``python -m tests.shard_router --port P --shard 127.0.0.1:P0 --shard 127.0.0.1:P1``.
"""

from __future__ import annotations

import argparse
import http.client
import io
import logging
import re
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import chdb
import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)

from watchkeeper.sinks.cluster import sharding_key
from watchkeeper.sinks.embedded.request import decode_body, form_fields, parse_query, receive_body
from watchkeeper.sinks.embedded.sql import _tokens, first_word, output_format
from watchkeeper.sinks.migrations import MIGRATIONS_TABLE, NEW
from watchkeeper.sinks.schema import SILENCES, TABLES, Table

log = logging.getLogger("shard_router")

SHARDS = 2
DATABASE = "watchkeeper"
# The tables by name, and the copies a migration rebuilds them in (sharded as the table they replace).
SCHEMA: dict[str, Table] = {n: t for t in (*TABLES, SILENCES) for n in (t.name, t.name + NEW)}
# Tables every node holds whole on a cluster (replicated, no Distributed table in front).
EVERY_NODE = frozenset({MIGRATIONS_TABLE})
MODEL_KEY = "cityHash64(model)"
# The column the router adds to an Arrow insert's rows to read their shards back in order (see hash_rows).
ROW = "_shard_router_row"
# Statements that change the schema or every row of a table: each shard runs them on its own part.
BROADCAST = frozenset({"CREATE", "ALTER", "DROP", "RENAME", "EXCHANGE", "TRUNCATE", "OPTIMIZE", "DELETE", "SYSTEM"})
# Statements about the schema, the same on every shard.
SCHEMA_READS = frozenset({"SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK"})
AGGREGATES = re.compile(
    r"^(count|sum|min|max|avg|any|anyLast|argMin|argMax|uniq\w*|group\w+|quantile\w*|median\w*|"
    r"topK\w*|\w+(If|Array|State|Merge|Distinct|OrNull|OrDefault))$",
    re.IGNORECASE,
)
# Conversions that keep the order of their argument: max(x) of the shards' rows inside them is still the max.
ORDER_KEEPING = frozenset({"tounixtimestamp", "tounixtimestamp64milli", "touint64", "toint64", "tofloat64"})
# Statements whose outermost query joins subqueries over tables sharded on different keys (no table of its
# own): run on the node asked, over each subquery's rows from both shards (see RouterHandler._on_initiator).
ON_INITIATOR = (b"SELECT r.model AS model, r.version AS version, r.ws AS ws, count() AS dead",)
# An ORDER BY whose first key is the model (of any table alias), and its direction.
MODEL_FIRST = re.compile(r"^ORDER BY\s+(?:\w+\.)?model(?:\s+(ASC|DESC))?\s*(?:,|$)", re.IGNORECASE)
# A query parameter names models if it is the right-hand side of ``model = {p:...}`` or ``model IN {p:...}``.
MODEL_FILTER = re.compile(rb"\bmodel\s*(?:=|\bIN\b)\s*\{(\w+):", re.IGNORECASE)
TABLE_REF = re.compile(rb"\b(?:FROM|JOIN|INTO|TABLE)\s+(?:`?" + DATABASE.encode() + rb"`?\.)?`?(\w+)`?", re.IGNORECASE)
# Concatenated results of these formats are one valid result (Native: a stream of blocks).
CONCATENATED = ("Native", "TabSeparated", "TSV", "CSV", "JSONEachRow", "JSONCompactEachRow", "PrettyCompact")


class Refused(Exception):
    """A statement the router cannot answer as one server would."""


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Router(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, shards: list[tuple[str, int]]) -> None:
        super().__init__(("127.0.0.1", port), RouterHandler)
        if len(shards) != SHARDS:
            raise ValueError(f"the router splits over {SHARDS} shards")
        self.shards = shards
        self.engine = chdb.connect(":memory:")
        self.engine_lock = threading.Lock()
        self.tmp = Path(tempfile.mkdtemp(prefix="shard-router-"))

    def hash_rows(self, data: bytes, fmt: str, key: str) -> list[int]:
        """The shard of each row of insert data (``key % 2``), computed by the ClickHouse engine, in the
        data's order for an Arrow stream (the rows of other formats are split by a filter: see :meth:`split`).

        The engine reads a file's blocks in parallel and keeps no order without ORDER BY: an Arrow stream of
        many record batches (an outcome batch) came back in another order often enough to send whole runs of
        rows to the wrong shard. Each row of an Arrow stream carries its place (``ROW``), and the shards
        come back sorted by it."""
        path = self.tmp / f"{threading.get_ident()}.data"
        order = ""
        if fmt == "ArrowStream":
            table = pa.ipc.open_stream(data).read_all()
            data = arrow_stream(table.append_column(ROW, pa.array(range(table.num_rows), pa.uint64())))
            order = f" ORDER BY {ROW}"
        path.write_bytes(data)
        with self.engine_lock:
            out = self.engine.query(
                f"SELECT ({key}) % {SHARDS} FROM file({{p:String}}, {{f:String}}){order}",
                "TabSeparated",
                params={"p": str(path), "f": fmt},
            )
        return [int(x) for x in out.bytes().split()]

    def _native(self, data: bytes, sql: str, params: Mapping[str, str] | None = None) -> bytes:
        path = self.tmp / f"{threading.get_ident()}.native"
        path.write_bytes(data)
        with self.engine_lock:
            return self.engine.query(sql, params={"p": str(path), **(params or {})}).bytes()  # type: ignore[no-any-return]

    def count_rows(self, body: bytes, fmt: str) -> int:
        if not body:
            return 0
        if fmt == "Arrow":
            return int(pa.ipc.open_file(body).read_all().num_rows)
        return int(self._native(body, "SELECT count() FROM file({p:String}, 'Native') FORMAT TabSeparated"))

    def extremes(self, native: bytes, fn: str) -> bytes:
        described = self._native(native, "DESCRIBE TABLE file({p:String}, 'Native') FORMAT TabSeparated")
        names = [line.split("\t")[0] for line in described.decode().splitlines() if line]
        columns = ", ".join(f"{fn}(`{n}`) AS `{n}`" for n in names)
        try:
            return self._native(native, f"SELECT {columns} FROM file({{p:String}}, 'Native') FORMAT Native")
        except Exception as exc:  # the engine's refusal
            raise RuntimeError(str(exc).splitlines()[0][:200]) from None

    def merge_by_model(self, bodies: list[bytes], fmt: str, direction: str, limit: int | None) -> bytes:
        """The shards' rows, each sorted with the model first, merged by model keeping each shard's order."""
        if fmt == "Native":
            cut = f" LIMIT {limit}" if limit is not None else ""
            sql = (
                f"SELECT * FROM file({{p:String}}, 'Native') ORDER BY model {direction}, rowNumberInAllBlocks()"
                f"{cut} SETTINGS max_threads = 1 FORMAT Native"
            )
            return self._native(b"".join(bodies), sql)
        table = pa.concat_tables([pa.ipc.open_file(b).read_all() for b in bodies])
        order = "descending" if direction.upper() == "DESC" else "ascending"
        indices = pa.compute.sort_indices(table, sort_keys=[("model", order)])  # stable: each shard's order kept
        table = table.take(indices if limit is None else indices[:limit])
        sink = io.BytesIO()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue()

    def reorder(self, native: bytes, keys: str, count: str, params: Mapping[str, str]) -> bytes:
        """Rows in the Native format sorted by ``keys`` (an ORDER BY clause) and cut to ``count`` rows."""
        cut = f" LIMIT {count}" if count else ""
        sql = f"SELECT * FROM file({{p:String}}, 'Native') {keys}{cut} FORMAT Native"
        try:
            return self._native(native, sql, params)
        except Exception as exc:  # the engine's refusal (e.g. a sort key that is not an output column)
            raise RuntimeError(str(exc).splitlines()[0][:200]) from None

    def spill(self, data: bytes, name: str) -> str:
        """Data in a file of this thread's own, for the engine's ``file()``; returns its path."""
        path = self.tmp / f"{threading.get_ident()}.{name}"
        path.write_bytes(data)
        return str(path)

    def run(self, sql: bytes, fmt: str, params: Mapping[str, str]) -> bytes:
        """A statement in the router's engine (its files spilled by :meth:`spill`)."""
        try:
            with self.engine_lock:
                return self.engine.query(sql.decode(), fmt, params=dict(params)).bytes()  # type: ignore[no-any-return]
        except Exception as exc:  # the engine's refusal
            raise RuntimeError(str(exc).splitlines()[0][:200]) from None

    def split(self, data: bytes, fmt: str, key: str) -> list[bytes | None]:
        """The insert data of each shard (None: no rows for it), in the format it came in."""
        shard_of = self.hash_rows(data, fmt, key)
        parts: list[bytes | None] = []
        for k in range(SHARDS):
            rows = [i for i, s in enumerate(shard_of) if s == k]
            if not rows:
                parts.append(None)
            elif len(rows) == len(shard_of):
                parts.append(data)
            elif fmt == "ArrowStream":
                parts.append(arrow_stream(pa.ipc.open_stream(data).read_all().take(pa.array(rows))))
            elif fmt == "Native":
                path = self.tmp / f"{threading.get_ident()}.data"
                path.write_bytes(data)
                with self.engine_lock:
                    out = self.engine.query(
                        f"SELECT * FROM file({{p:String}}, 'Native') WHERE ({key}) % {SHARDS} = {k} FORMAT Native",
                        params={"p": str(path)},
                    )
                parts.append(out.bytes())
            else:
                raise Refused(f"cannot split insert data in format {fmt}")
        return parts


class RouterHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Router
    sql = ""  # the statement being routed, shortened, for the log
    _extreme = "max"
    _params: Mapping[str, str] = {}

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silenced (the routing log says what matters)."""

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        with decode_body(receive_body(self.rfile, self.headers), self.headers.get("Content-Encoding", "")) as body:
            raw = body.read()
        try:
            reply = self._route(method, url.path, url.query, raw)
        except Refused as exc:
            log.error("REFUSED %s", exc)
            message = f"Code: 48. DB::Exception: the shard router refuses: {exc}. (NOT_IMPLEMENTED)\n".encode()
            reply = Reply(500, [("X-ClickHouse-Exception-Code", "48"), ("Content-Type", "text/plain")], message)
        self.send_response(reply.status)
        for name, value in reply.headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "keep-alive"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    # Forwarding ------------------------------------------------------------
    def _forward(self, shard: int, method: str, target: str, body: bytes, content_type: str | None = None) -> Reply:
        host, port = self.server.shards[shard]
        conn = http.client.HTTPConnection(host, port, timeout=300)
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in ("host", "content-length", "transfer-encoding", "content-encoding", "connection")
        }
        if content_type is not None:
            headers["Content-Type"] = content_type
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            return Reply(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()

    def _all(self, method: str, target: str, body: bytes) -> list[Reply]:
        return [self._forward(k, method, target, body) for k in range(SHARDS)]

    # Routing ---------------------------------------------------------------
    def _route(self, method: str, path: str, query_string: str, raw: bytes) -> Reply:
        target = path + (f"?{query_string}" if query_string else "")
        if path != "/":
            return self._forward(0, method, target, raw)
        args = dict(parse_qsl(query_string, keep_blank_values=True))
        content_type = self.headers.get("Content-Type", "")
        parse_body: IO[bytes] = io.BytesIO(raw)
        if content_type.startswith("multipart/form-data"):
            args.update(form_fields(content_type, raw))
            parse_body = io.BytesIO()
        if "query" not in args and not raw:
            return self._forward(0, method, target, raw)
        query = parse_query(args, self.headers, parse_body)
        word = first_word(query.sql).decode()
        self.sql = " ".join(query.sql.decode(errors="replace").split())[:160]
        tables = tables_of(query.sql)
        if query.data is not None:
            query.data.seek(query.data_offset)
            return self._insert(method, target, query.sql, query.data.read(), query.data_format, args, raw)
        if word in BROADCAST:
            log.info("route broadcast %s %s | %s", word, sorted(tables), self.sql)
            return first_success(self._all(method, target, raw))
        if word in SCHEMA_READS or not tables or tables <= EVERY_NODE:
            log.info("route first %s %s | %s", word, sorted(tables), self.sql)
            return self._forward(0, method, target, raw)
        if word == "INSERT":
            return self._insert_select(method, target, query.sql, tables, raw)
        if word not in ("SELECT", "WITH"):
            raise Refused(f"{word} statements are not routed")
        by_model = all(t in SCHEMA and sharding_key(SCHEMA[t]) == MODEL_KEY for t in tables)
        self._params = query.params
        shard = self._shard_of_params(query.sql, query.params) if by_model else None
        if shard is not None:
            log.info("route one %d %s | %s", shard, sorted(tables), self.sql)
            return self._forward(shard, method, target, raw)
        why = union_refusal(query.sql, [key_columns(SCHEMA[t]) for t in sorted(tables) if t in SCHEMA])
        if why and extremes_only(query.sql):
            self._extreme = "min" if re.search(rb"\bmin\s*\(", query.sql, re.IGNORECASE) else "max"
            log.info("route extremes %s | %s", sorted(tables), self.sql)
            return self._extremes(self._all(method, target, raw), output_format(query.sql) or query.default_format)
        if why and query.sql.strip().startswith(ON_INITIATOR):
            log.info("route initiator %s | %s", sorted(tables), self.sql)
            return self._on_initiator(query.sql, query.params, output_format(query.sql) or query.default_format)
        if why:
            raise Refused(f"{why}: {self.sql}")
        fmt = output_format(query.sql) or query.default_format
        replies = self._all(method, target, raw)
        order = top_level_order(query.sql)
        if order is not None:
            return self._ordered(replies, fmt, *order, by_model)
        log.info("route union %s %s | %s", fmt, sorted(tables), self.sql)
        return merge(replies, fmt)

    def _on_initiator(self, sql: bytes, params: Mapping[str, str], fmt: str) -> Reply:
        """A query whose outermost part reads only subqueries (FROM and JOIN), as the node asked runs it: each
        subquery on both shards, merged (refused unless a union of the shards' rows is its answer), then the
        outermost query over them in the router's engine."""
        spans = top_level_subqueries(sql)
        if not spans:
            raise Refused(f"no subquery to run on the shards: {self.sql}")
        pieces, files, last = [], {}, 0
        for i, (start, end) in enumerate(spans):
            sub = sql[start:end]
            why = union_refusal(sub, [key_columns(SCHEMA[t]) for t in sorted(tables_of(sub)) if t in SCHEMA])
            if why:
                raise Refused(f"{why} in a subquery run on the node asked: {self.sql}")
            # Its columns, given to file(): a result without rows is an empty Native body.
            described = self._query(0, b"DESCRIBE TABLE (" + sub + b") FORMAT TabSeparated", params)
            merged = merge([self._query(k, sub + b" FORMAT Native", params) for k in range(SHARDS)], "Native")
            if merged.status != 200 or described.status != 200:
                return merged if merged.status != 200 else described
            columns = [line.split("\t")[:2] for line in described.body.decode().splitlines() if line]
            files[f"_router_sub{i}"] = self.server.spill(merged.body, f"sub{i}")
            files[f"_router_cols{i}"] = ", ".join(f"`{name}` {type_}" for name, type_ in columns)
            table = f"file({{_router_sub{i}:String}}, 'Native', {{_router_cols{i}:String}})"
            pieces += [sql[last : start - 1], table.encode()]
            last = end + 1
        try:
            body = self.server.run(b"".join(pieces) + sql[last:], fmt, {**params, **files})
        except RuntimeError as exc:
            raise Refused(f"cannot join the shards' rows on the node asked ({exc}): {self.sql}") from None
        return Reply(200, [("Content-Type", "application/octet-stream"), ("X-ClickHouse-Format", fmt)], body)

    def _query(self, shard: int, sql: bytes, params: Mapping[str, str]) -> Reply:
        """A statement of the router's own on one shard, with the client's query parameters."""
        args = {"database": DATABASE, **{f"param_{k}": v for k, v in params.items()}}
        return self._forward(shard, "POST", "/?" + urlencode(args), sql, content_type="text/plain")

    def _extremes(self, replies: list[Reply], fmt: str) -> Reply:
        """One row of maxima or minima over the whole table: each column's max (min) of the shards' rows."""
        if any(r.status != 200 for r in replies):
            return first_success(replies)
        if fmt != "Native":
            raise Refused(f"a fleet-wide max or min in format {fmt}: {self.sql}")
        try:
            body = self.server.extremes(b"".join(r.body for r in replies), self._extreme)
        except RuntimeError as exc:
            raise Refused(f"cannot merge the shards' extremes ({exc}): {self.sql}") from None
        return Reply(200, replies[0].headers, body)

    def _ordered(self, replies: list[Reply], fmt: str, order: str, limit: str, by_model: bool) -> Reply:
        """Both shards' answers to a query with a top-level ``ORDER BY`` and/or ``LIMIT n``, as one server's.

        Right as they are if one shard has no rows. Sorted by model first, on tables sharded by model: each
        model's rows come whole from one shard and in order, so the rows merged by model (a stable sort) are
        one server's. Else sorted again by the engine on the output columns (the ORDER BY without its table
        aliases). Then cut to n rows. Refused where none of this can be done."""
        if any(r.status != 200 for r in replies):
            return first_success(replies)
        if fmt not in ("Native", "Arrow"):
            raise Refused(f"a top-level ORDER BY or LIMIT over both shards in format {fmt}: {self.sql}")
        rows = [self.server.count_rows(r.body, fmt) for r in replies]
        if min(rows) == 0:
            log.info("route union-ordered %s (rows on one shard at most) | %s", rows, self.sql)
            return merge(replies, fmt)
        if not order:
            raise Refused(f"a LIMIT without ORDER BY over both shards: {self.sql}")
        first = MODEL_FIRST.match(order)
        try:
            if by_model and first:
                body = self.server.merge_by_model(
                    [r.body for r in replies], fmt, first.group(1) or "ASC", limit_rows(limit, self._params)
                )
                how = "merged by model"
            elif fmt == "Native":
                keys = re.sub(r"\b[A-Za-z_]\w*\.(?=[A-Za-z_])", "", order)
                body = self.server.reorder(b"".join(r.body for r in replies), keys, limit, self._params)
                how = "sorted again"
            else:
                raise Refused(f"an ORDER BY not led by the model over both shards in format {fmt}: {self.sql}")
        except RuntimeError as exc:
            raise Refused(f"cannot merge the shards' sorted rows ({exc}): {self.sql}") from None
        log.info("route union-ordered %s %s | %s", rows, how, self.sql)
        return Reply(200, replies[0].headers, body)

    def _insert(
        self, method: str, target: str, sql: bytes, data: bytes, fmt: str, args: Mapping[str, str], raw: bytes
    ) -> Reply:
        table = insert_table(sql)
        if table in EVERY_NODE:
            log.info("route broadcast INSERT %s", table)
            return first_success(self._all(method, target, raw))
        if table not in SCHEMA:
            raise Refused(f"insert into a table the router does not know: {table}")
        key = sharding_key(SCHEMA[table])
        parts = self.server.split(data, fmt, key)
        log.info("route split %s %s rows by %s", table, [p is not None for p in parts], key)
        # The statement travels in the URL (as clickhouse-connect sends it) or before the data in the body.
        prefix = b"" if "query" in args else raw[: len(raw) - len(data)]
        replies = [self._forward(k, method, target, prefix + part) for k, part in enumerate(parts) if part is not None]
        return first_success(replies)

    def _insert_select(self, method: str, target: str, sql: bytes, tables: set[str], raw: bytes) -> Reply:
        into = insert_table(sql)
        keys = {t: sharding_key(SCHEMA[t]) for t in tables if t in SCHEMA}
        if into not in SCHEMA or set(keys.values()) != {MODEL_KEY} or set(keys) != tables:
            raise Refused(f"INSERT ... SELECT between tables not all sharded by model: {sorted(tables)}: {self.sql}")
        log.info("route each INSERT SELECT %s from %s | %s", into, sorted(tables - {into}), self.sql)
        return first_success(self._all(method, target, raw))

    def _shard_of_params(self, sql: bytes, params: Mapping[str, str]) -> int | None:
        """The one shard holding every model the query's model filters name, or None."""
        names = {m.decode() for m in MODEL_FILTER.findall(sql)}
        models = [m for name in names if name in params for m in parse_strings(params[name])]
        if not names or not models:
            return None
        shards = set(self.server.hash_rows("\n".join(models).encode() + b"\n", "LineAsString", "cityHash64(line)"))
        return shards.pop() if len(shards) == 1 else None


def arrow_stream(table: pa.Table) -> bytes:
    """A table in the Arrow IPC stream format (as ``ArrowStream`` inserts carry it)."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def tables_of(sql: bytes) -> set[str]:
    """The database's tables a statement names."""
    return {m.decode() for m in TABLE_REF.findall(sql)} & (set(SCHEMA) | EVERY_NODE)


def top_level_subqueries(sql: bytes) -> list[tuple[int, int]]:
    """Where the subqueries that the outermost query reads (``FROM (...)``, ``JOIN (...)``) start and end.

    >>> sql = b"SELECT a FROM (SELECT a FROM t WHERE b IN (1)) AS r JOIN (SELECT a FROM u) AS d ON r.a = d.a"
    >>> [sql[i:j] for i, j in top_level_subqueries(sql)]
    [b'SELECT a FROM t WHERE b IN (1)', b'SELECT a FROM u']
    """
    spans, start, previous = [], None, None
    for t in _tokens(sql):
        if t.text == b"(" and t.depth == 0 and previous is not None and previous.text in (b"FROM", b"JOIN"):
            start = t.end
        elif t.text == b")" and t.depth == 1 and start is not None:
            spans.append((start, t.start))
            start = None
        previous = t
    return spans


def limit_rows(limit: str, params: Mapping[str, str]) -> int | None:
    """A LIMIT's count: a literal or a ``{name:Type}`` parameter (None: no LIMIT).

    >>> limit_rows("10", {}), limit_rows("{n:UInt32}", {"n": "3"}), limit_rows("", {})
    (10, 3, None)
    """
    if not limit:
        return None
    param = re.fullmatch(r"\{(\w+):[^}]*\}", limit)
    return int(params[param.group(1)] if param else limit)


def insert_table(sql: bytes) -> str:
    m = TABLE_REF.search(sql)
    if m is None:
        raise Refused(f"no table in {sql[:200]!r}")
    return m.group(1).decode()


def parse_strings(value: str) -> list[str]:
    """A String or Array(String) parameter in ClickHouse's text format, as its strings.

    >>> parse_strings("demo.fraud"), parse_strings("['a','b\\\\'c']")
    (['demo.fraud'], ['a', "b'c"])
    """
    if not value.startswith("["):
        return [value]
    return [bytes(s[1:-1], "utf-8").decode("unicode_escape") for s in re.findall(r"'(?:[^'\\]|\\.)*'", value)]


def top_level_tokens(sql: bytes) -> list[Any]:
    """The tokens outside parentheses, a query parameter's ``{name:Type}`` kept as its braces only."""
    out, in_param = [], False
    for t in _tokens(sql):
        if t.depth == 0 and (not in_param or t.text == b"}"):
            out.append(t)
        in_param = (in_param or t.text == b"{") and t.text != b"}"
    return out


def top_level_order(sql: bytes) -> tuple[str, str] | None:
    """The top-level ``ORDER BY`` clause and ``LIMIT`` count (``''``: none) of a query, or None without either.

    A ``LIMIT n BY ...`` keeps n rows per group, which the shards' union keeps too: not a LIMIT here.

    >>> top_level_order(b"SELECT a FROM (SELECT a FROM t ORDER BY a LIMIT 1) ORDER BY a DESC LIMIT {n:UInt32} FORMAT X")
    ('ORDER BY a DESC', '{n:UInt32}')
    >>> top_level_order(b"SELECT a FROM t ORDER BY a LIMIT 2 BY a"), top_level_order(b"SELECT 1 WHERE {limit:UInt8}")
    (('ORDER BY a', ''), None)
    >>> top_level_order(b"SELECT a FROM t ORDER BY a LIMIT {n:UInt8} BY a LIMIT 3")
    ('ORDER BY a', '3')
    """
    tokens = top_level_tokens(sql)
    order = limit = ""
    for i, t in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if t.text == b"ORDER" and nxt is not None and nxt.text == b"BY":
            end = next((x.start for x in tokens[i + 2 :] if x.text in (b"LIMIT", b"SETTINGS", b"FORMAT")), len(sql))
            order = sql[t.start : end].decode().strip()
        if t.text == b"LIMIT" and nxt is not None:
            # The count: a literal, or a parameter (its braces, adjacent in the token list).
            count_end = i + 3 if nxt.text == b"{" else i + 2
            if count_end < len(tokens) and tokens[count_end].text == b"BY":
                continue
            limit = sql[nxt.start : tokens[count_end - 1].end].decode()
    return (order, limit) if order or limit else None


def outer_tokens(sql: bytes) -> list[Any]:
    """The tokens of the outermost query, function arguments included, subqueries' tokens left out."""
    out, stack, previous = [], [], None
    for t in _tokens(sql):
        if not any(stack):
            out.append(t)
        if previous is not None and previous.text == b"(":
            stack.append(t.text in (b"SELECT", b"WITH"))
            if stack[-1] and not any(stack[:-1]):
                out.pop()  # the subquery's first word, appended before it was known to start one
        if t.text == b")" and stack:
            stack.pop()
        previous = t
    return out


def key_columns(table: Table) -> frozenset[str]:
    """The columns of a table's sharding key.

    >>> sorted(key_columns(SCHEMA["metrics"])), sorted(key_columns(SCHEMA["checkpoints"]))
    (['model'], ['name'])
    """
    return frozenset(re.findall(r"\w+", sharding_key(table).removeprefix("cityHash64")))


def extremes_only(sql: bytes) -> bool:
    """An outermost query without GROUP BY whose aggregates are all ``max`` (or all ``min``), each inside
    conversions that keep the order (so the max of the shards' rows is the max over both).

    >>> extremes_only(b"SELECT toUnixTimestamp(max(window_end)) AS e FROM metrics FINAL WHERE x = 1")
    True
    >>> extremes_only(b"SELECT max(a) - min(a) FROM t"), extremes_only(b"SELECT negate(max(a)) FROM t")
    (False, False)
    """
    tokens = outer_tokens(sql)
    words = [t.text.decode().lower() for t in tokens if t.kind == "word"]
    if "group" in words or "from" not in words:
        return False
    select = words[words.index("select") + 1 : words.index("from")] if "select" in words else []
    calls = [t.text.decode().lower() for t, n in zip(tokens, tokens[1:], strict=False) if n.text == b"("]
    aggregates = {c for c in calls if AGGREGATES.match(c)}
    others = set(calls) - aggregates
    operators = {t.text for t in tokens if t.kind == "other"} - {
        b"(",
        b")",
        b",",
        b"=",
        b"{",
        b"}",
        b":",
    }
    return (
        aggregates in ({"max"}, {"min"})
        and others <= ORDER_KEEPING
        and not (operators & {b"-", b"+", b"*", b"/"})
        and bool(select)
    )


def union_refusal(sql: bytes, keys: list[frozenset[str]] | None = None) -> str | None:
    """Why the shards' results concatenated would not be the single server's answer (None: they would).

    Subqueries run on each shard over its own rows, as the cluster mode's ``distributed_product_mode = local``
    runs them; the outermost query's aggregates are another matter: a union of per-shard aggregates is one
    server's only where each group lives on one shard: grouped by every column of the sharding key of
    each table read (``keys``; default: the model).

    >>> union_refusal(b"SELECT model, toUInt64(sum(n)) FROM t GROUP BY model ORDER BY model") is None
    True
    >>> union_refusal(b"SELECT toUInt64(sum(n)) FROM t WHERE model IN (SELECT model FROM u GROUP BY model)")
    'an aggregate over both shards not grouped by the sharding key'
    >>> union_refusal(b"SELECT a, b FROM (SELECT max(x) AS a, model AS b FROM t GROUP BY model)") is None
    True
    >>> union_refusal(b"SELECT name, max(v) FROM c GROUP BY name", [frozenset({"name"})]) is None
    True
    >>> union_refusal(b"SELECT model, max(a) FROM t GROUP BY model UNION ALL SELECT model, a FROM u")
    >>> union_refusal(b"SELECT model, max(a) FROM t GROUP BY model UNION ALL SELECT max(a) FROM u")
    'an aggregate over both shards not grouped by the sharding key'
    """
    keys = keys if keys is not None else [frozenset({"model"})]
    tokens = outer_tokens(sql)
    words = [t.text for t in tokens if t.kind == "word"]
    unions = [i for i, t in enumerate(tokens) if t.text == b"UNION"]
    if unions:  # UNION ALL: each branch on its own; UNION DISTINCT would merge rows across shards
        if any(i + 1 >= len(tokens) or tokens[i + 1].text != b"ALL" for i in unions):
            return "a top-level UNION DISTINCT"
        bounds = [0, *(x for i in unions for x in (tokens[i].start, tokens[i + 1].end)), len(sql)]
        branches = [sql[bounds[k] : bounds[k + 1]] for k in range(0, len(bounds), 2)]
        return next((why for b in branches if (why := union_refusal(b, keys))), None)
    aggregate = any(
        t.kind == "word" and n.text == b"(" and AGGREGATES.match(t.text.decode())
        for t, n in zip(tokens, tokens[1:], strict=False)
    )
    if not aggregate:
        return None
    if b"GROUP" in words:
        i = words.index(b"GROUP")
        ends = (b"HAVING", b"ORDER", b"LIMIT", b"FORMAT", b"SETTINGS")
        stop = next((j for j in range(i + 2, len(words)) if words[j] in ends), len(words))
        grouped = {w.decode().lower() for w in words[i + 2 : stop]}
        if keys and all(key <= grouped for key in keys):
            return None
    return "an aggregate over both shards not grouped by the sharding key"


def first_success(replies: list[Reply]) -> Reply:
    """The first reply, unless a shard failed: then its error."""
    return next((r for r in replies if r.status != 200), replies[0])


def merge(replies: list[Reply], fmt: str) -> Reply:
    """The shards' results as one (see CONCATENATED; Arrow formats through pyarrow)."""
    failed = [r for r in replies if r.status != 200]
    if failed:
        return failed[0]
    bodies = [r.body for r in replies]
    if fmt in ("Arrow", "ArrowStream"):
        tables = [
            (pa.ipc.open_file(b).read_all() if fmt == "Arrow" else pa.ipc.open_stream(b).read_all())
            for b in bodies
            if b
        ]
        sink = io.BytesIO()
        table = pa.concat_tables(tables) if tables else None
        if table is not None:
            opener = pa.ipc.new_file if fmt == "Arrow" else pa.ipc.new_stream
            with opener(sink, table.schema) as writer:
                writer.write_table(table)
        body = sink.getvalue()
    elif fmt in CONCATENATED:
        body = b"".join(bodies)
    else:
        raise Refused(f"cannot merge results in format {fmt}")
    summary = [(k, v) for k, v in replies[0].headers if k.lower() != "x-clickhouse-summary"]
    return Reply(200, summary, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--shard", action="append", required=True, help="host:port of a shard's store")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    shards = [(s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1])) for s in args.shard]
    server = Router(args.port, shards)
    log.info("routing 127.0.0.1:%d over %s", args.port, shards)
    server.serve_forever()


if __name__ == "__main__":
    main()
