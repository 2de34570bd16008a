"""The store's HTTP handler: one keep-alive connection, answered as ClickHouse's HTTP interface answers.

A request is read (:mod:`~watchkeeper.sinks.embedded.request`), its user
authenticated (:mod:`~watchkeeper.sinks.embedded.users`), its statement run by
the engine (:mod:`~watchkeeper.sinks.embedded.engine`) and the result sent with
the headers clickhouse-connect reads (format, summary, timezone, query id).
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from watchkeeper.sinks.embedded.errors import StoreError
from watchkeeper.sinks.embedded.request import decode_body, form_fields, parse_query, receive_body, size_of
from watchkeeper.sinks.embedded.sql import first_word, output_format, produces_result
from watchkeeper.sinks.embedded.users import authenticate

if TYPE_CHECKING:
    from watchkeeper.sinks.embedded.server import StoreServer

# The store's one logger name, the same in every module of the store (operators filter on it).
logger = logging.getLogger("watchkeeper.sinks.embedded.server")

_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "CSVWithNames": "text/csv; charset=UTF-8; header=present",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
}
_BINARY_FORMATS = ("Native", "RowBinary", "Arrow", "ArrowStream", "Parquet", "ORC", "Avro", "MsgPack", "Npy")


class StoreHandler(BaseHTTPRequestHandler):
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
                    url.path == "/" and method == "GET" and "query" not in args and size_of(body) == 0
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
        try:
            raw = receive_body(self.rfile, self.headers)
        except (StoreError, ValueError, OSError):
            # The rest of the body is still on the socket: this connection cannot be reused.
            self.close_connection = True
            raise
        return decode_body(raw, self.headers.get("Content-Encoding", ""))

    def _execute(self, method: str, args: dict[str, str], body: IO[bytes], query_id: str) -> None:
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            args.update(form_fields(content_type, body.read()))
            body = io.BytesIO()
        user = authenticate(self.headers, args, self.server.users)
        if args.get("decompress", "0") not in ("", "0", "false"):
            raise StoreError(48, "ClickHouse-compressed request bodies (decompress=1) are not supported")
        query = parse_query(args, self.headers, body)
        if user.readonly and first_word(query.sql) == b"KILL":
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
        if query.data is None and (outcome.body or produces_result(query.sql)):
            fmt = output_format(query.sql) or query.default_format
            headers["X-ClickHouse-Format"] = fmt
            headers["Content-Type"] = _content_type(fmt)
        self._send(200, outcome.body, headers)

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


def _content_type(fmt: str) -> str:
    if fmt in _CONTENT_TYPES:
        return _CONTENT_TYPES[fmt]
    if fmt.startswith(_BINARY_FORMATS):
        return "application/octet-stream"
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    return "text/plain; charset=UTF-8"
