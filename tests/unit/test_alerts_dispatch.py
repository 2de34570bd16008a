"""Routing, payload building and policy configuration (no network: payloads are pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from watchkeeper.alerts.dispatch import Dispatcher, ReceiverConfig, Retry, Route
from watchkeeper.alerts.model import Alert, alert_id_for
from watchkeeper.alerts.notifiers import (
    AlertmanagerNotifier,
    PagerDutyNotifier,
    RetrainWebhook,
    SlackNotifier,
    WebhookNotifier,
)
from watchkeeper.alerts.policy import AlertPolicy
from watchkeeper.settings import Settings, policy_for

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def alert(kind: str = "retrain", severity: str = "critical", owner: str = "payments-ml", model: str = "fraud",
          state: str = "firing", summary: str = "s") -> Alert:  # fmt: skip
    return Alert.model_validate(dict(
        alert_id=alert_id_for(model, "v3", kind, ""), model=model, version="v3", kind=kind, severity=severity,
        state=state, summary=summary, evidence={"subject": ""}, owner=owner, ts=T, fired_at=T,
        runbook_url="https://rb.example/#x"))  # fmt: skip


def dispatcher(routes: list[Route] | None = None) -> Dispatcher:
    url = "http://127.0.0.1:9/"
    return Dispatcher([WebhookNotifier(url), SlackNotifier(url), PagerDutyNotifier("k", url=url),
                       AlertmanagerNotifier(url), RetrainWebhook(url)], routes or [])  # fmt: skip


def test_default_routing_pages_only_critical_alerts() -> None:
    d = dispatcher()
    try:
        assert d.receivers_for(alert()) == ["alertmanager", "pagerduty", "retrain", "slack", "webhook"]
        assert d.receivers_for(alert("drift", "warning")) == ["alertmanager", "slack", "webhook"]
        assert d.receivers_for(alert("retrain", state="resolved")) == ["alertmanager", "pagerduty", "slack", "webhook"]
    finally:
        d.close(0.1)


def test_routes_by_owner_severity_kind_and_model() -> None:
    routes = [
        Route(receivers=("slack",), owner="payments-ml"),
        Route(receivers=("pagerduty",), owner="payments-ml", min_severity="critical", kinds=("retrain", "no_data")),
        Route(receivers=("alertmanager",), models=("spam",)),
    ]
    d = dispatcher(routes)
    try:
        assert d.receivers_for(alert()) == ["pagerduty", "retrain", "slack", "webhook"]
        assert d.receivers_for(alert("drift", "critical")) == ["slack", "webhook"]
        assert d.receivers_for(alert(owner="mail-ml", model="spam")) == ["alertmanager", "retrain", "webhook"]
    finally:
        d.close(0.1)


def test_receiver_config_builds_named_receivers_and_checks_what_it_needs() -> None:
    rc = ReceiverConfig.model_validate
    assert rc({"type": "slack", "url": "https://hooks.slack.com/x"}).build("team").name == "team"
    assert isinstance(rc({"type": "pagerduty", "routing_key": "k"}).build("p"), PagerDutyNotifier)
    with pytest.raises(ValueError):
        ReceiverConfig(type="pagerduty").build("p")
    with pytest.raises(ValueError):
        ReceiverConfig(type="webhook").build("w")
    with pytest.raises(ValidationError):
        ReceiverConfig(type="email", url="x")  # type: ignore[arg-type]


def test_from_settings_uses_the_delivery_settings() -> None:
    s = Settings(webhook_url="http://127.0.0.1:9/a", slack_webhook_url="http://127.0.0.1:9/b",
                 pagerduty_routing_key="k", retrain_webhook_url="http://127.0.0.1:9/c",
                 alertmanager_url="http://127.0.0.1:9", grafana_url="http://127.0.0.1:9")  # fmt: skip
    d = Dispatcher.from_config(s.delivery_config())
    try:
        assert d.receivers == ["alertmanager", "grafana", "pagerduty", "retrain", "slack", "webhook"]
    finally:
        d.close(0.1)
    empty = Dispatcher.from_config(Settings().delivery_config())
    assert empty.receivers == [] and empty.submit([alert()]) == 0
    empty.close(0.1)


def test_payload_builders() -> None:
    many = [alert(model="fraud", kind=k) for k in ("retrain", "drift")] + [alert(model="spam")]
    assert len(WebhookNotifier("x").messages(many)) == 2  # one per model
    slack = SlackNotifier("x").messages([alert(model="m", kind="drift", summary=f"s{i}") for i in range(23)])
    assert [len(m.alerts) for m in slack] == [10, 10, 3]
    pd = PagerDutyNotifier("k").messages([alert(summary="x" * 5000)])[0].payload
    assert len(pd["payload"]["summary"]) == 1024
    am = AlertmanagerNotifier("http://am:9093/").postable(alert(state="resolved"), now=T)
    assert am["endsAt"] == am["startsAt"] == "2026-03-02T12:00:00Z"
    assert am["labels"]["alertname"] == "watchkeeper_retrain" and "subject" not in am["labels"]
    gen = AlertmanagerNotifier("http://am", generator_url="https://grafana/d/wk?var-model={model}")
    assert gen.postable(alert(model="a b"))["generatorURL"] == "https://grafana/d/wk?var-model=a%20b"


def test_retry_backoff_is_exponential_and_capped() -> None:
    assert Retry(attempts=6, initial_delay=0.5, max_delay=3).delays() == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert Retry(attempts=1).delays() == []


def test_policy_defaults_overrides_and_lookup() -> None:
    assert AlertPolicy().retrain.min_labels == 100
    p = AlertPolicy.model_validate({"drift": {"windows": 6}, "sunset": {"idle_days": 14}})
    assert (p.drift.windows, p.sunset.idle_days, p.retrain.metric) == (6, 14, "accuracy")
    with pytest.raises(ValidationError):
        AlertPolicy.model_validate({"drift": {"windowz": 6}})
    with pytest.raises(ValidationError):
        AlertPolicy().drift.windows = 5  # type: ignore[misc]
    custom = AlertPolicy(auto_resolve_hours=2)
    assert policy_for("fraud", Settings(), {"fraud": custom}) is custom
    assert policy_for("spam", Settings(), {"fraud": custom}) == AlertPolicy()

    class Cfg:
        alerting = {"retrain": {"metric": "recall"}}

    class S:
        models = {"fraud": Cfg()}

    assert policy_for("fraud", S()).retrain.metric == "recall"
