"""Grafana dashboards built with grafana-foundation-sdk from the panel definitions.

grafana-foundation-sdk has builders for many datasources but none for ClickHouse:
``ClickHouseQuery`` is the official plugin's query (``refId``, ``rawSql``,
``format``, ``queryType``, ``editorType``, ``datasource``) as a
``cog.variants.Dataquery``, which ``Panel().with_target(...)`` accepts.

>>> d = dashboard_json(FLEET)
>>> d["uid"], d["panels"][1]["targets"][0]["datasource"]["uid"]
('watchkeeper-fleet', 'watchkeeper-clickhouse')
"""

from __future__ import annotations

import json
from typing import Any, Self

try:
    from grafana_foundation_sdk.builders import (
        barchart,
        common,
        heatmap,
        stat,
        statetimeline,
        table,
        timeseries,
        xychart,
    )
    from grafana_foundation_sdk.builders import dashboard as dash
    from grafana_foundation_sdk.cog import builder as cogbuilder
    from grafana_foundation_sdk.cog import variants as cogvariants
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import common as common_models
    from grafana_foundation_sdk.models import dashboard as dash_models
    from grafana_foundation_sdk.models import heatmap as heatmap_models
except ModuleNotFoundError as exc:  # optional extra [grafana]; the built files are in the repository
    raise ModuleNotFoundError(
        "building the Grafana dashboards needs `pip install 'watchkeeper[grafana]'`", name="grafana_foundation_sdk"
    ) from exc

from watchkeeper.dashboards.panels import (
    DASHBOARDS,
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    FLEET,
    MODEL,
    DashboardSpec,
    Panel,
    Variable,
)

DATASOURCE = dash_models.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
MODEL_LINK = "/d/" + MODEL.uid + "/?var-model=${__value.raw}&${__url_time_range}"

__all__ = ["ClickHouseQuery", "ClickHouseQueryBuilder", "dashboard_json", "all_dashboards", "FLEET"]


class ClickHouseQuery(cogvariants.Dataquery):
    """A query of the ``grafana-clickhouse-datasource`` plugin (SQL editor)."""

    def __init__(self, ref_id: str, raw_sql: str, fmt: int = 1, *, interval_ms: int | None = None) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format = fmt  # 0 = time series (long to wide), 1 = table
        self.interval_ms = interval_ms

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "refId": self.ref_id,
            "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
            "editorType": "sql",
            "rawSql": self.raw_sql,
            "format": self.format,
            "queryType": "timeseries" if self.format == 0 else "table",
        }
        if self.interval_ms is not None:
            out["intervalMs"] = self.interval_ms
            out["maxDataPoints"] = 43200
        return out


class ClickHouseQueryBuilder(cogbuilder.Builder[ClickHouseQuery]):
    """Builder wrapper so the query plugs into the SDK's ``with_target`` / alerting ``Query.model``."""

    def __init__(self, query: ClickHouseQuery) -> None:
        self._query = query

    @classmethod
    def sql(cls, raw_sql: str, fmt: int = 1, ref_id: str = "A", interval_ms: int | None = None) -> Self:
        return cls(ClickHouseQuery(ref_id, raw_sql.strip(), fmt, interval_ms=interval_ms))

    def build(self) -> ClickHouseQuery:
        return self._query


def _legend() -> common.VizLegendOptions:
    return (
        common.VizLegendOptions()
        .show_legend(True)
        .display_mode(common_models.LegendDisplayMode.LIST)
        .placement(common_models.LegendPlacement.BOTTOM)
    )


def _tooltip() -> common.VizTooltipOptions:
    return (
        common.VizTooltipOptions().mode(common_models.TooltipDisplayMode.MULTI).sort(common_models.SortOrder.DESCENDING)
    )


def _model_link() -> dash_models.DynamicConfigValue:
    return dash_models.DynamicConfigValue(id_val="links", value=[{"title": "Open model detail", "url": MODEL_LINK}])


def _viz(panel: Panel) -> Any:
    """The SDK panel builder for one panel definition (visual options only)."""
    if panel.viz == "timeseries":
        ts = timeseries.Panel().legend(_legend()).tooltip(_tooltip()).fill_opacity(12).line_width(2)
        ts = ts.show_points(common_models.VisibilityMode.NEVER).span_nulls(False)
        if panel.stacked:
            ts = ts.stacking(common.StackingConfig().mode(common_models.StackingMode.NORMAL)).fill_opacity(40)
        if panel.unit == "percentunit":
            ts = ts.min(0)
        return ts
    if panel.viz == "table":
        tb = table.Panel().show_header(True).cell_height(common_models.TableCellHeight.SM)
        return tb
    if panel.viz == "stat":
        return (
            stat.Panel()
            .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .color_mode(common_models.BigValueColorMode.VALUE)
            .graph_mode(common_models.BigValueGraphMode.NONE)
            .text_mode(common_models.BigValueTextMode.VALUE)
        )
    if panel.viz == "barchart":
        return (
            barchart.Panel()
            .x_field(panel.columns[0])
            .orientation(common_models.VizOrientation.HORIZONTAL)
            .legend(_legend())
            .tooltip(_tooltip())
            .show_value(common_models.VisibilityMode.AUTO)
        )
    if panel.viz == "xychart":
        return xychart.Panel().legend(_legend()).tooltip(_tooltip()).min(0).max(1)
    if panel.viz == "heatmap":
        return (
            heatmap.Panel()
            .calculate(False)
            .color(
                heatmap.HeatmapColorOptions()
                .mode(heatmap_models.HeatmapColorMode.SCHEME)
                .scheme("Reds")
                .steps(32)
                .min(0)
                .max(1)
            )
            .show_legend()
            .show_tooltip()
        )
    if panel.viz == "statetimeline":
        return (
            statetimeline.Panel()
            .show_value(common_models.VisibilityMode.NEVER)
            .merge_values(True)
            .legend(_legend())
            .mappings(
                [
                    dash_models.ValueMap(
                        options={
                            "1": dash_models.ValueMappingResult(text="firing", color="red", index=0),
                            "0": dash_models.ValueMappingResult(text="resolved", color="green", index=1),
                        }
                    )
                ]
            )
        )
    raise ValueError(f"unknown visualisation {panel.viz!r}")


def panel_builder(panel: Panel, panel_id: int) -> Any:
    """An SDK panel builder for ``panel`` with its ClickHouse target."""
    b = (
        _viz(panel)
        .id(panel_id)
        .title(panel.title)
        .description(panel.description)
        .datasource(DATASOURCE)
        .with_target(ClickHouseQueryBuilder.sql(panel.sql, panel.format))
        .span(panel.width)
        .height(panel.height)
    )
    if panel.unit:
        b = b.unit(panel.unit)
    if panel.link_model and "model" in panel.columns:
        b = b.override_by_name("model", [_model_link()])
    for column, unit in panel.column_units:
        b = b.override_by_name(column, [dash_models.DynamicConfigValue(id_val="unit", value=unit)])
    return b


def _variable(var: Variable) -> dash.QueryVariable:
    v = (
        dash.QueryVariable(var.name)
        .label(var.label)
        .datasource(DATASOURCE)
        .query({"rawSql": var.sql.strip(), "editorType": "sql"})
        .refresh(dash_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_models.VariableSort.ALPHABETICAL_ASC)
    )
    if var.multi:
        v = (
            v.multi(True)
            .include_all(True)
            .current(dash_models.VariableOption(selected=True, text="All", value="$__all"))
        )
    return v


def dashboard_builder(spec: DashboardSpec) -> dash.Dashboard:
    """The SDK dashboard builder of one dashboard definition."""
    d = (
        dash.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(list(spec.tags))
        .editable()
        .timezone("utc")
        .time(spec.time_from, "now")
        .refresh("1m")
        .tooltip(dash_models.DashboardCursorSync.CROSSHAIR)
    )
    for var in spec.variables:
        d = d.with_variable(_variable(var))
    for other in DASHBOARDS:
        if other.uid != spec.uid:
            d = d.link(
                dash.DashboardLink(other.title.split(" · ")[-1])
                .type(dash_models.DashboardLinkType.LINK)
                .url(f"/d/{other.uid}")
                .keep_time(True)
                .include_vars(False)
            )
    panel_id = 1
    for row in spec.rows:
        d = d.with_row(dash.Row(row.title).id(panel_id))
        panel_id += 1
        for panel in row.panels:
            d = d.with_panel(panel_builder(panel, panel_id))
            panel_id += 1
    return d


def dashboard_json(spec: DashboardSpec) -> dict[str, Any]:
    """The dashboard model Grafana stores (what a provisioned JSON file holds)."""
    data: dict[str, Any] = json.loads(json.dumps(dashboard_builder(spec).build(), cls=JSONEncoder))
    data["id"] = None
    return data


def all_dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard by uid."""
    return {spec.uid: dashboard_json(spec) for spec in DASHBOARDS}
