"""The chdb engine behind the store: one data path, a fresh chdb connection per request.

Insert data reaches the engine through chdb's ``file()`` table function, from a
temporary file the store writes (clients cannot name files themselves: see
:func:`watchkeeper.sinks.embedded.sql.check_statement`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

try:
    import chdb
except ModuleNotFoundError as exc:  # chdb comes with the optional extra [embedded]
    raise ModuleNotFoundError("the embedded store needs `pip install 'watchkeeper[embedded]'`", name="chdb") from exc

from watchkeeper.sinks.embedded.errors import StoreError
from watchkeeper.sinks.embedded.request import COPY_CHUNK, Query

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


def _escape_param(value: str) -> str:
    """Query parameter values are read in ClickHouse's escaped text format."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


@dataclass
class Outcome:
    """What a statement gave: the result in its format, and ClickHouse's summary statistics."""

    body: bytes
    summary: dict[str, str]


class Engine:
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

    def run(self, query: Query, readonly: int) -> Outcome:
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
        return Outcome(result.bytes() or b"", self._summary(result))

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
            shutil.copyfileobj(data, out, COPY_CHUNK)
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
