"""SQL fragments shared by the panels: the metric rows of a range, the model filter, the gap metrics.

Panels are written for Grafana's ClickHouse plugin (its macros and template
variables); these fragments are the parts most panels repeat, kept once.
"""

from __future__ import annotations

from watchkeeper.dashboards.panels.spec import Variable
from watchkeeper.detectors.fairness import GAP_NAMES

# Fairness gaps between groups (detectors/fairness.py), under their long and short names.
GAP_METRICS = GAP_NAMES
GAP_LIST = ", ".join(f"'{m}'" for m in GAP_METRICS)  # constants, never user values

# Filters shared by the model-detail panels.
MODEL_FILTER = "model = ${model:singlequote} AND version IN (${version:singlequote})"

# The metric rows of the range: the windows for ranges up to a week, the daily rollup (metrics_daily)
# beyond, so months of dashboards read days rather than windows. Both carry the same values (counts
# summed, rates weighted by n), so a panel's aggregation holds for either; a rolled-up day that starts
# before the range is dated at the range's start. ``provisional`` (1: a label-based value from the labels so
# far, before the label delay passed; for a day, some window of it) lets a panel show both.
ROLLUP_AFTER_HOURS = 168
METRIC_ROWS = f"""(
    SELECT window_start, model, version, segment, metric, value, n, provisional FROM metrics FINAL
    WHERE $__timeFilter(window_start) AND dateDiff('hour', $__fromTime, $__toTime) <= {ROLLUP_AFTER_HOURS}
    UNION ALL
    SELECT greatest(toDateTime(day, 'UTC'), $__fromTime) AS window_start, model, version, segment, metric, value, n,
           provisional
    FROM metrics_daily FINAL
    WHERE day >= toDate($__fromTime) AND day <= toDate($__toTime)
      AND dateDiff('hour', $__fromTime, $__toTime) > {ROLLUP_AFTER_HOURS}
)"""

MODEL_VARIABLE = Variable(
    "model",
    "Model",
    "SELECT DISTINCT model FROM metrics FINAL WHERE $__timeFilter(window_start) AND version != '' ORDER BY model",
)
VERSION_VARIABLE = Variable(
    "version",
    "Version",
    "SELECT DISTINCT version FROM metrics FINAL WHERE model = ${model:singlequote} AND version != '' "
    "AND $__timeFilter(window_start) ORDER BY version",
    multi=True,
)
