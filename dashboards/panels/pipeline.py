"""The pipeline dashboard: events in, dead letters, the join, label arrival, workers."""

from __future__ import annotations

from watchkeeper.dashboards.panels.spec import DashboardSpec, Panel, Row
from watchkeeper.dashboards.panels.sql import METRIC_ROWS

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
FROM {METRIC_ROWS}
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
FROM {METRIC_ROWS}
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
FROM {METRIC_ROWS}
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
