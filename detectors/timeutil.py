"""UTC time conversions: epoch seconds <-> aware datetimes, and RFC 3339 text.

The one time helper of the project. It lives in ``detectors`` because that is
the lowest package every other one may import (``detectors`` imports nothing
of the project, and this module imports nothing but the standard library), so
``alerts``, ``windows``, ``dashboards``, ``streams`` and the shell can all use
it without a new dependency between them. A naive datetime is taken as UTC
everywhere (that is how the store returns ``DateTime('UTC')`` columns).

>>> utc(0)
datetime.datetime(1970, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
>>> epoch(datetime(1970, 1, 1, 0, 5))  # naive: UTC
300.0
>>> iso(0), iso(1.5)
('1970-01-01T00:00:00Z', '1970-01-01T00:00:01.500Z')
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["epoch", "iso", "utc"]


def utc(t: datetime | float | int) -> datetime:
    """An aware UTC datetime from epoch seconds or a (naive = UTC) datetime."""
    if isinstance(t, datetime):
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return datetime.fromtimestamp(float(t), UTC)


def epoch(t: datetime) -> float:
    """Epoch seconds of a datetime (naive = UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def iso(t: datetime | float | int) -> str:
    """RFC 3339 in UTC with a ``Z``; milliseconds only when there are some."""
    d = utc(t)
    if d.microsecond:
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")
