"""A small Python API for analysts: the store's views as pandas DataFrames.

Each function reads one of the views (``sinks/views.py``), the long ``metrics``
table or (``alerts``) the ``alerts`` table with parameterised SQL, and returns a
DataFrame. The store is the one the settings name (``WATCHKEEPER_CLICKHOUSE``; a
read-only user is enough), or the ``store`` passed in.

- Times are UTC-aware, at the precision the store holds them (pandas 2 keeps it): window bounds
  (``DateTime``) are ``datetime64[s, UTC]``; event, decision and write times (``DateTime64(3)``:
  ``ts``, ``evidence_ts``, ``computed_at``, ...) are ``datetime64[ms, UTC]``. ``.dt.as_unit("ns")``
  gives nanoseconds where another library wants them.
- A model, version or metric the store has never seen raises :class:`NotFound`, naming the
  known ones and the closest match — a typo is not an empty frame. A known model with no rows
  in the range gives an empty frame that still has its columns.
- In a notebook, a result shows itself with a small inline SVG chart per metric over the
  windows (one line per version) above the table (``_repr_html_``); it is still a DataFrame.

Example (against a store the demo filled)::

    >>> from watchkeeper import query                                  # doctest: +SKIP
    >>> query.metrics("demo.churn", since="2026-11-26")[["window_start", "accuracy", "labelled"]]  # doctest: +SKIP
    >>> query.metric("demo.churn", "recall", segment="region=eu")     # doctest: +SKIP
    >>> query.alerts(state="firing")                                    # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import html
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from watchkeeper.detectors.timeutil import utc
from watchkeeper.sinks.views import VIEW_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from watchkeeper.sinks.writer import Store

__all__ = ["NotFound", "alerts", "drift", "metric", "metrics"]

# Open ends of a time range (``since``/``until`` not given).
EARLIEST, LATEST = utc(0), utc(4_102_444_800)  # 1970 .. 2100


class NotFound(LookupError):
    """A model, version or metric the store has never seen (the message names the known ones)."""


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


def _missing(what: str, name: str, known: Sequence[str], where: str = "") -> NotFound:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    listed = ", ".join(known[:30]) + (", ..." if len(known) > 30 else "") if known else "none"
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return NotFound(f"no {what} {name!r}{where} in the store (known: {listed}){hint}")


def _names(s: Store, sql: str, params: dict[str, Any] | None = None) -> list[str]:
    return sorted(str(v) for (v,) in s.query_rows(sql, params or {}) if v != "")


def _check_model(s: Store, model: str) -> None:
    # Asked only when a result is empty: a typo costs one more query, a hit costs nothing.
    known = _names(s, "SELECT DISTINCT model FROM metrics UNION DISTINCT SELECT DISTINCT model FROM alerts")
    if model not in known:
        raise _missing("model", model, known)


def _check_version(s: Store, model: str, version: str) -> None:
    # The A/B comparison rows ('v2 vs v1') are not versions of metrics_wide.
    known = _names(s, "SELECT DISTINCT version FROM metrics WHERE model = {m:String} AND position(version, ' vs ') = 0",
                   {"m": model})  # fmt: skip
    if version not in known:
        raise _missing("version", version, known, f" of model {model!r}")


def _check_metric(s: Store, model: str, name: str) -> None:
    known = _names(s, "SELECT DISTINCT metric FROM metrics WHERE model = {m:String}", {"m": model})
    if name not in known:
        raise _missing("metric", name, known, f" for model {model!r}")


def _check_segment(s: Store, model: str, name: str, segment: str) -> None:
    known = _names(s, "SELECT DISTINCT segment FROM metrics WHERE model = {m:String} AND metric = {n:String}",
                   {"m": model, "n": name})  # fmt: skip
    if segment and segment not in known:
        raise _missing("segment", segment, known, f" for {model!r} {name!r}")


def _frame(df: pd.DataFrame, columns: Sequence[str], chart: Sequence[str] = ()) -> pd.DataFrame:
    """The result as a :func:`frame_class` frame: its columns even when empty, times UTC-aware."""
    import pandas as pd

    if df.empty and list(df.columns) != list(columns):
        df = pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    out = frame_class()(df)
    for col in out.columns:
        dtype = out[col].dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.tz_convert("UTC")
        elif pd.api.types.is_datetime64_dtype(dtype):
            # clickhouse-connect gives the UTC columns as naive datetimes: they are UTC.
            out[col] = out[col].dt.tz_localize("UTC")
    out.attrs["chart"] = [c for c in chart if c in out.columns]
    return out


def metrics(
    model: str,
    *,
    version: str | None = None,
    since: datetime | float | str | None = None,
    until: datetime | float | str | None = None,
    store: Store | None = None,
) -> pd.DataFrame:
    """One row per window of ``model`` (all traffic): counts and the main metrics as columns (``metrics_wide``).

    Raises :class:`NotFound` for a model (or version) the store has never seen.
    """
    sql = (
        "SELECT * FROM metrics_wide WHERE model = {model:String}"
        " AND window_start >= {since:DateTime64(3, 'UTC')} AND window_start < {until:DateTime64(3, 'UTC')}"
    )
    params: dict[str, Any] = {"model": model, **_range(since, until)}
    if version is not None:
        sql += " AND version = {version:String}"
        params["version"] = version
    with _store(store) as s:
        df = s.query_df(sql + " ORDER BY version, window_start", params)
        if df.empty:
            _check_model(s, model)
            if version is not None:
                _check_version(s, model, version)
    columns = [c for c, _, _ in VIEW_COLUMNS["metrics_wide"]]
    return _frame(df, columns, chart=[c for c in columns[4:] if c != "computed_at"])


def metric(
    model: str,
    name: str,
    *,
    segment: str = "",
    since: datetime | float | str | None = None,
    until: datetime | float | str | None = None,
    store: Store | None = None,
) -> pd.DataFrame:
    """One metric of ``model`` per version and window, for one segment (``''``: all traffic), from ``metrics``.

    Raises :class:`NotFound` for a model, metric or segment the store has never seen.
    """
    sql = (
        "SELECT version, window_start, window_end, value, n FROM metrics FINAL"
        " WHERE model = {model:String} AND metric = {metric:String} AND segment = {segment:String}"
        " AND window_start >= {since:DateTime64(3, 'UTC')} AND window_start < {until:DateTime64(3, 'UTC')}"
        " ORDER BY version, window_start"
    )
    with _store(store) as s:
        df = s.query_df(sql, {"model": model, "metric": name, "segment": segment, **_range(since, until)})
        if df.empty:
            _check_model(s, model)
            _check_metric(s, model, name)
            _check_segment(s, model, name, segment)
    out = _frame(df, ["version", "window_start", "window_end", "value", "n"], chart=["value"])
    out.attrs["labels"] = {"value": name}
    return out


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
        df = s.query_df(sql, {"model": model, **_range(since, until)})
        if df.empty:
            _check_model(s, model)
    columns = [c for c, _, _ in VIEW_COLUMNS["drift_flags"]]
    return _frame(df, columns, chart=["features_drifted", "worst_statistic"])


_SILENCES = (
    "SELECT * FROM alert_silences FINAL WHERE ends_at > {now:DateTime64(3, 'UTC')} "
    "AND starts_at <= {now:DateTime64(3, 'UTC')}"
)


def _silences(s: Store, now: datetime) -> list[Any]:
    """The silences and acknowledgements in force (a plain read: a read-only analyst creates no table)."""
    from watchkeeper.alerts.silences import Silence

    exists = s.query_rows("EXISTS TABLE alert_silences")[0][0]
    if not int(exists):
        return []
    return [Silence.model_validate({k: utc(v) if isinstance(v, datetime) else v for k, v in r.items()})
            for r in s.query(_SILENCES, {"now": now})]  # fmt: skip


# Each alert's latest state, from the ``alerts`` table: the view ``alerts_current`` has no decision or
# evidence time. ``ts`` is aliased outside and the model filtered innermost: the aliases would shadow the
# columns there.
ALERTS_SQL = """
SELECT alert_id, model, version, kind, severity, state, summary, owner, runbook_url, evidence,
       decided_at AS ts, evidence_ts, fired_at, decided_at AS changed_at
FROM (
    SELECT alert_id,
        argMax(model, ts) AS model, argMax(version, ts) AS version, argMax(kind, ts) AS kind,
        argMax(severity, ts) AS severity, argMax(state, ts) AS state, argMax(summary, ts) AS summary,
        argMax(owner, ts) AS owner, argMax(runbook_url, ts) AS runbook_url, argMax(evidence, ts) AS evidence,
        argMax(evidence_ts, ts) AS evidence_ts, argMax(fired_at, ts) AS fired_at, max(ts) AS decided_at
    FROM (SELECT * FROM alerts FINAL WHERE {any_model:Bool} OR model = {model:String})
    GROUP BY alert_id)
WHERE {any_state:Bool} OR state = {state:String}
ORDER BY changed_at DESC, alert_id
"""
ALERT_COLUMNS = [
    "alert_id", "model", "version", "kind", "severity", "state", "summary", "owner", "runbook_url", "evidence",
    "ts", "evidence_ts", "fired_at", "changed_at", "acknowledged", "silenced",
]  # fmt: skip


def alerts(model: str | None = None, *, state: str | None = None, store: Store | None = None) -> pd.DataFrame:
    """Each alert's current state, newest change first; optionally one model or state.

    The columns of the ``alerts_current`` view, and: ``ts``, the decision time of the latest change
    (the event time by which everything it used had arrived; ``changed_at`` is the same time, the
    view's name for it); ``evidence_ts``, the event time of its evidence (the per-event alarm, or the
    end of the window that decided it); ``fired_at``, when its current firing began; ``evidence`` as a
    dict; ``acknowledged`` (its current firing was acked with ``watchkeeper ack``) and ``silenced`` (a
    silence in force matches it), as ``watchkeeper alerts`` shows them.
    """
    from types import SimpleNamespace

    params = {"any_model": model is None, "model": model or "", "any_state": state is None, "state": state or ""}
    now = datetime.now(UTC)
    with _store(store) as s:
        df = s.query_df(ALERTS_SQL, params)
        if df.empty and model is not None:
            _check_model(s, model)
        silences = _silences(s, now) if not df.empty else []
    out = _frame(df, ALERT_COLUMNS)
    if df.empty:
        return out
    out["evidence"] = [json.loads(e) if isinstance(e, str) and e else {} for e in out["evidence"]]
    acked, silenced = [], []
    for row in out.itertuples(index=False):
        # The fields Silence.silences/acknowledges read.
        alert = SimpleNamespace(model=row.model, version=row.version, kind=row.kind, alert_id=row.alert_id,
                                state=row.state, evidence=row.evidence, ts=row.ts.to_pydatetime())  # fmt: skip
        silenced.append(any(x.silences(alert, now) for x in silences))
        acked.append(row.state == "firing" and any(x.acknowledges(alert) for x in silences))
    out["acknowledged"], out["silenced"] = acked, silenced
    return out


# --- Notebook display --------------------------------------------------------------------------

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
_MAX_CHARTS = 12
_W, _H, _PAD = 220, 54, 4


@cache
def frame_class() -> type:
    """The DataFrame subclass the functions return: a DataFrame whose notebook display adds small charts.

    Defined on first use, so that importing this module does not import pandas.
    """
    import pandas as pd

    class Frame(pd.DataFrame):  # type: ignore[misc]
        """A DataFrame with an inline SVG chart per charted column over ``window_start`` in its HTML display."""

        @property
        def _constructor(self) -> type:
            return Frame

        def _repr_html_(self) -> str | None:
            table = super()._repr_html_()
            charts = chart_svgs(self)
            if not charts:
                return table
            return f'<div style="display:flex;flex-wrap:wrap;gap:10px;margin-bottom:8px">{"".join(charts)}</div>' + (
                table or ""
            )

    Frame.__module__ = __name__
    return Frame


def _number(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def chart_svgs(df: pd.DataFrame) -> list[str]:
    """One small inline SVG per charted column that has at least two values: a line per version over the
    windows, with the column's name, its latest value and its range. Empty without a ``window_start``."""
    if "window_start" not in df.columns or len(df) < 2:
        return []
    labels = df.attrs.get("labels", {})
    times = [t.timestamp() for t in df["window_start"]]
    t0, t1 = min(times), max(times)
    row_versions = list(df["version"]) if "version" in df.columns else [None] * len(df)
    versions = list(dict.fromkeys(row_versions))
    out: list[str] = []
    for col in df.attrs.get("chart", []):
        if col not in df.columns or len(out) >= _MAX_CHARTS:
            continue
        values = [_number(v) for v in df[col]]
        finite = [v for v in values if v is not None]
        if len(finite) < 2:
            continue
        lo, hi = min(finite), max(finite)
        latest = max((t, v) for t, v in zip(times, values, strict=True) if v is not None)[1]
        lines = []
        for i, version in enumerate(versions):
            pts = [
                (t, v)
                for t, v, ver in zip(times, values, row_versions, strict=True)
                if v is not None and ver == version
            ]
            if not pts:
                continue
            xy = " ".join(
                f"{_PAD + (t - t0) / ((t1 - t0) or 1) * (_W - 2 * _PAD):.1f},"
                f"{_H - _PAD - (v - lo) / ((hi - lo) or 1) * (_H - 2 * _PAD):.1f}"
                for t, v in pts
            )
            title = html.escape(f"{labels.get(col, col)} {version}" if version is not None else labels.get(col, col))
            lines.append(
                f'<polyline fill="none" stroke="{_COLOURS[i % len(_COLOURS)]}" stroke-width="1.5" points="{xy}">'
                f"<title>{title}</title></polyline>"
            )
        name = html.escape(str(labels.get(col, col)))
        legend = " ".join(
            f'<span style="color:{_COLOURS[i % len(_COLOURS)]}">{html.escape(str(v))}</span>'
            for i, v in enumerate(versions)
            if v is not None
        )
        out.append(
            '<figure style="margin:0;font:11px sans-serif">'
            f"<figcaption><b>{name}</b> latest {latest:.4g} (range {lo:.4g} – {hi:.4g}) {legend}</figcaption>"
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
            f'role="img" aria-label="{name} per window">'
            f'<rect width="{_W}" height="{_H}" fill="#fafafa" stroke="#ddd"/>{"".join(lines)}</svg></figure>'
        )
    return out
