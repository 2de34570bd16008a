"""Small, dependency-free SVG charts for the static report.

Each function returns an ``<svg class="chart">`` string: line charts (optionally
stacked), x/y curves on the unit square, horizontal grouped bars, a heatmap and
a state timeline. Values are escaped; nothing here runs JavaScript.

>>> svg = line_chart({"a": [(0.0, 1.0), (60.0, 2.0)]}, unit=None)
>>> svg.startswith('<svg class="chart"') and "polyline" in svg
True
>>> fmt_value(0.4567, "percentunit"), fmt_value(12345, "short"), fmt_value(3.25, "ms")
('45.7%', '12.3k', '3.25 ms')
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

PALETTE = (
    "#3274d9",
    "#e0752d",
    "#37872d",
    "#c4162a",
    "#8f3bb8",
    "#1f9bab",
    "#b8860b",
    "#5c6b7a",
    "#d44a9c",
    "#6e9f2f",
)
W, H = 640, 240
M_LEFT, M_RIGHT, M_TOP, M_BOTTOM = 56, 12, 10, 26

Point = tuple[float, float]


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def fmt_value(v: float | None, unit: str | None = None) -> str:
    """A number as a person reads it, in the panel's unit."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if unit == "percentunit":
        return f"{v * 100:.1f}%"
    if unit == "ms":
        return f"{v:.3g} ms"
    if unit == "reqps":
        return f"{v:.3g}/s"
    if unit == "short" or float(v).is_integer():
        a = abs(v)
        for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if a >= div:
                return f"{v / div:.3g}{suffix}"
        return f"{v:.0f}" if float(v).is_integer() else f"{v:.3g}"
    return f"{v:.3g}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


_STEPS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)


def time_ticks(t0: float, t1: float, n: int = 6) -> list[float]:
    span = max(t1 - t0, 1.0)
    step = next((s for s in _STEPS if span / s <= n), _STEPS[-1])
    first = math.ceil(t0 / step) * step
    return [first + i * step for i in range(int((t1 - first) // step) + 1)]


def time_label(t: float, span: float) -> str:
    d = datetime.fromtimestamp(t, UTC)
    return d.strftime("%H:%M") if span <= 2 * 86400 else d.strftime("%m-%d %H:%M")


def _open(width: int = W, height: int = H, label: str = "", cls: str = "chart", attrs: str = "") -> str:
    return (
        f'<svg class="{cls}"{attrs} xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'preserveAspectRatio="xMidYMid meet" role="img" aria-label="{esc(label)}">'
    )


def _xlab(x: float, y: float, text: str, width: int, room: float = 18) -> str:
    """A time axis label centred on ``x``; near the right edge anchored at its end, so it is not cut off."""
    edge = ' style="text-anchor:end"' if x > width - room else ""
    return f'<text class="xlab"{edge} x="{x:.1f}" y="{y:.0f}">{esc(text)}</text>'


def _legend(names: Sequence[str]) -> str:
    items = "".join(
        f'<span class="key"><i style="background:{color(i)}"></i>{esc(n)}</span>' for i, n in enumerate(names)
    )
    return f'<div class="legend">{items}</div>' if len(names) > 1 else ""


def _y_axis(out: list[str], ticks: list[float], sy: Callable[[float], float], width: int, unit: str | None) -> None:
    for tk in ticks:
        y = sy(tk)
        out.append(f'<line class="grid" x1="{M_LEFT}" x2="{width - M_RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="ylab" x="{M_LEFT - 6}" y="{y + 4:.1f}">{esc(fmt_value(tk, unit))}</text>')


def line_chart(
    series: dict[str, list[Point]],
    *,
    unit: str | None,
    stacked: bool = False,
    t_range: tuple[float, float] | None = None,
    width: int = W,
    bucket_s: float = 0.0,
) -> str:
    """Time series (x = epoch seconds): lines, or stacked bars of ``bucket_s`` seconds when ``stacked``.

    The time axis spans ``t_range`` if given, else the data: from the first point to the last
    (to the end of the last bar when stacked), so no part of it is empty.

    >>> svg = line_chart({"a": [(0.0, 1.0), (300.0, 2.0)]}, unit=None, stacked=True, bucket_s=300)
    >>> 'data-t0="0" data-t1="600"' in svg
    True
    """
    names = [n for n in series if any(v is not None for _, v in series[n])]
    if not names:
        return ""
    pts_all = [p for n in names for p in series[n]]
    t0, t1 = t_range or (min(p[0] for p in pts_all), max(p[0] for p in pts_all))
    if stacked:
        bucket_s = bucket_s or _min_step([t for t, _ in pts_all])
        t1 = max(t1, max(p[0] for p in pts_all) + bucket_s)
        totals: dict[float, float] = {}
        for n in names:
            for t, v in series[n]:
                totals[t] = totals.get(t, 0.0) + (v or 0.0)
        lo, hi = 0.0, max(totals.values())
    else:
        ys = [v for _, v in pts_all]
        lo, hi = min(ys), max(ys)
        if unit in ("short", "reqps"):
            lo = min(lo, 0.0)
    if t1 <= t0:  # one point in time: a bucket (or a minute) either side, the point in the middle
        t0, t1 = t0 - (bucket_s or 60), t1 + (bucket_s or 60)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
    # Values that cannot be negative (counts, rates, test statistics) keep the axis at or above 0.
    ticks = nice_ticks(max(lo - pad, 0.0) if lo >= 0 else lo - pad, hi + pad)
    y0, y1 = ticks[0], ticks[-1]
    pw, ph = width - M_LEFT - M_RIGHT, H - M_TOP - M_BOTTOM

    def sx(t: float) -> float:
        return M_LEFT + (t - t0) / (t1 - t0) * pw

    def sy(v: float) -> float:
        return M_TOP + ph - (v - y0) / (y1 - y0) * ph

    # The time axis' range, for readers of the page's markup (the report test compares it with the data).
    out = [_open(width, H, "time series", attrs=f' data-t0="{t0:.0f}" data-t1="{t1:.0f}"')]
    _y_axis(out, ticks, sy, width, unit)
    span = t1 - t0
    for tt in time_ticks(t0, t1):
        x = sx(tt)
        out.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{M_TOP + ph}" y2="{M_TOP + ph + 4}"/>')
        out.append(_xlab(x, H - 8, time_label(tt, span), width))
    if stacked:
        base: dict[float, float] = {}
        bw = max(sx(t0 + bucket_s) - sx(t0) - 1, 1.0)
        for i, name in enumerate(names):
            for t, v in series[name]:
                if not v:
                    continue
                b = base.get(t, 0.0)
                base[t] = b + v
                out.append(
                    f'<rect class="bar" x="{sx(t):.1f}" y="{sy(b + v):.1f}" width="{bw:.1f}" '
                    f'height="{max(sy(b) - sy(b + v), 0.5):.1f}" fill="{color(i)}">'
                    f"<title>{esc(name)} {esc(time_label(t, span))}: {esc(fmt_value(v, unit))}</title></rect>"
                )
    else:
        for i, name in enumerate(names):
            pts = [(t, v) for t, v in series[name] if v is not None]
            line = " ".join(f"{sx(t):.1f},{sy(v):.1f}" for t, v in pts)
            if len(pts) == 1:
                out.append(f'<circle cx="{sx(pts[0][0]):.1f}" cy="{sy(pts[0][1]):.1f}" r="3" fill="{color(i)}"/>')
            out.append(
                f'<polyline class="line" stroke="{color(i)}" points="{line}">'
                f"<title>{esc(name)} (last: {esc(fmt_value(pts[-1][1], unit))})</title></polyline>"
            )
    out.append(f'<rect class="frame" x="{M_LEFT}" y="{M_TOP}" width="{pw}" height="{ph}"/>')
    out.append("</svg>")
    return "".join(out) + _legend(names)


def _min_step(times: list[float]) -> float:
    ts = sorted(set(times))
    steps = [b - a for a, b in zip(ts, ts[1:], strict=False) if b > a]
    return min(steps) if steps else 60.0


def xy_chart(points: list[Point], *, x_label: str, y_label: str, diagonal: bool, origin: bool) -> str:
    """A curve on the unit square (ROC, PR, calibration)."""
    pts = [(x, y) for x, y in points if x is not None and y is not None]
    if not pts:
        return ""
    if origin:
        pts = [(0.0, 0.0), *pts]
    size, m = 300, 38
    p = size - 2 * m

    def sx(x: float) -> float:
        return m + x * p

    def sy(y: float) -> float:
        return size - m - y * p

    out = [_open(size, size, f"{y_label} against {x_label}", "chart xy")]
    for tk in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line class="grid" x1="{sx(0)}" x2="{sx(1)}" y1="{sy(tk):.1f}" y2="{sy(tk):.1f}"/>')
        out.append(f'<line class="grid" x1="{sx(tk):.1f}" x2="{sx(tk):.1f}" y1="{sy(0)}" y2="{sy(1)}"/>')
        out.append(f'<text class="ylab" x="{m - 4}" y="{sy(tk) + 4:.1f}">{tk:g}</text>')
        out.append(f'<text class="xlab" x="{sx(tk):.1f}" y="{size - m + 14}">{tk:g}</text>')
    if diagonal:
        out.append(f'<line class="ref" x1="{sx(0)}" y1="{sy(0)}" x2="{sx(1)}" y2="{sy(1)}"/>')
    line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
    out.append(f'<polyline class="line" stroke="{color(0)}" points="{line}"><title>{esc(y_label)}</title></polyline>')
    for x, y in pts if len(pts) <= 20 else ():
        out.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color(0)}">'
            f"<title>{esc(x_label)} {x:.3f}, {esc(y_label)} {y:.3f}</title></circle>"
        )
    out.append(f'<text class="axis" x="{size / 2}" y="{size - 4}">{esc(x_label)}</text>')
    out.append(f'<text class="axis" transform="translate(11 {size / 2}) rotate(-90)">{esc(y_label)}</text>')
    out.append(f'<rect class="frame" x="{m}" y="{m}" width="{p}" height="{p}"/>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(
    categories: list[str], columns: dict[str, list[float | None]], *, unit: str | None, width: int = W
) -> str:
    """Horizontal grouped bars: one group per category, one bar per column."""
    if not categories:
        return ""
    names = list(columns)
    vals = [v for vs in columns.values() for v in vs if v is not None]
    hi = max(vals + [0.0]) or 1.0
    bar_h, gap = 12, 10
    group_h = bar_h * len(names) + gap
    left, right = 130, 70
    height = max(60, M_TOP + group_h * len(categories) + 6)
    pw = width - left - right
    out = [_open(width, height, "bar chart")]
    for gi, cat in enumerate(categories):
        y = M_TOP + gi * group_h
        out.append(f'<text class="ylab" x="{left - 6}" y="{y + bar_h * len(names) / 2 + 4:.1f}">{esc(cat)}</text>')
        for bi, name in enumerate(names):
            v = columns[name][gi]
            if v is None:
                continue
            w = max(v / hi * pw, 1.0)
            yy = y + bi * bar_h
            out.append(
                f'<rect class="bar" x="{left}" y="{yy}" width="{w:.1f}" height="{bar_h - 2}" fill="{color(bi)}">'
                f"<title>{esc(cat)} · {esc(name)}: {esc(fmt_value(v, unit))}</title></rect>"
            )
            out.append(
                f'<text class="val" x="{left + w + 4:.1f}" y="{yy + bar_h - 3}">{esc(fmt_value(v, unit))}</text>'
            )
    out.append("</svg>")
    return "".join(out) + _legend(names)


def heatmap(
    times: list[float], rows: list[str], cells: dict[tuple[str, float], float], *, span: float, width: int = W
) -> str:
    """Rows (e.g. features) by time; cell colour from 0 (white) to 1 (red)."""
    if not times or not rows:
        return ""
    left = 120
    cell_h = 18
    height = M_TOP + cell_h * len(rows) + M_BOTTOM
    pw = width - left - M_RIGHT
    cw = pw / len(times)
    out = [_open(width, height, "heatmap")]
    for ri, row in enumerate(rows):
        y = M_TOP + ri * cell_h
        out.append(f'<text class="ylab" x="{left - 6}" y="{y + cell_h / 2 + 4}">{esc(row)}</text>')
        for ti, t in enumerate(times):
            v = cells.get((row, t))
            if v is None:
                continue
            shade = max(0.0, min(1.0, v))
            fill = f"rgb(255,{int(245 - 190 * shade)},{int(240 - 200 * shade)})"
            out.append(
                f'<rect class="cell" x="{left + ti * cw:.1f}" y="{y}" width="{max(cw - 1, 1):.1f}" '
                f'height="{cell_h - 2}" fill="{fill}"><title>{esc(row)} {esc(time_label(t, span))}: '
                f"{v:.2f}</title></rect>"
            )
    for tt in time_ticks(times[0], times[-1]):
        x = left + (tt - times[0]) / max(times[-1] - times[0], 1) * (pw - cw) + cw / 2
        out.append(_xlab(x, height - 8, time_label(tt, span), width))
    out.append("</svg>")
    return "".join(out)


def state_timeline(rows: dict[str, list[tuple[float, float]]], t0: float, t1: float, width: int = W) -> str:
    """One lane per row; a state (1 = firing) lasts until the next change or the end of the range."""
    if not rows:
        return ""
    left, lane = 170, 20
    height = M_TOP + lane * len(rows) + M_BOTTOM
    pw = width - left - M_RIGHT
    span = max(t1 - t0, 1.0)

    def sx(t: float) -> float:
        return left + (min(max(t, t0), t1) - t0) / span * pw

    out = [_open(width, height, "state timeline")]
    for ri, (name, changes) in enumerate(rows.items()):
        y = M_TOP + ri * lane
        out.append(f'<text class="ylab" x="{left - 6}" y="{y + lane / 2 + 4}">{esc(name)}</text>')
        out.append(f'<rect class="lane" x="{left}" y="{y}" width="{pw}" height="{lane - 4}"/>')
        for i, (t, state) in enumerate(changes):
            end = changes[i + 1][0] if i + 1 < len(changes) else t1
            fill = "#c4162a" if state >= 1 else "#37872d"
            label = "firing" if state >= 1 else "resolved"
            out.append(
                f'<rect class="state" x="{sx(t):.1f}" y="{y}" width="{max(sx(end) - sx(t), 2):.1f}" '
                f'height="{lane - 4}" fill="{fill}"><title>{esc(name)}: {label} from '
                f"{esc(time_label(t, span))}</title></rect>"
            )
    for tt in time_ticks(t0, t1):
        x = sx(tt)
        out.append(_xlab(x, height - 8, time_label(tt, span), width))
    out.append("</svg>")
    return "".join(out)


def sparkline(points: Sequence[tuple[float, float]], *, height: int = 40) -> str:
    """A rate in [0, 1] over time as a bare line, as wide as its container (CSS ``svg.spark``).

    >>> sparkline([(0, 0.8), (300, 0.4)]).count("polyline")
    1
    """
    if len(points) < 2:
        return ""
    width = 300
    t0, t1 = points[0][0], points[-1][0]
    coords = " ".join(
        f"{(t - t0) / max(1.0, t1 - t0) * width:.1f},{height - min(max(v, 0.0), 1.0) * height:.1f}" for t, v in points
    )
    last = points[-1][1]
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" '
        f'aria-label="from {esc(fmt_value(points[0][1]))} to {esc(fmt_value(last))}">'
        f'<polyline fill="none" stroke="{color(0)}" stroke-width="2" vector-effect="non-scaling-stroke" '
        f'points="{coords}"/></svg>'
    )
