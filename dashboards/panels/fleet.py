"""The fleet dashboard: every model at a glance — traffic, quality, alerts, sunset candidates."""

from __future__ import annotations

from watchkeeper.dashboards.panels.spec import DashboardSpec, Panel, Row
from watchkeeper.dashboards.panels.sql import METRIC_ROWS

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
        FROM {METRIC_ROWS}
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
        f"SELECT uniqExact(model) AS models FROM {METRIC_ROWS} "
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
        f"SELECT sum(n) AS predictions FROM {METRIC_ROWS} "
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
FROM {METRIC_ROWS}
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
FROM {METRIC_ROWS}
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
