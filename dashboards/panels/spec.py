"""What a panel and a dashboard are: the types every renderer (Grafana JSON, the static report) reads.

The conventions the renderers rely on are in the package docstring (``dashboards/panels/__init__.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

DATASOURCE_TYPE = "grafana-clickhouse-datasource"
DATASOURCE_UID = "watchkeeper-clickhouse"

Viz = Literal["table", "timeseries", "stat", "barchart", "xychart", "heatmap", "statetimeline"]
TIME_SERIES_VIZ = frozenset({"timeseries", "heatmap", "statetimeline"})


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
