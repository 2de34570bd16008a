"""The analysts' views and the query API give the same numbers as the long tables read the documented way."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest

from watchkeeper import query
from watchkeeper.alerts.model import Alert, alert_id_for
from watchkeeper.sinks.views import WIDE_METRICS
from watchkeeper.streams.events import Outcome, Prediction
from watchkeeper.streams.ingest import SourceMessage
from watchkeeper.streams.service import Worker, migrate
from watchkeeper.windows.closer import WindowCloser

pytestmark = pytest.mark.integration
W = 300
# The settings of the ``worker`` fixture (tests/integration/conftest.py).
WORKER_SETTINGS = dict(window_seconds=W, label_delay_seconds=0, idle_flush=3600)


def send(worker: Worker, kind: type, events: list[dict], offset: int) -> None:
    worker.write_batch(worker.build_batch([SourceMessage("t", 0, offset, orjson.dumps({"events": events}), None)],
                                          kind))  # fmt: skip


@pytest.fixture(scope="module")
def filled(store: tuple[str, int]) -> tuple[str, float]:
    """Two versions of a binary model over 4 windows, with baselines, latency, segments and late labels."""
    from watchkeeper.settings import Settings

    worker = Worker(Settings(store_port=store[1], **WORKER_SETTINGS))
    worker.ensure_schema()
    rng = np.random.default_rng(11)
    t0 = int(time.time() - 86400) // W * W
    preds, outs = [], []
    for i in range(1200):
        ts = t0 + i * (4 * W / 1200)
        y = int(rng.random() < 0.4)
        score = float(np.clip(0.6 * y + rng.normal(0.2, 0.25), 0, 1))
        preds.append({"prediction_id": f"v{i}", "model": "views", "version": "v1" if i % 3 else "v2", "ts": ts,
                      "prediction": score, "features": {"x": float(rng.normal()), "c": "ab"[i % 2]},
                      "segments": {"region": "eu" if i % 4 else "us"}, "baseline": 0.5,
                      "latency_ms": float(rng.gamma(2, 5))})  # fmt: skip
        if i % 5:
            outs.append({"prediction_id": f"v{i}", "model": "views", "outcome": y, "ts": ts + 30})
    send(worker, Prediction, preds, 1)
    send(worker, Outcome, outs, 2)
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)
    migrate(worker.store, worker.settings)  # a second start: the views are replaced, nothing else changes
    yield "views", float(t0)
    worker.store.close()


def long_table(worker_store: object, model: str) -> dict[tuple[str, int, str], float]:
    rows = worker_store.query_rows(  # type: ignore[attr-defined]
        "SELECT version, toUnixTimestamp(window_start), metric, value FROM metrics FINAL "
        "WHERE model = {m:String} AND segment = '' AND version != '' AND position(version, ' vs ') = 0",
        {"m": model},
    )
    return {(v, int(w), m): float(x) for v, w, m, x in rows}


def test_metrics_wide_equals_the_long_table(worker: Worker, filled: tuple[str, float]) -> None:
    model, _ = filled
    long = long_table(worker.store, model)
    wide = query.metrics(model, store=worker.store)
    assert len(wide) == len({(v, w) for v, w, _ in long}) >= 8  # 2 versions x 4 windows
    compared = 0
    for row in wide.to_dict("records"):
        key = (row["version"], int(row["window_start"].timestamp()))
        assert row["labelled"] == long[(*key, "labelled")]
        for metric in WIDE_METRICS:
            if (*key, metric) in long and not math.isnan(long[(*key, metric)]):
                assert row[metric] == pytest.approx(long[(*key, metric)], rel=1e-12), metric
                compared += 1
    assert compared > 8 * 15  # accuracy, recall, roc_auc, latency, lift, ... in every window
    # predictions: the window's events (the `n` of the predictions row)
    n = dict(((v, int(w)), int(c)) for v, w, c in worker.store.query_rows(
        "SELECT version, toUnixTimestamp(window_start), sum(n) FROM metrics FINAL WHERE model = {m:String} "
        "AND segment = '' AND metric = 'predictions' GROUP BY version, window_start", {"m": model}))  # fmt: skip
    assert {(r["version"], int(r["window_start"].timestamp())): r["predictions"] for _, r in wide.iterrows()} == n
    assert sum(n.values()) == 1200


def test_metrics_that_do_not_apply_are_null_not_zero(worker: Worker, filled: tuple[str, float]) -> None:
    """A binary classifier has no mae, rmse or macro_f1: the view showed 0 for them (maxIf of nothing)."""
    model, _ = filled
    rows = worker.store.query(
        "SELECT accuracy, roc_auc, mae, rmse, r2, macro_f1 FROM metrics_wide WHERE model = {m:String}", {"m": model}
    )
    assert len(rows) >= 8
    assert all(r["mae"] is None and r["rmse"] is None and r["r2"] is None and r["macro_f1"] is None for r in rows)
    assert all(r["accuracy"] is not None and 0 < r["roc_auc"] <= 1 for r in rows)
    zeros = worker.store.query_rows(
        "SELECT count() FROM metrics_wide WHERE model = {m:String} AND mae = 0", {"m": model}
    )
    assert zeros == [(0,)]


def test_one_metric_by_segment_and_range(worker: Worker, filled: tuple[str, float]) -> None:
    model, t0 = filled
    df = query.metric(model, "accuracy", segment="region=eu", since=t0 + W, store=worker.store)
    rows = worker.store.query_rows(
        "SELECT count(), sum(value) FROM metrics FINAL WHERE model = {m:String} AND metric = 'accuracy' "
        "AND segment = 'region=eu' AND window_start >= {s:DateTime('UTC')}",
        {"m": model, "s": datetime.fromtimestamp(t0 + W, UTC)},
    )
    assert (len(df), pytest.approx(df["value"].sum())) == (rows[0][0], rows[0][1])
    assert len(df) == 6  # 3 windows from t0 + W on, 2 versions


def test_drift_flags_count_the_drift_rows(worker: Worker, filled: tuple[str, float]) -> None:
    model, _ = filled
    df = query.drift(model, store=worker.store)
    assert not df.empty
    rows = worker.store.query_rows(
        "SELECT version, toUnixTimestamp(window_start), countIf(drifted = 1 AND NOT startsWith(feature, '__')) "
        "FROM drift FINAL WHERE model = {m:String} GROUP BY version, window_start", {"m": model})  # fmt: skip
    assert {(r["version"], int(r["window_start"].timestamp())): r["features_drifted"] for _, r in df.iterrows()} \
        == {(v, int(w), ) : c for v, w, c in rows}  # fmt: skip


def test_alerts_current_is_each_alerts_latest_state(worker: Worker) -> None:
    t = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    aid = alert_id_for("views-alert", "v1", "drift", "features")
    for state, minutes in (("firing", 0), ("resolved", 30)):
        a = Alert(alert_id=aid, model="views-alert", version="v1", kind="drift", severity="warning", state=state,
                  summary=state, evidence={"subject": "features"}, ts=t.timestamp() + 60 * minutes,
                  fired_at=t)  # fmt: skip
        row = a.to_row()
        worker.store.insert("alerts", {c: [v] for c, v in row.items()})
    df = query.alerts("views-alert", store=worker.store)
    assert df[["alert_id", "state", "summary"]].values.tolist() == [[aid, "resolved", "resolved"]]
    assert query.alerts("views-alert", state="firing", store=worker.store).empty


def test_an_unknown_model_metric_or_version_is_an_error_naming_the_known_ones(
    worker: Worker, filled: tuple[str, float]
) -> None:
    """`query.metrics("nope")` and a misspelt metric returned an empty frame of shape (0, 0)."""
    model, t0 = filled
    with pytest.raises(query.NotFound, match=r"no model 'nope' in the store \(known: .*'?views'?"):
        query.metrics("nope", store=worker.store)
    with pytest.raises(query.NotFound, match="did you mean 'views'"):
        query.drift("veiws", store=worker.store)
    with pytest.raises(query.NotFound, match=r"no metric 'acuracy' for model 'views'.*did you mean 'accuracy'"):
        query.metric(model, "acuracy", store=worker.store)
    with pytest.raises(query.NotFound, match=r"no version 'v9' of model 'views' in the store \(known: v1, v2\)"):
        query.metrics(model, version="v9", store=worker.store)
    with pytest.raises(query.NotFound, match="no segment 'region=mars'"):
        query.metric(model, "accuracy", segment="region=mars", store=worker.store)
    # A known model with nothing in the range: empty, with its columns (not shape (0, 0)).
    empty = query.metrics(model, since=t0 + 365 * 86400, store=worker.store)
    assert empty.shape == (0, len(WIDE_METRICS) + 9) and "accuracy" in empty.columns
    assert query.metric(model, "accuracy", until=t0 - 86400, store=worker.store).columns.tolist() == [
        "version", "window_start", "window_end", "value", "n"]  # fmt: skip


def test_times_come_back_utc_aware(worker: Worker, filled: tuple[str, float]) -> None:
    model, t0 = filled
    for df in (query.metrics(model, store=worker.store), query.metric(model, "accuracy", store=worker.store),
               query.drift(model, store=worker.store)):  # fmt: skip
        assert str(df["window_start"].dt.tz) == "UTC" and str(df["window_end"].dt.tz) == "UTC"
        first = df["window_start"].min().to_pydatetime()
        assert first.tzinfo is not None and first == datetime.fromtimestamp(t0, UTC)
    assert str(query.metrics(model, store=worker.store)["computed_at"].dt.tz) == "UTC"


def test_alerts_carry_evidence_acknowledged_and_silenced(worker: Worker) -> None:
    """`query.alerts` had no evidence, acknowledged or silenced columns: `watchkeeper alerts` has them."""
    from watchkeeper.alerts.silences import acknowledge, add_silence

    t = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
    made = {}
    for subject in ("acked", "silenced", "plain"):
        a = Alert(alert_id=alert_id_for("views-ack", "v1", "drift", subject), model="views-ack", version="v1",
                  kind="drift", severity="warning", state="firing", summary=subject,
                  evidence={"subject": subject, "p_value": 0.001}, ts=t, fired_at=t)  # fmt: skip
        worker.store.insert("alerts", {c: [v] for c, v in a.to_row().items()})
        made[subject] = a
    acknowledge(worker.store, made["acked"], author="ana")
    add_silence(worker.store, alert_id=made["silenced"].alert_id, duration=timedelta(hours=1))
    df = query.alerts("views-ack", store=worker.store)
    by = {r["summary"]: r for r in df.to_dict("records")}
    assert {k: (r["acknowledged"], r["silenced"]) for k, r in by.items()} == {
        "acked": (True, False), "silenced": (False, True), "plain": (False, False)}  # fmt: skip
    assert by["plain"]["evidence"] == {"subject": "plain", "p_value": 0.001}
    assert str(df["changed_at"].dt.tz) == "UTC"


def test_results_show_a_chart_in_a_notebook(worker: Worker, filled: tuple[str, float]) -> None:
    """A notebook shows a query result as a table with a small chart per metric over the windows."""
    model, _ = filled
    wide = query.metrics(model, store=worker.store)
    page = wide._repr_html_()
    assert page.count("<svg") >= 10 and "<table" in page  # accuracy, recall, roc_auc, latency, ...
    accuracy = page[page.index("<b>accuracy</b>") :].split("</figure>")[0]
    lines = re.findall(r'<polyline [^>]*points="([^"]+)"', accuracy)
    assert len(lines) == 2  # one line per version, a point per window
    assert sorted(len(pts.split()) for pts in lines) == sorted(wide.groupby("version").size().tolist())
    assert "<b>mae</b>" not in page  # a binary classifier's mae is NULL: no chart for it
    one = query.metric(model, "recall", store=worker.store)._repr_html_()
    assert one.count("<svg") == 1 and "<b>recall</b>" in one
    # Still a DataFrame: a slice keeps the display, a frame without windows shows just the table.
    assert "<svg" in wide[["version", "window_start", "accuracy"]]._repr_html_()
    assert "<svg" not in wide[["version", "accuracy"]]._repr_html_()
