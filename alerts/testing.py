"""A real HTTP receiver on loopback, for tests and for trying notifiers by hand.

``HttpReceiver`` runs ``http.server`` in a thread, records every request
(method, path, headers, body, parsed JSON) and answers with a scripted status
(a list consumed in order, then ``default_status``), after an optional delay.

>>> import json, urllib.request
>>> with HttpReceiver(statuses=[503]) as rx:
...     req = urllib.request.Request(rx.url("/hook"), data=b'{"a": 1}', method="POST")
...     try:
...         urllib.request.urlopen(req, timeout=5)
...     except urllib.error.HTTPError as exc:
...         print(exc.code)
...     print(urllib.request.urlopen(req, timeout=5).status, [r.json for r in rx.requests])
503
200 [{'a': 1}, {'a': 1}]
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")


class HttpReceiver:
    """A loopback HTTP server that records requests; ``port=0`` picks a free port."""

    def __init__(
        self,
        port: int = 0,
        *,
        statuses: Sequence[int] = (),
        default_status: int = 200,
        body: bytes = b"ok",
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.port = port
        self.statuses = list(statuses)
        self.default_status = default_status
        self.body = body
        self.delay = delay
        self.response_headers = dict(headers or {})
        self.requests: list[Request] = []
        self._lock = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                n = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(n) if n else b""
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.default_status
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._lock:
                    receiver.requests.append(Request("POST", self.path, dict(self.headers.items()), data))
                    receiver._lock.notify_all()
                self.send_response(status)
                for k, v in receiver.response_headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``n`` requests arrived."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
