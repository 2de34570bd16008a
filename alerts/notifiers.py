"""Notifiers: turn alerts into the payloads of each receiving API, and send them.

Payload building (:meth:`Notifier.messages`) is pure; sending is one HTTP call
per message that raises :class:`DeliveryError` (retriable or not) on failure
(the interface and the request: ``alerts/transport.py``). Retries, queues and
dead letters are the dispatcher's (``alerts/dispatch.py``). Which receivers
exist is a :class:`DeliveryConfig` (:func:`notifiers_from_config`).

- :class:`WebhookNotifier` — generic JSON: ``{"version": "1", "status", "model", "alerts": [...]}``
  per model (``WATCHKEEPER_WEBHOOK_URL`` gets every alert).
- :class:`AlertmanagerNotifier` — ``POST /api/v2/alerts``: a list of
  ``{labels, annotations, startsAt, endsAt, generatorURL}``; firing alerts are
  re-sent periodically, as Alertmanager expects of its clients.
- :class:`SlackNotifier` — incoming webhook: ``{"text": fallback, "blocks": [...]}`` per model.
- :class:`PagerDutyNotifier` — Events API v2: ``trigger``/``resolve`` with ``dedup_key = alert_id``.
- :class:`RetrainWebhook` — once per firing retrain alert, with the evidence.
- :class:`GrafanaAnnotator` — an annotation per state change, through grafana-client (best effort).

Where the runbook link is not an address one can open (the default base,
``docs/runbooks.md``, is a path in the repository), payloads carry the runbook's
first steps instead (``alerts/links.py``): ``runbook_steps`` in the webhook and
retrain JSON, a "First steps" block in Slack, ``custom_details.first_steps`` in
PagerDuty, a ``runbook_steps`` annotation in Alertmanager.

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from watchkeeper.alerts.links import first_steps, runbook_link
from watchkeeper.alerts.model import Alert, evidence_json
from watchkeeper.alerts.transport import (
    DeliveryError,
    HttpNotifier,
    Message,
    Notifier,
    check,
    group_by_model,
    idempotency_key,
    post_json,
    secret_value,
)
from watchkeeper.detectors.timeutil import iso

# The interface and the request's failure are re-exported: callers take them with the receivers.
__all__ = [
    "PAGERDUTY_EVENTS_URL", "AlertmanagerNotifier", "DeliveryConfig", "DeliveryError", "GrafanaAnnotator",
    "Message", "Notifier", "PagerDutyNotifier", "RetrainWebhook", "SlackNotifier", "WebhookNotifier",
    "notifiers_from_config",
]  # fmt: skip

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


class WebhookNotifier(HttpNotifier):
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
        for model, group in group_by_model(alerts):
            payload = {
                "version": "1",
                "source": "watchkeeper",
                "receiver": self.name,
                "model": model,
                "status": "firing" if any(a.firing for a in group) else "resolved",
                "alerts": [self.alert_json(a) for a in group],
            }
            out.append(Message(payload, tuple(group), {"Idempotency-Key": idempotency_key(group)}))
        return out

    def alert_json(self, a: Alert) -> dict[str, Any]:
        """The alert as published on the ``alerts`` topic, plus ``dashboard_url`` (null without Grafana) and
        ``runbook_steps`` (the runbook's first steps when ``runbook_url`` is not an http(s) address, else [])."""
        return {**a.to_json(), "dashboard_url": self.dashboard_url(a), "runbook_steps": list(first_steps(a))}


class RetrainWebhook(HttpNotifier):
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
                    "evidence_ts": iso(a.evidence_ts or a.ts),
                    "severity": a.severity,
                    "summary": a.summary,
                    "owner": a.owner,
                    "runbook_url": a.runbook_url,
                    "runbook_steps": list(first_steps(a)),
                    "dashboard_url": self.dashboard_url(a),
                    "evidence": a.evidence,
                },
                (a,),
                {"Idempotency-Key": idempotency_key([a])},
            )
            for a in alerts
        ]


class SlackNotifier(HttpNotifier):
    """Slack incoming webhook: one message per model and batch (Block Kit, with a text fallback)."""

    ICONS = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}
    MAX_ALERTS = 10  # three blocks each at most, under Slack's 50 blocks

    def __init__(self, url: SecretStr | str, name: str = "slack") -> None:
        super().__init__(url, name)

    @staticmethod
    def escape(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def messages(self, alerts: Sequence[Alert]) -> list[Message]:
        out = []
        for model, group in group_by_model(alerts):
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
            steps = first_steps(a)
            if steps and a.firing:  # no link one can open: the runbook's first steps, here
                lines = [f"*First steps* (runbook `{self.escape(a.runbook_url or a.kind)}`)"]
                lines += [f"{i}. {self.escape(step)}" for i, step in enumerate(steps, 1)]
                blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}})
            dashboard = self.dashboard_url(a)
            parts = [f"owner *{self.escape(a.owner)}*"]
            parts += [f"<{url}|{label}>" for url, label in ((runbook_link(a), "runbook"), (dashboard, "dashboard"))
                      if url]  # fmt: skip
            parts += [f"`{a.alert_id}`", iso(a.ts)]
            if a.evidence_ts is not None and a.evidence_ts != a.ts:
                parts.append(f"evidence {iso(a.evidence_ts)}")
            context = " · ".join(parts)
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context[:3000]}]})
        text = " ".join(f"[{a.state}] {a.summary}" for a in alerts)[:3000]
        return {"text": self.escape(text), "blocks": blocks}


class PagerDutyNotifier(Notifier):
    """PagerDuty Events API v2: trigger on firing, resolve on resolution, ``dedup_key = alert_id``."""

    default_min_severity = "critical"

    def __init__(self, routing_key: SecretStr | str, *, url: str = PAGERDUTY_EVENTS_URL, name: str = "pagerduty",
                 source: str = "watchkeeper") -> None:  # fmt: skip
        self._key = SecretStr(secret_value(routing_key))
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
                "evidence_ts": iso(alert.evidence_ts or alert.ts),
                "evidence": alert.evidence,
            },
        }
        steps = first_steps(alert)
        if steps:  # the runbook has no address a pager can open: its first steps, in the incident
            body["payload"]["custom_details"].update(first_steps=list(steps), runbook=alert.runbook_url)
        body["client"] = "watchkeeper"
        dashboard = self.dashboard_url(alert)
        links = [{"href": url, "text": text} for url, text in ((dashboard, "Model dashboard"),
                                                             (runbook_link(alert), "Runbook")) if url]  # fmt: skip
        if links:
            body["client_url"] = links[0]["href"]
            body["links"] = links
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
        runbook = runbook_link(a)
        if runbook:
            annotations["runbook_url"] = runbook
        else:
            steps = first_steps(a)
            if steps:
                annotations["runbook_steps"] = "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))
        dashboard = self.dashboard_url(a)
        if dashboard:
            annotations["dashboard_url"] = dashboard
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
        # The link back to what generated the alert: the model dashboard at the alert's range.
        gen = self.generator_url.format(model=quote(a.model), kind=a.kind, alert_id=a.alert_id) \
            if self.generator_url else (dashboard or runbook)  # fmt: skip
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
        self._token = SecretStr(secret_value(token)) if token else None
        self._user = user
        self._password = SecretStr(secret_value(password)) if password else None
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
            try:
                from grafana_client import GrafanaApi
            except ModuleNotFoundError:  # an optional extra: not retried, the reason says what to install
                raise DeliveryError(
                    self.name, "Grafana annotations need `pip install 'watchkeeper[grafana]'`", retriable=False
                ) from None

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
        except DeliveryError:
            raise
        except Exception as exc:
            status = getattr(exc, "status_code", None)
            reason = f"HTTP {status}" if status else type(exc).__name__
            raise DeliveryError(self.name, reason, retriable=True) from None


@dataclass(frozen=True)
class DeliveryConfig:
    """Where alerts go: the receivers configured by URL or key, named receivers and routes.

    URLs that embed tokens and keys are secrets (``SecretStr``): never in a ``repr`` or a log line.
    ``receivers`` and ``routes`` are the dispatcher's (``alerts/dispatch.py``), as configured.
    """

    webhook_url: SecretStr | str | None = field(default=None, repr=False)
    retrain_webhook_url: SecretStr | str | None = field(default=None, repr=False)
    slack_webhook_url: SecretStr | str | None = field(default=None, repr=False)
    pagerduty_routing_key: SecretStr | str | None = field(default=None, repr=False)
    pagerduty_events_url: str = PAGERDUTY_EVENTS_URL
    alertmanager_url: str | None = None
    grafana_url: str | None = None
    grafana_token: SecretStr | str | None = field(default=None, repr=False)
    grafana_user: str | None = None
    grafana_password: SecretStr | str | None = field(default=None, repr=False)
    #: Grafana as people open it, for the deep links in payloads (default: ``grafana_url``).
    grafana_link_url: str | None = None
    receivers: Mapping[str, Any] = field(default_factory=dict)
    routes: Sequence[Any] = ()

    @property
    def links_to(self) -> str | None:
        """The Grafana address deep links use."""
        return self.grafana_link_url or self.grafana_url


def notifiers_from_config(config: DeliveryConfig) -> list[Notifier]:
    """The receivers configured by URL or key (URLs and keys are secrets).

    >>> [n.name for n in notifiers_from_config(DeliveryConfig(slack_webhook_url="https://hooks.example/x"))]
    ['slack']
    """
    c = config
    out: list[Notifier] = []
    if c.webhook_url:
        out.append(WebhookNotifier(c.webhook_url))
    if c.retrain_webhook_url:
        out.append(RetrainWebhook(c.retrain_webhook_url))
    if c.slack_webhook_url:
        out.append(SlackNotifier(c.slack_webhook_url))
    if c.pagerduty_routing_key:
        out.append(PagerDutyNotifier(c.pagerduty_routing_key, url=c.pagerduty_events_url or PAGERDUTY_EVENTS_URL))
    if c.alertmanager_url:
        out.append(AlertmanagerNotifier(c.alertmanager_url))
    if c.grafana_url:
        out.append(GrafanaAnnotator(c.grafana_url, token=c.grafana_token, user=c.grafana_user,
                                    password=c.grafana_password))  # fmt: skip
    for notifier in out:
        notifier.grafana_url = c.links_to
    return out
