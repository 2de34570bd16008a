"""Per-window sufficient statistics, aggregated in ClickHouse, turned into metric rows.

The join happens here: each window's predictions (deduplicated by event_id with
FINAL) are left-joined to the latest outcome of their prediction_id. Only
counts leave the store; the metrics themselves are computed by ``detectors``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from watchkeeper.detectors import (
    BinarySummary,
    GroupCounts,
    LatencySketch,
    MulticlassSummary,
    RegressionSummary,
    cbpe_error,
    cbpe_estimate,
    fairness_metrics,
    lift,
)

if TYPE_CHECKING:
    from watchkeeper.settings import Settings
    from watchkeeper.sinks.writer import Store


@dataclass(frozen=True, order=True, slots=True)
class WindowKey:
    """One window of one model version. ``version == ''`` is the model's outcome-side window."""

    model: str
    version: str
    start: int  # epoch seconds


# Outcomes of the predictions made in [t0, t1), found through the primary key wherever their own time falls.
OUTCOMES_OF_RANGE = (
    "model = {m:String} AND prediction_id IN (SELECT prediction_id FROM predictions "
    "WHERE model = {m:String} AND ts >= {t0:DateTime64(3, 'UTC')} AND ts < {t1:DateTime64(3, 'UTC')})"
)
# Joined to the predictions ``p``: the latest 0/1 outcome of each, as ``o.y`` (``o.has`` = 1).
BINARY_OUTCOMES = f"""(
    SELECT prediction_id, assumeNotNull(argMax(outcome, ts)) AS y, 1 AS has
    FROM outcomes FINAL
    WHERE outcome IN (0, 1) AND {OUTCOMES_OF_RANGE}
    GROUP BY prediction_id
) AS o ON p.prediction_id = o.prediction_id"""

WINDOW_STATS = (
    """
SELECT p.version AS version,
       toUnixTimestamp(toStartOfInterval(p.ts, toIntervalSecond({w:UInt32}))) AS ws,
       count() AS predictions,
       countIf(o.has = 1) AS labelled,
       countIf(p.prediction IS NULL OR length(p.scores) > 0) AS n_class,
       countIf(p.prediction < 0 OR p.prediction > 1) AS n_outside_unit,
       countIf(o.has = 1 AND (o.outcome IS NULL OR o.outcome NOT IN (0, 1))) AS n_nonbinary,
       countIf(o.has = 1 AND p.prediction >= {thr:Float64} AND o.outcome = 1) AS tp,
       countIf(o.has = 1 AND p.prediction >= {thr:Float64} AND o.outcome = 0) AS fp,
       countIf(o.has = 1 AND p.prediction < {thr:Float64} AND o.outcome = 0) AS tn,
       countIf(o.has = 1 AND p.prediction < {thr:Float64} AND o.outcome = 1) AS fn,
       countIf(p.fallback = 1) AS fallbacks,
       countIf(o.has = 1 AND toUnixTimestamp(o.ots) > ws + {w:UInt32} + {delay:UInt32}) AS late_labels,
       countIf(p.published_at IS NOT NULL) AS n_lag,
       quantileIf(0.95)(dateDiff('millisecond', assumeNotNull(p.published_at), p.ingested_at) / 1000.0,
                        p.published_at IS NOT NULL) AS lag_p95
FROM (
    SELECT prediction_id, version, ts, prediction, scores, fallback, latency_ms, published_at, ingested_at
    FROM predictions FINAL
    WHERE model = {m:String} AND ts >= {t0:DateTime64(3, 'UTC')} AND ts < {t1:DateTime64(3, 'UTC')}
) AS p
LEFT JOIN (
    SELECT prediction_id, argMax(outcome, ts) AS outcome, max(ts) AS ots, 1 AS has
    FROM outcomes FINAL
    WHERE """
    + OUTCOMES_OF_RANGE
    + """
    GROUP BY prediction_id
) AS o ON p.prediction_id = o.prediction_id
GROUP BY version, ws
"""
)

N_BINS = 100
# Lift (model minus baseline) is written for the metrics a "does it beat the heuristic?" question uses.
LIFT_METRICS = frozenset(
    f"lift_{m}"
    for m in ("accuracy", "roc_auc", "pr_auc", "log_loss", "brier", "f1", "precision", "recall", "expected_cost")
)
MAX_SEGMENT_VALUES = 50


def binned_sql(score: str) -> str:
    """Per (version, window, segment, score bin) sufficient statistics of a binary model.

    ``score`` is a column name from a fixed whitelist (the model's prediction or the
    baseline's), never user input. Segments are '' (all traffic) plus ``key=value``
    for the watched segment keys.
    """
    if score not in ("prediction", "baseline"):
        raise ValueError(score)
    return f"""
SELECT p.version AS version,
       toUnixTimestamp(toStartOfInterval(p.ts, toIntervalSecond({{w:UInt32}}))) AS ws,
       seg,
       least(toUInt32(floor(p.s * {N_BINS})), {N_BINS - 1}) AS bin,
       count() AS n,
       sum(p.s) AS score_sum,
       countIf(p.s >= {{thr:Float64}}) AS n_pred_pos,
       countIf(o.has = 1 AND o.y = 1) AS pos,
       countIf(o.has = 1 AND o.y = 0) AS neg,
       sumIf(p.s, o.has = 1) AS score_sum_labeled,
       countIf(o.has = 1 AND p.s >= {{thr:Float64}} AND o.y = 1) AS tp,
       countIf(o.has = 1 AND p.s >= {{thr:Float64}} AND o.y = 0) AS fp,
       countIf(o.has = 1 AND p.s < {{thr:Float64}} AND o.y = 0) AS tn,
       countIf(o.has = 1 AND p.s < {{thr:Float64}} AND o.y = 1) AS fn,
       sumIf(-(o.y * log(greatest(p.s, 1e-15)) + (1 - o.y) * log(greatest(1 - p.s, 1e-15))),
             o.has = 1) AS sum_log_loss,
       sumIf(pow(p.s - o.y, 2), o.has = 1) AS sum_brier
FROM (
    SELECT prediction_id, version, ts, assumeNotNull({score}) AS s,
           arrayConcat([''], arrayFilter(x -> x != '', arrayMap((k, v) -> if(has({{keys:Array(String)}}, k),
               concat(k, '=', v), ''), mapKeys(segments), mapValues(segments)))) AS segs
    FROM predictions FINAL
    WHERE model = {{m:String}} AND ts >= {{t0:DateTime64(3, 'UTC')}} AND ts < {{t1:DateTime64(3, 'UTC')}}
      AND {score} IS NOT NULL AND {score} >= 0 AND {score} <= 1
) AS p
ARRAY JOIN p.segs AS seg
LEFT JOIN {BINARY_OUTCOMES}
GROUP BY version, ws, seg, bin
"""


# The joined rows of a model's windows, shared by the multiclass and regression aggregates.
_JOINED = (
    """
FROM (
    SELECT prediction_id, version, ts, prediction, prediction_class, scores,
           toUnixTimestamp(toStartOfInterval(ts, toIntervalSecond({w:UInt32}))) AS ws
    FROM predictions FINAL
    WHERE model = {m:String} AND ts >= {t0:DateTime64(3, 'UTC')} AND ts < {t1:DateTime64(3, 'UTC')}
) AS p
LEFT JOIN (
    SELECT prediction_id, argMax(outcome, ts) AS y,
           argMax(if(outcome_class != '', outcome_class, toString(outcome)), ts) AS oc, 1 AS has
    FROM outcomes FINAL
    WHERE """
    + OUTCOMES_OF_RANGE
    + """
    GROUP BY prediction_id
) AS o ON p.prediction_id = o.prediction_id
"""
)

# Predicted class: the string prediction, else the class of the highest score, else the number as text.
MULTICLASS = (
    """
SELECT p.version AS version, p.ws AS ws,
       if(p.prediction_class != '', p.prediction_class,
          if(length(p.scores) > 0, mapKeys(p.scores)[indexOf(mapValues(p.scores), arrayMax(mapValues(p.scores)))],
             toString(p.prediction))) AS pc,
       if(o.has = 1, o.oc, '') AS oc,
       count() AS n,
       sumIf(-log(greatest(p.scores[o.oc], 1e-15)), o.has = 1 AND mapContains(p.scores, o.oc)) AS ll,
       countIf(o.has = 1 AND mapContains(p.scores, o.oc)) AS n_ll
"""
    + _JOINED
    + "GROUP BY version, ws, pc, oc"
)

REGRESSION = (
    """
SELECT p.version AS version, p.ws AS ws,
       countIf(o.has = 1) AS n,
       sumIf(p.prediction - o.y, o.has = 1) AS sum_err,
       sumIf(abs(p.prediction - o.y), o.has = 1) AS sum_abs_err,
       sumIf(pow(p.prediction - o.y, 2), o.has = 1) AS sum_sq_err,
       sumIf(o.y, o.has = 1) AS sum_y,
       sumIf(o.y * o.y, o.has = 1) AS sum_y2,
       countIf(p.prediction IS NOT NULL) AS n_pred,
       sumIf(p.prediction, p.prediction IS NOT NULL) AS sum_pred
"""
    + _JOINED
    + "WHERE p.prediction IS NOT NULL AND (o.has = 0 OR o.y IS NOT NULL) GROUP BY version, ws"
)


def multiclass_summaries(rows: list[dict[str, Any]]) -> dict[tuple[str, int], MulticlassSummary]:
    """Fold (version, window, predicted, true) counts into one MulticlassSummary per window."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["version"], int(r["ws"]))].append(r)
    out = {}
    for k, rs in groups.items():
        classes = sorted({r["pc"] for r in rs} | {r["oc"] for r in rs if r["oc"] != ""})
        index = {c: i for i, c in enumerate(classes)}
        confusion = np.zeros((len(classes), len(classes)), np.int64)
        pred_counts = np.zeros(len(classes), np.int64)
        ll, n_ll = 0.0, 0
        for r in rs:
            pred_counts[index[r["pc"]]] += int(r["n"])
            if r["oc"] != "":
                confusion[index[r["oc"]], index[r["pc"]]] += int(r["n"])
            ll += float(r["ll"] or 0.0)
            n_ll += int(r["n_ll"])
        out[k] = MulticlassSummary(tuple(classes), confusion, pred_counts, ll, n_ll)
    return out


def summary_rows(key: WindowKey, w: int, metrics: dict[str, float], n: int, n_labelled: int) -> list[dict[str, Any]]:
    """Rows of a multiclass or regression summary's metrics (support: labelled events)."""
    rows = []
    for metric, value in metrics.items():
        if metric in ("n", "n_labeled", "n_pred") or not _finite(value):
            continue
        support = n if metric in ("mean_prediction",) else n_labelled
        rows.append(_row(key, w, metric, value, support))
    return rows


# Segment keys few enough in values to be watched (fairness, per-segment metrics).
SEGMENT_KEYS = """
SELECT k FROM (
    SELECT k, uniqExact(v) AS values FROM predictions
    ARRAY JOIN mapKeys(segments) AS k, mapValues(segments) AS v
    WHERE model = {m:String} AND ts >= {t0:DateTime64(3, 'UTC')} AND ts < {t1:DateTime64(3, 'UTC')}
    GROUP BY k)
WHERE values <= {limit:UInt32}
ORDER BY k
"""

# Outcomes whose prediction never arrived (looked for up to a day before the outcome).
# Latency as the buckets of a mergeable sketch (watchkeeper.detectors.LatencySketch, 1% relative accuracy): the
# window's percentiles come from them, and they are written too (``latency_bucket`` rows, segment
# ``key=<k>``), so that percentiles over any range are a sum of buckets away.
LATENCY_SKETCH = LatencySketch()
LATENCY_BUCKETS = """
SELECT version, toUnixTimestamp(toStartOfInterval(ts, toIntervalSecond({w:UInt32}))) AS ws,
       if(latency_ms <= {lmin:Float64}, {kzero:Int32},
          toInt32(least(ceil(log(latency_ms) / log({gamma:Float64})), {kmax:Int32}))) AS key,
       count() AS cnt, sum(latency_ms) AS total
FROM predictions FINAL
WHERE model = {m:String} AND ts >= {t0:DateTime64(3, 'UTC')} AND ts < {t1:DateTime64(3, 'UTC')}
  AND latency_ms IS NOT NULL AND isFinite(latency_ms)
GROUP BY version, ws, key
"""


def latency_sketches(store: Store, params: dict[str, Any]) -> dict[tuple[str, int], LatencySketch]:
    """The latency sketch of each (version, window start) with latencies."""
    sk = LATENCY_SKETCH
    bound = {"lmin": sk.min_value, "kzero": sk.key_min - 1, "gamma": sk.gamma, "kmax": sk.key_max}
    parts: dict[tuple[str, int], list[tuple[int, int, float]]] = defaultdict(list)
    for r in store.query(LATENCY_BUCKETS, {**params, **bound}):
        parts[(r["version"], int(r["ws"]))].append((int(r["key"]), int(r["cnt"]), float(r["total"])))
    out = {}
    for window, buckets in parts.items():
        zero = sum(c for k, c, _ in buckets if k < sk.key_min)
        keys = [k for k, _, _ in buckets if k >= sk.key_min]
        counts = [c for k, c, _ in buckets if k >= sk.key_min]
        total = sum(t for _, _, t in buckets)
        out[window] = LatencySketch.from_key_counts(keys, counts, zero, total)
    return out


def latency_rows(key: WindowKey, w: int, sketch: LatencySketch) -> list[dict[str, Any]]:
    """Percentiles of one window's latency, and its sketch's non-empty buckets."""
    rows = [_row(key, w, f"latency_{name}", q, sketch.n) for name, q in sketch.quantiles().items()]
    if sketch.zero_count:
        rows.append(_row(key, w, "latency_bucket", sketch.zero_count, sketch.zero_count, f"key={sketch.key_min - 1}"))
    for i in np.flatnonzero(sketch.counts):
        c = int(sketch.counts[i])
        rows.append(_row(key, w, "latency_bucket", c, c, f"key={int(i) + sketch.key_min}"))
    return rows


# Dead letters of a model among the Kafka messages that carried its window's predictions (same topic,
# partition and offset range): bad events of an envelope and bad messages between good ones alike.
DEAD_LETTERS_OF_WINDOWS = """
SELECT r.version AS version, r.ws AS ws, count() AS dead
FROM (
    SELECT version, toUnixTimestamp(toStartOfInterval(ts, toIntervalSecond({w:UInt32}))) AS ws,
           src_partition AS part, min(src_offset) AS lo, max(src_offset) AS hi
    FROM predictions FINAL
    WHERE model = {m:String} AND ts >= {t0:DateTime64(3, 'UTC')} AND ts < {t1:DateTime64(3, 'UTC')}
    GROUP BY version, ws, part
) AS r
INNER JOIN (
    SELECT partition, offset FROM dead_letters FINAL WHERE topic = {topic:String} AND model = {m:String}
) AS d ON d.partition = r.part
WHERE d.offset >= r.lo AND d.offset <= r.hi
GROUP BY version, ws
"""

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

    A string prediction or a ``scores`` object means multiclass; predictions all in
    [0, 1] with outcomes all 0/1 mean binary; any other number means regression.
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
    """Task-independent metric rows of one prediction window from its aggregated counts."""
    w = settings.window_seconds
    n = int(stats["predictions"])
    labelled = int(stats["labelled"])
    rows = [
        _row(key, w, "predictions", n, n),
        _row(key, w, "labelled", labelled, n),
        _row(key, w, "label_rate", labelled / n if n else 0.0, n),
        _row(key, w, "fallback_rate", stats["fallbacks"] / n if n else 0.0, n),
        _row(key, w, "late_labels", stats["late_labels"], labelled),
    ]
    n_lag = int(stats.get("n_lag") or 0)
    if n_lag:  # from the broker's receipt of the message to the row in the store, p95
        rows.append(_row(key, w, "lag_seconds", max(0.0, float(stats["lag_p95"])), n_lag))
    return rows


_BIN_FIELDS = (
    "n",
    "score_sum",
    "n_pred_pos",
    "pos",
    "neg",
    "score_sum_labeled",
    "tp",
    "fp",
    "tn",
    "fn",
    "sum_log_loss",
    "sum_brier",
)


def binary_summaries(rows: list[dict[str, Any]], threshold: float) -> dict[tuple[str, int, str], BinarySummary]:
    """Fold per-bin rows into one BinarySummary per (version, window, segment)."""
    acc: dict[tuple[str, int, str], dict[str, Any]] = {}
    for r in rows:
        k = (r["version"], int(r["ws"]), r["seg"])
        a = acc.get(k)
        if a is None:
            a = acc[k] = {
                "hist": np.zeros(N_BINS, np.int64),
                "score_sum": np.zeros(N_BINS),
                "hist_pos": np.zeros(N_BINS, np.int64),
                "hist_neg": np.zeros(N_BINS, np.int64),
                "score_sum_labeled": np.zeros(N_BINS),
                "n": 0,
                "n_pred_pos": 0,
                "tp": 0,
                "fp": 0,
                "tn": 0,
                "fn": 0,
                "sum_log_loss": 0.0,
                "sum_brier": 0.0,
            }
        b = int(r["bin"])
        a["hist"][b] += int(r["n"])
        a["score_sum"][b] += float(r["score_sum"])
        a["hist_pos"][b] += int(r["pos"])
        a["hist_neg"][b] += int(r["neg"])
        a["score_sum_labeled"][b] += float(r["score_sum_labeled"])
        for f in ("n", "n_pred_pos", "tp", "fp", "tn", "fn"):
            a[f] += int(r[f])
        a["sum_log_loss"] += float(r["sum_log_loss"])
        a["sum_brier"] += float(r["sum_brier"])
    return {k: BinarySummary(threshold, N_BINS, **a) for k, a in acc.items()}


def _finite(v: float) -> bool:
    return v == v and v not in (float("inf"), float("-inf"))


def binary_rows(
    key: WindowKey,
    settings: Settings,
    summaries: dict[str, BinarySummary],
    baselines: dict[str, BinarySummary],
) -> list[dict[str, Any]]:
    """Performance, calibration, cost, baseline lift, histogram and fairness rows of a binary window.

    ``summaries`` and ``baselines`` are keyed by segment ('' = all traffic).
    """
    w = settings.window_seconds
    cfg = settings.model(key.model)
    rows: list[dict[str, Any]] = []
    for seg, summ in summaries.items():
        if summ.n == 0:
            continue
        for metric, value, n in summ.metric_rows(cfg.cost):
            if metric in ("n", "n_labeled") or not _finite(value):
                continue
            rows.append(_row(key, w, metric, value, n, seg))
        tpr = summ.metrics().get("recall", float("nan"))
        if seg and _finite(tpr):
            rows.append(_row(key, w, "tpr", tpr, summ.tp + summ.fn, seg))
        if seg == "" and summ.n_labeled:
            for b in np.flatnonzero(summ.hist_pos):
                rows.append(_row(key, w, "score_hist_pos", summ.hist_pos[b], summ.n_labeled, f"bin={b / N_BINS:.2f}"))
            for b in np.flatnonzero(summ.hist_neg):
                rows.append(_row(key, w, "score_hist_neg", summ.hist_neg[b], summ.n_labeled, f"bin={b / N_BINS:.2f}"))
        if seg == "":
            est = cbpe_estimate(summ)
            for metric in ("est_accuracy", "est_roc_auc"):
                if _finite(est.get(metric, float("nan"))):
                    rows.append(_row(key, w, metric, est[metric], summ.n))
            if summ.n_labeled:
                # How far the label-free estimate was from the truth, once the truth is in.
                err = cbpe_error(summ)
                for metric in ("accuracy", "roc_auc"):
                    if _finite(err.get(metric, float("nan"))):
                        rows.append(_row(key, w, f"est_{metric}_error", err[metric], summ.n_labeled))
    # Baseline: its own metrics, and the model's lift over it.
    for seg, base in baselines.items():
        model = summaries.get(seg)
        if model is None or base.n_labeled == 0:
            continue
        bm = base.metrics(cfg.cost)
        for metric in ("accuracy", "roc_auc", "log_loss", "f1", "expected_cost"):
            if _finite(bm.get(metric, float("nan"))):
                rows.append(_row(key, w, f"baseline_{metric}", bm[metric], base.n_labeled, seg))
        for metric, value in lift(model.metrics(cfg.cost), bm).items():
            if metric in LIFT_METRICS and _finite(value):
                rows.append(_row(key, w, metric, value, min(model.n_labeled, base.n_labeled), seg))
    # Fairness: gaps between the groups of each watched attribute.
    by_attr: dict[str, list[tuple[str, BinarySummary]]] = defaultdict(list)
    for seg, summ in summaries.items():
        if seg:
            attr, _, group = seg.partition("=")
            by_attr[attr].append((group, summ))
    for attr, groups in by_attr.items():
        if len(groups) < 2:
            continue
        counts = GroupCounts(
            groups=tuple(g for g, _ in groups),
            n=[s.n for _, s in groups],
            n_pred_pos=[s.n_pred_pos for _, s in groups],
            tp=[s.tp for _, s in groups],
            fp=[s.fp for _, s in groups],
            tn=[s.tn for _, s in groups],
            fn=[s.fn for _, s in groups],
        )
        fm = fairness_metrics(counts)
        # A gap is only as solid as its weakest group: n is that group's support.
        support = {
            "demographic_parity_difference": min(s.n for _, s in groups),
            "disparate_impact_ratio": min(s.n for _, s in groups),
            "equal_opportunity_difference": min(s.tp + s.fn for _, s in groups),
            "fpr_difference": min(s.fp + s.tn for _, s in groups),
        }
        for metric, n in support.items():
            value = fm.get(metric)
            if isinstance(value, float) and _finite(value):
                rows.append(_row(key, w, metric, value, n, attr))
    return rows


def watched_segment_keys(store: Store, params: dict[str, Any], cfg: Any) -> list[str]:
    """Segment keys to slice by: the configured protected attributes, else every key with at
    most MAX_SEGMENT_VALUES values in the range; minus the excluded keys."""
    if cfg.protected_attributes:
        keys = list(cfg.protected_attributes)
    else:
        keys = [r[0] for r in store.query_rows(SEGMENT_KEYS, params)]
    return [k for k in keys if k not in set(cfg.excluded_segments)]


def _pick(d: dict[tuple[str, int, str], BinarySummary], key: WindowKey) -> dict[str, BinarySummary]:
    """The summaries of one window, by segment."""
    return {seg: v for (ver, ws, seg), v in d.items() if ver == key.version and ws == key.start}


def metrics_rows(store: Store, settings: Settings, model: str, keys: Sequence[WindowKey]) -> list[dict[str, Any]]:
    """Compute the metric rows of the given windows of one model."""
    w = settings.window_seconds
    cfg = settings.model(model)
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
            "thr": cfg.threshold,
            "delay": settings.label_delay_seconds,
            "limit": MAX_SEGMENT_VALUES,
        }
        tasks: dict[str, set[WindowKey]] = defaultdict(set)
        dead = {
            (r["version"], int(r["ws"])): int(r["dead"])
            for r in store.query(DEAD_LETTERS_OF_WINDOWS, {**params, "topic": settings.topic_predictions})
        }
        latency = latency_sketches(store, params) if pred_keys else {}
        for stats in store.query(WINDOW_STATS, params):
            key = WindowKey(model, stats["version"], int(stats["ws"]))
            if key in pred_keys:
                rows.extend(window_rows(key, stats, settings))
                if (key.version, key.start) in latency:
                    rows.extend(latency_rows(key, w, latency[(key.version, key.start)]))
                n_dead, n = dead.get((key.version, key.start), 0), int(stats["predictions"])
                rows.append(_row(key, w, "dead_letter_rate", n_dead / (n_dead + n) if n else 0.0, n_dead + n))
                tasks[infer_task(stats, cfg.task)].add(key)
        binary = tasks["binary"]
        if tasks["multiclass"]:
            for (version, ws), summ in multiclass_summaries(store.query(MULTICLASS, params)).items():
                key = WindowKey(model, version, ws)
                if key in tasks["multiclass"]:
                    labelled = int(summ.confusion.sum())
                    rows.extend(summary_rows(key, w, summ.metrics(), int(summ.pred_counts.sum()), labelled))
        if tasks["regression"]:
            for r in store.query(REGRESSION, params):
                key = WindowKey(model, r["version"], int(r["ws"]))
                if key in tasks["regression"]:
                    fields = {
                        f: r[f]
                        for f in ("n", "sum_err", "sum_abs_err", "sum_sq_err", "sum_y", "sum_y2", "n_pred", "sum_pred")
                    }
                    summ = RegressionSummary(**fields)
                    rows.extend(summary_rows(key, w, summ.metrics(), summ.n_pred, summ.n))
        if binary:
            params["keys"] = watched_segment_keys(store, params, cfg)
            models = binary_summaries(store.query(binned_sql("prediction"), params), cfg.threshold)
            bases = binary_summaries(store.query(binned_sql("baseline"), params), cfg.threshold)
            for key in sorted(binary):
                rows.extend(binary_rows(key, settings, _pick(models, key), _pick(bases, key)))
    if orphan_keys:
        t0 = min(k.start for k in orphan_keys)
        t1 = max(k.start for k in orphan_keys) + w
        for r in store.query(ORPHANS, {"m": model, "w": w, "t0": _dt(t0), "t1": _dt(t1)}):
            key = WindowKey(model, "", int(r["ws"]))
            if key in orphan_keys:
                rows.append(_row(key, w, "orphaned_outcomes", r["orphaned"], r["outcomes"]))
    return rows
