"""The embedded store: chdb (the ClickHouse engine) served through ClickHouse's HTTP interface.

One process owns a chdb data path (chdb lets only one process open it) and answers
the part of ClickHouse's HTTP interface that clickhouse-connect uses, so that every
part of watchkeeper talks to it exactly as it would to a ClickHouse server::

    $ python -m watchkeeper.sinks.embedded.server --path ./data/clickhouse --port 8123

    >>> import clickhouse_connect                                   # doctest: +SKIP
    >>> client = clickhouse_connect.get_client(host="127.0.0.1", port=8123)  # doctest: +SKIP
    >>> client.query("SELECT 1").result_rows                        # doctest: +SKIP
    [(1,)]

What it serves: ``/ping`` and ``/``; queries (GET or POST) in the ``query`` URL
parameter and/or the body, in any output format chdb has, with ``param_*``
parameters, the ``database`` parameter and query settings as URL parameters;
inserts whose statement (``INSERT ... FORMAT X``) starts the body or sits in
the URL, chunked or not, compressed (lz4, zstd, gzip, deflate) or not.
Every request runs on its own chdb connection, so settings never leak between
requests and queries run in parallel. HTTP sessions (``session_id``) are not kept:
``SET``, ``USE`` and temporary tables last for one request.

Users: a full-access user and an optional read-only one (ClickHouse's
``readonly=1``: SELECT only, no setting changes). Reading or writing server files
(``file()``, ``INTO OUTFILE``, ``FROM INFILE``) is refused, as a server does
outside its ``user_files_path``: chdb itself would allow any path.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import email.parser
import email.policy
import hmac
import http.client
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import parse_qsl, urlsplit

try:
    import chdb
except ModuleNotFoundError as exc:  # chdb comes with the optional extra [embedded]
    raise ModuleNotFoundError("the embedded store needs `pip install 'watchkeeper[embedded]'`", name="chdb") from exc

# A fixed name: run as ``python -m watchkeeper.sinks.embedded.server`` the module is ``__main__``.
logger = logging.getLogger("watchkeeper.sinks.embedded.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8123

# The statement that precedes insert data must start within this many bytes
# (ClickHouse's own max_query_size is 256 KiB).
_HEAD_LIMIT = 1 << 20
# Request bodies up to this size stay in memory; larger ones go to a temp file.
_SPOOL_LIMIT = 8 << 20
_COPY_CHUNK = 1 << 20

# URL parameters that ClickHouse's HTTP handler consumes itself, or that only
# shape its HTTP transport (progress headers, response compression), which this
# adapter does not implement: never passed to the engine as settings.
_HTTP_ONLY_PARAMS = frozenset(
    {
        "query", "database", "default_format", "user", "password", "query_id", "quota_key",
        "session_id", "session_timeout", "session_check", "close_session", "compress",
        "decompress", "buffer_size", "wait_end_of_query", "client_protocol_version", "role",
        "stacktrace", "enable_http_compression", "http_zlib_compression_level",
        "send_progress_in_http_headers", "http_headers_progress_interval_ms",
        "http_native_compression_disable_checksumming_on_decompress",
        "cancel_http_readonly_queries_on_client_close", "http_response_buffer_size",
        "http_wait_end_of_query", "add_http_cors_header",
    }
)  # fmt: skip
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Insert data is read by the engine from a temporary file; the parameter names are
# the store's own, unlikely to collide with a client's.
_DATA_PATH_PARAM = "_watchkeeper_store_data_path"
_DATA_FORMAT_PARAM = "_watchkeeper_store_data_format"
_DATA_SOURCE = f" SELECT * FROM file({{{_DATA_PATH_PARAM}:String}}, {{{_DATA_FORMAT_PARAM}:String}})".encode()

# chdb result statistics, under the names of ClickHouse's X-ClickHouse-Summary.
_SUMMARY_FIELDS = (
    ("read_rows", "rows_read"),
    ("read_bytes", "bytes_read"),
    ("written_rows", "rows_written"),
    ("written_bytes", "bytes_written"),
)

# ClickHouse error names for the codes this module raises itself.
_ERROR_NAMES = {
    33: "CANNOT_READ_ALL_DATA",
    36: "BAD_ARGUMENTS",
    48: "NOT_IMPLEMENTED",
    62: "SYNTAX_ERROR",
    78: "UNKNOWN_TYPE_OF_QUERY",
    89: "UNKNOWN_COMPRESSION_METHOD",
    115: "UNKNOWN_SETTING",
    164: "READONLY",
    236: "ABORTED",
    271: "CANNOT_DECOMPRESS",
    358: "INTO_OUTFILE_NOT_ALLOWED",
    497: "ACCESS_DENIED",
    516: "AUTHENTICATION_FAILED",
    1002: "UNKNOWN_EXCEPTION",
}

# HTTP status per ClickHouse error code, as ClickHouse's exceptionCodeToHTTPStatus maps them.
_STATUS_GROUPS: dict[int, tuple[int, ...]] = {
    401: (194,),
    403: (192, 193, 516, 512, 497),
    400: (36, 427, 6, 25, 26, 38, 41, 72, 441, 675, 676, 27, 376, 15, 44, 37, 123, 8, 167, 168, 223, 62, 117,
          53, 321),
    404: (60, 46, 47, 50, 56, 81, 115, 152, 63, 73, 336, 78, 511),
    413: (229,),
    501: (48,),
    503: (209, 76, 439),
    411: (381,),
    408: (159,),
    415: (779,),
}  # fmt: skip
_HTTP_STATUS = {code: status for status, codes in _STATUS_GROUPS.items() for code in codes}

_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "CSVWithNames": "text/csv; charset=UTF-8; header=present",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
}
_BINARY_FORMATS = ("Native", "RowBinary", "Arrow", "ArrowStream", "Parquet", "ORC", "Avro", "MsgPack", "Npy")

# Statements that produce a result set; ClickHouse announces their format with
# X-ClickHouse-Format even when there are no rows, and clickhouse-connect's
# command() relies on that to tell "no rows" from "no result".
_RESULT_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK", "KILL"})


@dataclass(frozen=True)
class StoreUser:
    """A user of the store: its password and whether it may only read.

    >>> StoreUser("s3cret", readonly=True)
    StoreUser(readonly=True)
    """

    password: str = field(repr=False)
    readonly: bool = False


def users_from_env(environ: Mapping[str, str] | None = None) -> dict[str, StoreUser]:
    """Users from ``WATCHKEEPER_STORE_USER``/``_PASSWORD`` and ``..._READONLY_USER``/``_PASSWORD``.

    With no credentials configured, user ``default`` with an empty password has full access.

    >>> users_from_env({})
    {'default': StoreUser(readonly=False)}
    >>> env = {"WATCHKEEPER_STORE_PASSWORD": "pw", "WATCHKEEPER_STORE_READONLY_USER": "analyst"}
    >>> users_from_env(env)
    {'default': StoreUser(readonly=False), 'analyst': StoreUser(readonly=True)}
    """
    env = os.environ if environ is None else environ
    users: dict[str, StoreUser] = {}
    full_user, full_password = env.get("WATCHKEEPER_STORE_USER"), env.get("WATCHKEEPER_STORE_PASSWORD")
    if full_user or full_password:
        users[full_user or "default"] = StoreUser(full_password or "")
    ro_user, ro_password = (
        env.get("WATCHKEEPER_STORE_READONLY_USER"),
        env.get("WATCHKEEPER_STORE_READONLY_PASSWORD"),
    )
    if ro_user or ro_password:
        name = ro_user or "readonly"
        if name in users:
            raise ValueError(f"WATCHKEEPER_STORE_READONLY_USER={name!r} is also the full-access user")
        users[name] = StoreUser(ro_password or "", readonly=True)
    if not users:
        users["default"] = StoreUser("")
    return users


class StoreError(Exception):
    """An error answered the way ClickHouse answers it: ``Code: N. DB::Exception: ...``."""

    def __init__(self, code: int, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status or _HTTP_STATUS.get(code, 500)
        if message.startswith("Code: "):
            self.body = message
        else:
            self.body = f"Code: {code}. DB::Exception: {message}. ({_ERROR_NAMES.get(code, 'UNKNOWN_EXCEPTION')})"

    @classmethod
    def from_engine(cls, exc: Exception) -> StoreError:
        """Wrap a chdb exception, whose text already carries ClickHouse's code and message."""
        text = str(exc).strip()
        start = text.find("Code: ")
        match = re.match(r"Code: (\d+)\.", text[start:]) if start >= 0 else None
        if match is None:
            return cls(1002, text or type(exc).__name__)
        return cls(int(match.group(1)), text[start:])


# --- SQL scanning: just enough lexing to find clause keywords outside strings and comments.

_TOKEN = re.compile(
    rb"""(?P<space>\s+)
    |(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    |(?P<quoted>'(?:[^'\\]|\\.|'')*(?:'|\Z)|"(?:[^"\\]|\\.|"")*(?:"|\Z)|`(?:[^`\\]|\\.|``)*(?:`|\Z))
    |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<other>.)""",
    re.DOTALL | re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "quoted" or "other"
    text: bytes  # upper-cased for words
    start: int
    end: int
    depth: int  # parenthesis depth before the token


def _tokens(sql: bytes) -> Iterator[_Token]:
    depth = 0
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup or "other"
        if kind in ("space", "comment"):
            continue
        text = match.group()
        yield _Token(kind, text.upper() if kind == "word" else text, match.start(), match.end(), depth)
        if text == b"(":
            depth += 1
        elif text == b")":
            depth = max(depth - 1, 0)


@dataclass(frozen=True)
class _InsertData:
    """An ``INSERT ... FORMAT X`` statement followed by its data."""

    statement: bytes  # everything before FORMAT
    data_format: str
    data_offset: int  # where the data starts in the scanned text


def _split_insert(head: bytes) -> _InsertData | None:
    """Find where an ``INSERT ... FORMAT X`` statement ends and its data begins."""
    tokens = _tokens(head)
    previous = next(tokens, None)
    if previous is None or previous.text != b"INSERT":
        return None
    for token in tokens:
        after_name_keyword = previous.text in (b"INTO", b"TABLE", b".")  # a table may be named "format"
        previous = token
        if token.depth or token.kind != "word" or after_name_keyword:
            continue
        if token.text in (b"SELECT", b"WITH", b"VALUES"):
            return None  # the statement is SQL through to the end
        if token.text == b"FORMAT":
            name = next(tokens, None)
            if name is None or name.kind != "word":
                return None
            # ClickHouse: data starts after the first newline, if there is one, or after all the
            # whitespace otherwise. Binary data may itself start with a newline byte: skip only one.
            pos = name.end
            while pos < len(head) and head[pos : pos + 1] in (b" ", b"\t", b"\f"):
                pos += 1
            if head[pos : pos + 1] == b"\r":
                pos += 1
            if head[pos : pos + 1] == b"\n":
                pos += 1
            return _InsertData(head[: token.start], head[name.start : name.end].decode(), pos)
    return None


def _check_statement(sql: bytes) -> None:
    """Refuse what a ClickHouse server refuses over HTTP, and server file access.

    One pass, no token list: a VALUES insert can be megabytes long.
    """
    previous: _Token | None = None
    ended = False  # a ';' was seen: only more ';' may follow
    for token in _tokens(sql):
        if token.text == b";":
            ended = previous is not None
            continue
        if ended:
            raise StoreError(62, "Multi-statements are not allowed")
        pair = (previous.text if previous is not None and previous.kind == "word" else b"", token.text)
        if pair == (b"INTO", b"OUTFILE"):
            raise StoreError(358, "INTO OUTFILE is not allowed")
        if pair == (b"FROM", b"INFILE"):
            raise StoreError(78, "Query has infile and was send directly to server")
        if pair in ((b"FILE", b"("), (b"FILECLUSTER", b"(")):  # the file() table function and File engine
            raise StoreError(497, "Reading or writing server files is not allowed in the embedded store")
        previous = token
    if previous is None:
        raise StoreError(62, "Empty query")


def _output_format(sql: bytes) -> str | None:
    """The format named by the statement's own top-level FORMAT clause, if any."""
    found = None
    tokens = _tokens(sql)
    for token in tokens:
        if token.kind == "word" and token.text == b"FORMAT" and token.depth == 0:
            name = next(tokens, None)
            if name is not None and name.kind == "word":
                found = sql[name.start : name.end].decode()
    return found


def _first_word(sql: bytes) -> bytes:
    first = next((t for t in _tokens(sql) if t.text != b"("), None)
    return first.text if first is not None else b""


def _produces_result(sql: bytes) -> bool:
    first = next((t for t in _tokens(sql) if t.text != b"("), None)
    return first is not None and first.text.decode(errors="replace") in _RESULT_KEYWORDS


# --- Request bodies: chunked or sized, optionally compressed.


class _Reader(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...

    def readline(self, size: int = ..., /) -> bytes: ...


def _read_exact(stream: _Reader, length: int) -> Iterator[bytes]:
    while length > 0:
        chunk = stream.read(min(length, _COPY_CHUNK))
        if not chunk:
            raise StoreError(33, "The request body ended early")
        length -= len(chunk)
        yield chunk


def _read_chunked(stream: _Reader) -> Iterator[bytes]:
    while True:
        line = stream.readline(1024)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise StoreError(36, "Malformed chunked request body") from None
        if size == 0:
            while stream.readline(1024).strip():  # trailers
                pass
            return
        yield from _read_exact(stream, size)
        stream.readline(1024)  # the CRLF after each chunk


class _Decompressor:
    """Streams decompression across concatenated frames (clickhouse-connect compresses each block alone)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._current = factory()
        self._in_frame = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            self._in_frame = True
            out = self._current.decompress(data)
            if out:
                yield out
            if not self._current.eof:
                return
            self._in_frame = False
            data = self._current.unused_data
            self._current = self._factory()

    def finish(self) -> None:
        if self._in_frame:
            raise ValueError("the compressed body is truncated")


def _decompressor(encoding: str) -> _Decompressor:
    if encoding == "gzip":
        return _Decompressor(lambda: zlib.decompressobj(16 + zlib.MAX_WBITS))
    if encoding == "deflate":
        return _Decompressor(zlib.decompressobj)
    if encoding == "lz4":
        import lz4.frame  # clickhouse-connect's own lz4 dependency; imported only when used

        return _Decompressor(lz4.frame.LZ4FrameDecompressor)
    if encoding == "zstd":
        try:
            from compression import zstd  # type: ignore[import-not-found]
        except ImportError:
            from backports import zstd  # type: ignore[no-redef]
        return _Decompressor(zstd.ZstdDecompressor)
    raise StoreError(89, f"HTTP compression {encoding!r} is not supported by the embedded store")


def _decompress_to(source: IO[bytes], encoding: str, target: IO[bytes]) -> None:
    try:
        decompressor = _decompressor(encoding)
    except ImportError:
        raise StoreError(89, f"HTTP compression {encoding!r} is not available in the embedded store") from None
    try:
        while chunk := source.read(_COPY_CHUNK):
            for out in decompressor.feed(chunk):
                target.write(out)
        decompressor.finish()
    except StoreError:
        raise
    except Exception as exc:  # each library raises its own error type
        raise StoreError(271, f"Cannot decompress the request body ({encoding}): {exc}") from None


def _form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The text fields of a multipart/form-data body (clickhouse-connect sends large parameters so)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        if part.get_filename():
            raise StoreError(48, "External data is not supported by the embedded store")
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode()
    return fields


# --- The engine.


def _escape_param(value: str) -> str:
    """Query parameter values are read in ClickHouse's escaped text format."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


@dataclass
class _Query:
    """One statement to run, already separated from the HTTP request."""

    sql: bytes
    default_format: str = "TabSeparated"
    params: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    database: str | None = None
    data: IO[bytes] | None = None  # insert data, read from data_offset on
    data_offset: int = 0
    data_format: str = ""


@dataclass
class _Outcome:
    body: bytes
    summary: dict[str, str]


class _Engine:
    """The chdb engine on one data path, a fresh chdb connection per request.

    chdb runs queries on different connections in parallel (it releases the GIL), so no
    lock is needed; a connection's ``SET``/``USE`` state stays on that connection, and a
    connection costs ~0.1 ms to open and close.
    """

    def __init__(self, path: Path) -> None:
        path = path.expanduser().resolve()
        if "?" in str(path):
            raise ValueError(f"store path may not contain '?': {path}")
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Held for the server's lifetime: the engine (and the path) stays open while
        # any connection is, and closing it last flushes the data.
        self._main = chdb.connect(str(path))
        version, timezone = self._main.query("SELECT version(), timezone()", "TabSeparated").bytes().decode().split()
        self.version, self.timezone = version, timezone
        self._tmp = Path(tempfile.mkdtemp(prefix="watchkeeper-store-"))
        self._cond = threading.Condition()
        self._active = 0
        self._closing = False

    @contextmanager
    def _connection(self, readonly: int) -> Iterator[Any]:
        with self._cond:
            if self._closing:
                raise StoreError(236, "The embedded store is shutting down", status=503)
            self._active += 1
        try:
            # readonly is a query-level setting: on the connection string it binds this connection only.
            conn = chdb.connect(f"{self.path}?readonly={readonly}" if readonly else str(self.path))
            try:
                yield conn
            finally:
                conn.close()
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def run(self, query: _Query, readonly: int) -> _Outcome:
        """Run one statement; insert data goes through chdb's file() from a temporary file."""
        sql, params = query.sql, dict(query.params)  # clients send parameters already escaped
        data_file: Path | None = None
        try:
            if query.data is not None:
                data_file = self._spill(query.data, query.data_offset)
                sql += _DATA_SOURCE
                params[_DATA_PATH_PARAM] = _escape_param(str(data_file))
                params[_DATA_FORMAT_PARAM] = _escape_param(query.data_format)
            with self._connection(readonly) as conn:
                if query.database:
                    self._call(conn, b"USE {db:Identifier}", {"db": _escape_param(query.database)})
                for name, value in query.settings.items():
                    self._call(conn, f"SET {name} = {{value:String}}".encode(), {"value": _escape_param(value)})
                result = self._call(conn, sql, params, query.default_format)
        finally:
            if data_file is not None:
                data_file.unlink(missing_ok=True)
        return _Outcome(result.bytes() or b"", self._summary(result))

    @staticmethod
    def _call(conn: Any, sql: bytes, params: dict[str, str], fmt: str = "TabSeparated") -> Any:
        try:
            return conn.query(sql, fmt, params=params)
        except Exception as exc:  # chdb raises ChdbError/RuntimeError with ClickHouse's text
            raise StoreError.from_engine(exc) from None

    def _spill(self, data: IO[bytes], offset: int) -> Path:
        fd, name = tempfile.mkstemp(dir=self._tmp, suffix=".data")
        with os.fdopen(fd, "wb") as out:
            data.seek(offset)
            shutil.copyfileobj(data, out, _COPY_CHUNK)
        return Path(name)

    @staticmethod
    def _summary(result: Any) -> dict[str, str]:
        stats: dict[str, str] = {}
        for key, getter in _SUMMARY_FIELDS:
            with suppress(Exception):
                stats[key] = str(int(getattr(result, getter)()))
        with suppress(Exception):
            stats["elapsed_ns"] = str(int(result.elapsed() * 1e9))
        return stats

    def close(self, timeout: float = 30.0) -> None:
        """Wait for running queries (up to ``timeout`` s), then close the engine so data is flushed."""
        with self._cond:
            self._closing = True
            self._cond.wait_for(lambda: self._active == 0, timeout=timeout)
        self._main.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


# --- HTTP.


class _Handler(BaseHTTPRequestHandler):
    """Answers one HTTP connection (keep-alive) of the store."""

    protocol_version = "HTTP/1.1"  # keep-alive, so clickhouse-connect's pooled connections are reused
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stalls
    timeout = 300  # seconds an idle keep-alive connection is kept
    server: StoreServer
    _status = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (signature of the base class)
        """Silenced: request lines can carry credentials in the URL; _dispatch logs without them."""

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        args = dict(parse_qsl(url.query, keep_blank_values=True))
        query_id = args.get("query_id") or str(uuid.uuid4())
        started = time.perf_counter()
        self._status = 0
        try:
            with self._read_body() as body:
                if url.path in ("/ping", "/replicas_status") or (
                    url.path == "/" and method == "GET" and "query" not in args and _size(body) == 0
                ):
                    self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                    return
                if url.path != "/":
                    self._send(404, f"There is no handle {url.path}\n".encode(), {"Content-Type": "text/plain"})
                    return
                self._execute(method, args, body, query_id)
        except StoreError as exc:
            self._send_error(exc, query_id)
        except Exception:
            logger.exception("store request failed")
            self._send_error(StoreError(1002, "Internal error in the embedded store"), query_id)
        finally:
            elapsed = (time.perf_counter() - started) * 1e3
            logger.debug("%s %s query_id=%s -> %d in %.1f ms", method, url.path, query_id, self._status, elapsed)

    def _read_body(self) -> IO[bytes]:
        """The request body, de-chunked and decompressed, as a file positioned at 0."""
        raw = tempfile.SpooledTemporaryFile(max_size=_SPOOL_LIMIT)  # noqa: SIM115 (returned to the caller)
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = _read_chunked(self.rfile)
            else:
                chunks = _read_exact(self.rfile, int(self.headers.get("Content-Length") or 0))
            for chunk in chunks:
                raw.write(chunk)
        except (StoreError, ValueError, OSError):
            # The rest of the body is still on the socket: this connection cannot be reused.
            self.close_connection = True
            raw.close()
            raise
        raw.seek(0)
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        if encoding in ("", "identity"):
            return raw
        plain = tempfile.SpooledTemporaryFile(max_size=_SPOOL_LIMIT)  # noqa: SIM115
        try:
            with raw:
                _decompress_to(raw, encoding, plain)
        except BaseException:
            plain.close()
            raise
        plain.seek(0)
        return plain

    def _execute(self, method: str, args: dict[str, str], body: IO[bytes], query_id: str) -> None:
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            args.update(_form_fields(content_type, body.read()))
            body = io.BytesIO()
        user = self._authenticate(args)
        if args.get("decompress", "0") not in ("", "0", "false"):
            raise StoreError(48, "ClickHouse-compressed request bodies (decompress=1) are not supported")
        query = self._parse(args, body)
        if user.readonly and _first_word(query.sql) == b"KILL":
            # chdb runs every request as one user, so KILL would reach other users' queries: a server
            # refuses a read-only user's KILL of another user's query, here every KILL is refused.
            raise StoreError(164, "Cannot execute query in readonly mode: KILL is refused to read-only users")
        # As in ClickHouse, a GET request implies readonly=2 (reads, and setting changes).
        readonly = 1 if user.readonly else 2 if method == "GET" else 0
        try:
            outcome = self.server.engine.run(query, readonly)
        finally:
            if query.data is not None and query.data is not body:
                query.data.close()
        headers = self._common_headers(query_id)
        headers["X-ClickHouse-Timezone"] = query.settings.get("session_timezone") or self.server.engine.timezone
        headers["X-ClickHouse-Summary"] = json.dumps(outcome.summary)
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        if query.data is None and (outcome.body or _produces_result(query.sql)):
            fmt = _output_format(query.sql) or query.default_format
            headers["X-ClickHouse-Format"] = fmt
            headers["Content-Type"] = _content_type(fmt)
        self._send(200, outcome.body, headers)

    def _authenticate(self, args: dict[str, str]) -> StoreUser:
        """Credentials from Basic auth, X-ClickHouse-User/Key headers or user/password URL parameters."""
        authorization = self.headers.get("Authorization", "")
        if authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise StoreError(516, "Authentication failed: malformed Authorization header") from None
            name, _, password = decoded.partition(":")
        elif self.headers.get("X-ClickHouse-User"):
            name, password = self.headers["X-ClickHouse-User"], self.headers.get("X-ClickHouse-Key", "")
        else:
            name, password = args.get("user") or "default", args.get("password", "")
        user = self.server.users.get(name)
        # Compare even for unknown users so that timing does not reveal which names exist.
        expected = user.password if user is not None else "\0unknown user"
        if not hmac.compare_digest(password.encode(), expected.encode()) or user is None:
            raise StoreError(
                516,
                f"{name}: Authentication failed: password is incorrect, or there is no user with such name",
            )
        return user

    def _parse(self, args: dict[str, str], body: IO[bytes]) -> _Query:
        """Separate statement, insert data, parameters and settings, as ClickHouse's HTTP handler does."""
        settings = {k: v for k, v in args.items() if k not in _HTTP_ONLY_PARAMS and not k.startswith("param_")}
        for name in settings:
            if not _IDENTIFIER.match(name):
                raise StoreError(115, f"Unknown setting '{name}'")
        if "readonly" in settings:  # applied last: readonly=1 forbids changing the others
            settings["readonly"] = settings.pop("readonly")
        query = _Query(
            sql=b"",
            default_format=args.get("default_format") or self.headers.get("X-ClickHouse-Format") or "TabSeparated",
            params={k[len("param_") :]: v for k, v in args.items() if k.startswith("param_")},
            settings=settings,
            database=args.get("database") or self.headers.get("X-ClickHouse-Database") or None,
        )
        # The query parameter and the body together form the statement (and its data).
        text = args.get("query", "").encode()
        body_size = _size(body)
        prefix = text + b"\n" if text and body_size else text
        head = prefix + body.read(_HEAD_LIMIT)
        insert = _split_insert(head)
        if insert is None:
            query.sql = head + body.read()
            _check_statement(query.sql)
            return query
        _check_statement(insert.statement)
        query.sql, query.data_format = insert.statement, insert.data_format
        if insert.data_offset >= len(prefix):
            query.data, query.data_offset = body, insert.data_offset - len(prefix)
        else:  # data starts inside the query parameter (inline data)
            inline = tempfile.SpooledTemporaryFile(max_size=_SPOOL_LIMIT)  # noqa: SIM115 (owned by the query)
            inline.write(prefix[insert.data_offset :])
            body.seek(0)
            shutil.copyfileobj(body, inline, _COPY_CHUNK)
            query.data, query.data_offset = inline, 0
        return query

    def _common_headers(self, query_id: str) -> dict[str, str]:
        return {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Server-Display-Name": self.server.display_name,
        }

    def _send_error(self, exc: StoreError, query_id: str) -> None:
        headers = self._common_headers(query_id)
        headers["X-ClickHouse-Exception-Code"] = str(exc.code)
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        self._send(exc.status, exc.body.encode() + b"\n", headers)

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self._status = status
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client went away (a timeout, a killed worker): nothing left to answer.
            self.close_connection = True
            logger.debug("client %s disconnected before the answer was sent", self.address_string())


def _size(stream: IO[bytes]) -> int:
    position = stream.tell()
    size = stream.seek(0, os.SEEK_END)
    stream.seek(position)
    return size


def _content_type(fmt: str) -> str:
    if fmt in _CONTENT_TYPES:
        return _CONTENT_TYPES[fmt]
    if fmt.startswith(_BINARY_FORMATS):
        return "application/octet-stream"
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    return "text/plain; charset=UTF-8"


class StoreServer(ThreadingHTTPServer):
    """The store's HTTP server; owns the chdb engine. Use :func:`serve` to run it in the foreground."""

    daemon_threads = True  # idle keep-alive connections must not hold up a shutdown

    def __init__(self, path: Path, host: str, port: int, users: Mapping[str, StoreUser]) -> None:
        if not users:
            raise ValueError("the store needs at least one user")
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)  # bind first: a busy port must not touch the data
        self.users = dict(users)
        self.display_name = socket.gethostname()
        try:
            self.engine = _Engine(path)
        except Exception as exc:
            self.server_close()
            raise RuntimeError(
                f"cannot open the store data path {path} ({exc}); is another store or worker using it?"
            ) from exc

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def close(self, timeout: float = 30.0) -> None:
        """Stop listening, let running queries finish, then close the engine (flushing its data)."""
        self.server_close()
        self.engine.close(timeout)


def create_server(
    path: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    users: Mapping[str, StoreUser] | None = None,
) -> StoreServer:
    """Open the data path and bind the port (``port=0`` picks a free one); serve with ``serve_forever()``."""
    return StoreServer(Path(path), host, port, users_from_env() if users is None else users)


def serve(
    path: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    users: dict[str, StoreUser] | None = None,
) -> None:
    """Serve the store in the foreground until SIGTERM or SIGINT; then close the engine so data is flushed.

    ``users=None`` takes them from the environment (:func:`users_from_env`).
    """
    server = create_server(path, host, port, users=users)

    def stop(signum: int, frame: Any) -> None:
        # shutdown() waits for serve_forever() to return, which runs in this very thread.
        threading.Thread(target=server.shutdown, name="store-shutdown", daemon=True).start()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    roles = ", ".join(f"{name} ({'read-only' if u.readonly else 'full access'})" for name, u in server.users.items())
    logger.info(
        "watchkeeper store: ClickHouse %s (chdb) on %s, serving http://%s:%d, users: %s",
        server.engine.version, server.engine.path, f"[{host}]" if ":" in host else host, server.port, roles,
    )  # fmt: skip
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()
        logger.info("watchkeeper store stopped; data flushed to %s", server.engine.path)


def ping(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, timeout: float = 0.5) -> bool:
    """True if a store (or ClickHouse server) answers ``/ping`` at host:port."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/ping")
        response = conn.getresponse()
        return response.status == 200 and response.read().startswith(b"Ok.")
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m watchkeeper.sinks.embedded.server``: serve a data path in the foreground."""
    parser = argparse.ArgumentParser(
        prog="python -m watchkeeper.sinks.embedded.server",
        description="Serve a chdb data path through ClickHouse's HTTP interface. Credentials come from "
        "WATCHKEEPER_STORE_USER/_PASSWORD (full access) and WATCHKEEPER_STORE_READONLY_USER/_PASSWORD.",
    )
    parser.add_argument(
        "--path", type=Path, default=Path(os.environ.get("WATCHKEEPER_STORE_PATH", "./data/clickhouse"))
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s, loopback only)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("WATCHKEEPER_STORE_PORT", DEFAULT_PORT)))
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        users = users_from_env()
    except ValueError as exc:
        parser.error(str(exc))
    try:
        serve(args.path, args.host, args.port, users=users)
    except (OSError, RuntimeError) as exc:
        logger.error("watchkeeper store could not start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
