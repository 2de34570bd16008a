"""The model dashboard: one model version in detail — performance, curves, drift, fairness, serving."""

from __future__ import annotations

from watchkeeper.dashboards.panels.spec import DashboardSpec, Panel, Row
from watchkeeper.dashboards.panels.sql import GAP_LIST, METRIC_ROWS, MODEL_FILTER, MODEL_VARIABLE, VERSION_VARIABLE
from watchkeeper.detectors import LatencySketch


def _series_over_time(
    metric_filter: str, label: str, alias: str, *, segment: str = "segment = ''", group: str | None = None
) -> str:
    """Weighted mean of metrics per interval and label (a constant SQL fragment builder); ``group``: the
    label's columns when it is more than one expression."""
    return f"""
SELECT $__timeInterval(window_start) AS time, {label},
       sum(value * n) / nullIf(sum(n), 0) AS {alias}
FROM {METRIC_ROWS}
WHERE {MODEL_FILTER} AND {segment} AND {metric_filter} AND $__timeFilter(window_start)
GROUP BY time, {group or label.split(" AS ")[-1]}
ORDER BY time
"""


# Label-based values of windows whose label delay has not passed are provisional (the labels so far):
# their own series, so that a dip on a few labels is not read as final.
MODEL_PERFORMANCE = Panel(
    "model_performance",
    "Performance by version",
    "timeseries",
    _series_over_time(
        "metric IN ('accuracy', 'roc_auc', 'f1', 'precision', 'recall')",
        "version, metric, if(provisional = 1, 'provisional', 'final') AS labels",
        "score",
        group="version, metric, labels",
    ),
    ("time", "version", "metric", "labels", "score"),
    "Accuracy, ROC AUC, F1, precision and recall of each version, weighted by labelled predictions; "
    "'provisional' series are from the labels so far (the label delay has not passed), 'final' ones are not "
    "rewritten.",
    series=("version", "metric", "labels"),
    unit="percentunit",
    width=24,
)

MODEL_EST_VS_REAL = Panel(
    "model_estimated_vs_realized",
    "Estimated vs realized accuracy",
    "timeseries",
    _series_over_time(
        "metric IN ('est_accuracy', 'accuracy')",
        "if(metric = 'est_accuracy', 'estimated', 'realized') AS kind",
        "accuracy",
    ),
    ("time", "kind", "accuracy"),
    "Accuracy estimated from the scores before labels arrive (CBPE) against the accuracy the labels show.",
    series=("kind",),
    unit="percentunit",
)

MODEL_CONFUSION = Panel(
    "model_confusion",
    "Confusion counts",
    "timeseries",
    f"""
SELECT $__timeInterval(window_start) AS time,
       sumIf(value, metric = 'tp') AS tp, sumIf(value, metric = 'fp') AS fp,
       sumIf(value, metric = 'tn') AS tn, sumIf(value, metric = 'fn') AS fn
FROM {METRIC_ROWS}
WHERE {MODEL_FILTER} AND segment = '' AND metric IN ('tp', 'fp', 'tn', 'fn') AND $__timeFilter(window_start)
GROUP BY time
ORDER BY time
""",
    ("time", "tp", "fp", "tn", "fn"),
    "True/false positives and negatives at the model's decision threshold, labelled predictions only.",
    unit="short",
    stacked=True,
)

MODEL_COST = Panel(
    "model_expected_cost",
    "Expected cost per prediction",
    "timeseries",
    _series_over_time("metric = 'expected_cost'", "version", "expected_cost"),
    ("time", "version", "expected_cost"),
    "Mean cost of the model's answers under its cost matrix (models.<name>.cost).",
    series=("version",),
)

# Score histogram of the range: one row per bin (``segment`` = ``bin=<lower edge>``).
_HIST = f"""
SELECT toFloat64OrZero(substring(segment, 5)) AS threshold,
       sumIf(value, metric = 'score_hist_pos') AS pos,
       sumIf(value, metric = 'score_hist_neg') AS neg
FROM {METRIC_ROWS}
WHERE {MODEL_FILTER} AND metric IN ('score_hist_pos', 'score_hist_neg') AND startsWith(segment, 'bin=')
  AND $__timeFilter(window_start)
GROUP BY threshold
"""
# Cumulative counts from the highest threshold down: the confusion matrix at each threshold.
_CUMULATIVE = f"""
SELECT threshold,
       sum(pos) OVER (ORDER BY threshold DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS tp_cum,
       sum(neg) OVER (ORDER BY threshold DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS fp_cum,
       sum(pos) OVER () AS pos_total,
       sum(neg) OVER () AS neg_total
FROM ({_HIST})
"""

MODEL_ROC = Panel(
    "model_roc",
    "ROC curve",
    "xychart",
    f"""
SELECT fp_cum / nullIf(neg_total, 0) AS fpr, tp_cum / nullIf(pos_total, 0) AS tpr
FROM ({_CUMULATIVE})
ORDER BY threshold DESC
""",
    ("fpr", "tpr"),
    "True positive rate against false positive rate at every score threshold, from the score histograms "
    "of the selected range (metrics score_hist_pos / score_hist_neg).",
    width=8,
)

MODEL_PR = Panel(
    "model_pr",
    "Precision-recall curve",
    "xychart",
    f"""
SELECT tp_cum / nullIf(pos_total, 0) AS recall, tp_cum / nullIf(tp_cum + fp_cum, 0) AS precision
FROM ({_CUMULATIVE})
ORDER BY threshold DESC
""",
    ("recall", "precision"),
    "Precision against recall at every score threshold, from the score histograms of the selected range.",
    width=8,
)

MODEL_CALIBRATION = Panel(
    "model_calibration",
    "Calibration",
    "xychart",
    f"""
SELECT sum(mid * (pos + neg)) / sum(pos + neg) AS predicted, sum(pos) / sum(pos + neg) AS observed
FROM (
    SELECT threshold + least(gap, min_gap) / 2 AS mid, pos, neg
    FROM (
        SELECT threshold, pos, neg, gap, min(gap) OVER () AS min_gap
        FROM (
            SELECT threshold, pos, neg,
                   leadInFrame(threshold, 1, 1.0) OVER (
                       ORDER BY threshold ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
                   ) - threshold AS gap
            FROM ({_HIST})
        )
    )
)
WHERE pos + neg > 0
GROUP BY least(floor(mid * 10), 9) AS decile
ORDER BY predicted
""",
    ("predicted", "observed"),
    "Share of positives among predictions in each tenth of the score range, against their mean score "
    "(bin centres); on the diagonal the scores are calibrated.",
    width=8,
)

MODEL_DRIFT_HEATMAP = Panel(
    "model_drift_heatmap",
    "Feature drift",
    "heatmap",
    f"""
SELECT $__timeInterval(window_start) AS time, feature, avg(drifted) AS drift_share
FROM drift FINAL
WHERE {MODEL_FILTER} AND feature NOT IN ('__prediction__', '__label__') AND $__timeFilter(window_start)
GROUP BY time, feature
ORDER BY time, feature
""",
    ("time", "feature", "drift_share"),
    "Feature by window: the share of drift detectors that flagged the feature (1 = all of them).",
    series=("feature",),
    width=24,
    height=9,
)

MODEL_DRIFT_FEATURES = Panel(
    "model_drift_features",
    "Drift by feature",
    "table",
    f"""
SELECT feature, detector, count() AS windows, sum(drifted) AS drifted_windows,
       max(statistic) AS max_statistic, any(threshold) AS detector_threshold,
       if(sum(drifted) > 0, maxIf(window_start, drifted = 1), NULL) AS last_drift
FROM drift FINAL
WHERE {MODEL_FILTER} AND $__timeFilter(window_start)
GROUP BY feature, detector
ORDER BY drifted_windows DESC, feature, detector
""",
    ("feature", "detector", "windows", "drifted_windows", "max_statistic", "detector_threshold", "last_drift"),
    "Per feature and detector: windows tested, windows flagged, the largest statistic and the last drift.",
)

MODEL_OUTPUT_DRIFT = Panel(
    "model_output_drift",
    "Prediction and label drift",
    "timeseries",
    f"""
SELECT $__timeInterval(window_start) AS time,
       concat(if(feature = '__prediction__', 'prediction', 'label'), ' · ', detector) AS signal,
       max(statistic) AS drift_statistic
FROM drift FINAL
WHERE {MODEL_FILTER} AND feature IN ('__prediction__', '__label__') AND $__timeFilter(window_start)
GROUP BY time, signal
ORDER BY time
""",
    ("time", "signal", "drift_statistic"),
    "Drift statistic of the prediction (score) distribution and of the label distribution.",
    series=("signal",),
)

MODEL_FAIRNESS = Panel(
    "model_fairness_groups",
    "Fairness by group",
    "barchart",
    f"""
SELECT segment,
       sumIf(value * n, metric = 'positive_rate') / nullIf(sumIf(n, metric = 'positive_rate'), 0) AS positive_rate,
       sumIf(value * n, metric = 'tpr') / nullIf(sumIf(n, metric = 'tpr'), 0) AS tpr,
       sumIf(value * n, metric = 'fpr') / nullIf(sumIf(n, metric = 'fpr'), 0) AS fpr
FROM {METRIC_ROWS}
WHERE {MODEL_FILTER} AND segment != '' AND position(segment, '=') > 0
  AND metric IN ('positive_rate', 'tpr', 'fpr') AND $__timeFilter(window_start)
GROUP BY segment
ORDER BY segment
""",
    ("segment", "positive_rate", "tpr", "fpr"),
    "Positive (selection) rate, true positive rate and false positive rate per group (segment such as "
    "region=eu) over the range.",
    unit="percentunit",
)

MODEL_FAIRNESS_GAPS = Panel(
    "model_fairness_gaps",
    "Fairness gaps",
    "timeseries",
    f"""
SELECT $__timeInterval(window_start) AS time,
       if(segment = '', metric, concat(metric, ' · ', segment)) AS gap,
       max(value) AS gap_value
FROM {METRIC_ROWS}
WHERE {MODEL_FILTER} AND metric IN ({GAP_LIST}) AND $__timeFilter(window_start)
GROUP BY time, gap
ORDER BY time
""",
    ("time", "gap", "gap_value"),
    "Differences between groups (largest minus smallest rate) and the disparate-impact ratio.",
    series=("gap",),
)

# Percentiles of an interval from the latency sketch's buckets summed over its windows (bucket key k
# holds values within 1% of 2 gamma^k / (gamma + 1)); the first key whose cumulative count passes the
# rank is the percentile's bucket, as in watchkeeper.detectors.LatencySketch.quantile.
_GAMMA = LatencySketch().gamma
MODEL_LATENCY = Panel(
    "model_latency",
    "Serving latency",
    "timeseries",
    f"""
SELECT time, percentile,
       2 * pow({_GAMMA!r}, b[arrayFirstIndex(c -> c > q * (arraySum(counts) - 1), arrayCumSum(counts))].1)
           / ({_GAMMA!r} + 1) AS latency_ms
FROM (
    SELECT $__timeInterval(window_start) AS time,
           arraySort(groupArray((toInt32(substring(segment, 5)), toUInt64(value)))) AS b,
           arrayMap(x -> x.2, b) AS counts
    FROM {METRIC_ROWS}
    WHERE {MODEL_FILTER} AND metric = 'latency_bucket' AND $__timeFilter(window_start)
    GROUP BY time
)
ARRAY JOIN [0.5, 0.95, 0.99] AS q, ['p50', 'p95', 'p99'] AS percentile
ORDER BY time, percentile
""",
    ("time", "percentile", "latency_ms"),
    "Latency percentiles reported by the serving service, from the mergeable sketch of each interval "
    "(all selected versions, 1% relative accuracy).",
    series=("percentile",),
    unit="ms",
)

MODEL_FALLBACK = Panel(
    "model_fallback_rate",
    "Fallback rate",
    "timeseries",
    _series_over_time("metric = 'fallback_rate'", "version", "fallback_rate"),
    ("time", "version", "fallback_rate"),
    "Share of predictions where the service fell back to a default answer.",
    series=("version",),
    unit="percentunit",
)

MODEL_TRAFFIC = Panel(
    "model_traffic",
    "Predictions and labels",
    "timeseries",
    f"""
SELECT $__timeInterval(window_start) AS time, version,
       sumIf(value, metric = 'predictions') AS predictions,
       sumIf(value, metric = 'labelled') AS labelled
FROM {METRIC_ROWS}
WHERE {MODEL_FILTER} AND segment = '' AND metric IN ('predictions', 'labelled') AND $__timeFilter(window_start)
GROUP BY time, version
ORDER BY time
""",
    ("time", "version", "predictions", "labelled"),
    "Predictions served and how many of them have a label, per version.",
    series=("version",),
    unit="short",
)

MODEL_ALERTS = Panel(
    "model_alerts",
    "Alerts of this model",
    "table",
    """
SELECT ts AS changed, version, kind, severity, state, summary
FROM alerts FINAL
WHERE model = ${model:singlequote} AND $__timeFilter(ts)
ORDER BY changed DESC
LIMIT 200
""",
    ("changed", "version", "kind", "severity", "state", "summary"),
    "Every state change of this model's alerts in the range.",
)

MODEL = DashboardSpec(
    "watchkeeper-model",
    "watchkeeper · Model detail",
    "One model: performance by version, curves from the score histograms, drift, fairness, serving.",
    (
        Row("Performance", (MODEL_PERFORMANCE, MODEL_EST_VS_REAL, MODEL_CONFUSION, MODEL_COST)),
        Row("Curves (selected range)", (MODEL_ROC, MODEL_PR, MODEL_CALIBRATION)),
        Row("Drift", (MODEL_DRIFT_HEATMAP, MODEL_DRIFT_FEATURES, MODEL_OUTPUT_DRIFT)),
        Row("Fairness", (MODEL_FAIRNESS, MODEL_FAIRNESS_GAPS)),
        Row("Serving", (MODEL_TRAFFIC, MODEL_LATENCY, MODEL_FALLBACK, MODEL_ALERTS)),
    ),
    variables=(MODEL_VARIABLE, VERSION_VARIABLE),
)
