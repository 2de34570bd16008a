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

This module is the entry point (:func:`serve`, :func:`create_server`, :func:`ping`
and the ``python -m`` command line); the parts live beside it: ``users`` (who may
do what), ``request`` (reading a request and its statement), ``sql`` (the little
lexing the store needs), ``engine`` (chdb) and ``handler`` (the HTTP answers).
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import signal
import socket
import threading
from collections.abc import Mapping
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from watchkeeper.sinks.embedded.engine import Engine
from watchkeeper.sinks.embedded.handler import StoreHandler
from watchkeeper.sinks.embedded.users import StoreUser, users_from_env

# A fixed name: run as ``python -m watchkeeper.sinks.embedded.server`` the module is ``__main__``.
logger = logging.getLogger("watchkeeper.sinks.embedded.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8123


class StoreServer(ThreadingHTTPServer):
    """The store's HTTP server; owns the chdb engine. Use :func:`serve` to run it in the foreground."""

    daemon_threads = True  # idle keep-alive connections must not hold up a shutdown

    def __init__(self, path: Path, host: str, port: int, users: Mapping[str, StoreUser]) -> None:
        if not users:
            raise ValueError("the store needs at least one user")
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), StoreHandler)  # bind first: a busy port must not touch the data
        self.users = dict(users)
        self.display_name = socket.gethostname()
        try:
            self.engine = Engine(path)
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
