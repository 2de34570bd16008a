"""The alert record: one state change of one alert, as stored in the ``alerts`` table.

An alert is identified by ``alert_id``, a hash of (model, version, kind,
subject): the same problem of the same model version always has the same id,
so its firing and its resolution pair up, and deliveries deduplicate on it
(PagerDuty's ``dedup_key``, Alertmanager's ``alert_id`` label).

``ts`` is the decision time: the event-time watermark at which the alert could
have been decided — the window that decided it written by the model stage (its
end plus the label delay, or earlier on an idle flush), its labels arrived — so
an alert's delay after a change is the delay a person paged from a live stream
would see. ``evidence_ts`` is the event time of the evidence (the per-event
alarm of a sequential detector, the prediction behind it, or the window's end):
at or before ``ts``. ``fired_at`` is the wall time at which the engine made it. Everything except ``fired_at`` and
``silenced`` is a function of the data, so a replay reproduces it exactly
(compare :meth:`Alert.decision`).

>>> from datetime import UTC
>>> a = Alert(
...     alert_id=alert_id_for("fraud", "v3", "retrain", ""), model="fraud", version="v3",
...     kind="retrain", severity="critical", state="firing",
...     summary="fraud v3: accuracy fell to 0.71 from 0.90; retrain recommended.",
...     evidence={"drop": 0.19000000000000003, "nan": float("nan")},
...     owner="payments-ml", runbook_url="https://runbooks.example/wk#retrain",
...     ts=datetime(2026, 1, 1, 12, 15, tzinfo=UTC), evidence_ts=datetime(2026, 1, 1, 12, 5, tzinfo=UTC),
...     fired_at=datetime(2026, 1, 1, 12, 20, tzinfo=UTC))
>>> a.alert_id
'retrain-6021ce51acd66fd9d224'
>>> a.evidence
{'drop': 0.19, 'nan': None}
>>> Alert.from_row(a.to_row()).decision() == a.decision()
True
>>> a.to_json()["ts"], a.to_json()["evidence_ts"]
('2026-01-01T12:15:00Z', '2026-01-01T12:05:00Z')
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from watchkeeper.detectors.timeutil import iso, utc
from watchkeeper.sinks.schema import ALERTS

Kind = Literal["drift", "performance", "retrain", "sunset", "fairness", "no_data", "ops", "challenger"]
Severity = Literal["info", "warning", "critical"]
State = Literal["firing", "resolved"]

# ``utc`` and ``iso`` are the project's time helpers (``detectors/timeutil.py``), imported here for the
# modules and tests that take them with the alert model.
__all__ = ["ALERT_COLUMNS", "ALERT_COLUMNS_SQL", "KINDS", "SEVERITIES", "STATES", "Alert", "alert_id_for",
           "clean_evidence", "evidence_json", "human_duration", "iso", "runbook_url_for", "severity_rank",
           "utc"]  # fmt: skip

KINDS: tuple[str, ...] = ("drift", "performance", "retrain", "sunset", "fairness", "no_data", "ops", "challenger")
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
STATES: tuple[str, ...] = ("firing", "resolved")

# Columns of the ``alerts`` table, in order: from its one definition (sinks/schema.py).
ALERT_COLUMNS: tuple[str, ...] = tuple(ALERTS.column_names())
# The time columns, read as epoch milliseconds (``Alert.from_row`` takes ``<name>_ms``).
TIME_COLUMNS = ("ts", "fired_at", "evidence_ts")
# What a query selects to build :class:`Alert` s with ``Alert.from_row``.
ALERT_COLUMNS_SQL = ", ".join(
    f"toUnixTimestamp64Milli({c}) AS {c}_ms" if c in TIME_COLUMNS else c for c in ALERT_COLUMNS
)

# Evidence floats are rounded: enough digits to act on, few enough to read.
EVIDENCE_DIGITS = 6


def severity_rank(severity: str) -> int:
    """0 for info, 1 for warning, 2 for critical.

    >>> severity_rank("warning") > severity_rank("info")
    True
    """
    return SEVERITIES.index(severity)


def alert_id_for(model: str, version: str, kind: str, subject: str) -> str:
    """The stable id of one alert: ``<kind>-<20 hex digits>`` of a hash of its identity.

    >>> alert_id_for("fraud", "v3", "drift", "features")
    'drift-6c84f6829216beaa4767'
    """
    digest = hashlib.sha256("\x1f".join((model, version, kind, subject)).encode()).hexdigest()
    return f"{kind}-{digest[:20]}"


def runbook_url_for(kind: str, base: str, configured: str | None = None) -> str:
    """The model's own runbook when configured, else ``{base}#{kind}``.

    >>> runbook_url_for("drift", "https://rb.example/wk.md")
    'https://rb.example/wk.md#drift'
    """
    return configured or f"{base}#{kind}"


def human_duration(seconds: float) -> str:
    """A duration for a sentence: whole weeks, days, hours or minutes when exact, else one decimal.

    >>> human_duration(3600), human_duration(90 * 60), human_duration(7 * 86_400), human_duration(1800)
    ('1 hour', '1.5 hours', '7 days', '30 minutes')
    """
    for unit, size in (("day", 86_400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size or unit == "second":
            n = seconds / size
            text = f"{n:.0f}" if abs(n - round(n)) < 1e-9 else f"{n:.1f}"
            return f"{text} {unit}" + ("" if text == "1" else "s")
    return f"{seconds:g} seconds"  # pragma: no cover


def clean_evidence(value: Any) -> Any:
    """Evidence as plain JSON values: floats rounded, NaN/inf as None, tuples as lists, times as RFC 3339.

    >>> clean_evidence({"a": (1, 2.1234567891), "b": float("inf")})
    {'a': [1, 2.123457], 'b': None}
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return round(value, EVIDENCE_DIGITS) if math.isfinite(value) else None
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Mapping):
        return {str(k): clean_evidence(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [clean_evidence(v) for v in items]
    if hasattr(value, "item"):  # numpy scalars
        return clean_evidence(value.item())
    return str(value)


def evidence_json(evidence: Mapping[str, Any]) -> str:
    """The evidence as the canonical JSON string stored in the table (sorted keys, compact)."""
    return json.dumps(clean_evidence(evidence), sort_keys=True, separators=(",", ":"), allow_nan=False)


class Alert(BaseModel):
    """One state change of one alert (a row of the ``alerts`` table, a message on the ``alerts`` topic)."""

    model_config = ConfigDict(frozen=True)

    alert_id: str
    model: str
    version: str
    kind: Kind
    severity: Severity
    state: State
    summary: str
    evidence: dict[str, Any]
    owner: str = "unowned"
    runbook_url: str = ""
    ts: datetime
    fired_at: datetime
    # The evidence's event time (None: the same as ``ts``, as for alerts made before the column).
    evidence_ts: datetime | None = None
    # Not stored in the table: set by the engine from the silences in force when it decided.
    silenced: bool = False

    @field_validator("evidence", mode="before")
    @classmethod
    def _clean(cls, v: Any) -> Any:
        return clean_evidence(v) if isinstance(v, Mapping) else v

    @field_validator("ts", "fired_at", "evidence_ts", mode="before")
    @classmethod
    def _utc(cls, v: Any) -> Any:
        if isinstance(v, datetime | int | float) and not isinstance(v, bool):
            return utc(v)
        return v

    @model_validator(mode="before")
    @classmethod
    def _evidence_time(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("evidence_ts") is None and "ts" in data:
            return {**data, "evidence_ts": data["ts"]}
        return data

    @property
    def subject(self) -> str:
        """What the alert is about inside its kind (a metric, an attribute, ``features``...)."""
        return str(self.evidence.get("subject", ""))

    @property
    def firing(self) -> bool:
        return self.state == "firing"

    @property
    def token(self) -> str:
        """The insert deduplication token of this state change."""
        return f"alert:{self.alert_id}:{self.state}:{int(self.ts.timestamp() * 1000)}"

    def key(self) -> tuple[str, str, int]:
        """(alert_id, state, ts in ms): one state change."""
        return (self.alert_id, self.state, int(self.ts.timestamp() * 1000))

    def decision(self) -> dict[str, Any]:
        """Everything the data decided (not ``fired_at`` nor ``silenced``): equal across replays."""
        return self.model_dump(mode="json", exclude={"fired_at", "silenced"})

    def to_row(self) -> dict[str, Any]:
        """The row of the ``alerts`` table (its columns, in order; the evidence as canonical JSON)."""
        fields = {**dict(self), "evidence": evidence_json(self.evidence)}
        return {c: fields[c] for c in ALERT_COLUMNS}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Alert:
        """An alert from an ``alerts`` row (``ts_ms``/``fired_at_ms`` epoch-millisecond columns accepted)."""
        data = dict(row)
        for col in TIME_COLUMNS:
            if f"{col}_ms" in data:
                data[col] = int(data.pop(f"{col}_ms")) / 1000
        ev = data.get("evidence")
        if isinstance(ev, str | bytes):
            data["evidence"] = json.loads(ev or "{}")
        return cls.model_validate({k: v for k, v in data.items() if k in cls.model_fields})

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times in RFC 3339), as published and as sent to generic webhooks."""
        out = self.model_dump(mode="json")
        out["ts"], out["fired_at"] = iso(self.ts), iso(self.fired_at)
        out["evidence_ts"] = iso(self.evidence_ts or self.ts)
        out["subject"] = self.subject
        return out
