"""A small Python API for analysts: the store's views as pandas DataFrames.

Each function reads one of the views (``sinks/views.py``) or the long ``metrics``
table with parameterised SQL, and returns a DataFrame. The store is the one
the settings name (``WATCHKEEPER_CLICKHOUSE``; a read-only user is enough), or
the ``store`` passed in.

Example (against a store the demo filled)::

    >>> from watchkeeper import query                                  # doctest: +SKIP
    >>> query.metrics("demo.churn", since="2026-11-26")[["window_start", "accuracy", "labelled"]]  # doctest: +SKIP
    >>> query.metric("demo.churn", "recall", segment="region=eu")     # doctest: +SKIP
    >>> query.alerts(state="firing")                                    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from watchkeeper.detectors.timeutil import utc

if TYPE_CHECKING:
    import pandas as pd

    from watchkeeper.sinks.writer import Store

__all__ = ["alerts", "drift", "metric", "metrics"]

# Open ends of a time range (``since``/``until`` not given).
EARLIEST, LATEST = utc(0), utc(4_102_444_800)  # 1970 .. 2100

@contextmanager
def _store(store: Store | None) -> Iterator[Store]:
    if store is not None:
        yield store
        return
    from watchkeeper.settings import load_settings
    from watchkeeper.sinks.writer import Store

    owned = Store.from_settings(load_settings())
    try:
        yield owned
    finally:
        owned.close()


def _time(t: datetime | float | str | None, default: datetime) -> datetime:
    """A bound of a time range: epoch seconds, a datetime or ISO text (naive = UTC)."""
    if t is None:
        return default
    return utc(datetime.fromisoformat(t.replace("Z", "+00:00")) if isinstance(t, str) else t)


def _range(since: Any, until: Any) -> dict[str, datetime]:
    return {"since": _time(since, EARLIEST), "until": _time(until, LATEST)}


def metrics(
    model: str,
    *,
    version: str | None = None,
    since: datetime | float | str | None = None,
    until: datetime | float | str | None = None,
    store: Store | None = None,
) -> pd.DataFrame:
    """One row per window of ``model`` (all traffic): counts and the main metrics as columns (``metrics_wide``)."""
    sql = (
        "SELECT * FROM metrics_wide WHERE model = {model:String}"
        " AND window_start >= {since:DateTime64(3, 'UTC')} AND window_start < {until:DateTime64(3, 'UTC')}"
    )
    params: dict[str, Any] = {"model": model, **_range(since, until)}
    if version is not None:
        sql += " AND version = {version:String}"
        params["version"] = version
    with _store(store) as s:
        return s.query_df(sql + " ORDER BY version, window_start", params)


def metric(
    model: str,
    name: str,
    *,
    segment: str = "",
    since: datetime | float | str | None = None,
    until: datetime | float | str | None = None,
    store: Store | None = None,
) -> pd.DataFrame:
    """One metric of ``model`` per version and window, for one segment (``''``: all traffic), from ``metrics``."""
    sql = (
        "SELECT version, window_start, window_end, value, n FROM metrics FINAL"
        " WHERE model = {model:String} AND metric = {metric:String} AND segment = {segment:String}"
        " AND window_start >= {since:DateTime64(3, 'UTC')} AND window_start < {until:DateTime64(3, 'UTC')}"
        " ORDER BY version, window_start"
    )
    with _store(store) as s:
        return s.query_df(sql, {"model": model, "metric": name, "segment": segment, **_range(since, until)})


def drift(
    model: str,
    *,
    since: datetime | float | str | None = None,
    until: datetime | float | str | None = None,
    store: Store | None = None,
) -> pd.DataFrame:
    """Per window of ``model``: features tested and flagged, which ones, the worst statistic (``drift_flags``)."""
    sql = (
        "SELECT * FROM drift_flags WHERE model = {model:String}"
        " AND window_start >= {since:DateTime64(3, 'UTC')} AND window_start < {until:DateTime64(3, 'UTC')}"
        " ORDER BY version, window_start"
    )
    with _store(store) as s:
        return s.query_df(sql, {"model": model, **_range(since, until)})


def alerts(
    model: str | None = None, *, state: str | None = None, store: Store | None = None
) -> pd.DataFrame:
    """Each alert's current state, newest change first (``alerts_current``); optionally one model or state."""
    sql = "SELECT * FROM alerts_current WHERE 1"
    params: dict[str, Any] = {}
    if model is not None:
        sql += " AND model = {model:String}"
        params["model"] = model
    if state is not None:
        sql += " AND state = {state:String}"
        params["state"] = state
    with _store(store) as s:
        return s.query_df(sql + " ORDER BY changed_at DESC, alert_id", params)
