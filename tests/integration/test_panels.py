"""Every dashboard panel's SQL runs against a store filled by a real stream run.

The store is populated by the embedded stack (Tansu, worker, chdb) with 60
minutes of the demo scenario (``stream_run`` in conftest.py). Each panel's SQL
is run twice, for the data's range and a demo model:

- bound as ClickHouse query parameters (``watchkeeper.dashboards.macros.bind``, what the
  report does), and
- expanded the way Grafana and the ClickHouse plugin expand it (values quoted
  into the text by Grafana's ``singlequote`` format, macros by the plugin's
  backend), to prove the SQL Grafana will send is valid ClickHouse;

both must return the panel's columns and the same rows. A failing query fails.
Panels over data the stream does not write yet may be empty (``PENDING_DATA``);
every other panel must return rows, and a pending panel that starts returning
rows must leave the list.

A second test fills a separate store with synthetic score histograms, group
metrics and drift rows, and checks what the curve, fairness and drift panels
compute from them.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from watchkeeper.dashboards.alerting import RULES
from watchkeeper.dashboards.macros import TimeRange, bind
from watchkeeper.dashboards.panels import MODEL_VARIABLE, PANELS, VERSION_VARIABLE, Panel
from watchkeeper.dashboards.report import data_range, report_interval
from watchkeeper.detectors.binary import average_precision_from_hist, roc_auc_from_hist
from watchkeeper.sinks.schema import Retention
from watchkeeper.sinks.writer import Store

pytestmark = pytest.mark.integration

# Panels allowed to return no rows for the stream's data, and why.
PENDING_DATA: dict[str, str] = {
    "alerts_time_to_resolve": "resolved alerts (the one-hour test scenario resolves none)",
}

DEMO_MODEL = "demo.churn"


def _grafana_quote(value: str) -> str:
    """Grafana's ``singlequote`` variable format."""
    return "'" + value.replace("'", "\\'") + "'"


def grafana_sql(sql: str, tr: TimeRange, interval_s: int, model: str | None, versions: list[str] | None) -> str:
    """The SQL as Grafana sends it: variables quoted in by Grafana, then the plugin's macros."""
    if model is not None:
        sql = sql.replace("${model:singlequote}", _grafana_quote(model))
    if versions is not None:
        sql = sql.replace("${version:singlequote}", ",".join(_grafana_quote(v) for v in versions))
    f, t = int(tr.start.timestamp()), int(tr.end.timestamp())
    sql = re.sub(r"\$__timeFilter\(([^()]+)\)", rf"\1 >= toDateTime({f}) AND \1 <= toDateTime({t})", sql)
    sql = re.sub(
        r"\$__timeInterval\(([^()]+)\)", rf"toStartOfInterval(toDateTime(\1), INTERVAL {interval_s} second)", sql
    )
    sql = sql.replace("$__fromTime", f"toDateTime({f})").replace("$__toTime", f"toDateTime({t})")
    sql = sql.replace("$__interval_s", str(interval_s))
    assert "$" not in sql, sql
    return sql


def run(store: Store, sql: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[list[Any]]]:
    """Column names (also when there are no rows) and rows, as ClickHouse's JSONCompact gives them."""
    doc = json.loads(store.raw(sql, fmt="JSONCompact", params=params))
    return [m["name"] for m in doc["meta"]], doc["data"]


@pytest.fixture(scope="module")
def context(stream_run: Any) -> dict[str, Any]:
    store = stream_run.store
    tr = data_range(store)
    assert tr is not None
    q = bind(VERSION_VARIABLE.sql, tr, model=DEMO_MODEL)
    versions = [r["version"] for r in store.query(q.sql, q.params)]
    return {"store": store, "tr": tr, "interval": report_interval(store, tr), "versions": versions}


def test_template_variables_list_the_demo_models_and_versions(stream_run: Any, context: dict[str, Any]) -> None:
    q = bind(MODEL_VARIABLE.sql, context["tr"])
    assert [r["model"] for r in stream_run.store.query(q.sql, q.params)] == stream_run.models
    assert context["versions"] == ["v1"]


def test_pending_list_names_real_panels() -> None:
    assert set(PENDING_DATA) <= set(PANELS)


@pytest.mark.parametrize("key", sorted(PANELS))
def test_panel_sql_runs_and_returns_its_columns(key: str, context: dict[str, Any]) -> None:
    panel: Panel = PANELS[key]
    store, tr, interval, versions = context["store"], context["tr"], context["interval"], context["versions"]
    q = bind(panel.sql, tr, interval_s=interval, model=DEMO_MODEL, versions=versions)
    literal = grafana_sql(panel.sql, tr, interval, DEMO_MODEL, versions)
    # Same rows; rows that tie on the panel's ORDER BY may come in either order. The stream's
    # worker still runs (an alert may fire between two queries): agree on some try of a few.
    for _ in range(5):
        columns, rows = run(store, q.sql, q.params)
        literal_columns, literal_rows = run(store, literal)
        if sorted(map(repr, literal_rows)) == sorted(map(repr, rows)):
            break
        time.sleep(1)
    assert tuple(columns) == panel.columns
    assert tuple(literal_columns) == panel.columns
    assert sorted(map(repr, literal_rows)) == sorted(map(repr, rows)), (
        "Grafana's expansion and the report's parameters disagree"
    )

    if key in PENDING_DATA:
        assert not rows, f"{key} now returns rows: remove it from PENDING_DATA"
    else:
        assert rows, f"{key} returned no rows for the stream's data"
    if panel.time_series and rows:
        times = [r[0] for r in rows]
        assert times == sorted(times), "time series must be ordered by time"


def test_ranges_over_a_week_read_the_daily_rollup(context: dict[str, Any], stream_run: Any) -> None:
    """Over 30 days the metric panels read ``metrics_daily``: one point per model and day (at a 5-minute
    interval the windows would give one per window), with the windows' totals; both expansions agree."""
    store, versions = context["store"], context["versions"]
    tr = context["tr"]
    month = TimeRange(tr.end - timedelta(days=30), tr.end)
    rolled = [key for key, panel in PANELS.items() if "metrics_daily" in panel.sql]
    assert "fleet_traffic" in rolled and "model_performance" in rolled
    for key in rolled:
        panel = PANELS[key]
        q = bind(panel.sql, month, interval_s=300, model=DEMO_MODEL, versions=versions)
        literal = grafana_sql(panel.sql, month, 300, DEMO_MODEL, versions)
        for _ in range(5):  # the stream's worker still runs: agree on some try of a few
            columns, rows = run(store, q.sql, q.params)
            _, literal_rows = run(store, literal)
            if sorted(map(repr, literal_rows)) == sorted(map(repr, rows)):
                break
            time.sleep(1)
        assert tuple(columns) == panel.columns, key
        assert rows or key in PENDING_DATA, f"{key} returned no rows over 30 days"
        assert sorted(map(repr, literal_rows)) == sorted(map(repr, rows)), key
    q = bind(PANELS["fleet_traffic"].sql, month, interval_s=300)
    points: dict[str, list[int]] = {}
    for r in store.query(q.sql, q.params):
        points.setdefault(r["model"], []).append(int(r["predictions"]))
    days = dict(
        store.query_rows(
            "SELECT model, uniqExact(toDate(window_start)) FROM metrics FINAL WHERE metric = 'predictions' "
            "AND version != '' GROUP BY model"
        )
    )
    for model in stream_run.models:
        assert len(points[model]) == days[model]  # one point a day, not one a window
        assert sum(points[model]) == stream_run.scenario.expected[model]["predictions"]


def test_fleet_table_shows_the_drifting_model(context: dict[str, Any], stream_run: Any) -> None:
    q = bind(PANELS["fleet_models"].sql, context["tr"])
    rows = {r["model"]: r for r in context["store"].query(q.sql, q.params)}
    assert sorted(rows) == stream_run.models
    for model, r in rows.items():
        expected = stream_run.scenario.expected[model]
        assert r["traffic"] == expected["predictions"]
        assert r["label_coverage"] == pytest.approx(expected["labelled"] / expected["predictions"])
        assert r["key_metric"] == "roc_auc"  # the fleet table prefers ranking quality when scores exist
    # demo.churn drifts halfway: its accuracy falls from about 0.8 to about 0.4.
    assert rows["demo.churn"]["trend"] < -0.25
    assert all(abs(r["trend"]) < 0.1 for m, r in rows.items() if m != "demo.churn")


def test_alert_rule_queries_run(context: dict[str, Any], stream_run: Any) -> None:
    from watchkeeper.alerts.engine import list_alerts

    store, tr = context["store"], context["tr"]
    for uid, rule in RULES.items():
        window = TimeRange(tr.end - timedelta(seconds=rule.window_s), tr.end)
        q = bind(rule.sql, window)
        columns, rows = run(store, q.sql, q.params)
        literal = grafana_sql(rule.sql, window, 60, None, None)
        assert run(store, literal)[1] == rows, uid
    # Grafana's rule agrees with the engine by construction: its instances are the engine's firing alerts.
    (rule,) = RULES.values()
    q = bind(rule.sql, TimeRange(tr.end - timedelta(seconds=rule.window_s), datetime.now(UTC) + timedelta(days=1)))
    instances = {(r["model"], r["kind"], r["severity"]): r["firing"] for r in store.query(q.sql, q.params)}
    engine: dict[tuple[str, str, str], int] = {}
    for a in list_alerts(store, state="firing"):
        engine[(a.model, a.kind, a.severity)] = engine.get((a.model, a.kind, a.severity), 0) + 1
    assert instances == engine
    assert {(m, k) for m, k, _ in instances} >= {("demo.churn", "drift"), ("demo.churn", "retrain")}


# --------------------------------------------------------------------------- synthetic data


def _metric_rows(model: str, start: datetime, items: list[tuple[int, str, str, float, int]]) -> dict[str, list[Any]]:
    names = ("window_start", "window_end", "model", "version", "segment", "metric", "value", "n", "computed_at")
    cols: dict[str, list[Any]] = {k: [] for k in names}
    for w, segment, metric, value, n in items:
        ws = start + timedelta(minutes=5 * w)
        for k, v in zip(
            cols,
            (ws, ws + timedelta(minutes=5), model, "v1", segment, metric, value, n, datetime.now(UTC)),
            strict=True,
        ):
            cols[k].append(v)
    return cols


def test_curve_fairness_and_drift_panels_compute_from_synthetic_rows(store: tuple[str, int]) -> None:
    """Rows in the shape the detectors will write: the panels must turn them into the right numbers."""
    s = Store(host=store[0], port=store[1])
    s.migrate(Retention())
    start = datetime(2026, 3, 1, tzinfo=UTC)
    rng = np.random.default_rng(5)
    edges = np.arange(20) / 20
    pos = np.zeros(20)
    neg = np.zeros(20)
    items: list[tuple[int, str, str, float, int]] = []
    for w in range(3):  # three windows: the panels sum the histograms of the range
        p = rng.poisson(1 + 12 * edges)
        q = rng.poisson(1 + 12 * (1 - edges))
        pos += p
        neg += q
        for b, e in enumerate(edges):
            items.append((w, f"bin={e:.2f}", "score_hist_pos", float(p[b]), 1))
            items.append((w, f"bin={e:.2f}", "score_hist_neg", float(q[b]), 1))
    # positive rate per region, weighted by n across windows
    items += [(0, "region=eu", "positive_rate", 0.2, 100), (1, "region=eu", "positive_rate", 0.5, 300)]
    items += [(0, "region=us", "positive_rate", 0.4, 50), (0, "", "positive_rate", 0.9, 1000)]
    s.insert("metrics", {k: v for k, v in _metric_rows("synthetic", start, items).items()})
    drift: dict[str, list[Any]] = {
        k: []
        for k in (
            "ts",
            "window_start",
            "window_end",
            "model",
            "version",
            "feature",
            "detector",
            "statistic",
            "threshold",
            "drifted",
            "computed_at",
        )
    }
    for det, flag in (("ks", 1), ("psi", 0)):
        for k, v in zip(
            drift,
            (
                start,
                start,
                start + timedelta(minutes=5),
                "synthetic",
                "v1",
                "amount",
                det,
                0.3,
                0.2,
                flag,
                datetime.now(UTC),
            ),
            strict=True,
        ):
            drift[k].append(v)
    s.insert("drift", {k: v for k, v in drift.items()})

    tr = TimeRange(start, start + timedelta(minutes=15))

    def panel(key: str) -> list[dict[str, Any]]:
        q = bind(PANELS[key].sql, tr, interval_s=300, model="synthetic", versions=["v1"])
        return s.query(q.sql, q.params)

    roc = [(0.0, 0.0)] + [(r["fpr"], r["tpr"]) for r in panel("model_roc")]
    assert roc[-1] == (1.0, 1.0)
    auc = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(roc, roc[1:], strict=False))
    assert auc == pytest.approx(roc_auc_from_hist(pos, neg), abs=1e-12)

    pr = panel("model_pr")
    recall = [0.0] + [r["recall"] for r in pr]
    ap = sum((r1 - r0) * r["precision"] for r0, r1, r in zip(recall, recall[1:], pr, strict=False))
    assert ap == pytest.approx(average_precision_from_hist(pos, neg), abs=1e-12)

    calibration = panel("model_calibration")
    assert len(calibration) == 10
    for i, r in enumerate(calibration):
        tenth = slice(2 * i, 2 * i + 2)  # two 0.05-bins per tenth
        assert r["observed"] == pytest.approx(pos[tenth].sum() / (pos[tenth].sum() + neg[tenth].sum()))
        n = pos[tenth] + neg[tenth]
        assert r["predicted"] == pytest.approx(float(((edges[tenth] + 0.025) * n).sum() / n.sum()))

    groups = {r["segment"]: r["positive_rate"] for r in panel("model_fairness_groups")}
    assert groups == {"region=eu": pytest.approx((0.2 * 100 + 0.5 * 300) / 400), "region=us": 0.4}

    assert [(r["feature"], r["drift_share"]) for r in panel("model_drift_heatmap")] == [("amount", 0.5)]
    s.close()
