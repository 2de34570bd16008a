"""Every panel of every watchkeeper dashboard: the one source of truth, one module per dashboard.

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

Modules: ``spec`` (the Panel/Row/Variable/DashboardSpec types), ``sql`` (the shared SQL
fragments), and ``fleet``, ``model``, ``alerts``, ``pipeline`` (one dashboard each).

>>> [d.uid for d in DASHBOARDS]
['watchkeeper-fleet', 'watchkeeper-model', 'watchkeeper-alerts', 'watchkeeper-pipeline']
>>> PANELS["model_roc"].columns
('fpr', 'tpr')
"""

from __future__ import annotations

from watchkeeper.dashboards.panels.alerts import ALERTS
from watchkeeper.dashboards.panels.fleet import FLEET
from watchkeeper.dashboards.panels.model import MODEL
from watchkeeper.dashboards.panels.pipeline import PIPELINE
from watchkeeper.dashboards.panels.spec import (
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    TIME_SERIES_VIZ,
    DashboardSpec,
    Panel,
    Row,
    Variable,
    Viz,
)
from watchkeeper.dashboards.panels.sql import GAP_METRICS, MODEL_VARIABLE, ROLLUP_AFTER_HOURS, VERSION_VARIABLE

__all__ = [
    "ALERTS", "DASHBOARDS", "DATASOURCE_TYPE", "DATASOURCE_UID", "FLEET", "GAP_METRICS", "MODEL", "MODEL_VARIABLE",
    "PANELS", "PIPELINE", "ROLLUP_AFTER_HOURS", "TIME_SERIES_VIZ", "VERSION_VARIABLE", "DashboardSpec", "Panel",
    "Row", "Variable", "Viz",
]  # fmt: skip


DASHBOARDS: tuple[DashboardSpec, ...] = (FLEET, MODEL, ALERTS, PIPELINE)

PANELS: dict[str, Panel] = {p.key: p for d in DASHBOARDS for p in d.panels()}
