"""What an HTTP request asks of the store: its body, and the statement, data, parameters and settings in it.

ClickHouse's HTTP handler takes the statement from the ``query`` URL parameter
and/or the body; an insert's data follows its ``INSERT ... FORMAT X`` statement
(:func:`parse_query`). Bodies come chunked or sized, compressed or not
(:func:`receive_body`, :func:`decode_body`); large ones are spooled to disk.

>>> import io
>>> from email.message import Message
>>> query = parse_query({"query": "INSERT INTO t FORMAT CSV", "param_x": "1"}, Message(), io.BytesIO(b"1,2\\n"))
>>> query.sql, query.data_format, query.params
(b'INSERT INTO t ', 'CSV', {'x': '1'})
>>> _ = query.data.seek(query.data_offset); query.data.read()  # the data: the body, from data_offset on
b'1,2\\n'
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import IO, Any, Protocol

from watchkeeper.sinks.embedded.errors import StoreError
from watchkeeper.sinks.embedded.sql import check_statement, split_insert

# The statement that precedes insert data must start within this many bytes
# (ClickHouse's own max_query_size is 256 KiB).
HEAD_LIMIT = 1 << 20
# Request bodies up to this size stay in memory; larger ones go to a temp file.
SPOOL_LIMIT = 8 << 20
COPY_CHUNK = 1 << 20

# URL parameters that ClickHouse's HTTP handler consumes itself, or that only
# shape its HTTP transport (progress headers, response compression), which this
# adapter does not implement: never passed to the engine as settings.
HTTP_ONLY_PARAMS = frozenset(
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


@dataclass
class Query:
    """One statement to run, already separated from the HTTP request."""

    sql: bytes
    default_format: str = "TabSeparated"
    params: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    database: str | None = None
    data: IO[bytes] | None = None  # insert data, read from data_offset on
    data_offset: int = 0
    data_format: str = ""


def parse_query(args: Mapping[str, str], headers: Message, body: IO[bytes]) -> Query:
    """Separate statement, insert data, parameters and settings, as ClickHouse's HTTP handler does."""
    settings = {k: v for k, v in args.items() if k not in HTTP_ONLY_PARAMS and not k.startswith("param_")}
    for name in settings:
        if not _IDENTIFIER.match(name):
            raise StoreError(115, f"Unknown setting '{name}'")
    if "readonly" in settings:  # applied last: readonly=1 forbids changing the others
        settings["readonly"] = settings.pop("readonly")
    query = Query(
        sql=b"",
        default_format=args.get("default_format") or headers.get("X-ClickHouse-Format") or "TabSeparated",
        params={k[len("param_") :]: v for k, v in args.items() if k.startswith("param_")},
        settings=settings,
        database=args.get("database") or headers.get("X-ClickHouse-Database") or None,
    )
    # The query parameter and the body together form the statement (and its data).
    text = args.get("query", "").encode()
    body_size = size_of(body)
    prefix = text + b"\n" if text and body_size else text
    head = prefix + body.read(HEAD_LIMIT)
    insert = split_insert(head)
    if insert is None:
        query.sql = head + body.read()
        check_statement(query.sql)
        return query
    check_statement(insert.statement)
    query.sql, query.data_format = insert.statement, insert.data_format
    if insert.data_offset >= len(prefix):
        query.data, query.data_offset = body, insert.data_offset - len(prefix)
    else:  # data starts inside the query parameter (inline data)
        inline = tempfile.SpooledTemporaryFile(max_size=SPOOL_LIMIT)  # noqa: SIM115 (owned by the query)
        inline.write(prefix[insert.data_offset :])
        body.seek(0)
        shutil.copyfileobj(body, inline, COPY_CHUNK)
        query.data, query.data_offset = inline, 0
    return query


# --- Request bodies: chunked or sized, optionally compressed.


class _Reader(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...

    def readline(self, size: int = ..., /) -> bytes: ...


def _read_exact(stream: _Reader, length: int) -> Iterator[bytes]:
    while length > 0:
        chunk = stream.read(min(length, COPY_CHUNK))
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
        while chunk := source.read(COPY_CHUNK):
            for out in decompressor.feed(chunk):
                target.write(out)
        decompressor.finish()
    except StoreError:
        raise
    except Exception as exc:  # each library raises its own error type
        raise StoreError(271, f"Cannot decompress the request body ({encoding}): {exc}") from None


def form_fields(content_type: str, body: bytes) -> dict[str, str]:
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


def receive_body(stream: _Reader, headers: Message) -> IO[bytes]:
    """The request body as sent (de-chunked, still compressed), as a file positioned at 0.

    A failure leaves the rest of the body on the socket: the caller must not reuse the connection.
    """
    raw = tempfile.SpooledTemporaryFile(max_size=SPOOL_LIMIT)  # noqa: SIM115 (returned to the caller)
    try:
        if "chunked" in headers.get("Transfer-Encoding", "").lower():
            chunks = _read_chunked(stream)
        else:
            chunks = _read_exact(stream, int(headers.get("Content-Length") or 0))
        for chunk in chunks:
            raw.write(chunk)
    except (StoreError, ValueError, OSError):
        raw.close()
        raise
    raw.seek(0)
    return raw


def decode_body(raw: IO[bytes], content_encoding: str) -> IO[bytes]:
    """The body decompressed per its Content-Encoding, as a file positioned at 0 (``raw`` is closed if replaced)."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    plain = tempfile.SpooledTemporaryFile(max_size=SPOOL_LIMIT)  # noqa: SIM115
    try:
        with raw:
            _decompress_to(raw, encoding, plain)
    except BaseException:
        plain.close()
        raise
    plain.seek(0)
    return plain


def size_of(stream: IO[bytes]) -> int:
    """The size of a seekable body, leaving its position where it was."""
    position = stream.tell()
    size = stream.seek(0, os.SEEK_END)
    stream.seek(position)
    return size
