"""Is the store there? ``GET /ping`` on ClickHouse's HTTP interface (the embedded store answers it too).

No credentials are needed or sent: a worker's ``/ready``, ``watchkeeper status`` and
the launchers ask this before anything else. ``params`` are the store client's
connection keywords (``Settings.clickhouse_params()``): host, port, and for HTTPS
``secure``, ``verify``, ``ca_cert``, ``client_cert``, ``client_cert_key``.

>>> address({"host": "127.0.0.1", "port": 8123})
'127.0.0.1:8123'
>>> reachable({"host": "127.0.0.1", "port": 1}, timeout=0.2)
False
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Mapping
from typing import Any

STORE_PING_TIMEOUT_S = 2.0


def address(params: Mapping[str, Any]) -> str:
    """``host:port`` of the store (what messages about it name; never the password)."""
    return f"{params['host']}:{params['port']}"


def reachable(params: Mapping[str, Any], timeout: float = STORE_PING_TIMEOUT_S) -> bool:
    """True if the store (embedded or a ClickHouse server) answers ``GET /ping``."""
    conn: http.client.HTTPConnection
    if params.get("secure"):
        context = ssl.create_default_context(cafile=params.get("ca_cert"))
        if params.get("client_cert"):
            context.load_cert_chain(params["client_cert"], params.get("client_cert_key"))
        if params.get("verify") is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(params["host"], int(params["port"]), timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(params["host"], int(params["port"]), timeout=timeout)
    try:
        conn.request("GET", "/ping")
        response = conn.getresponse()
        return response.status == 200 and response.read().startswith(b"Ok.")
    except (OSError, http.client.HTTPException, ssl.SSLError):
        return False
    finally:
        conn.close()
