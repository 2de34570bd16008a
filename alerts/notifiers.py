"""Notifiers: turn alerts into the payloads of each receiving API, and send them.

Payload building (:meth:`Notifier.messages`) is pure; sending is one HTTP call
per message that raises :class:`DeliveryError` (retriable or not) on failure.
Retries, queues and dead letters are the dispatcher's (``alerts/dispatch.py``).

- :class:`WebhookNotifier` — generic JSON: ``{"version": "1", "status", "model", "alerts": [...]}``
  per model (``WATCHKEEPER_WEBHOOK_URL`` gets every alert).
- :class:`AlertmanagerNotifier` — ``POST /api/v2/alerts``: a list of
  ``{labels, annotations, startsAt, endsAt, generatorURL}``; firing alerts are
  re-sent periodically, as Alertmanager expects of its clients.
- :class:`SlackNotifier` — incoming webhook: ``{"text": fallback, "blocks": [...]}`` per model.
- :class:`PagerDutyNotifier` — Events API v2: ``trigger``/``resolve`` with ``dedup_key = alert_id``.
- :class:`RetrainWebhook` — once per firing retrain alert, with the evidence.
- :class:`GrafanaAnnotator` — an annotation per state change, through grafana-client (best effort).

Secrets (webhook URLs with tokens, routing keys, Grafana credentials) are held
by the notifiers and never appear in their ``repr``, in log lines or in
exception messages: errors name the receiver and the HTTP status or the
exception type only.

>>> from watchkeeper.alerts.model import Alert
>>> a = Alert(alert_id="drift-1", model="m", version="v1", kind="drift", severity="warning", state="firing",
...           summary="m v1: 1 feature drifted", evidence={"subject": "features"}, ts=0, fired_at=0)
>>> [msg] = PagerDutyNotifier("R0UT1NGKEY").messages([a])
>>> msg.payload["event_action"], msg.payload["dedup_key"], msg.payload["payload"]["severity"]
('trigger', 'drift-1', 'warning')
>>> PagerDutyNotifier("R0UT1NGKEY")
PagerDutyNotifier(name='pagerduty')
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
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from watchkeeper.alerts.model import Alert, evidence_json, iso

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
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


def _secret(value: SecretStr | str) -> str:
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


def _group_by_model(alerts: Sequence[Alert]) -> list[tuple[str, list[Alert]]]:
    groups: dict[str, list[Alert]] = {}
    for a in alerts:
        groups.setdefault(a.model, []).append(a)
    return sorted(groups.items())


def _idempotency_key(alerts: Sequence[Alert]) -> str:
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

    def accepts(self, alert: Alert) -> bool:
        return True

    @abstractmethod
    def messages(self, alerts: Sequence[Alert]) -> list[Message]:
        """The requests that deliver ``alerts`` (pure)."""

    @abstractmethod
    def send(self, message: Message, timeout: float) -> None:
        """Deliver one message; raise :class:`DeliveryError` on failure."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class _HttpNotifier(Notifier):
    def __init__(self, url: SecretStr | str, name: str) -> None:
        self._url = SecretStr(_secret(url))
        self.name = name

    def send(self, message: Message, timeout: float) -> None:
        resp = post_json(self.name, self._url.get_secret_value(), message.payload, timeout=timeout,
                         headers=message.headers)  # fmt: skip
        check(self.name, resp)


class WebhookNotifier(_HttpNotifier):
    """Generic JSON webhook: one POST per model and batch, alerts as published.

    The global one (``routed=False``) gets every alert, silenced ones included (flagged);
    a named, routed one is a team's integration and follows routes and silences.
    """

    def __init__(self, url: SecretStr | str, name: str = "webhook", *, routed: bool = False) -> None:
        super().__init__(url, name)
        self.routed = routed
        self.includes_silenced = not routed

    def messages(self, alerts: Sequence[Alert]) -> list[Message]:
        out = []
        for model, group in _group_by_model(alerts):
            payload = {
                "version": "1",
                "source": "watchkeeper",
                "receiver": self.name,
                "model": model,
                "status": "firing" if any(a.firing for a in group) else "resolved",
                "alerts": [a.to_json() for a in group],
            }
            out.append(Message(payload, tuple(group), {"Idempotency-Key": _idempotency_key(group)}))
        return out


class RetrainWebhook(_HttpNotifier):
    """Calls the retraining pipeline once per firing retrain alert, with the evidence."""

    routed = False

    def __init__(self, url: SecretStr | str, name: str = "retrain") -> None:
        super().__init__(url, name)

    def accepts(self, alert: Alert) -> bool:
        return alert.kind == "retrain" and alert.state == "firing"

    def messages(self, alerts: Sequence[Alert]) -> list[Message]:
        return [
            Message(
                {
                    "event": "retrain",
                    "alert_id": a.alert_id,
                    "model": a.model,
                    "version": a.version,
                    "ts": iso(a.ts),
                    "severity": a.severity,
                    "summary": a.summary,
                    "owner": a.owner,
                    "runbook_url": a.runbook_url,
                    "evidence": a.evidence,
                },
                (a,),
                {"Idempotency-Key": _idempotency_key([a])},
            )
            for a in alerts
        ]


class SlackNotifier(_HttpNotifier):
    """Slack incoming webhook: one message per model and batch (Block Kit, with a text fallback)."""

    ICONS = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}
    MAX_ALERTS = 10  # two blocks each, well under Slack's 50 blocks

    def __init__(self, url: SecretStr | str, name: str = "slack") -> None:
        super().__init__(url, name)

    @staticmethod
    def escape(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def messages(self, alerts: Sequence[Alert]) -> list[Message]:
        out = []
        for model, group in _group_by_model(alerts):
            for i in range(0, len(group), self.MAX_ALERTS):
                chunk = group[i : i + self.MAX_ALERTS]
                out.append(Message(self.payload(model, chunk), tuple(chunk)))
        return out

    def payload(self, model: str, alerts: Sequence[Alert]) -> dict[str, Any]:
        firing = sum(a.firing for a in alerts)
        parts = [f"{firing} firing"] if firing else []
        if len(alerts) - firing:
            parts.append(f"{len(alerts) - firing} resolved")
        header = f"watchkeeper: {model}: {', '.join(parts)}"[:150]
        blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": header}}]
        for a in alerts:
            icon = self.ICONS.get(a.severity, "") if a.firing else ":white_check_mark:"
            title = f"{icon} *{a.state.upper()}* {a.kind} ({a.severity})"
            body = f"{title}\n{self.escape(a.summary)}"[:3000]
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body}})
            links = f"<{a.runbook_url}|runbook>" if a.runbook_url else ""
            context = f"owner *{self.escape(a.owner)}* · {links} · `{a.alert_id}` · {iso(a.ts)}"
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context[:3000]}]})
        text = " ".join(f"[{a.state}] {a.summary}" for a in alerts)[:3000]
        return {"text": self.escape(text), "blocks": blocks}


class PagerDutyNotifier(Notifier):
    """PagerDuty Events API v2: trigger on firing, resolve on resolution, ``dedup_key = alert_id``."""

    default_min_severity = "critical"

    def __init__(self, routing_key: SecretStr | str, *, url: str = PAGERDUTY_EVENTS_URL, name: str = "pagerduty",
                 source: str = "watchkeeper") -> None:  # fmt: skip
        self._key = SecretStr(_secret(routing_key))
        self._url = url
        self.name = name
        self.source = source

    def event(self, alert: Alert, action: str | None = None) -> dict[str, Any]:
        action = action or ("trigger" if alert.firing else "resolve")
        body: dict[str, Any] = {
            "routing_key": self._key.get_secret_value(),
            "event_action": action,
            "dedup_key": alert.alert_id,
        }
        if action != "trigger":
            return body
        body["payload"] = {
            "summary": alert.summary[:1024],
            "source": f"{self.source}/{alert.model}",
            "severity": alert.severity,  # info | warning | critical are PagerDuty severities
            "timestamp": iso(alert.ts),
            "component": alert.model,
            "group": alert.owner,
            "class": alert.kind,
            "custom_details": {
                "version": alert.version,
                "subject": alert.subject,
                "alert_id": alert.alert_id,
                "evidence": alert.evidence,
            },
        }
        body["client"] = "watchkeeper"
        if alert.runbook_url:
            body["client_url"] = alert.runbook_url
            body["links"] = [{"href": alert.runbook_url, "text": "Runbook"}]
        return body

    def messages(self, alerts: Sequence[Alert]) -> list[Message]:
        return [Message(self.event(a), (a,)) for a in alerts]

    def acknowledge(self, alert: Alert, timeout: float = 5.0) -> None:
        """Send an ``acknowledge`` event for ``alert`` (used by ``watchkeeper ack``)."""
        self.send(Message(self.event(alert, "acknowledge"), (alert,)), timeout)

    def send(self, message: Message, timeout: float) -> None:
        check(self.name, post_json(self.name, self._url, message.payload, timeout=timeout))


class AlertmanagerNotifier(Notifier):
    """Alertmanager API v2: ``POST {base}/api/v2/alerts`` with a list of postable alerts.

    Labels identify an alert (``alertname`` = ``watchkeeper_<kind>``, model, version,
    kind, severity, owner, alert_id); annotations carry the summary, the evidence
    and the runbook. A resolution is the same labels with ``endsAt`` set. Firing
    alerts are re-sent every ``resend_seconds`` so that Alertmanager does not
    expire them (it resolves an alert it has not heard of for ``resolve_timeout``).
    """

    def __init__(self, base_url: str, *, name: str = "alertmanager", generator_url: str | None = None,
                 resend_seconds: float | None = 60.0) -> None:  # fmt: skip
        self._url = SecretStr(base_url.rstrip("/") + "/api/v2/alerts")
        self.name = name
        self.generator_url = generator_url
        self.resend_seconds = resend_seconds

    def postable(self, a: Alert, now: datetime | None = None) -> dict[str, Any]:
        labels = {
            "alertname": f"watchkeeper_{a.kind}",
            "model": a.model,
            "version": a.version,
            "kind": a.kind,
            "subject": a.subject,
            "severity": a.severity,
            "owner": a.owner,
            "alert_id": a.alert_id,
        }
        annotations = {"summary": a.summary, "description": evidence_json(a.evidence)[:8000]}
        if a.runbook_url:
            annotations["runbook_url"] = a.runbook_url
        since = a.evidence.get("firing_since") if not a.firing else None
        starts = datetime.fromisoformat(since.replace("Z", "+00:00")) if isinstance(since, str) else a.ts
        out: dict[str, Any] = {
            "labels": {k: v for k, v in labels.items() if v},
            "annotations": annotations,
            "startsAt": iso(starts),
        }
        if not a.firing:
            # Resolved now at the latest (an event time ahead of the clock would keep it firing),
            # never before it started (Alertmanager refuses that).
            end = min(a.ts, now or datetime.now(UTC))
            out["endsAt"] = iso(max(starts, end))
        gen = self.generator_url.format(model=quote(a.model), kind=a.kind, alert_id=a.alert_id) \
            if self.generator_url else a.runbook_url  # fmt: skip
        if gen:
            out["generatorURL"] = gen
        return out

    def messages(self, alerts: Sequence[Alert]) -> list[Message]:
        return [Message([self.postable(a) for a in alerts], tuple(alerts))] if alerts else []

    def send(self, message: Message, timeout: float) -> None:
        check(self.name, post_json(self.name, self._url.get_secret_value(), message.payload, timeout=timeout))


class GrafanaAnnotator(Notifier):
    """A Grafana annotation per state change (``POST /api/annotations`` through grafana-client); best effort."""

    routed = False
    includes_silenced = True
    best_effort = True

    def __init__(self, url: str, *, token: SecretStr | str | None = None, user: str | None = None,
                 password: SecretStr | str | None = None, dashboard_uid: str | None = None,
                 name: str = "grafana") -> None:  # fmt: skip
        self._url = SecretStr(url)
        self._token = SecretStr(_secret(token)) if token else None
        self._user = user
        self._password = SecretStr(_secret(password)) if password else None
        self.dashboard_uid = dashboard_uid
        self.name = name
        self._api: Any = None
        self._api_timeout: float | None = None

    def annotation(self, a: Alert) -> dict[str, Any]:
        tags = ["watchkeeper", a.kind, a.state, a.severity, f"model:{a.model}"]
        if a.version:
            tags.append(f"version:{a.version}")
        return {"time": int(a.ts.timestamp() * 1000), "tags": tags, "text": f"[{a.state}] {a.summary}"}

    def messages(self, alerts: Sequence[Alert]) -> list[Message]:
        return [Message(self.annotation(a), (a,)) for a in alerts]

    def _client(self, timeout: float) -> Any:
        if self._api is None or self._api_timeout != timeout:
            from grafana_client import GrafanaApi

            credential: Any = None
            if self._token is not None:
                credential = self._token.get_secret_value()
            elif self._user and self._password is not None:
                credential = (self._user, self._password.get_secret_value())
            self._api = GrafanaApi.from_url(self._url.get_secret_value(), credential=credential, timeout=timeout)
            self._api_timeout = timeout
        return self._api

    def send(self, message: Message, timeout: float) -> None:
        p = message.payload
        try:
            self._client(timeout).annotations.add_annotation(
                time_from=p["time"], tags=p["tags"], text=p["text"], dashboard_uid=self.dashboard_uid
            )
        except Exception as exc:
            status = getattr(exc, "status_code", None)
            reason = f"HTTP {status}" if status else type(exc).__name__
            raise DeliveryError(self.name, reason, retriable=True) from None


def notifiers_from_settings(settings: Any) -> list[Notifier]:
    """The receivers configured by the settings fields (URLs and keys are secrets)."""
    out: list[Notifier] = []
    if getattr(settings, "webhook_url", None):
        out.append(WebhookNotifier(settings.webhook_url))
    if getattr(settings, "retrain_webhook_url", None):
        out.append(RetrainWebhook(settings.retrain_webhook_url))
    if getattr(settings, "slack_webhook_url", None):
        out.append(SlackNotifier(settings.slack_webhook_url))
    if getattr(settings, "pagerduty_routing_key", None):
        url = getattr(settings, "pagerduty_events_url", None) or PAGERDUTY_EVENTS_URL
        out.append(PagerDutyNotifier(settings.pagerduty_routing_key, url=url))
    if getattr(settings, "alertmanager_url", None):
        out.append(AlertmanagerNotifier(settings.alertmanager_url))
    if getattr(settings, "grafana_url", None):
        out.append(GrafanaAnnotator(settings.grafana_url, token=getattr(settings, "grafana_token", None),
                                    user=getattr(settings, "grafana_user", None),
                                    password=getattr(settings, "grafana_password", None)))  # fmt: skip
    return out
