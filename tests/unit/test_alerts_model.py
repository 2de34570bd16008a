"""The alert record: stable ids, canonical evidence, rows that round-trip, runbooks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from watchkeeper.alerts.model import (
    Alert,
    alert_id_for,
    clean_evidence,
    evidence_json,
    human_duration,
    iso,
    runbook_url_for,
)


def make(**kw: object) -> Alert:
    base: dict[str, object] = dict(
        alert_id=alert_id_for("fraud", "v3", "retrain", ""), model="fraud", version="v3", kind="retrain",
        severity="critical", state="firing", summary="s", evidence={"subject": "", "x": 1.0},
        ts=datetime(2026, 1, 1, 12, 5, tzinfo=UTC), fired_at=datetime(2026, 1, 1, 12, 6, tzinfo=UTC),
    )  # fmt: skip
    base.update(kw)
    return Alert.model_validate(base)


def test_alert_id_is_stable_and_distinct_per_identity() -> None:
    a = alert_id_for("fraud", "v3", "drift", "features")
    assert a == alert_id_for("fraud", "v3", "drift", "features")
    others = {alert_id_for("fraud", "v4", "drift", "features"), alert_id_for("fraud", "v3", "retrain", "features"),
              alert_id_for("fraud", "v3", "drift", ""), alert_id_for("fraud.v3", "", "drift", "features")}  # fmt: skip
    assert a not in others and len(others) == 4
    assert a.startswith("drift-") and len(a) == len("drift-") + 20


def test_evidence_is_canonical_json() -> None:
    ev = {"b": float("nan"), "a": (1, 2.123456789), "c": {"z": {1, 2}}, "t": datetime(2026, 1, 1, tzinfo=UTC)}
    assert clean_evidence(ev) == {"b": None, "a": [1, 2.123457], "c": {"z": [1, 2]}, "t": "2026-01-01T00:00:00Z"}
    assert evidence_json(ev) == json.dumps(clean_evidence(ev), sort_keys=True, separators=(",", ":"))


def test_row_round_trip_keeps_the_decision() -> None:
    a = make(evidence={"subject": "features", "features": [{"feature": "amount", "statistic": 0.3}]})
    row = a.to_row()
    assert set(row) == {"ts", "fired_at", "alert_id", "model", "version", "kind", "severity", "state", "summary",
                        "evidence", "owner", "runbook_url", "evidence_ts"}  # fmt: skip
    assert isinstance(row["evidence"], str)
    back = Alert.from_row({**row, "ts_ms": int(a.ts.timestamp() * 1000)} | {"ts": None})
    assert back.decision() == a.decision() and back.subject == "features"


def test_naive_datetimes_are_utc_and_token_names_the_state_change() -> None:
    a = make(ts=datetime(2026, 1, 1, 12, 5))
    assert a.ts.tzinfo is not None and a.ts == datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
    assert a.token == f"alert:{a.alert_id}:firing:{int(a.ts.timestamp() * 1000)}"
    assert make(state="resolved").token != a.token


def test_invalid_kind_severity_or_state_is_refused() -> None:
    for field, bad in (("kind", "other"), ("severity", "page"), ("state", "open")):
        with pytest.raises(ValidationError):
            make(**{field: bad})


def test_alert_is_frozen() -> None:
    with pytest.raises(ValidationError):
        make().state = "resolved"  # type: ignore[misc]


def test_runbook_and_helpers() -> None:
    assert runbook_url_for("sunset", "https://x/rb.md") == "https://x/rb.md#sunset"
    assert runbook_url_for("sunset", "https://x/rb.md", "https://team/rb") == "https://team/rb"
    assert iso(datetime(2026, 1, 1, 0, 0, 1, 250000, tzinfo=UTC)) == "2026-01-01T00:00:01.250Z"
    assert human_duration(60) == "1 minute" and human_duration(2 * 86_400) == "2 days"
    assert make().to_json()["ts"] == "2026-01-01T12:05:00Z"
