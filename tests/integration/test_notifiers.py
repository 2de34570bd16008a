"""Notifiers against real HTTP receivers on loopback (``http.server`` in a thread, no mocks).

Each payload is checked against the documented shape of its API:

- Alertmanager API v2 ``POST /api/v2/alerts``: a JSON array of postable alerts with
  ``labels`` (``alertname`` required; label names ``[a-zA-Z_][a-zA-Z0-9_]*``),
  ``annotations``, ``startsAt``/``endsAt`` (RFC 3339) and ``generatorURL``.
- Slack incoming webhook: ``{"text": ..., "blocks": [...]}``; a ``header`` block's
  text is ``plain_text`` of at most 150 characters; ``section`` text is ``mrkdwn``.
- PagerDuty Events API v2: ``routing_key``, ``event_action`` (trigger | resolve |
  acknowledge), ``dedup_key``; a trigger has ``payload.summary`` (<= 1024 chars),
  ``payload.source`` and ``payload.severity`` (critical | error | warning | info).
  202 accepts; 400 is final; 429 and 5xx are worth retrying.
- Grafana ``POST /api/annotations``: ``time`` (epoch ms), ``tags``, ``text``.

Delivery: an endpoint that is down and then comes up gets its alerts; a dead one
leads to dead letters; a slow or dead endpoint never blocks the caller nor the
other receivers; secrets never reach logs or errors.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from watchkeeper.alerts.dispatch import DeadLetter, Dispatcher, ReceiverConfig, Retry, Route
from watchkeeper.alerts.model import Alert, alert_id_for
from watchkeeper.alerts.notifiers import (
    AlertmanagerNotifier,
    GrafanaAnnotator,
    PagerDutyNotifier,
    RetrainWebhook,
    SlackNotifier,
    WebhookNotifier,
)
from watchkeeper.alerts.testing import HttpReceiver
from watchkeeper.settings import Settings

pytestmark = pytest.mark.integration

SECRET = "T0KEN-s3cr3t-9f8e7d"
FAST = Retry(attempts=3, initial_delay=0.05, max_delay=0.2, timeout=2.0)
T = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def alert(
    kind: str = "retrain",
    state: str = "firing",
    *,
    model: str = "fraud",
    version: str = "v3",
    severity: str = "critical",
    owner: str = "payments-ml",
    subject: str = "",
    ts: datetime = T,
    silenced: bool = False,
    evidence_ts: datetime | None = None,
) -> Alert:
    evidence: dict[str, Any] = {"subject": subject, "drop": 0.25, "reference": {"value": 0.85}}
    if state == "resolved":
        evidence["firing_since"] = "2026-03-02T08:50:00Z"
    return Alert.model_validate(dict(
        alert_id=alert_id_for(model, version, kind, subject), model=model, version=version, kind=kind,
        severity=severity, state=state, summary=f"{model} {version}: accuracy fell to 0.600 <from 0.850>.",
        evidence=evidence, owner=owner, runbook_url=f"https://runbooks.example/wk.md#{kind}", ts=ts,
        evidence_ts=evidence_ts, fired_at=datetime.now(UTC), silenced=silenced,
    ))  # fmt: skip


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rfc3339(text: str) -> datetime:
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# Payload shapes ---------------------------------------------------------------------


def test_generic_webhook_posts_every_alert_grouped_per_model() -> None:
    with HttpReceiver() as rx, Dispatcher([WebhookNotifier(rx.url("/hook"))], retry=FAST) as d:
        d.submit([alert(), alert("drift", subject="features", severity="warning"), alert(model="spam")])
        assert rx.wait_for(2)
        assert d.flush(5)
    by_model = {r.json["model"]: r for r in rx.requests}
    assert set(by_model) == {"fraud", "spam"}
    req = by_model["fraud"]
    assert req.path == "/hook" and req.headers["Content-Type"] == "application/json"
    assert req.headers.get("Idempotency-Key")
    body = req.json
    assert body["version"] == "1" and body["status"] == "firing" and len(body["alerts"]) == 2
    a = body["alerts"][0]
    assert {"alert_id", "model", "version", "kind", "severity", "state", "summary", "evidence", "owner",
            "runbook_url", "ts", "fired_at", "subject", "silenced", "evidence_ts"} <= set(a)  # fmt: skip
    rfc3339(a["ts"])
    assert a["evidence_ts"] == a["ts"]  # an alert made without one: its evidence is dated at its decision


def test_payloads_carry_the_decision_time_and_the_evidence_time() -> None:
    """``ts`` is when the alert could be decided, ``evidence_ts`` when its evidence happened (earlier)."""
    seen = T - timedelta(minutes=14)
    with HttpReceiver() as rx, Dispatcher([WebhookNotifier(rx.url("/hook")), RetrainWebhook(rx.url("/retrain"))],
                                          retry=FAST) as d:  # fmt: skip
        d.submit([alert(evidence_ts=seen)])
        assert rx.wait_for(2) and d.flush(5)
    by_path = {r.path: r.json for r in rx.requests}
    generic = by_path["/hook"]["alerts"][0]
    assert rfc3339(generic["ts"]) == T and rfc3339(generic["evidence_ts"]) == seen
    assert rfc3339(by_path["/retrain"]["ts"]) == T and rfc3339(by_path["/retrain"]["evidence_ts"]) == seen


def test_alertmanager_v2_postable_alerts() -> None:
    with HttpReceiver() as rx, Dispatcher([AlertmanagerNotifier(rx.url(), resend_seconds=None)], retry=FAST) as d:
        d.submit([alert(), alert("drift", subject="features", severity="warning")])
        d.submit([alert(state="resolved", ts=T + timedelta(minutes=15))])
        assert rx.wait_for(2) and d.flush(5)
    first, second = rx.requests
    assert first.path == "/api/v2/alerts" and first.headers["Content-Type"] == "application/json"
    assert isinstance(first.json, list) and len(first.json) == 2
    for pa in first.json + second.json:
        assert set(pa) <= {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
        assert pa["labels"]["alertname"].startswith("watchkeeper_")
        assert all(LABEL_NAME.match(k) and isinstance(v, str) and v for k, v in pa["labels"].items())
        assert all(isinstance(v, str) for v in pa["annotations"].values())
        assert pa["annotations"]["summary"] and pa["generatorURL"].startswith("https://")
        rfc3339(pa["startsAt"])
    firing, resolved = first.json[0], second.json[0]
    assert "endsAt" not in firing and firing["labels"]["alert_id"] == resolved["labels"]["alert_id"]
    assert firing["labels"] == resolved["labels"]  # the same alert to Alertmanager
    assert rfc3339(resolved["endsAt"]) >= rfc3339(resolved["startsAt"])
    assert resolved["startsAt"] == "2026-03-02T08:50:00Z"


def test_alertmanager_firing_alerts_are_resent_until_resolved() -> None:
    with HttpReceiver() as rx, Dispatcher([AlertmanagerNotifier(rx.url(), resend_seconds=0.2)], retry=FAST) as d:
        d.submit([alert()])
        assert rx.wait_for(3, timeout=5)  # the first post and two re-sends
        d.submit([alert(state="resolved", ts=T + timedelta(minutes=15))])
        assert d.flush(5)
        time.sleep(0.3)
        n = len(rx.requests)
        time.sleep(0.5)
        assert len(rx.requests) == n  # nothing firing is left to re-send
        assert d.stats["resent"] >= 2
    assert "endsAt" in rx.requests[-1].json[0]


def test_a_restarted_dispatcher_resumes_resending_what_is_firing() -> None:
    with HttpReceiver() as rx, Dispatcher([AlertmanagerNotifier(rx.url(), resend_seconds=0.1)], retry=FAST) as d:
        d.resume([alert(), alert(state="resolved")])  # e.g. list_alerts(store, state="firing")
        assert rx.wait_for(1, timeout=5)
        assert [pa["labels"]["kind"] for pa in rx.requests[0].json] == ["retrain"]
        assert d.submit([alert()]) == 0  # already known: not sent again as new


def test_slack_incoming_webhook_blocks() -> None:
    with HttpReceiver(body=b"ok") as rx, Dispatcher([SlackNotifier(rx.url("/services/T0/B0/" + SECRET))],
                                                    retry=FAST) as d:  # fmt: skip
        d.submit([alert(), alert(state="resolved", kind="drift", subject="features", severity="warning")])
        assert rx.wait_for(1) and d.flush(5)
    body = rx.requests[0].json
    assert isinstance(body["text"], str) and body["text"]
    header, *rest = body["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert len(header["text"]["text"]) <= 150 and "fraud" in header["text"]["text"]
    sections = [b for b in rest if b["type"] == "section"]
    assert len(sections) == 2 and all(s["text"]["type"] == "mrkdwn" for s in sections)
    assert "&lt;from 0.850&gt;" in sections[0]["text"]["text"]  # Slack's control characters escaped
    assert all(b["type"] in ("section", "context") for b in rest) and len(body["blocks"]) <= 50


def test_pagerduty_events_v2_trigger_and_resolve() -> None:
    pd_ok = b'{"status": "success", "message": "Event processed", "dedup_key": "x"}'
    with (
        HttpReceiver(default_status=202, body=pd_ok) as rx,
        Dispatcher([PagerDutyNotifier(SECRET, url=rx.url("/v2/enqueue"))], retry=FAST) as d,
    ):
        d.submit([alert()])
        d.submit([alert(state="resolved", ts=T + timedelta(minutes=15))])
        assert rx.wait_for(2) and d.flush(5)
        assert d.stats["delivered"] == 2 and not d.dead_letters
    trigger, resolve = (r.json for r in rx.requests)
    a = alert()
    assert trigger["routing_key"] == SECRET and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == a.alert_id and len(trigger["dedup_key"]) <= 255
    p = trigger["payload"]
    assert p["summary"] and len(p["summary"]) <= 1024 and p["source"] == "watchkeeper/fraud"
    assert p["severity"] in ("critical", "error", "warning", "info")
    rfc3339(p["timestamp"])
    assert p["custom_details"]["evidence"]["drop"] == 0.25
    assert rfc3339(p["timestamp"]) == T and rfc3339(p["custom_details"]["evidence_ts"]) == T
    assert trigger["links"][0]["href"].startswith("https://")
    assert resolve == {"routing_key": SECRET, "event_action": "resolve", "dedup_key": a.alert_id}


def test_pagerduty_bad_request_is_final_and_dead_lettered() -> None:
    with (
        HttpReceiver(default_status=400, body=b'{"status": "invalid event"}') as rx,
        Dispatcher([PagerDutyNotifier(SECRET, url=rx.url("/v2/enqueue"))], retry=FAST) as d,
    ):
        d.submit([alert()])
        assert d.flush(5)
        assert len(rx.requests) == 1  # not retried
        [dl] = d.dead_letters
        assert dl.receiver == "pagerduty" and dl.error == "HTTP 400" and dl.attempts == 1


def test_grafana_annotation_through_grafana_client() -> None:
    with (
        HttpReceiver(body=b'{"id": 1, "message": "Annotation added"}') as rx,
        Dispatcher([GrafanaAnnotator(rx.url(), token=SECRET)], retry=FAST) as d,
    ):
        d.submit([alert()])
        assert rx.wait_for(1) and d.flush(5)
    req = rx.requests[0]
    assert req.path == "/api/annotations"
    assert req.headers["Authorization"] == f"Bearer {SECRET}"
    body = req.json
    assert body["time"] == int(T.timestamp() * 1000) and "watchkeeper" in body["tags"]
    assert body["text"].startswith("[firing]")


def test_retrain_webhook_only_for_firing_retrain_alerts() -> None:
    with HttpReceiver() as rx, Dispatcher([RetrainWebhook(rx.url("/retrain"))], retry=FAST) as d:
        d.submit([alert(), alert(state="resolved", ts=T + timedelta(minutes=5)), alert("drift", subject="f"),
                  alert(model="spam", silenced=True)])  # fmt: skip
        d.submit([alert()])  # the same state change again: delivered once
        assert d.flush(5)
    assert [r.json["model"] for r in rx.requests] == ["fraud"]
    assert rx.requests[0].json["evidence"]["drop"] == 0.25


# Routing -----------------------------------------------------------------------------


def test_routing_by_owner_and_severity_with_named_receivers(monkeypatch: pytest.MonkeyPatch) -> None:
    with HttpReceiver() as everything, HttpReceiver() as payments, HttpReceiver() as pager:
        monkeypatch.setenv("WATCHKEEPER_WEBHOOK_URL", everything.url("/all"))
        settings = Settings()
        receivers: dict[str, Any] = {
            "payments-chat": ReceiverConfig.model_validate({"type": "webhook", "url": payments.url("/chat")}),
            "payments-pager": {"type": "webhook", "url": pager.url("/pager")},
        }
        routes: list[Any] = [
            Route(receivers=("payments-chat",), owner="payments-ml"),
            {"receivers": ["payments-pager"], "owner": "payments-ml", "min_severity": "critical"},
        ]
        with Dispatcher.from_config(settings.delivery_config(), receivers=receivers, routes=routes, retry=FAST) as d:
            assert d.receivers == ["payments-chat", "payments-pager", "webhook"]
            d.submit([
                alert(),  # critical, payments-ml
                alert("drift", subject="features", severity="warning"),
                alert(model="spam", owner="mail-ml"),
                alert(model="quiet", silenced=True),
            ])  # fmt: skip
            assert d.flush(5)
    models = lambda rx: sorted(a["model"] + ":" + a["kind"] for r in rx.requests for a in r.json["alerts"])  # noqa: E731
    assert models(everything) == ["fraud:drift", "fraud:retrain", "quiet:retrain", "spam:retrain"]
    assert models(payments) == ["fraud:drift", "fraud:retrain"]
    assert models(pager) == ["fraud:retrain"]


# Failures ------------------------------------------------------------------------------


def test_endpoint_down_then_recovering_gets_the_alert() -> None:
    port = closed_port()
    retry = Retry(attempts=10, initial_delay=0.1, max_delay=0.3, timeout=2.0)
    with Dispatcher([WebhookNotifier(f"http://127.0.0.1:{port}/hook")], retry=retry) as d:
        d.submit([alert()])
        time.sleep(0.4)  # a few connection failures
        with HttpReceiver(port) as rx:
            assert rx.wait_for(1, timeout=5)
            assert d.flush(5)
        assert d.stats["retries"] >= 1 and d.stats["delivered"] == 1 and not d.dead_letters


def test_server_errors_are_retried_with_backoff() -> None:
    with HttpReceiver(statuses=[503, 500]) as rx, Dispatcher([WebhookNotifier(rx.url())], retry=FAST) as d:
        d.submit([alert()])
        assert rx.wait_for(3) and d.flush(5)
        assert d.stats["retries"] == 2 and d.stats["delivered"] == 1 and not d.dead_letters


def test_dead_endpoint_is_dead_lettered_and_never_blocks_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    dead_url = f"http://127.0.0.1:{closed_port()}/services/{SECRET}"
    got: list[DeadLetter] = []
    quick = Retry(attempts=3, initial_delay=0.01, max_delay=0.02, timeout=2.0)
    with HttpReceiver() as fast, HttpReceiver(delay=1.5) as slow:
        d = Dispatcher(
            [SlackNotifier(dead_url, name="dead"), WebhookNotifier(slow.url("/" + SECRET), name="slow", routed=True),
             WebhookNotifier(fast.url(), name="fast", routed=True), PagerDutyNotifier(SECRET, url=dead_url)],
            retry=quick, on_dead_letter=got.append,
        )  # fmt: skip
        t0 = time.monotonic()
        for i in range(20):
            d.submit([alert(ts=T + timedelta(minutes=5 * i))])
        assert time.monotonic() - t0 < 0.5  # the caller never waits for a receiver
        assert fast.wait_for(20, timeout=5)  # the healthy receiver is not held up by the others
        assert len(slow.requests) < 20
        deadline = time.monotonic() + 10
        while len(got) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        d.close(timeout=0.5)
    assert {dl.receiver for dl in got} >= {"dead", "pagerduty"}
    dead = [dl for dl in got if dl.receiver == "dead"]
    assert len(dead) == 20 and all(dl.attempts == 3 for dl in dead)
    assert dead[0].error == "connection failed (ConnectionRefusedError)"
    assert d.stats["dead_letters"] == len(d.dead_letters) >= 40
    # The slow receiver's unsent messages were dead-lettered at shutdown, not lost silently.
    assert any(dl.receiver == "slow" and dl.error == "shutdown" for dl in d.dead_letters)
    text = caplog.text + repr(d) + "".join(f"{dl!r}{dl.error}" for dl in d.dead_letters)
    assert SECRET not in text


def test_full_queue_dead_letters_instead_of_blocking() -> None:
    with HttpReceiver(delay=1.0) as slow:
        d = Dispatcher([WebhookNotifier(slow.url())], retry=FAST, queue_size=2)
        t0 = time.monotonic()
        for i in range(10):
            d.submit([alert(ts=T + timedelta(minutes=5 * i))])
        assert time.monotonic() - t0 < 0.5
        assert sum(dl.error == "queue full" for dl in d.dead_letters) >= 7
        d.close(timeout=0.1)


def test_dead_letters_can_be_redelivered() -> None:
    port = closed_port()
    with Dispatcher([WebhookNotifier(f"http://127.0.0.1:{port}/")], retry=FAST) as d:
        d.submit([alert()])
        assert d.flush(5)
        [dl] = list(d.dead_letters)
        with HttpReceiver(port) as rx:
            d.redeliver(dl)
            assert rx.wait_for(1) and d.flush(5)
        assert rx.requests[0].json["alerts"][0]["alert_id"] == dl.alert_ids[0]


def test_notifiers_never_show_secrets() -> None:
    items = [
        WebhookNotifier(f"https://hooks.example/{SECRET}"), SlackNotifier(f"https://hooks.slack.com/{SECRET}"),
        PagerDutyNotifier(SECRET), RetrainWebhook(f"https://ml.example/retrain?token={SECRET}"),
        GrafanaAnnotator("https://grafana.example", token=SECRET), AlertmanagerNotifier("https://am.example"),
    ]  # fmt: skip
    d = Dispatcher(items)
    try:
        text = " ".join(map(repr, items)) + repr(d) + str(d.receivers)
        assert SECRET not in text
        assert SECRET not in repr(items[2].messages([alert()])[0])
    finally:
        d.close(0.1)


def test_close_returns_promptly_with_a_thread_per_receiver() -> None:
    before = threading.active_count()
    d = Dispatcher([WebhookNotifier("http://127.0.0.1:9/", name=f"r{i}") for i in range(5)], retry=FAST)
    assert threading.active_count() >= before + 5
    t0 = time.monotonic()
    d.close(timeout=0.2)
    assert time.monotonic() - t0 < 3
    time.sleep(0.2)
    assert threading.active_count() <= before
