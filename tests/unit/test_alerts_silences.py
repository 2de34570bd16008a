"""Silences hold notifications back; acknowledgements mark one firing episode. Neither changes decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watchkeeper.alerts.dispatch import Dispatcher
from watchkeeper.alerts.model import Alert, alert_id_for
from watchkeeper.alerts.notifiers import GrafanaAnnotator, SlackNotifier, WebhookNotifier
from watchkeeper.alerts.silences import Silence, is_silenced

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def alert(model: str = "fraud", kind: str = "drift", state: str = "firing", ts: datetime = NOW, **ev: str) -> Alert:
    return Alert.model_validate(dict(
        alert_id=alert_id_for(model, "v3", kind, "features"), model=model, version="v3", kind=kind,
        severity="warning", state=state, summary="s", evidence={"subject": "features", **ev}, ts=ts, fired_at=NOW,
    ))  # fmt: skip


def test_a_silence_matches_on_every_matcher_it_sets() -> None:
    s = Silence(silence_id="a", model="fraud", kind="drift", starts_at=NOW, ends_at=NOW + timedelta(hours=1))
    assert s.silences(alert(), NOW)
    assert not s.silences(alert(model="spam"), NOW)
    assert not s.silences(alert(kind="retrain"), NOW)
    by_id = Silence(silence_id="b", alert_id=alert().alert_id, starts_at=NOW, ends_at=NOW + timedelta(hours=1))
    assert by_id.silences(alert(), NOW) and not by_id.silences(alert(kind="retrain"), NOW)


def test_a_silence_holds_only_while_in_force() -> None:
    s = Silence(silence_id="a", model="fraud", starts_at=NOW, ends_at=NOW + timedelta(hours=1))
    assert not s.silences(alert(), NOW - timedelta(seconds=1))
    assert s.silences(alert(), NOW + timedelta(minutes=59))
    assert not s.silences(alert(), NOW + timedelta(hours=1))
    assert is_silenced(alert(), [s], NOW) and not is_silenced(alert(), [], NOW)


def test_an_acknowledgement_covers_one_firing_episode_and_silences_nothing() -> None:
    fired = alert(ts=NOW)
    ack = Silence(silence_id="c", action="ack", alert_id=fired.alert_id, episode_ts=NOW, starts_at=NOW)
    assert ack.acknowledges(fired) and not ack.silences(fired, NOW)
    resolved = alert(state="resolved", ts=NOW + timedelta(hours=1), firing_since="2026-03-02T12:00:00Z")
    assert ack.acknowledges(resolved)
    assert not ack.acknowledges(alert(ts=NOW + timedelta(hours=2)))  # a later firing is a new episode


def test_silenced_alerts_reach_only_the_receivers_that_keep_records() -> None:
    d = Dispatcher([WebhookNotifier("http://127.0.0.1:9/", name="webhook"), SlackNotifier("http://127.0.0.1:9/"),
                    WebhookNotifier("http://127.0.0.1:9/", name="team", routed=True),
                    GrafanaAnnotator("http://127.0.0.1:9")])  # fmt: skip
    try:
        quiet = alert().model_copy(update={"silenced": True})
        assert d.receivers_for(quiet) == ["grafana", "webhook"]
        assert d.receivers_for(alert()) == ["grafana", "slack", "team", "webhook"]
    finally:
        d.close(0.1)
