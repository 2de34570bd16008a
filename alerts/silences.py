"""Silences and acknowledgements, stored in ``alert_silences``.

A *silence* holds back notifications of the alerts it matches (every matcher
that is set must equal the alert's: model, version, kind, alert_id) between
``starts_at`` and ``ends_at`` (wall time). The engine still records the state
changes; a silenced alert is returned with ``silenced=True`` and the
dispatcher does not page anyone with it (the generic webhook and Grafana
annotations, which are records rather than pages, still get it).

An *acknowledgement* marks the current firing of one alert as being handled:
``watchkeeper alerts`` shows it, PagerDuty gets an ``acknowledge`` event, and
it lapses when the alert resolves (a later firing is a new episode).

>>> from datetime import timedelta
>>> now = datetime(2026, 1, 1, tzinfo=UTC)
>>> s = Silence(silence_id="s1", model="fraud", kind="drift", starts_at=now, ends_at=now + timedelta(hours=2))
>>> s.matches_fields("fraud", "v3", "drift", "drift-abc"), s.matches_fields("fraud", "v3", "retrain", "x")
(True, False)
>>> s.active(now + timedelta(hours=3))
False
"""

from __future__ import annotations

import secrets
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from watchkeeper.alerts import schema
from watchkeeper.alerts.model import Alert
from watchkeeper.detectors.timeutil import utc

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FOREVER = datetime(2100, 1, 1, tzinfo=UTC)


class Silence(BaseModel):
    """One silence or acknowledgement."""

    model_config = ConfigDict(frozen=True)

    silence_id: str
    action: Literal["silence", "ack"] = "silence"
    model: str = ""
    version: str = ""
    kind: str = ""
    alert_id: str = ""
    episode_ts: datetime = EPOCH  # ack: the ``ts`` of the firing it acknowledges
    starts_at: datetime = EPOCH
    ends_at: datetime = FOREVER
    author: str = ""
    comment: str = ""
    created_at: datetime = EPOCH

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches_fields(self, model: str, version: str, kind: str, alert_id: str) -> bool:
        pairs = ((self.model, model), (self.version, version), (self.kind, kind), (self.alert_id, alert_id))
        return all(not want or want == have for want, have in pairs)

    def silences(self, alert: Alert, now: datetime) -> bool:
        """True when this is a silence in force that matches ``alert``."""
        return (
            self.action == "silence"
            and self.active(now)
            and self.matches_fields(alert.model, alert.version, alert.kind, alert.alert_id)
        )

    def acknowledges(self, alert: Alert) -> bool:
        """True when this acknowledges the firing episode ``alert`` belongs to."""
        if self.action != "ack" or self.alert_id != alert.alert_id:
            return False
        since = alert.evidence.get("firing_since") if alert.state == "resolved" else None
        started = utc(datetime.fromisoformat(since.replace("Z", "+00:00"))) if since else alert.ts
        return started == self.episode_ts

    def to_row(self) -> dict[str, Any]:
        return self.model_dump()


def is_silenced(alert: Alert, silences: Iterable[Silence], now: datetime) -> bool:
    return any(s.silences(alert, now) for s in silences)


def _now(now: datetime | None) -> datetime:
    return utc(now) if now is not None else datetime.now(UTC)


_READY: weakref.WeakSet[Any] = weakref.WeakSet()


def ensure_table(store: Any) -> None:
    """Create ``alert_silences`` once per store handle (the DDL is idempotent)."""
    if store not in _READY:
        schema.migrate(store)
        _READY.add(store)


def _insert(store: Any, s: Silence) -> None:
    ensure_table(store)
    row = s.to_row()
    store.insert(schema.SILENCES, {k: [v] for k, v in row.items()},
                 token=f"silence:{s.silence_id}:{int(s.created_at.timestamp() * 1000)}")  # fmt: skip


def known_models(store: Any) -> list[str]:
    """Every model the store has seen: written windows or alerts (a silence for any other matches nothing)."""
    rows = store.query_rows("SELECT DISTINCT model FROM metrics UNION DISTINCT SELECT DISTINCT model FROM alerts")
    return sorted({str(m) for (m,) in rows if m})


def unknown_model(store: Any, model: str, configured: Iterable[str] = ()) -> str | None:
    """Why a silence for ``model`` would match nothing — a model never seen nor configured — or None.

    ``watchkeeper silence add --model`` refuses it without ``--force`` (a typo would silence nothing, silently).
    """
    if not model or model in configured:
        return None
    known = known_models(store)
    if model in known:
        return None
    import difflib

    close = difflib.get_close_matches(model, known, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    listed = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "") if known else "none yet"
    return f"no model {model!r} has been seen (known: {listed}); {hint}--force silences it anyway"


def add_silence(
    store: Any,
    *,
    duration: timedelta,
    model: str = "",
    version: str = "",
    kind: str = "",
    alert_id: str = "",
    author: str = "",
    comment: str = "",
    now: datetime | None = None,
) -> Silence:
    """Silence matching alerts for ``duration`` from now; at least one matcher is required."""
    if not (model or version or kind or alert_id):
        raise ValueError("a silence needs at least one of model, version, kind, alert_id")
    if duration <= timedelta(0):
        raise ValueError("a silence needs a positive duration")
    t = _now(now)
    s = Silence(silence_id=secrets.token_hex(6), model=model, version=version, kind=kind, alert_id=alert_id,
                starts_at=t, ends_at=t + duration, author=author, comment=comment, created_at=t)  # fmt: skip
    _insert(store, s)
    return s


def acknowledge(
    store: Any, alert: Alert, *, author: str = "", comment: str = "", now: datetime | None = None
) -> Silence:
    """Acknowledge the current firing of ``alert`` (which must be firing)."""
    if alert.state != "firing":
        raise ValueError(f"alert {alert.alert_id} is not firing")
    t = _now(now)
    s = Silence(silence_id=secrets.token_hex(6), action="ack", model=alert.model, version=alert.version,
                kind=alert.kind, alert_id=alert.alert_id, episode_ts=alert.ts, starts_at=t, ends_at=FOREVER,
                author=author, comment=comment, created_at=t)  # fmt: skip
    _insert(store, s)
    return s


def expire(store: Any, silence_id: str, *, now: datetime | None = None) -> Silence | None:
    """End a silence now; returns it, or None when there is no such silence in force."""
    t = _now(now)
    for s in list_silences(store, include_expired=False, now=t):
        if s.silence_id == silence_id:
            ended = s.model_copy(update={"ends_at": t, "created_at": max(t, s.created_at + timedelta(milliseconds=1))})
            _insert(store, ended)
            return ended
    return None


def list_silences(store: Any, *, include_expired: bool = False, now: datetime | None = None) -> list[Silence]:
    """Silences and acknowledgements, newest first (in force only, unless ``include_expired``)."""
    ensure_table(store)
    rows = store.query(
        f"SELECT * FROM {schema.SILENCES} FINAL "
        "WHERE {all:UInt8} = 1 OR ends_at > {now:DateTime64(3, 'UTC')} ORDER BY created_at DESC",
        {"all": int(include_expired), "now": _now(now)},
    )
    return [Silence.model_validate({k: utc(v) if isinstance(v, datetime) else v for k, v in r.items()}) for r in rows]


def active_silences(store: Any, now: datetime | None = None) -> list[Silence]:
    """What is in force now (silences and acknowledgements)."""
    t = _now(now)
    return [s for s in list_silences(store, now=t) if s.active(t)]
