"""Every panel of every watchkeeper dashboard: the one source of truth.

A panel is a title, a visualisation, one ClickHouse query written for Grafana's
ClickHouse plugin (macros ``$__timeFilter``, ``$__timeInterval``, ``$__fromTime``,
``$__toTime``, ``$__interval_s``; template variables ``${model:singlequote}`` and
``IN (${version:singlequote})``) and the columns that query returns. The same
definitions become the Grafana dashboards (``dashboards/grafana.py``) and the
static HTML report (``dashboards/report.py``, which binds the macros as query
parameters with ``watchkeeper.dashboards.macros.bind``).

Conventions the renderers rely on:

- ``timeseries``, ``heatmap`` and ``statetimeline`` panels return a *long* time
  series: a ``time`` column first, then the label columns named in ``series``,
  then numeric value columns, ordered by time (Grafana's plugin turns that into
  one series per label combination).
- ``xychart`` panels return the x column first, then y.
- ``barchart`` panels return a category column first, then numeric columns.
- ``stat`` panels return one row with one number.

Weighted means: a metric row's ``n`` is the number of events behind its value,
so a rate over several windows or versions is ``sum(value * n) / sum(n)``.
Aliases never reuse a column name of the table they read (``sum(value) AS value``
is a cyclic alias on ClickHouse servers with the old analyzer).

>>> [d.uid for d in DASHBOARDS]
['watchkeeper-fleet', 'watchkeeper-model', 'watchkeeper-alerts', 'watchkeeper-pipeline']
>>> PANELS["model_roc"].columns
('fpr', 'tpr')
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from watchkeeper.detectors import LatencySketch

DATASOURCE_TYPE = "grafana-clickhouse-datasource"
DATASOURCE_UID = "watchkeeper-clickhouse"

Viz = Literal["table", "timeseries", "stat", "barchart", "xychart", "heatmap", "statetimeline"]
TIME_SERIES_VIZ = frozenset({"timeseries", "heatmap", "statetimeline"})

# Fairness gaps between groups (detectors/fairness.py), under their long and short names.
GAP_METRICS = (
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "fpr_difference",
    "equalized_odds_difference",
    "disparate_impact_ratio",
    "demographic_parity_diff",
    "equal_opportunity_diff",
    "equalized_odds_diff",
)
_GAPS = ", ".join(f"'{m}'" for m in GAP_METRICS)  # constants, never user values

# Filters shared by the model-detail panels.
_MODEL = "model = ${model:singlequote} AND version IN (${version:singlequote})"

# The metric rows of the range: the windows for ranges up to a week, the daily rollup (metrics_daily)
# beyond, so months of dashboards read days rather than windows. Both carry the same values (counts
# summed, rates weighted by n), so a panel's aggregation holds for either; a rolled-up day that starts
# before the range is dated at the range's start.
ROLLUP_AFTER_HOURS = 168
_METRICS = f"""(
    SELECT window_start, model, version, segment, metric, value, n FROM metrics FINAL
    WHERE $__timeFilter(window_start) AND dateDiff('hour', $__fromTime, $__toTime) <= {ROLLUP_AFTER_HOURS}
    UNION ALL
    SELECT greatest(toDateTime(day, 'UTC'), $__fromTime) AS window_start, model, version, segment, metric, value, n
    FROM metrics_daily FINAL
    WHERE day >= toDate($__fromTime) AND day <= toDate($__toTime)
      AND dateDiff('hour', $__fromTime, $__toTime) > {ROLLUP_AFTER_HOURS}
)"""


@dataclass(frozen=True)
class Panel:
    """One panel: what it shows, the SQL that feeds it, the columns that SQL returns."""

    key: str
    title: str
    viz: Viz
    sql: str
    columns: tuple[str, ...]
    description: str
    series: tuple[str, ...] = ()  # label columns of a long time series
    unit: str | None = None
    width: int = 12
    height: int = 8
    stacked: bool = False
    link_model: bool = False  # the ``model`` column links to the model dashboard
    column_units: tuple[tuple[str, str], ...] = ()  # (column, Grafana unit) for tables

    @property
    def time_series(self) -> bool:
        return self.viz in TIME_SERIES_VIZ

    @property
    def format(self) -> int:
        """The plugin's ``format``: 0 = time series (long to wide), 1 = table."""
        return 0 if self.time_series else 1

    @property
    def values(self) -> tuple[str, ...]:
        """The numeric columns (what is plotted)."""
        skip = {"time", *self.series}
        if self.viz in ("barchart", "xychart"):
            skip.add(self.columns[0])
        return tuple(c for c in self.columns if c not in skip)


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    """A dashboard template variable filled by a query."""

    name: str
    label: str
    sql: str
    multi: bool = False


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = ()
    tags: tuple[str, ...] = ("watchkeeper",)
    time_from: str = "now-24h"

    def panels(self) -> Iterator[Panel]:
        for row in self.rows:
            yield from row.panels


MODEL_VARIABLE = Variable(
    "model",
    "Model",
    "SELECT DISTINCT model FROM metrics WHERE $__timeFilter(window_start) AND version != '' ORDER BY model",
)
VERSION_VARIABLE = Variable(
    "version",
    "Version",
    "SELECT DISTINCT version FROM metrics WHERE model = ${model:singlequote} AND version != '' "
    "AND $__timeFilter(window_start) ORDER BY version",
    multi=True,
)

# --------------------------------------------------------------------------- fleet

FLEET_MODELS = Panel(
    "fleet_models",
    "Models",
    "table",
    f"""
SELECT m.model AS model,
       o.owner_name AS owner,
       m.traffic AS traffic,
       m.labelled / nullIf(m.traffic, 0) AS label_coverage,
       if(m.auc_n > 0, 'roc_auc', 'accuracy') AS key_metric,
       if(m.auc_n > 0, m.auc, m.acc) AS key_value,
       if(m.auc_n > 0, m.auc_late - m.auc_early, m.acc_late - m.acc_early) AS trend,
       m.lift AS lift_vs_baseline,
       a.firing AS firing_alerts,
       a.sunset > 0 AS sunset_candidate
FROM (
    SELECT model,
           sumIf(n, metric = 'predictions') AS traffic,
           sumIf(value, metric = 'labelled') AS labelled,
           sumIf(n, metric = 'roc_auc') AS auc_n,
           sumIf(value * n, metric = 'roc_auc') / nullIf(auc_n, 0) AS auc,
           sumIf(value * n, metric = 'accuracy') / nullIf(sumIf(n, metric = 'accuracy'), 0) AS acc,
           sumIf(value * n, metric = 'lift_accuracy') / nullIf(sumIf(n, metric = 'lift_accuracy'), 0) AS lift,
           sumIf(value * n, metric = 'roc_auc' AND early)
               / nullIf(sumIf(n, metric = 'roc_auc' AND early), 0) AS auc_early,
           sumIf(value * n, metric = 'roc_auc' AND NOT early)
               / nullIf(sumIf(n, metric = 'roc_auc' AND NOT early), 0) AS auc_late,
           sumIf(value * n, metric = 'accuracy' AND early)
               / nullIf(sumIf(n, metric = 'accuracy' AND early), 0) AS acc_early,
           sumIf(value * n, metric = 'accuracy' AND NOT early)
               / nullIf(sumIf(n, metric = 'accuracy' AND NOT early), 0) AS acc_late
    FROM (
        -- "early": the first half of the model's own windows in the range (trend = late - early).
        SELECT model, metric, value, n,
               toUnixTimestamp(window_start) * 2 < toUnixTimestamp(min(window_start) OVER (PARTITION BY model))
                   + toUnixTimestamp(max(window_start) OVER (PARTITION BY model)) AS early
        FROM {_METRICS}
        WHERE $__timeFilter(window_start) AND segment = '' AND version != ''
          AND metric IN ('predictions', 'labelled', 'roc_auc', 'accuracy', 'lift_accuracy')
    )
    GROUP BY model
) AS m
LEFT JOIN (
    SELECT model, argMax(owner, ts) AS owner_name FROM alerts FINAL WHERE owner != '' GROUP BY model
) AS o ON o.model = m.model
LEFT JOIN (
    SELECT model, countIf(last_state = 'firing') AS firing,
           countIf(last_state = 'firing' AND last_kind = 'sunset') AS sunset
    FROM (
        SELECT model, alert_id, argMax(state, ts) AS last_state, argMax(kind, ts) AS last_kind
        FROM alerts FINAL WHERE ts <= $__toTime GROUP BY model, alert_id
    )
    GROUP BY model
) AS a ON a.model = m.model
ORDER BY model
""",
    (
        "model",
        "owner",
        "traffic",
        "label_coverage",
        "key_metric",
        "key_value",
        "trend",
        "lift_vs_baseline",
        "firing_alerts",
        "sunset_candidate",
    ),
    "Every model with traffic in the range: owner (from its alerts), predictions, the share that got a "
    "label, its key metric (ROC AUC when computed, else accuracy) and the change of that metric from the "
    "first to the second half of the model's windows in the range, lift over the baseline, firing alerts "
    "and whether a sunset alert is firing.",
    width=24,
    height=9,
    link_model=True,
    column_units=(
        ("label_coverage", "percentunit"),
        ("key_value", "percentunit"),
        ("trend", "percentunit"),
        ("lift_vs_baseline", "percentunit"),
    ),
)

FLEET_STATS = (
    Panel(
        "fleet_stat_models",
        "Models with traffic",
        "stat",
        f"SELECT uniqExact(model) AS models FROM {_METRICS} "
        "WHERE $__timeFilter(window_start) AND metric = 'predictions' AND version != ''",
        ("models",),
        "Models that served at least one prediction in the range.",
        width=6,
        height=4,
    ),
    Panel(
        "fleet_stat_predictions",
        "Predictions",
        "stat",
        f"SELECT sum(n) AS predictions FROM {_METRICS} "
        "WHERE $__timeFilter(window_start) AND metric = 'predictions' AND segment = '' AND version != ''",
        ("predictions",),
        "Predictions counted in the range, all models.",
        unit="short",
        width=6,
        height=4,
    ),
    Panel(
        "fleet_stat_firing",
        "Firing alerts",
        "stat",
        "SELECT countIf(last_state = 'firing') AS firing_alerts FROM ("
        "SELECT alert_id, argMax(state, ts) AS last_state FROM alerts FINAL "
        "WHERE ts <= $__toTime GROUP BY alert_id)",
        ("firing_alerts",),
        "Alerts whose latest state at the end of the range is firing.",
        width=6,
        height=4,
    ),
    Panel(
        "fleet_stat_dead_letters",
        "Dead letters",
        "stat",
        "SELECT count() AS dead_letters FROM dead_letters FINAL WHERE $__timeFilter(ts)",
        ("dead_letters",),
        "Messages and events rejected in the range (see Pipeline health).",
        width=6,
        height=4,
    ),
)

FLEET_ACCURACY = Panel(
    "fleet_accuracy",
    "Accuracy by model",
    "timeseries",
    f"""
SELECT $__timeInterval(window_start) AS time, model,
       sum(value * n) / nullIf(sum(n), 0) AS accuracy
FROM {_METRICS}
WHERE $__timeFilter(window_start) AND metric = 'accuracy' AND segment = '' AND version != ''
GROUP BY time, model
ORDER BY time
""",
    ("time", "model", "accuracy"),
    "Accuracy of labelled predictions, weighted by labels, per model (all versions).",
    series=("model",),
    unit="percentunit",
)

FLEET_TRAFFIC = Panel(
    "fleet_traffic",
    "Predictions by model",
    "timeseries",
    f"""
SELECT $__timeInterval(window_start) AS time, model, sum(n) AS predictions
FROM {_METRICS}
WHERE $__timeFilter(window_start) AND metric = 'predictions' AND segment = '' AND version != ''
GROUP BY time, model
ORDER BY time
""",
    ("time", "model", "predictions"),
    "Predictions per interval, per model.",
    series=("model",),
    unit="short",
    stacked=True,
)

# Latest state of every alert at the end of the range.
_ALERT_STATE = """
SELECT alert_id, model AS alert_model,
       argMax(version, ts) AS last_version, argMax(kind, ts) AS last_kind,
       argMax(severity, ts) AS last_severity, argMax(owner, ts) AS last_owner,
       argMax(summary, ts) AS last_summary, argMax(state, ts) AS last_state, max(ts) AS last_change
FROM alerts FINAL
WHERE ts <= $__toTime
GROUP BY alert_id, model
"""

FLEET_FIRING = Panel(
    "fleet_firing_alerts",
    "Firing alerts",
    "table",
    f"""
SELECT last_change AS since, alert_model AS model, last_version AS version, last_kind AS kind,
       last_severity AS severity, last_owner AS owner, last_summary AS summary
FROM ({_ALERT_STATE})
WHERE last_state = 'firing'
ORDER BY since DESC
""",
    ("since", "model", "version", "kind", "severity", "owner", "summary"),
    "Alerts firing at the end of the range, newest first.",
    link_model=True,
)

FLEET_SUNSET = Panel(
    "fleet_sunset_candidates",
    "Sunset candidates",
    "table",
    f"""
SELECT alert_model AS model, last_owner AS owner, last_change AS since, last_summary AS summary
FROM ({_ALERT_STATE})
WHERE last_state = 'firing' AND last_kind = 'sunset'
ORDER BY since
""",
    ("model", "owner", "since", "summary"),
    "Models with a firing sunset alert: candidates to retire.",
    link_model=True,
)

FLEET = DashboardSpec(
    "watchkeeper-fleet",
    "watchkeeper · Fleet overview",
    "Every monitored model at a glance: traffic, labels, performance, alerts.",
    (
        Row("Fleet", (*FLEET_STATS, FLEET_MODELS)),
        Row("Trends", (FLEET_ACCURACY, FLEET_TRAFFIC)),
        Row("Alerts", (FLEET_FIRING, FLEET_SUNSET)),
    ),
)

# --------------------------------------------------------------------------- model detail


def _series_over_time(metric_filter: str, label: str, alias: str, *, segment: str = "segment = ''") -> str:
    """Weighted mean of metrics per interval and label (a constant SQL fragment builder)."""
    return f"""
SELECT $__timeInterval(window_start) AS time, {label},
       sum(value * n) / nullIf(sum(n), 0) AS {alias}
FROM {_METRICS}
WHERE {_MODEL} AND {segment} AND {metric_filter} AND $__timeFilter(window_start)
GROUP BY time, {label.split(" AS ")[-1]}
ORDER BY time
"""


MODEL_PERFORMANCE = Panel(
    "model_performance",
    "Performance by version",
    "timeseries",
    _series_over_time("metric IN ('accuracy', 'roc_auc', 'f1', 'precision', 'recall')", "version, metric", "score"),
    ("time", "version", "metric", "score"),
    "Accuracy, ROC AUC, F1, precision and recall of each version, weighted by labelled predictions.",
    series=("version", "metric"),
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
FROM {_METRICS}
WHERE {_MODEL} AND segment = '' AND metric IN ('tp', 'fp', 'tn', 'fn') AND $__timeFilter(window_start)
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
FROM {_METRICS}
WHERE {_MODEL} AND metric IN ('score_hist_pos', 'score_hist_neg') AND startsWith(segment, 'bin=')
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
WHERE {_MODEL} AND feature NOT IN ('__prediction__', '__label__') AND $__timeFilter(window_start)
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
WHERE {_MODEL} AND $__timeFilter(window_start)
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
WHERE {_MODEL} AND feature IN ('__prediction__', '__label__') AND $__timeFilter(window_start)
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
FROM {_METRICS}
WHERE {_MODEL} AND segment != '' AND position(segment, '=') > 0
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
FROM {_METRICS}
WHERE {_MODEL} AND metric IN ({_GAPS}) AND $__timeFilter(window_start)
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
    FROM {_METRICS}
    WHERE {_MODEL} AND metric = 'latency_bucket' AND $__timeFilter(window_start)
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
FROM {_METRICS}
WHERE {_MODEL} AND segment = '' AND metric IN ('predictions', 'labelled') AND $__timeFilter(window_start)
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

# --------------------------------------------------------------------------- alerts

ALERTS_TIMELINE = Panel(
    "alerts_timeline",
    "Alert timeline",
    "statetimeline",
    """
SELECT ts AS time, concat(model, ' · ', kind) AS alert, if(state = 'firing', 1, 0) AS firing
FROM alerts FINAL
WHERE $__timeFilter(ts)
ORDER BY time
""",
    ("time", "alert", "firing"),
    "When each model's alerts fired (1) and resolved (0).",
    series=("alert",),
    width=24,
    height=9,
)

ALERTS_OVER_TIME = Panel(
    "alerts_over_time",
    "Alerts fired by kind",
    "timeseries",
    """
SELECT $__timeInterval(ts) AS time, kind, count() AS fired
FROM alerts FINAL
WHERE $__timeFilter(ts) AND state = 'firing'
GROUP BY time, kind
ORDER BY time
""",
    ("time", "kind", "fired"),
    "Alerts that started firing per interval, by kind.",
    series=("kind",),
    unit="short",
    stacked=True,
    width=24,
)


def _alert_counts(key: str, column: str, expr: str, label: str) -> Panel:
    return Panel(
        f"alerts_by_{key}",
        f"Alerts by {label}",
        "barchart",
        f"""
SELECT {expr} AS {column}, count() AS fired
FROM alerts FINAL
WHERE $__timeFilter(ts) AND state = 'firing'
GROUP BY {column}
ORDER BY fired DESC
""",
        (column, "fired"),
        f"Alerts that fired in the range, by {label}.",
        unit="short",
        width=8,
    )


ALERTS_BY_KIND = _alert_counts("kind", "kind_name", "kind", "kind")
ALERTS_BY_OWNER = _alert_counts("owner", "team", "if(owner = '', '(no owner)', owner)", "owner")
ALERTS_BY_SEVERITY = _alert_counts("severity", "level", "severity", "severity")

ALERTS_RESOLVE = Panel(
    "alerts_time_to_resolve",
    "Time to resolve",
    "table",
    """
SELECT kind_name AS kind, count() AS resolved,
       quantile(0.5)(minutes) AS median_minutes, quantile(0.9)(minutes) AS p90_minutes,
       max(minutes) AS max_minutes
FROM (
    SELECT kind AS kind_name, dateDiff('second', fired_at, ts) / 60 AS minutes
    FROM alerts FINAL
    WHERE state = 'resolved' AND $__timeFilter(ts)
)
GROUP BY kind_name
ORDER BY kind_name
""",
    ("kind", "resolved", "median_minutes", "p90_minutes", "max_minutes"),
    "Minutes from firing to resolved, for alerts resolved in the range.",
    column_units=(("median_minutes", "m"), ("p90_minutes", "m"), ("max_minutes", "m")),
)

ALERTS_LOG = Panel(
    "alerts_log",
    "Alert log",
    "table",
    """
SELECT ts AS changed, model, version, kind, severity, state, owner, summary
FROM alerts FINAL
WHERE $__timeFilter(ts)
ORDER BY changed DESC
LIMIT 500
""",
    ("changed", "model", "version", "kind", "severity", "state", "owner", "summary"),
    "Every alert state change in the range, newest first.",
    link_model=True,
)

ALERTS = DashboardSpec(
    "watchkeeper-alerts",
    "watchkeeper · Alerts",
    "Alerts raised by watchkeeper's policies: when, what, whose, and how fast they were resolved.",
    (
        Row("Timeline", (ALERTS_TIMELINE, ALERTS_OVER_TIME)),
        Row("Counts", (ALERTS_BY_KIND, ALERTS_BY_OWNER, ALERTS_BY_SEVERITY)),
        Row("Resolution", (ALERTS_RESOLVE, ALERTS_LOG)),
    ),
    time_from="now-7d",
)

# --------------------------------------------------------------------------- pipeline health

# A dead letter's reason: its error without the position details of a JSON error
# ("bad JSON: unexpected end of data: line 1 column 71 (char 70)" -> "bad JSON: unexpected end of data").
_REASON = "left(replaceRegexpAll(error, ': line [0-9]+ column [0-9]+ [(]char [0-9]+[)]', ''), 80)"

PIPELINE_EVENTS = Panel(
    "pipeline_events_per_s",
    "Events per second",
    "timeseries",
    """
SELECT $__timeInterval(window_start) AS time, model, sum(cnt) / nullIf(sum(secs), 0) AS events_per_s
FROM (
    SELECT window_start, model, sum(n) AS cnt, any(dateDiff('second', window_start, window_end)) AS secs
    FROM metrics FINAL
    WHERE metric = 'predictions' AND segment = '' AND version != '' AND $__timeFilter(window_start)
    GROUP BY window_start, model
)
GROUP BY time, model
ORDER BY time
""",
    ("time", "model", "events_per_s"),
    "Predictions per second of event time, per model.",
    series=("model",),
    unit="reqps",
    stacked=True,
    width=24,
)

PIPELINE_DEAD_OVER_TIME = Panel(
    "pipeline_dead_letters",
    "Dead letters by reason",
    "timeseries",
    f"""
SELECT $__timeInterval(ts) AS time, {_REASON} AS reason, count() AS dead_letters
FROM dead_letters FINAL
WHERE $__timeFilter(ts)
GROUP BY time, reason
ORDER BY time
""",
    ("time", "reason", "dead_letters"),
    "Rejected messages and events per interval, by reason.",
    series=("reason",),
    unit="short",
    stacked=True,
)

PIPELINE_DEAD_TABLE = Panel(
    "pipeline_dead_letter_reasons",
    "Dead-letter reasons",
    "table",
    f"""
SELECT {_REASON} AS reason, topic, count() AS dead_letters, max(ts) AS last_seen,
       min(error) AS example
FROM dead_letters FINAL
WHERE $__timeFilter(ts)
GROUP BY reason, topic
ORDER BY dead_letters DESC, reason, topic
""",
    ("reason", "topic", "dead_letters", "last_seen", "example"),
    "Why messages were rejected in the range (query dead_letters for the payloads).",
)


def _count_over_time(key: str, title: str, metric: str, description: str) -> Panel:
    return Panel(
        key,
        title,
        "timeseries",
        f"""
SELECT $__timeInterval(window_start) AS time, model, sum(value) AS {metric}_count
FROM {_METRICS}
WHERE metric = '{metric}' AND segment = '' AND $__timeFilter(window_start)
GROUP BY time, model
ORDER BY time
""",
        ("time", "model", f"{metric}_count"),
        description,
        series=("model",),
        unit="short",
        width=8,
    )


PIPELINE_ORPHANS = _count_over_time(
    "pipeline_orphans",
    "Join orphans",
    "orphaned_outcomes",
    "Outcomes whose prediction had not arrived an hour (orphan_after_seconds) after their window.",
)
PIPELINE_LATE = _count_over_time(
    "pipeline_late_labels",
    "Late labels",
    "late_labels",
    "Labels that arrived after their window's end plus the allowed label delay.",
)

PIPELINE_LABEL_RATE = Panel(
    "pipeline_label_rate",
    "Label coverage",
    "timeseries",
    f"""
SELECT $__timeInterval(window_start) AS time, model,
       sumIf(value, metric = 'labelled') / nullIf(sumIf(value, metric = 'predictions'), 0) AS label_coverage
FROM {_METRICS}
WHERE metric IN ('predictions', 'labelled') AND segment = '' AND version != '' AND $__timeFilter(window_start)
GROUP BY time, model
ORDER BY time
""",
    ("time", "model", "label_coverage"),
    "Share of predictions that have a label, per model.",
    series=("model",),
    unit="percentunit",
    width=8,
)

PIPELINE_FRESHNESS = Panel(
    "pipeline_freshness",
    "Freshness (worker output)",
    "table",
    """
SELECT model, max(window_end) AS last_window_end, max(computed_at) AS last_written,
       uniqExact(window_start) AS windows
FROM metrics FINAL
WHERE $__timeFilter(window_start) AND version != ''
GROUP BY model
ORDER BY last_written
""",
    ("model", "last_window_end", "last_written", "windows"),
    "When the workers last wrote each model's windows: a model whose last write lags is not being processed.",
    width=24,
    height=6,
    link_model=True,
)


def _ops_over_time(key: str, title: str, metric: str, description: str, unit: str) -> Panel:
    return Panel(
        key,
        title,
        "timeseries",
        f"""
SELECT $__timeInterval(window_start) AS time, model, sum(value * n) / nullIf(sum(n), 0) AS {metric}
FROM {_METRICS}
WHERE metric = '{metric}' AND segment = '' AND version != '' AND $__timeFilter(window_start)
GROUP BY time, model
ORDER BY time
""",
        ("time", "model", metric),
        description,
        series=("model",),
        unit=unit,
        width=12,
    )


PIPELINE_LAG = _ops_over_time(
    "pipeline_lag",
    "Processing lag (p95)",
    "lag_seconds",
    "From the broker's receipt of a prediction to its row in the store, p95 per window (alert above 15 min).",
    "s",
)
PIPELINE_DEAD_RATE = _ops_over_time(
    "pipeline_dead_letter_rate",
    "Dead-letter rate",
    "dead_letter_rate",
    "Dead letters naming the model among the messages carrying its predictions (alert above 1%).",
    "percentunit",
)

PIPELINE = DashboardSpec(
    "watchkeeper-pipeline",
    "watchkeeper · Pipeline health",
    "Throughput, lag, rejected input, the join's orphans and late labels, and worker freshness.",
    (
        Row("Throughput", (PIPELINE_EVENTS,)),
        Row("Health", (PIPELINE_LAG, PIPELINE_DEAD_RATE)),
        Row("Rejected input", (PIPELINE_DEAD_OVER_TIME, PIPELINE_DEAD_TABLE)),
        Row("Join", (PIPELINE_ORPHANS, PIPELINE_LATE, PIPELINE_LABEL_RATE)),
        Row("Workers", (PIPELINE_FRESHNESS,)),
    ),
    time_from="now-6h",
)

DASHBOARDS: tuple[DashboardSpec, ...] = (FLEET, MODEL, ALERTS, PIPELINE)

PANELS: dict[str, Panel] = {p.key: p for d in DASHBOARDS for p in d.panels()}
