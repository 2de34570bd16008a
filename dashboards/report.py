"""The static HTML report: the Grafana panels, rendered from the store without Grafana.

``render_report(store, out_dir)`` runs every panel of ``dashboards/panels/``
against the store, for the range the data covers (the Grafana macros and
template variables become query parameters, ``watchkeeper.dashboards.macros.bind``), and
writes:

- ``out_dir/index.html``: the fleet overview, alerts and pipeline health;
- ``out_dir/model-<name>.html``: the model detail of each model (all versions).

Charts are inline SVG (``dashboards/charts.py``); each panel keeps its SQL, as
Grafana would send it, under a "SQL" disclosure. The pages need no network and
no JavaScript. ``summary_page`` is the demo's ``summary.html``, in the same style.

The layout is the report's, not Grafana's grid: free text (``TEXT_COLUMNS``) goes on
a line of its own under its row, wide tables take the whole row (``panel_span``),
the last panel of a line widens to fill it (``row_spans``), time axes span the metrics
windows plus the panel's own data (``_time_axis``), series of different statistics
get an axis each (``OWN_AXIS``), and charts are drawn a second time for narrow
screens (``NARROW_PX``), where every panel takes the full width.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from watchkeeper.dashboards import charts
from watchkeeper.dashboards.macros import TimeRange, bind
from watchkeeper.dashboards.panels import (
    ALERTS,
    FLEET,
    MODEL,
    MODEL_VARIABLE,
    PIPELINE,
    VERSION_VARIABLE,
    DashboardSpec,
    Panel,
)

log = logging.getLogger(__name__)

MAX_POINTS = 120
PX_PER_COLUMN = 56  # SVG width per grid column: text keeps its size whatever the panel width
# Below 1000 px every panel takes the whole row (CSS): its charts are drawn again for that width
# (about 720 px of chart), so that their text stays legible instead of shrinking with the page.
NARROW_PX = 720
DIAGONAL = {"model_roc", "model_calibration"}
# Free text (an alert's summary, a dead letter's example) goes on a line of its own under the
# row's other cells: squeezed into a column it wraps into a dozen lines and pushes the table sideways.
TEXT_COLUMNS = frozenset({"summary", "example"})
# A table wider than this many columns (or with free text) takes the whole row.
MAX_HALF_ROW_COLUMNS = 5
# Series that are different statistics (a KS distance in [0, 1], an unbounded chi-square): one
# small chart each, on its own axis, so that neither is flattened by the other's scale.
OWN_AXIS = frozenset({"model_output_drift"})


class QueryStore(Protocol):
    """What the report needs of ``watchkeeper.sinks.writer.Store``."""

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class PanelData:
    panel: Panel
    rows: list[dict[str, Any]]
    error: str | None = None


def _epoch(v: Any) -> float:
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp()
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=UTC).timestamp()
    return float(v)


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def data_range(store: QueryStore) -> TimeRange | None:
    """The range the stored data covers: metrics windows, alerts and dead letters."""
    spans = [
        "SELECT min(window_start) AS t0, max(window_end) AS t1, count() AS n FROM metrics FINAL",
        "SELECT min(toDateTime(ts)) AS t0, max(toDateTime(ts)) AS t1, count() AS n FROM alerts FINAL",
        "SELECT min(toDateTime(ts)) AS t0, max(toDateTime(ts)) AS t1, count() AS n FROM dead_letters FINAL",
    ]
    lo: float | None = None
    hi: float | None = None
    for sql in spans:
        r = store.query(sql)[0]
        if int(r["n"]) == 0:
            continue
        t0, t1 = _epoch(r["t0"]), _epoch(r["t1"])  # toDateTime truncates: t1 + 1 s covers the last ts
        lo = t0 if lo is None else min(lo, t0)
        hi = t1 if hi is None else max(hi, t1)
    if lo is None or hi is None:
        return None
    # Whole seconds, as the plugin's $__timeFilter; the end rounded up so the last row is inside.
    return TimeRange(datetime.fromtimestamp(math.floor(lo), UTC), datetime.fromtimestamp(math.floor(hi) + 1, UTC))


def windows_range(store: QueryStore) -> TimeRange | None:
    """The range the metrics windows cover: where the time series' data is (dead letters are stamped
    when they arrive, which for a replayed file is long after its windows)."""
    r = store.query("SELECT min(window_start) AS t0, max(window_end) AS t1, count() AS n FROM metrics FINAL")[0]
    if int(r["n"]) == 0:
        return None
    return TimeRange(datetime.fromtimestamp(_epoch(r["t0"]), UTC), datetime.fromtimestamp(_epoch(r["t1"]), UTC))


def _within(inner: TimeRange | None, outer: TimeRange) -> TimeRange:
    """``inner`` clipped to ``outer``; ``outer`` when they do not overlap."""
    if inner is None:
        return outer
    start, end = max(inner.start, outer.start), min(inner.end, outer.end)
    return TimeRange(start, end) if start < end else outer


def report_interval(store: QueryStore, time_range: TimeRange) -> int:
    """Grafana's ``$__interval_s`` for the report: at most ``MAX_POINTS`` points, whole windows."""
    rows = store.query(
        "SELECT max(dateDiff('second', window_start, window_end)) AS w FROM metrics FINAL WHERE version != ''"
    )
    window = int(rows[0]["w"] or 0) if rows else 0
    interval = time_range.interval_s(MAX_POINTS)
    if window > 0:
        interval = max(window, math.ceil(interval / window) * window)
    return interval


def run_panel(
    store: QueryStore,
    panel: Panel,
    time_range: TimeRange,
    interval_s: int,
    *,
    model: str | None = None,
    versions: list[str] | None = None,
) -> PanelData:
    q = bind(panel.sql, time_range, interval_s=interval_s, model=model, versions=versions)
    try:
        return PanelData(panel, store.query(q.sql, q.params))
    except Exception as exc:  # a broken panel must not hide the others
        log.warning("panel %s failed: %s", panel.key, exc)
        return PanelData(panel, [], error=str(exc).splitlines()[0][:300])


def variable_values(store: QueryStore, sql: str, time_range: TimeRange, model: str | None = None) -> list[str]:
    q = bind(sql, time_range, model=model)
    return [str(next(iter(r.values()))) for r in store.query(q.sql, q.params)]


# --------------------------------------------------------------------------- rendering


def _cell(column: str, v: Any, link_model: bool, unit: str | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return '<td class="na">–</td>'
    if isinstance(v, datetime):
        return f'<td class="t">{html.escape(v.strftime("%Y-%m-%d %H:%M:%S"))}</td>'
    if column == "sunset_candidate":
        return '<td><span class="badge bad">sunset</span></td>' if v else "<td></td>"
    if column == "firing_alerts" and isinstance(v, int | float):
        cls = "badge bad" if v else "badge ok"
        return f'<td class="n"><span class="{cls}">{int(v)}</span></td>'
    if column == "state":
        cls = "bad" if v == "firing" else "ok"
        return f'<td><span class="badge {cls}">{html.escape(str(v))}</span></td>'
    if column == "model" and link_model and v:
        return f'<td><a href="model-{html.escape(str(v))}.html">{html.escape(str(v))}</a></td>'
    if isinstance(v, bool):
        return f"<td>{'yes' if v else 'no'}</td>"
    if isinstance(v, int | float):
        if column == "trend" or column == "lift_vs_baseline":
            cls = "up" if v > 0 else "down" if v < 0 else ""
            return f'<td class="n {cls}">{v * 100:+.1f} pts</td>'
        if unit == "percentunit":
            return f'<td class="n">{charts.fmt_value(float(v), unit)}</td>'
        text = f"{v:,}" if isinstance(v, int) else charts.fmt_value(float(v))
        return f'<td class="n">{html.escape(text)}</td>'
    return f"<td>{html.escape(str(v))}</td>"


def table_html(
    columns: list[str], rows: list[dict[str, Any]], *, link_model: bool = False, units: dict[str, str] | None = None
) -> str:
    """A table; the ``TEXT_COLUMNS`` of each row on a full-width line under its other cells.

    >>> t = table_html(["kind", "summary"], [{"kind": "drift", "summary": "velocity drifted"}])
    >>> '<td colspan="1" class="text" data-col="summary">velocity drifted</td>' in t
    True
    """
    units = units or {}
    cols = [c for c in columns if c not in TEXT_COLUMNS]
    text = [c for c in columns if c in TEXT_COLUMNS]
    head = "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in cols)
    # One <tbody> per record: its lines read as one item (one border under them all).
    body = []
    for r in rows:
        lines = ["<tr>" + "".join(_cell(c, r.get(c), link_model, units.get(c)) for c in cols) + "</tr>"]
        for c in text:
            if r.get(c) not in (None, ""):
                label = f"<b>{html.escape(c)}</b> " if len(text) > 1 or c != "summary" else ""
                lines.append(
                    f'<tr><td colspan="{len(cols)}" class="text" data-col="{c}">'
                    f"{label}{html.escape(str(r[c]))}</td></tr>"
                )
        body.append(f"<tbody>{''.join(lines)}</tbody>")
    return f'<div class="scroll"><table class="grid"><thead><tr>{head}</tr></thead>{"".join(body)}</table></div>'


def _table(data: PanelData) -> str:
    p = data.panel
    return table_html(list(p.columns), data.rows, link_model=p.link_model, units=dict(p.column_units))


def _time_series(data: PanelData) -> dict[str, list[charts.Point]]:
    p = data.panel
    values = p.values
    out: dict[str, list[charts.Point]] = {}
    for r in data.rows:
        label = " · ".join(str(r[s]) for s in p.series)
        for v in values:
            y = _num(r.get(v))
            if y is None:
                continue
            name = label if len(values) == 1 and label else (f"{label} · {v}" if label else v)
            out.setdefault(name, []).append((_epoch(r["time"]), y))
    return out


def _chart(data: PanelData, shown: TimeRange, interval_s: int, span: int) -> str:
    """The panel's visualisation; ``shown`` is the range the windows cover (the state timeline's extent)."""
    p = data.panel
    if p.viz == "table":
        return _table(data)
    if p.viz == "stat":
        v = _num(next(iter(data.rows[0].values())))
        return f'<div class="stat">{html.escape(charts.fmt_value(v, p.unit or "short"))}</div>'
    if p.viz == "xychart":
        x, y = p.columns[0], p.columns[1]
        pts = [(a, b) for a, b in ((_num(r[x]), _num(r[y])) for r in data.rows) if a is not None and b is not None]
        return charts.xy_chart(pts, x_label=x, y_label=y, diagonal=p.key in DIAGONAL, origin=p.key == "model_roc")
    if p.key in OWN_AXIS and p.viz == "timeseries":
        return _own_axes(data, shown, interval_s)
    wide = span * PX_PER_COLUMN
    svg = _svg_chart(data, shown, interval_s, wide)
    if not svg or abs(wide - NARROW_PX) <= 0.2 * NARROW_PX:
        return svg
    return f'<div class="wide">{svg}</div><div class="narrow">{_svg_chart(data, shown, interval_s, NARROW_PX)}</div>'


def _time_axis(series: dict[str, list[charts.Point]], shown: TimeRange, bar_s: int) -> tuple[float, float] | None:
    """A time series' axis: the windows' range and any of the series' points beyond it (bars end
    ``bar_s`` after their time). Not the report's whole range: that reaches the last dead letter,
    stamped on arrival, which for a replayed file is hours after its windows. Series entirely
    outside the windows (those dead letters) get an axis of their own extent.

    >>> windows = TimeRange(datetime(2026, 1, 1, 10, tzinfo=UTC), datetime(2026, 1, 1, 12, tzinfo=UTC))
    >>> t = windows.start.timestamp()
    >>> _time_axis({"alerts": [(t + 3600, 1.0)]}, windows, 300) == (t, t + 7200)
    True
    >>> _time_axis({"dead letters": [(t + 4 * 3600, 8.0)]}, windows, 300) == (t + 4 * 3600, t + 4 * 3600 + 300)
    True
    """
    times = [t for pts in series.values() for t, _ in pts]
    if not times:
        return None
    lo, hi = min(times), max(times) + bar_s
    w0, w1 = shown.start.timestamp(), shown.end.timestamp()
    if hi <= w0 or lo >= w1:
        return (lo, hi) if hi > lo else None
    return min(lo, w0), max(hi, w1)


def _own_axes(data: PanelData, shown: TimeRange, interval_s: int) -> str:
    """One small time series chart per series, each on its own y axis."""
    parts = []
    for name, pts in _time_series(data).items():
        axis = _time_axis({name: pts}, shown, 0)
        svg = charts.line_chart({name: pts}, unit=data.panel.unit, t_range=axis, width=NARROW_PX, bucket_s=interval_s)
        if svg:
            parts.append(f'<div class="multiple"><h4>{html.escape(name)}</h4>{svg}</div>')
    return f'<div class="multiples">{"".join(parts)}</div>' if parts else ""


def _svg_chart(data: PanelData, shown: TimeRange, interval_s: int, width: int) -> str:
    p = data.panel
    t0, t1 = shown.start.timestamp(), shown.end.timestamp()
    if p.viz == "timeseries":
        series = _time_series(data)
        axis = _time_axis(series, shown, interval_s if p.stacked else 0)
        return charts.line_chart(series, unit=p.unit, stacked=p.stacked, t_range=axis, width=width, bucket_s=interval_s)
    if p.viz == "barchart":
        cats = [str(r[p.columns[0]]) for r in data.rows]
        cols = {c: [_num(r[c]) for r in data.rows] for c in p.values}
        return charts.bar_chart(cats, cols, unit=p.unit, width=width)
    if p.viz == "heatmap":
        label, value = p.series[0], p.values[0]
        cells = {}
        for r in data.rows:
            v = _num(r[value])
            if v is not None:
                cells[(str(r[label]), _epoch(r["time"]))] = v
        times = sorted({t for _, t in cells})
        rows = sorted({k for k, _ in cells})
        return charts.heatmap(times, rows, cells, span=t1 - t0, width=width)
    if p.viz == "statetimeline":
        lanes: dict[str, list[tuple[float, float]]] = {}
        for r in data.rows:
            v = _num(r[p.values[0]])
            if v is not None:
                lanes.setdefault(" · ".join(str(r[s]) for s in p.series), []).append((_epoch(r["time"]), v))
        changes = [t for v in lanes.values() for t, _ in v]
        lo, hi = min([t0, *changes]), max([t1, *changes])
        return charts.state_timeline({k: sorted(v) for k, v in lanes.items()}, lo, hi, width=width)
    raise ValueError(p.viz)


def panel_span(data: PanelData) -> int:
    """Grid columns (of 24) the panel takes in the report: wide tables take the whole row."""
    p = data.panel
    if p.viz == "table" and (TEXT_COLUMNS & set(p.columns) or len(p.columns) > MAX_HALF_ROW_COLUMNS):
        return 24
    return p.width


def row_spans(spans: list[int]) -> list[int]:
    """The panels' spans in a row of 24 columns, the last panel of a line that would leave a gap
    widened to fill it.

    >>> row_spans([12, 24, 12])  # a half-width panel before a full-width table, one after it
    [24, 24, 24]
    >>> row_spans([8, 8, 8, 12])
    [8, 8, 8, 24]
    """
    spans = list(spans)
    used = 0
    for i, span in enumerate(spans):
        used = span if used + span > 24 else used + span
        line_ends = i + 1 == len(spans) or used + spans[i + 1] > 24
        if line_ends and used < 24:
            spans[i] += 24 - used
            used = 24
    return spans


def render_panel(data: PanelData, shown: TimeRange, interval_s: int, span: int | None = None) -> str:
    """A panel as a ``<figure>``; ``shown`` is the range the windows cover, ``span`` its grid columns."""
    p = data.panel
    span = span or panel_span(data)
    if data.error:
        body = f'<div class="error">Query failed: {html.escape(data.error)}</div>'
        state = "error"
    elif not data.rows:
        body = '<div class="empty">No data in this range.</div>'
        state = "empty"
    else:
        body = _chart(data, shown, interval_s, span)
        state = "chart" if body else "empty"
        body = body or '<div class="empty">No plottable values in this range.</div>'
    return (
        f'<figure class="panel" style="--span:{span}" data-panel="{p.key}" data-viz="{p.viz}" '
        f'data-state="{state}" data-rows="{len(data.rows)}">'
        f"<figcaption><h3>{html.escape(p.title)}</h3><p>{html.escape(p.description)}</p></figcaption>"
        f"{body}"
        f"<details><summary>SQL</summary><pre>{html.escape(p.sql.strip())}</pre></details>"
        "</figure>"
    )


CSS = """
:root{--fg:#1d2330;--muted:#667085;--line:#e4e7ec;--bg:#f6f7f9;--card:#fff;--accent:#3274d9}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
header{background:#111827;color:#fff;padding:14px 28px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0}header a{color:#c7d2fe;text-decoration:none;margin-right:14px}
header .range{color:#9ca3af;font-size:12px;margin-left:auto}
main{padding:18px 28px 40px;max-width:1500px;margin:auto}
h2{font-size:17px;margin:26px 0 6px}h2 small{color:var(--muted);font-weight:normal;font-size:13px;margin-left:8px}
.row-title{font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);margin:18px 0 6px}
.row{display:grid;grid-template-columns:repeat(24,1fr);gap:14px}
.panel{grid-column:span var(--span);margin:0;background:var(--card);border:1px solid var(--line);
border-radius:8px;padding:12px 14px;min-width:0}
figcaption h3{font-size:14px;margin:0}figcaption p{margin:2px 0 8px;color:var(--muted);font-size:12px}
svg.chart{width:100%;height:auto;display:block}svg.chart.xy{max-width:330px;margin:auto}
svg .grid{stroke:#eef0f3}svg .tick{stroke:#98a2b3}svg .frame{fill:none;stroke:#d0d5dd}
svg .line{fill:none;stroke-width:2;stroke-linejoin:round}svg .area{opacity:.55;stroke:none}
svg .ref{stroke:#98a2b3;stroke-dasharray:4 4}svg text{font-size:11px;fill:#475467}
svg .ylab{text-anchor:end}svg .xlab,svg .axis{text-anchor:middle}svg .val{font-size:10px}
svg .lane{fill:#f2f4f7}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:#475467;margin-top:4px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.stat{font-size:34px;font-weight:600;padding:8px 0;color:var(--accent)}
.scroll{overflow:auto;max-height:420px}
table.grid{border-collapse:collapse;width:100%;font-size:13px}
table.grid th{text-align:left;font-weight:600;color:#475467;border-bottom:2px solid var(--line);padding:5px 8px;
position:sticky;top:0;background:#fff;white-space:nowrap}
table.grid td{padding:5px 8px}table.grid tbody{border-bottom:1px solid var(--line)}
table.grid td.text{padding-top:0;color:#344054}td.text b{color:var(--muted);font-weight:600}
.multiples{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:6px 18px}
.multiple h4{font-size:12px;font-weight:600;color:#475467;margin:4px 0 2px}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.t{white-space:nowrap;color:#475467}td.na{color:#98a2b3;text-align:right}
td.up{color:#12813b}td.down{color:#c4162a}a{color:var(--accent)}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px}
.badge.bad{background:#fde8e8;color:#b42318}.badge.ok{background:#e7f6ec;color:#12813b}
.empty{color:#98a2b3;padding:26px 0;text-align:center;font-style:italic}
.error{color:#b42318;background:#fde8e8;border-radius:6px;padding:10px}
details{margin-top:8px}summary{cursor:pointer;color:var(--muted);font-size:12px}
pre{background:#f6f7f9;border-radius:6px;padding:8px;font-size:11.5px;overflow:auto;white-space:pre-wrap}
ul.models{columns:3;padding-left:18px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
td.spark{width:35%;min-width:120px}svg.spark{width:100%;height:40px;display:block}
.narrow{display:none}
@media (max-width:1000px){.panel{grid-column:span 24}.wide{display:none}.narrow{display:block}
table.grid th{white-space:normal;vertical-align:bottom}table.grid th,table.grid td{padding:4px 5px}}
"""


def _page(title: str, nav: str, range_text: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><nav>{nav}</nav>"
        f'<span class="range">{html.escape(range_text)}</span></header>'
        f"<main>{body}</main></body></html>"
    )


def _dashboard_section(
    spec: DashboardSpec,
    datas: Iterable[PanelData],
    shown: TimeRange,
    interval_s: int,
    anchor: str,
    *,
    title: str | None = None,
    subtitle: str | None = None,
) -> str:
    by_key = {d.panel.key: d for d in datas}
    heading = html.escape(title or spec.title.split(" · ")[-1])
    sub = html.escape(subtitle or spec.description)
    parts = [f'<h2 id="{anchor}">{heading}<small>{sub}</small></h2>']
    for row in spec.rows:
        parts.append(f'<div class="row-title">{html.escape(row.title)}</div><div class="row">')
        row_datas = [by_key[p.key] for p in row.panels]
        for data, span in zip(row_datas, row_spans([panel_span(d) for d in row_datas]), strict=True):
            parts.append(render_panel(data, shown, interval_s, span))
        parts.append("</div>")
    return "".join(parts)


def _range_text(time_range: TimeRange, interval_s: int) -> str:
    fmt = "%Y-%m-%d %H:%M"
    step = timedelta(seconds=interval_s)
    return (
        f"{time_range.start.strftime(fmt)} – {time_range.end.strftime(fmt)} UTC · "
        f"one point per {int(step.total_seconds() // 60)} min"
    )


def summary_page(summary: dict[str, Any]) -> str:
    """The demo's ``summary.html``: each model's accuracy before and after the drift, every alert
    state change the run raised (newest first) and the dead letters, linking to ``index.html``."""
    rows = []
    for name, m in summary["models"].items():
        link = f'<a href="model-{html.escape(name)}.html">{html.escape(name)}</a>'
        accuracy = "".join(
            f'<td class="n">{charts.fmt_value(m[k], "percentunit")}</td>' for k in ("accuracy_before", "accuracy_after")
        )
        rows.append(
            f'<tbody><tr><td>{link}</td><td class="n">{m["predictions"]:,}</td><td class="n">{m["labelled"]:,}</td>'
            f'{accuracy}<td class="spark">{charts.sparkline(m["accuracy_by_window"])}</td></tr></tbody>'
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("model", "predictions", "labelled", "accuracy before", "accuracy after", "accuracy by window")
    )
    models = f'<div class="scroll"><table class="grid"><thead><tr>{head}</tr></thead>{"".join(rows)}</table></div>'
    alerts = [
        {**a, "changed": datetime.fromisoformat(a["ts"].replace("Z", "+00:00"))}
        for a in sorted(summary.get("alerts", []), key=lambda a: a["ts"], reverse=True)
    ]
    alert_table = (
        table_html(["changed", "model", "version", "kind", "severity", "state", "summary"], alerts, link_model=True)
        if alerts
        else '<div class="empty">No alerts were raised.</div>'
    )
    dead = [{"n": d["n"], "model": d["model"], "reason": d["error"]} for d in summary.get("dead_letters", [])]
    dead_table = table_html(["n", "model", "reason"], dead) if dead else '<div class="empty">No dead letters.</div>'
    body = (
        f'<h2 id="models">Models<small>accuracy of labelled predictions before and after the drift</small></h2>'
        f'<section class="card">{models}</section>'
        f'<h2 id="alerts">Alerts ({len(alerts)})<small>every state change the run raised, newest first</small></h2>'
        f'<section class="card">{alert_table}</section>'
        f'<h2 id="dead-letters">Dead letters ({summary.get("dead_letters_total", len(dead))})'
        f"<small>rejected messages and events, by reason</small></h2>"
        f'<section class="card">{dead_table}</section>'
    )
    nav = '<a href="#alerts">Alerts</a><a href="#dead-letters">Dead letters</a><a href="index.html">Full report</a>'
    drift_at = datetime.fromisoformat(summary["drift_at"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return _page("watchkeeper demo", nav, f"drift injected at {drift_at}", body)


def render_report(store: QueryStore, out_dir: Path, time_range: TimeRange | None = None) -> list[Path]:
    """Render ``index.html`` and one ``model-<name>.html`` per model into ``out_dir``; returns the pages."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tr = time_range or data_range(store)
    if tr is None:
        empty = _page("watchkeeper report", "", "", '<div class="empty">The store holds no data yet.</div>')
        (out / "index.html").write_text(empty)
        return [out / "index.html"]
    interval = report_interval(store, tr)
    shown = _within(windows_range(store), tr)
    range_text = _range_text(tr, interval)
    models = variable_values(store, MODEL_VARIABLE.sql, tr)

    nav = "".join(f'<a href="index.html#{a}">{a.capitalize()}</a>' for a in ("fleet", "alerts", "pipeline"))
    sections = []
    for spec, anchor in ((FLEET, "fleet"), (ALERTS, "alerts"), (PIPELINE, "pipeline")):
        datas = [run_panel(store, p, tr, interval) for p in spec.panels()]
        sections.append(_dashboard_section(spec, datas, shown, interval, anchor))
        if spec is FLEET:
            links = "".join(f'<li><a href="model-{html.escape(m)}.html">{html.escape(m)}</a></li>' for m in models)
            sections.append(f'<div class="row-title">Model pages</div><ul class="models">{links}</ul>')
    pages = [out / "index.html"]
    pages[0].write_text(_page("watchkeeper · fleet report", nav, range_text, "".join(sections)))

    for model in models:
        versions = variable_values(store, VERSION_VARIABLE.sql, tr, model=model)
        datas = [run_panel(store, p, tr, interval, model=model, versions=versions) for p in MODEL.panels()]
        subtitle = f"versions {', '.join(versions)} · {MODEL.description}"
        body = _dashboard_section(MODEL, datas, shown, interval, "model", title=model, subtitle=subtitle)
        page = out / f"model-{model}.html"
        page.write_text(_page(f"watchkeeper · {model}", nav, range_text, body))
        pages.append(page)
    return pages
