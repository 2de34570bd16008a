"""How ``make bench-alerts`` scores alerts: decision time minus the change, never clamped."""

from __future__ import annotations

from datetime import UTC, datetime

from bench.alerts import Scenario, missed_targets, score
from watchkeeper.alerts.model import Alert, alert_id_for

START = 1_000_000.0
ONSET = START + 5400


def _alert(kind: str, decided: float, evidence: float) -> Alert:
    return Alert(
        alert_id=alert_id_for("m", "v1", kind, ""), model="m", version="v1", kind=kind,  # type: ignore[arg-type]
        severity="warning", state="firing", summary="s", evidence={},
        ts=decided, evidence_ts=evidence, fired_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip


def _scenario(family: str, reference: float) -> Scenario:
    return Scenario("m", family, 300, 0, START, START + 3 * 3600, ONSET, reference)


def test_the_delay_is_the_decision_time_after_the_change_not_the_evidence_time() -> None:
    s = _scenario("covariate_0.5", ONSET)
    got = score(s, [_alert("drift", decided=ONSET + 900, evidence=ONSET + 60)])
    assert got["delay"] == 900 and got["evidence_delay"] == 60 and not got["missed"] and got["false"] == []


def test_a_decision_before_the_labels_show_the_change_is_a_negative_delay() -> None:
    # Concept drift: the labels show it 2 minutes after the onset; an alert decided 30 s after the onset
    # (its evidence the erring predictions) is not clamped to 0.
    s = _scenario("concept", ONSET + 120)
    got = score(s, [_alert("retrain", decided=ONSET + 30, evidence=ONSET + 10)])
    assert got["delay"] == -90


def test_evidence_before_the_change_is_a_false_alert_even_if_decided_after_it() -> None:
    s = _scenario("covariate_0.5", ONSET)
    got = score(s, [_alert("drift", decided=ONSET + 300, evidence=ONSET - 200)])
    assert got["missed"] and got["delay"] is None and len(got["false"]) == 1


def test_a_missed_target_is_named() -> None:
    targets = [{"target": "drift within 2 min", "new": {"met": False}, "previous": {"met": True}},
               {"target": "zero false alerts", "new": {"met": True}}]  # fmt: skip
    assert missed_targets(targets) == ["drift within 2 min"]
