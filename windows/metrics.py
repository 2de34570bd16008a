"""Per-window sufficient statistics, aggregated in ClickHouse, turned into metric rows.

The queries (the join of predictions and outcomes, the aggregates) are in
``windows/queries.py``; only counts leave the store. Here they are folded into
the ``detectors`` summaries and turned into rows of the ``metrics`` table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
from watchkeeper.detectors.timeutil import utc
from watchkeeper.windows.config import ModelStageConfig, WindowConfig, WindowKey
from watchkeeper.windows.due import due_params
from watchkeeper.windows.queries import (
    BINARY_OUTCOMES,
    DEAD_LETTERS_OF_WINDOWS,
    LATENCY_BUCKETS,
    MULTICLASS,
    N_BINS,
    ORPHANS,
    PAIRED,
    REGRESSION,
    SEGMENT_KEYS,
    WINDOW_STATS,
    binned_sql,
)

if TYPE_CHECKING:
    from watchkeeper.sinks.writer import Store

# Re-exported: the closer and the drift stage join outcomes the same way; the key is the stage's.
__all__ = ["BINARY_OUTCOMES", "DISCORDANT_METRICS", "WindowKey", "metrics_rows"]


# Lift (model minus baseline) is written for the metrics a "does it beat the heuristic?" question uses.
LIFT_METRICS = frozenset(
    f"lift_{m}"
    for m in ("accuracy", "roc_auc", "pr_auc", "log_loss", "brier", "f1", "precision", "recall", "expected_cost")
)
MAX_SEGMENT_VALUES = 50
# The discordant pairs of model and baseline (value: pairs; n: predictions labelled and scored by both),
# for a paired (McNemar) test of "worse than its baseline" pooled over any range of windows.
DISCORDANT_METRICS = ("baseline_discordant_model_right", "baseline_discordant_baseline_right")


def multiclass_summaries(rows: list[dict[str, Any]]) -> dict[tuple[str, str, int], MulticlassSummary]:
    """Fold (model, version, window, predicted, true) counts into one MulticlassSummary per window."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["model"], r["version"], int(r["ws"]))].append(r)
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


# Latency as the buckets of a mergeable sketch (watchkeeper.detectors.LatencySketch, 1% relative accuracy): the
# window's percentiles come from them, and they are written too (``latency_bucket`` rows, segment
# ``key=<k>``), so that percentiles over any range are a sum of buckets away.
LATENCY_SKETCH = LatencySketch()


def latency_sketches(store: Store, params: dict[str, Any]) -> dict[WindowKey, LatencySketch]:
    """The latency sketch of each due window with latencies."""
    sk = LATENCY_SKETCH
    bound = {"lmin": sk.min_value, "kzero": sk.key_min - 1, "gamma": sk.gamma, "kmax": sk.key_max}
    parts: dict[WindowKey, list[tuple[int, int, float]]] = defaultdict(list)
    for model, version, ws, key, cnt, total in store.query_rows(LATENCY_BUCKETS, {**params, **bound}):
        parts[WindowKey(model, version, int(ws))].append((int(key), int(cnt), float(total)))
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


@lru_cache(maxsize=1 << 16)
def _utc(t: int) -> datetime:
    """``utc`` of a window bound (a pass makes dozens of rows per window: one datetime each)."""
    return utc(t)


def _row(key: WindowKey, w: int, metric: str, value: float, n: int, segment: str = "") -> dict[str, Any]:
    return {
        "window_start": _utc(key.start),
        "window_end": _utc(key.start + w),
        "model": key.model,
        "version": key.version,
        "segment": segment,
        "metric": metric,
        "value": float(value),
        "n": int(n),
    }


def window_rows(key: WindowKey, stats: dict[str, Any], w: int) -> list[dict[str, Any]]:
    """Task-independent metric rows of one prediction window (``w`` seconds long) from its aggregated counts."""
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


# binned_sql's per-bin columns, folded into a summary's per-bin arrays; and its counts and sums, added up.
_PER_BIN = {"hist": "n", "score_sum": "score_sum", "hist_pos": "pos", "hist_neg": "neg",
            "score_sum_labeled": "score_sum_labeled"}  # fmt: skip
_COUNTS = ("n", "n_pred_pos", "tp", "fp", "tn", "fn")
_SUMS = ("sum_log_loss", "sum_brier")
_GROUP = ("model", "version", "ws", "seg")
_INTS = frozenset({"bin", "pos", "neg", *_COUNTS})


def binary_summaries(table: pa.Table, threshold: Callable[[str], float]) -> dict[WindowKey, dict[str, BinarySummary]]:
    """Fold per-bin rows (:func:`binned_sql`, as an Arrow table) into one BinarySummary per window and segment
    (``threshold``: a model's).

    Columnar: a pass of a fleet's windows has a hundred bins per window and segment (70k rows for 400
    windows), and as Python dicts they were the largest allocation of the worker (57 MB at its peak).

    >>> t = pa.table({"model": ["m", "m", "m"], "version": ["v", "v", "v"], "ws": [0, 0, 300], "seg": ["", "", ""],
    ...               "bin": [10, 90, 90], **{c: [1, 2, 4] for c in ("n", "pos", "neg", "n_pred_pos", "tp", "fp",
    ...               "tn", "fn")}, **{c: [0.1, 1.8, 3.6] for c in ("score_sum", "score_sum_labeled", "sum_log_loss",
    ...               "sum_brier")}})
    >>> out = binary_summaries(t, lambda m: 0.5)
    >>> s = out[WindowKey("m", "v", 0)][""]; s.n, int(s.hist[10]), int(s.hist[90]), out[WindowKey("m", "v", 300)][""].n
    (3, 1, 2, 4)
    """
    if table.num_rows == 0:
        return {}
    group, first = _groups(table, _GROUP)
    n_groups = len(first)
    # Counts as int64 (the store's are UInt64), sums as float64.
    col = {name: table.column(name).to_numpy().astype(np.int64 if name in _INTS else np.float64)
           for name in {*_PER_BIN.values(), *_COUNTS, *_SUMS, "bin"}}  # fmt: skip
    at = (group, col["bin"])
    arrays: dict[str, Any] = {}
    for field, name in _PER_BIN.items():
        a = np.zeros((n_groups, N_BINS), col[name].dtype)
        np.add.at(a, at, col[name])
        arrays[field] = a
    totals = {name: np.zeros(n_groups, np.int64) for name in _COUNTS} | {name: np.zeros(n_groups) for name in _SUMS}
    for name, total in totals.items():
        np.add.at(total, group, col[name])
    keys = {name: table.column(name).take(pa.array(first)).to_pylist() for name in _GROUP}
    out: dict[WindowKey, dict[str, BinarySummary]] = defaultdict(dict)
    for g, (model, version, ws, seg) in enumerate(zip(*(keys[name] for name in _GROUP), strict=True)):
        fields = {f: a[g] for f, a in arrays.items()}
        fields.update({name: int(t[g]) if name in _INTS else float(t[g]) for name, t in totals.items()})
        out[WindowKey(model, version, int(ws))][seg] = BinarySummary(threshold(model), N_BINS, **fields)
    return out


def _groups(table: pa.Table, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's group (the rows sharing the values of ``names``), numbered 0.., and each group's first row."""
    group = np.zeros(table.num_rows, np.int64)
    for name in names:
        codes = pc.dictionary_encode(table.column(name).combine_chunks()).indices.to_numpy()
        # Kept dense after each column (at most one group per row), so the combined code cannot overflow.
        group = np.unique(group * (int(codes.max()) + 1) + codes, return_inverse=True)[1].reshape(-1)
    _, first = np.unique(group, return_index=True)
    return group, first


def _finite(v: float) -> bool:
    return v == v and v not in (float("inf"), float("-inf"))


def binary_rows(
    key: WindowKey,
    w: int,
    cfg: ModelStageConfig,
    summaries: dict[str, BinarySummary],
    baselines: dict[str, BinarySummary],
) -> list[dict[str, Any]]:
    """Performance, calibration, cost, baseline lift, histogram and fairness rows of a binary window.

    ``w``: the window length; ``summaries`` and ``baselines`` are keyed by segment ('' = all traffic).
    """
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


def discordant_rows(store: Store, params: dict[str, Any], w: int, keys: set[WindowKey]) -> list[dict[str, Any]]:
    """The discordant-pair rows of the binary windows in ``keys`` whose predictions have a baseline."""
    rows = []
    for r in store.query(PAIRED, params):
        key = WindowKey(r["model"], r["version"], int(r["ws"]))
        n = int(r["n"])
        if key in keys and n:
            right, base_right = DISCORDANT_METRICS
            rows.append(_row(key, w, right, int(r["model_right"]), n))
            rows.append(_row(key, w, base_right, int(r["baseline_right"]), n))
    return rows


def watched_segment_keys(store: Store, params: dict[str, Any], config: WindowConfig, models: set[str]) -> list[str]:
    """Segment keys to slice each model by, as ``model/key``: its configured protected attributes, else
    every key with at most MAX_SEGMENT_VALUES values in its due windows; minus its excluded keys."""
    keys: dict[str, list[str]] = defaultdict(list)
    if any(not config.model(m).protected_attributes for m in models):
        for m, k in store.query_rows(SEGMENT_KEYS, params):
            keys[m].append(k)
    out = []
    for m in sorted(models):
        cfg = config.model(m)
        chosen = list(cfg.protected_attributes) if cfg.protected_attributes else keys.get(m, [])
        out += [f"{m}/{k}" for k in chosen if k not in set(cfg.excluded_segments)]
    return out


def metrics_rows(store: Store, config: WindowConfig, keys: Sequence[WindowKey]) -> list[dict[str, Any]]:
    """Compute the metric rows of the given windows, of every model at once (a fixed number of queries)."""
    w = config.window_seconds
    rows: list[dict[str, Any]] = []
    pred_keys = {k for k in keys if k.version != ""}
    orphan_keys = {k for k in keys if k.version == ""}
    if pred_keys:
        params = {**due_params(config, pred_keys), "delay": config.label_delay_seconds, "limit": MAX_SEGMENT_VALUES}
        tasks: dict[str, set[WindowKey]] = defaultdict(set)
        with_baseline: set[WindowKey] = set()
        dead = {
            WindowKey(m, v, int(ws)): int(n)
            for m, v, ws, n in store.query_rows(DEAD_LETTERS_OF_WINDOWS, {**params, "topic": config.topic_predictions})
        }
        latency = latency_sketches(store, params)
        for stats in store.query(WINDOW_STATS, params):
            key = WindowKey(stats["model"], stats["version"], int(stats["ws"]))
            if key in pred_keys:
                rows.extend(window_rows(key, stats, w))
                if key in latency:
                    rows.extend(latency_rows(key, w, latency[key]))
                n_dead, n = dead.get(key, 0), int(stats["predictions"])
                rows.append(_row(key, w, "dead_letter_rate", n_dead / (n_dead + n) if n else 0.0, n_dead + n))
                tasks[infer_task(stats, config.model(key.model).task)].add(key)
                if int(stats.get("n_baseline") or 0):
                    with_baseline.add(key)
        binary = tasks["binary"]
        if tasks["multiclass"]:
            for (model, version, ws), summ in multiclass_summaries(store.query(MULTICLASS, params)).items():
                key = WindowKey(model, version, ws)
                if key in tasks["multiclass"]:
                    labelled = int(summ.confusion.sum())
                    rows.extend(summary_rows(key, w, summ.metrics(), int(summ.pred_counts.sum()), labelled))
        if tasks["regression"]:
            for r in store.query(REGRESSION, params):
                key = WindowKey(r["model"], r["version"], int(r["ws"]))
                if key in tasks["regression"]:
                    fields = {
                        f: r[f]
                        for f in ("n", "sum_err", "sum_abs_err", "sum_sq_err", "sum_y", "sum_y2", "n_pred", "sum_pred")
                    }
                    summ = RegressionSummary(**fields)
                    rows.extend(summary_rows(key, w, summ.metrics(), summ.n_pred, summ.n))
        if binary:
            params["segkeys"] = watched_segment_keys(store, params, config, {k.model for k in binary})

            def threshold(m: str) -> float:
                return config.model(m).threshold

            models = binary_summaries(store.query_arrow(binned_sql("prediction"), params), threshold)
            # The baseline's statistics only where some prediction has one (most fleets have none).
            based = binary & with_baseline
            bases = {}
            if based:
                bases = binary_summaries(store.query_arrow(binned_sql("baseline"), params), threshold)
            for key in sorted(binary):
                cfg = config.model(key.model)
                rows.extend(binary_rows(key, w, cfg, models.get(key, {}), bases.get(key, {})))
            if based:
                rows.extend(discordant_rows(store, params, w, based))
    if orphan_keys:
        params = due_params(config, orphan_keys)
        for model, ws, outcomes, orphaned in store.query_rows(ORPHANS, params):
            key = WindowKey(model, "", int(ws))
            if key in orphan_keys:
                rows.append(_row(key, w, "orphaned_outcomes", orphaned, outcomes))
    return rows
