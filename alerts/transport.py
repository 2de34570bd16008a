"""How an alert leaves the process: the :class:`Notifier` interface, one HTTP request, its failure.

A notifier builds the requests of a batch of alerts (:meth:`Notifier.messages`,
pure) and sends one (:meth:`Notifier.send`), raising :class:`DeliveryError`
(retriable or not) on failure. The receivers themselves are in
``alerts/notifiers.py``; retries, queues and dead letters in ``alerts/dispatch.py``.
Errors never carry a URL or a key: they name the receiver and the HTTP status or
the exception type only.

>>> try:
...     check("hook", Response(503, b"", {"Retry-After": "2"}))
... except DeliveryError as exc:
...     print(exc, exc.retriable, exc.retry_after)
hook: HTTP 503 True 2.0
"""

from __future__ import annotations

import hashlib
import http.client
import json
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from watchkeeper.alerts.model import Alert

__all__ = [
    "DeliveryError", "HttpNotifier", "Message", "Notifier", "Response", "check", "group_by_model", "idempotency_key",
    "post_json", "secret_value",
]  # fmt: skip

USER_AGENT = "watchkeeper-alerts/0.1"
RETRIABLE_STATUS = frozenset({408, 425, 429})


class DeliveryError(Exception):
    """A delivery failed. The message names the receiver and the cause, never a URL or a key."""

    def __init__(self, receiver: str, reason: str, *, retriable: bool, retry_after: float | None = None) -> None:
        super().__init__(f"{receiver}: {reason}")
        self.receiver = receiver
        self.reason = reason
        self.retriable = retriable
        self.retry_after = retry_after


@dataclass(frozen=True)
class Message:
    """One request to a receiver and the alerts it carries."""

    payload: Any = field(repr=False)  # may hold a routing key
    alerts: tuple[Alert, ...]
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str]


def secret_value(value: SecretStr | str) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def post_json(
    receiver: str, url: str, payload: Any, *, timeout: float, headers: Mapping[str, str] | None = None
) -> Response:
    """POST ``payload`` as JSON; any HTTP status is returned, a connection failure raises (safely)."""
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("User-Agent", USER_AGENT)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - configured URLs only
            return Response(resp.status, resp.read(65536), dict(resp.headers.items()))
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(4096)
        except Exception:
            body = b""
        hdrs = dict(exc.headers.items()) if exc.headers else {}
        exc.close()
        return Response(exc.code, body, hdrs)
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", None)
        kind = type(reason).__name__ if isinstance(reason, BaseException) else type(exc).__name__
        raise DeliveryError(receiver, f"connection failed ({kind})", retriable=True) from None


def check(receiver: str, resp: Response) -> None:
    """Raise unless the status is 2xx; 408, 425, 429 and 5xx are worth retrying."""
    if 200 <= resp.status < 300:
        return
    retry_after = None
    raw = {k.lower(): v for k, v in resp.headers.items()}.get("retry-after")
    if raw:
        try:
            retry_after = max(0.0, float(raw))
        except ValueError:
            retry_after = None
    retriable = resp.status in RETRIABLE_STATUS or resp.status >= 500
    raise DeliveryError(receiver, f"HTTP {resp.status}", retriable=retriable, retry_after=retry_after)


def group_by_model(alerts: Sequence[Alert]) -> list[tuple[str, list[Alert]]]:
    groups: dict[str, list[Alert]] = {}
    for a in alerts:
        groups.setdefault(a.model, []).append(a)
    return sorted(groups.items())


def idempotency_key(alerts: Sequence[Alert]) -> str:
    return hashlib.sha256("|".join(a.token for a in alerts).encode()).hexdigest()[:32]


class Notifier(ABC):
    """One receiver. Subclasses build payloads (pure) and send one message (one HTTP call)."""

    name: str = "notifier"
    #: Routed by owner/severity (False: every alert it accepts, like the global webhook).
    routed: bool = True
    #: Gets silenced alerts too (records rather than pages).
    includes_silenced: bool = False
    #: Lowest severity sent when no route is configured.
    default_min_severity: str = "info"
    #: Failures are counted, never dead-lettered.
    best_effort: bool = False
    #: Re-send firing alerts this often (seconds), for receivers that expire them.
    resend_seconds: float | None = None
    #: Grafana's address for the deep link to the model dashboard (None: no link).
    grafana_url: str | None = None

    def accepts(self, alert: Alert) -> bool:
        return True

    def dashboard_url(self, alert: Alert) -> str | None:
        """The model dashboard at this alert's model, version and time range (``alerts/links.py``)."""
        from watchkeeper.alerts.links import dashboard_url

        return dashboard_url(alert, self.grafana_url)

    @abstractmethod
    def messages(self, alerts: Sequence[Alert]) -> list[Message]:
        """The requests that deliver ``alerts`` (pure)."""

    @abstractmethod
    def send(self, message: Message, timeout: float) -> None:
        """Deliver one message; raise :class:`DeliveryError` on failure."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class HttpNotifier(Notifier):
    """A receiver that POSTs JSON to one secret URL."""

    def __init__(self, url: SecretStr | str, name: str) -> None:
        self._url = SecretStr(secret_value(url))
        self.name = name

    def send(self, message: Message, timeout: float) -> None:
        resp = post_json(self.name, self._url.get_secret_value(), message.payload, timeout=timeout,
                         headers=message.headers)  # fmt: skip
        check(self.name, resp)
