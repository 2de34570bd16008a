"""Per-window sufficient statistics, aggregated in ClickHouse, turned into metric rows.

The join happens here: each window's predictions (deduplicated by event_id with
FINAL) are left-joined to the latest outcome of their prediction_id. Only
counts leave the store; the metrics themselves are computed by ``detectors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from detectors.confusion import binary_counts_metrics

if TYPE_CHECKING:
    from sinks.writer import Store
    from streams.config import Settings


@dataclass(frozen=True, order=True, slots=True)
class WindowKey:
    """One window of one model version. ``version == ''`` is the model's outcome-side window."""

    model: str
    version: str
    start: int  # epoch seconds


WINDOW_STATS = """
SELECT p.version AS version,
       toUnixTimestamp(toStartOfInterval(p.ts, toIntervalSecond({w:UInt32}))) AS ws,
       count() AS predictions,
       countIf(o.has = 1) AS labelled,
       countIf(p.prediction IS NULL) AS n_class,
       countIf(p.prediction < 0 OR p.prediction > 1) AS n_outside_unit,
       countIf(o.has = 1 AND (o.outcome IS NULL OR o.outcome NOT IN (0, 1))) AS n_nonbinary,
       countIf(o.has = 1 AND p.prediction >= {thr:Float64} AND o.outcome = 1) AS tp,
       countIf(o.has = 1 AND p.prediction >= {thr:Float64} AND o.outcome = 0) AS fp,
       countIf(o.has = 1 AND p.prediction < {thr:Float64} AND o.outcome = 0) AS tn,
       countIf(o.has = 1 AND p.prediction < {thr:Float64} AND o.outcome = 1) AS fn,
       countIf(p.fallback = 1) AS fallbacks,
       countIf(o.has = 1 AND toUnixTimestamp(o.ots) > ws + {w:UInt32} + {delay:UInt32}) AS late_labels
FROM (
    SELECT prediction_id, version, ts, prediction, fallback FROM predictions FINAL
    WHERE model = {m:String} AND ts >= {t0:DateTime64(3, 'UTC')} AND ts < {t1:DateTime64(3, 'UTC')}
) AS p
LEFT JOIN (
    SELECT prediction_id, argMax(outcome, ts) AS outcome, max(ts) AS ots, 1 AS has
    FROM outcomes FINAL
    WHERE model = {m:String} AND prediction_id IN (
        SELECT prediction_id FROM predictions
        WHERE model = {m:String} AND ts >= {t0:DateTime64(3, 'UTC')} AND ts < {t1:DateTime64(3, 'UTC')})
    GROUP BY prediction_id
) AS o ON p.prediction_id = o.prediction_id
GROUP BY version, ws
"""

# Outcomes whose prediction never arrived (looked for up to a day before the outcome).
ORPHANS = """
SELECT toUnixTimestamp(toStartOfInterval(ts, toIntervalSecond({w:UInt32}))) AS ws,
       count() AS outcomes,
       countIf(prediction_id NOT IN (
           SELECT prediction_id FROM predictions
           WHERE model = {m:String} AND ts >= {t0:DateTime64(3, 'UTC')} - INTERVAL 1 DAY
             AND ts < {t1:DateTime64(3, 'UTC')})) AS orphaned
FROM outcomes FINAL
WHERE model = {m:String} AND ts >= {t0:DateTime64(3, 'UTC')} AND ts < {t1:DateTime64(3, 'UTC')}
GROUP BY ws
"""


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def infer_task(stats: dict[str, Any], configured: str) -> str:
    """The model's task: from config, else from the window's data.

    A string prediction means multiclass; scores all in [0, 1] with outcomes all
    0/1 mean binary; any other number means regression.
    """
    if configured != "auto":
        return configured
    if stats["n_class"]:
        return "multiclass"
    if stats["n_outside_unit"] or stats["n_nonbinary"]:
        return "regression"
    return "binary"


def _row(key: WindowKey, w: int, metric: str, value: float, n: int, segment: str = "") -> dict[str, Any]:
    return {
        "window_start": _dt(key.start),
        "window_end": _dt(key.start + w),
        "model": key.model,
        "version": key.version,
        "segment": segment,
        "metric": metric,
        "value": float(value),
        "n": int(n),
    }


def window_rows(key: WindowKey, stats: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    """Metric rows of one prediction window from its aggregated counts."""
    w = settings.window_seconds
    cfg = settings.model(key.model)
    n = int(stats["predictions"])
    labelled = int(stats["labelled"])
    rows = [
        _row(key, w, "predictions", n, n),
        _row(key, w, "labelled", labelled, n),
        _row(key, w, "label_rate", labelled / n if n else 0.0, n),
        _row(key, w, "fallback_rate", stats["fallbacks"] / n if n else 0.0, n),
        _row(key, w, "late_labels", stats["late_labels"], labelled),
    ]
    if infer_task(stats, cfg.task) == "binary":
        for metric, (value, support) in binary_counts_metrics(
            tp=int(stats["tp"]), fp=int(stats["fp"]), tn=int(stats["tn"]), fn=int(stats["fn"])
        ).items():
            rows.append(_row(key, w, metric, value, support))
    return rows


def metrics_rows(
    store: Store, settings: Settings, model: str, keys: Sequence[WindowKey]
) -> list[dict[str, Any]]:
    """Compute the metric rows of the given windows of one model."""
    w = settings.window_seconds
    rows: list[dict[str, Any]] = []
    pred_keys = {k for k in keys if k.version != ""}
    orphan_keys = {k for k in keys if k.version == ""}
    if pred_keys:
        t0 = min(k.start for k in pred_keys)
        t1 = max(k.start for k in pred_keys) + w
        params = {
            "m": model,
            "w": w,
            "t0": _dt(t0),
            "t1": _dt(t1),
            "thr": settings.model(model).threshold,
            "delay": settings.label_delay_seconds,
        }
        for stats in store.query(WINDOW_STATS, params):
            key = WindowKey(model, stats["version"], int(stats["ws"]))
            if key in pred_keys:
                rows.extend(window_rows(key, stats, settings))
    if orphan_keys:
        t0 = min(k.start for k in orphan_keys)
        t1 = max(k.start for k in orphan_keys) + w
        for r in store.query(ORPHANS, {"m": model, "w": w, "t0": _dt(t0), "t1": _dt(t1)}):
            key = WindowKey(model, "", int(r["ws"]))
            if key in orphan_keys:
                rows.append(_row(key, w, "orphaned_outcomes", r["orphaned"], r["outcomes"]))
    return rows
