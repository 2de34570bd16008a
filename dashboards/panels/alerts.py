"""The alerts dashboard: when, what, whose, and how fast alerts were resolved."""

from __future__ import annotations

from watchkeeper.dashboards.panels.spec import DashboardSpec, Panel, Row

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
