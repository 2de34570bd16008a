"""Links in payloads: the model dashboard at the alert's model, version and range; the runbook, or its first steps."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from watchkeeper.alerts.dispatch import Dispatcher
from watchkeeper.alerts.links import MODEL_DASHBOARD_UID, dashboard_url, first_steps, warn_if_runbook_base_unset
from watchkeeper.alerts.model import KINDS, Alert, alert_id_for, runbook_url_for
from watchkeeper.alerts.notifiers import DeliveryConfig, notifiers_from_config
from watchkeeper.settings import Settings

GRAFANA = "https://grafana.example/"
T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MODEL_DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "json" / "watchkeeper-model.json"


def alert(state: str = "firing", **evidence: object) -> Alert:
    return Alert(alert_id=alert_id_for("fraud", "v3", "retrain", ""), model="fraud", version="v3", kind="retrain",
                 severity="critical", state=state, summary="fraud v3: accuracy dropped",
                 evidence={"subject": "", **evidence}, ts=T, fired_at=T,
                 runbook_url="docs/runbooks.md#retrain")  # fmt: skip


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_the_link_opens_the_model_dashboard_at_the_model_version_and_range() -> None:
    url = dashboard_url(alert(), GRAFANA)
    assert url is not None and url.startswith(f"https://grafana.example/d/{MODEL_DASHBOARD_UID}?")
    q = query(url)
    assert (q["var-model"], q["var-version"]) == ("fraud", "v3")
    start, end = int(q["from"]) / 1000, int(q["to"]) / 1000
    assert start < T.timestamp() < end  # the decision is inside the range


def test_a_resolution_links_from_when_it_started_firing() -> None:
    url = dashboard_url(alert("resolved", firing_since="2026-03-01T06:00:00Z"), GRAFANA)
    assert url is not None
    assert int(query(url)["from"]) / 1000 < datetime(2026, 3, 1, 6, tzinfo=UTC).timestamp()


def test_the_link_names_the_built_dashboard_and_its_variables() -> None:
    built = json.loads(MODEL_DASHBOARD.read_text())
    assert built["uid"] == MODEL_DASHBOARD_UID
    assert {"model", "version"} <= {v["name"] for v in built["templating"]["list"]}


def test_every_notifier_payload_carries_the_link() -> None:
    config = DeliveryConfig(webhook_url="https://hook.example/", retrain_webhook_url="https://retrain.example/",
                            slack_webhook_url="https://slack.example/", pagerduty_routing_key="K",
                            alertmanager_url="https://am.example", grafana_url=GRAFANA)  # fmt: skip
    a = alert()
    link = dashboard_url(a, GRAFANA)
    payloads = {n.name: n.messages([a])[0].payload for n in notifiers_from_config(config)}
    assert payloads["webhook"]["alerts"][0]["dashboard_url"] == link
    assert payloads["retrain"]["dashboard_url"] == link
    assert f"<{link}|dashboard>" in json.dumps(payloads["slack"]["blocks"]).replace("\\u00b7", "·")
    assert payloads["pagerduty"]["client_url"] == link
    assert {"href": link, "text": "Model dashboard"} in payloads["pagerduty"]["links"]
    assert payloads["alertmanager"][0]["generatorURL"] == link
    assert payloads["alertmanager"][0]["annotations"]["dashboard_url"] == link


def test_named_receivers_carry_the_link_too() -> None:
    config = DeliveryConfig(grafana_url=GRAFANA, receivers={"team": {"type": "webhook", "url": "https://t.example/"}})
    dispatcher = Dispatcher.from_config(config)
    try:
        team = dispatcher._lanes["team"].notifier
        assert team.messages([alert()])[0].payload["alerts"][0]["dashboard_url"] == dashboard_url(alert(), GRAFANA)
    finally:
        dispatcher.close()


def test_without_grafana_there_is_no_dashboard_link() -> None:
    config = DeliveryConfig(webhook_url="https://hook.example/", pagerduty_routing_key="K",
                            alertmanager_url="https://am.example")  # fmt: skip
    a = alert().model_copy(update={"runbook_url": "https://rb.example/wk.md#retrain"})
    payloads = {n.name: n.messages([a])[0].payload for n in notifiers_from_config(config)}
    assert payloads["webhook"]["alerts"][0]["dashboard_url"] is None
    assert payloads["pagerduty"]["client_url"] == "https://rb.example/wk.md#retrain"
    assert payloads["alertmanager"][0]["generatorURL"] == "https://rb.example/wk.md#retrain"


ALL = DeliveryConfig(webhook_url="https://hook.example/", retrain_webhook_url="https://retrain.example/",
                     slack_webhook_url="https://slack.example/", pagerduty_routing_key="K",
                     alertmanager_url="https://am.example")  # fmt: skip


def payloads_of(a: Alert) -> dict[str, Any]:
    return {n.name: n.messages([a])[0].payload for n in notifiers_from_config(ALL)}


def test_with_the_default_runbook_base_every_payload_carries_the_first_steps_not_a_dead_link() -> None:
    """``docs/runbooks.md#retrain`` opens nowhere from Slack or a pager: the steps travel in the payload."""
    base = Settings().runbook_base_url
    a = alert().model_copy(update={"runbook_url": runbook_url_for("retrain", base)})
    steps = list(first_steps(a))
    assert len(steps) == 3 and "watchkeeper alerts --model fraud --kind retrain" in steps[0]
    p = payloads_of(a)

    assert p["webhook"]["alerts"][0]["runbook_steps"] == steps
    assert p["retrain"]["runbook_steps"] == steps
    slack = json.dumps(p["slack"]["blocks"], ensure_ascii=False)
    assert "*First steps* (runbook `docs/runbooks.md#retrain`)" in slack
    assert "1. Read the evidence" in slack and "3. Look for a drift alert" in slack
    assert "docs/runbooks.md#retrain|" not in slack  # no <link|runbook> that opens nothing
    details = p["pagerduty"]["payload"]["custom_details"]
    assert (details["first_steps"], details["runbook"]) == (steps, "docs/runbooks.md#retrain")
    assert "client_url" not in p["pagerduty"] and "links" not in p["pagerduty"]
    am = p["alertmanager"][0]
    assert "runbook_url" not in am["annotations"] and "generatorURL" not in am
    assert am["annotations"]["runbook_steps"].startswith("1. Read the evidence")


def test_with_a_runbook_address_payloads_link_it_and_carry_no_steps() -> None:
    a = alert().model_copy(update={"runbook_url": runbook_url_for("retrain", "https://git.example/wk/runbooks.md")})
    p = payloads_of(a)
    link = "https://git.example/wk/runbooks.md#retrain"
    assert p["webhook"]["alerts"][0]["runbook_steps"] == [] and p["retrain"]["runbook_steps"] == []
    assert f"<{link}|runbook>" in json.dumps(p["slack"]["blocks"], ensure_ascii=False)
    assert "First steps" not in json.dumps(p["slack"])
    assert {"href": link, "text": "Runbook"} in p["pagerduty"]["links"]
    assert "first_steps" not in p["pagerduty"]["payload"]["custom_details"]
    assert p["alertmanager"][0]["annotations"]["runbook_url"] == link


def test_every_kind_has_first_steps_with_a_command() -> None:
    for kind in (*KINDS, "challenger"):
        a = alert().model_copy(update={"kind": kind, "runbook_url": f"docs/runbooks.md#{kind}"})
        steps = first_steps(a)
        assert len(steps) == 3, kind
        assert any("`watchkeeper " in s for s in steps), kind


def test_the_worker_says_at_start_up_that_the_runbook_base_is_unset(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert warn_if_runbook_base_unset(Settings().runbook_base_url)
    assert "WATCHKEEPER_RUNBOOK_BASE_URL is unset" in caplog.text and "first steps" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert not warn_if_runbook_base_unset("https://git.example/wk/docs/runbooks.md")
    assert caplog.text == ""


def test_links_use_the_address_people_open() -> None:
    """The worker may reach Grafana at an internal name; links use the public one when set."""
    from watchkeeper.settings import Settings

    s = Settings(grafana_url="http://grafana:3000", grafana_link_url="https://grafana.example.com",
                 webhook_url="https://hook.example/")  # fmt: skip
    (hook, *_) = notifiers_from_config(s.delivery_config())
    url = hook.messages([alert()])[0].payload["alerts"][0]["dashboard_url"]
    assert url.startswith("https://grafana.example.com/d/watchkeeper-model?")
