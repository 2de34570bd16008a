"""Deep links: every notifier's payload links the model dashboard at the alert's model, version and range."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from watchkeeper.alerts.dispatch import Dispatcher
from watchkeeper.alerts.links import MODEL_DASHBOARD_UID, dashboard_url
from watchkeeper.alerts.model import Alert, alert_id_for
from watchkeeper.alerts.notifiers import DeliveryConfig, notifiers_from_config

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


def test_without_grafana_there_is_no_link_and_the_runbook_stays() -> None:
    config = DeliveryConfig(webhook_url="https://hook.example/", pagerduty_routing_key="K",
                            alertmanager_url="https://am.example")  # fmt: skip
    payloads = {n.name: n.messages([alert()])[0].payload for n in notifiers_from_config(config)}
    assert payloads["webhook"]["alerts"][0]["dashboard_url"] is None
    assert payloads["pagerduty"]["client_url"] == "docs/runbooks.md#retrain"
    assert payloads["alertmanager"][0]["generatorURL"] == "docs/runbooks.md#retrain"


def test_links_use_the_address_people_open() -> None:
    """The worker may reach Grafana at an internal name; links use the public one when set."""
    from watchkeeper.settings import Settings

    s = Settings(grafana_url="http://grafana:3000", grafana_link_url="https://grafana.example.com",
                 webhook_url="https://hook.example/")  # fmt: skip
    (hook, *_) = notifiers_from_config(s.delivery_config())
    url = hook.messages([alert()])[0].payload["alerts"][0]["dashboard_url"]
    assert url.startswith("https://grafana.example.com/d/watchkeeper-model?")
