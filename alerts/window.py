"""A window as the alert rules see it, and the signal a rule returns (no I/O).

A *window* gathers what the model stage wrote for one (model, version, window):
its metric rows (segment ``''`` in ``metrics``, others in ``segments``) and its
drift rows. :func:`build_windows` groups rows read from the store into windows;
a rule (``alerts/rules.py``) turns one window into a :class:`Signal`.

>>> rows = [{"version": "v1", "window_start": datetime(2026, 1, 1), "window_end": datetime(2026, 1, 1, 0, 5),
...          "segment": "", "metric": "accuracy", "value": 0.9, "n": 400}]
>>> [w] = build_windows(rows)
>>> w.start, w.end, w.metrics["accuracy"]
(1767225600, 1767225900, Point(value=0.9, n=400))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from watchkeeper.detectors.timeutil import utc
from watchkeeper.sinks.schema import label_free as free_metric
from watchkeeper.sinks.schema import label_free_drift as free_drift

__all__ = ["DriftRow", "Point", "Signal", "Window", "build_windows"]


@dataclass(frozen=True, slots=True)
class Point:
    """A metric's value and the number of events behind it."""

    value: float
    n: int


@dataclass(frozen=True, slots=True)
class DriftRow:
    """One row of the ``drift`` table (one feature, one detector, one window)."""

    feature: str
    detector: str
    statistic: float
    threshold: float
    drifted: bool
    ts: float | None = None  # event time of the row (a sequential detector's alarm), epoch seconds


@dataclass(frozen=True)
class Window:
    """What the model stage wrote for one window of one model version."""

    version: str
    start: int  # epoch seconds
    end: int
    metrics: Mapping[str, Point] = field(default_factory=dict)  # segment ''
    segments: Mapping[str, Mapping[str, Point]] = field(default_factory=dict)  # segment -> metric -> point
    drift: tuple[DriftRow, ...] = ()
    # False while the window's label-based rows are provisional (its label delay has not passed).
    final: bool = True

    @property
    def predictions(self) -> int:
        p = self.metrics.get("predictions")
        return int(p.value) if p is not None else 0

    def label_free(self) -> Window:
        """The window's label-free results only (final at its end plus the grace, whatever labels come).

        >>> w = Window("v1", 0, 300, {"predictions": Point(9, 9), "accuracy": Point(0.8, 5)}, final=False)
        >>> sorted(w.label_free().metrics), w.label_free().final
        (['predictions'], True)
        """
        return Window(
            self.version, self.start, self.end, {m: p for m, p in self.metrics.items() if free_metric(m)},
            {s: {m: p for m, p in ms.items() if free_metric(m)} for s, ms in self.segments.items()},
            tuple(d for d in self.drift if free_drift(d.feature)),
        )  # fmt: skip

    def label_based(self) -> Window:
        """The window without its label-free metrics: what the label-based ops checks (late labels) read
        once it is final (the label-free ones were judged when it was first written).

        >>> w = Window("v1", 0, 300, {"predictions": Point(9, 9), "late_labels": Point(1, 5)})
        >>> sorted(w.label_based().metrics)
        ['late_labels']
        """
        metrics = {m: p for m, p in self.metrics.items() if not free_metric(m)}
        return Window(self.version, self.start, self.end, metrics, self.segments, self.drift, self.final)


@dataclass(frozen=True)
class Signal:
    """One rule's verdict on one window: ``bad`` True, False, or None (not enough evidence)."""

    kind: str
    subject: str
    version: str
    ts: int
    bad: bool | None
    severity: str
    summary: str
    evidence: dict[str, Any]
    # Strong evidence: fires at once, whatever the hysteresis asks of a run (``alerts/hysteresis.py``).
    strong: bool = False


# Rows -> windows ------------------------------------------------------------


def _epoch(row: Mapping[str, Any], short: str, long: str) -> int:
    if short in row:
        return int(row[short])
    v = row[long]
    if isinstance(v, datetime):
        return int(utc(v).timestamp())
    return int(v)


def _row_ts(row: Mapping[str, Any]) -> float | None:
    """A drift row's event time in epoch seconds (``ts_ms`` or ``ts``), None when absent."""
    if "ts_ms" in row and row["ts_ms"] is not None:
        return int(row["ts_ms"]) / 1000
    v = row.get("ts")
    if v is None:
        return None
    return utc(v).timestamp() if isinstance(v, datetime) else float(v)


def build_windows(
    metric_rows: Iterable[Mapping[str, Any]], drift_rows: Iterable[Mapping[str, Any]] = ()
) -> list[Window]:
    """Group ``metrics`` and ``drift`` rows of one model into windows, ordered by (end, version).

    A row has ``version``, ``ws``/``we`` (epoch seconds) or ``window_start``/``window_end``,
    and the table's other columns. A window with any ``provisional`` row is not ``final``.
    """
    metrics: dict[tuple[str, int, int], dict[str, Point]] = {}
    segments: dict[tuple[str, int, int], dict[str, dict[str, Point]]] = {}
    drift: dict[tuple[str, int, int], list[DriftRow]] = {}
    provisional: set[tuple[str, int, int]] = set()
    for r in metric_rows:
        key = (str(r["version"]), _epoch(r, "ws", "window_start"), _epoch(r, "we", "window_end"))
        if r.get("provisional"):
            provisional.add(key)
        point = Point(float(r["value"]), int(r["n"]))
        seg = str(r.get("segment", ""))
        if seg:
            segments.setdefault(key, {}).setdefault(seg, {})[str(r["metric"])] = point
        else:
            metrics.setdefault(key, {})[str(r["metric"])] = point
    for r in drift_rows:
        key = (str(r["version"]), _epoch(r, "ws", "window_start"), _epoch(r, "we", "window_end"))
        if r.get("provisional"):
            provisional.add(key)
        drift.setdefault(key, []).append(
            DriftRow(str(r["feature"]), str(r["detector"]), float(r["statistic"]), float(r["threshold"]),
                     bool(r["drifted"]), _row_ts(r))
        )  # fmt: skip
    keys = set(metrics) | set(segments) | set(drift)
    return [
        Window(
            version=v, start=s, end=e, metrics=metrics.get((v, s, e), {}), segments=segments.get((v, s, e), {}),
            drift=tuple(sorted(drift.get((v, s, e), []), key=lambda d: (d.feature, d.detector))),
            final=(v, s, e) not in provisional,
        )  # fmt: skip
        for v, s, e in sorted(keys, key=lambda k: (k[2], k[0], k[1]))
    ]
