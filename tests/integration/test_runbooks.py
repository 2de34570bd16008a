"""Every SQL block of docs/runbooks.md runs, through ``watchkeeper sql``, against a real store.

The store gets the full schema (the same migration the CLI runs) and a few rows in each
table the runbooks read, shaped like the ones the stream writes, so the queries meet data:
map lookups, JSON extraction of alert evidence and joins all execute for real.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from watchkeeper.cli import main
from watchkeeper.settings import load_settings
from watchkeeper.sinks.writer import Store
from watchkeeper.streams.service import migrate

pytestmark = pytest.mark.integration

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks.md"
SQL_BLOCK = re.compile(r"^[ \t]*```sql[ \t]*\n(.*?)^[ \t]*```", re.S | re.M)


def sql_blocks() -> list[str]:
    return [block.strip() for block in SQL_BLOCK.findall(RUNBOOKS.read_text())]


def _env(port: int) -> dict[str, str]:
    return {"WATCHKEEPER_CLICKHOUSE": "embedded", "WATCHKEEPER_STORE_PORT": str(port),
            "WATCHKEEPER_STORE_HOST": "127.0.0.1", "WATCHKEEPER_CONFIG": ""}  # fmt: skip


def _seed(store: Store) -> None:
    """A few rows per table, for model 'fraud' (versions v3 and v4), in the last hour."""
    now = datetime.now(UTC).replace(microsecond=0)
    ws = now - timedelta(minutes=30)
    ws -= timedelta(seconds=ws.timestamp() % 300)
    we = ws + timedelta(minutes=5)
    metric_rows = [
        ("v3", "", "predictions", 500.0, 500), ("v3", "", "accuracy", 0.71, 400),
        ("v3", "", "label_rate", 0.8, 500), ("v3", "", "est_accuracy", 0.74, 500),
        ("v3", "", "est_accuracy_error", 0.03, 400), ("v3", "", "mean_score", 0.31, 500),
        ("v3", "", "positive_rate", 0.2, 500), ("v3", "", "prevalence", 0.18, 400),
        ("v3", "", "baseline_accuracy", 0.75, 400), ("v3", "", "lift_accuracy", -0.04, 400),
        ("v3", "", "late_labels", 12.0, 400), ("v3", "", "dead_letter_rate", 0.02, 510),
        ("v3", "", "lag_seconds", 3.5, 500), ("", "", "orphaned_outcomes", 9.0, 120),
        ("v3", "gender", "demographic_parity_difference", 0.14, 220),
        ("v3", "gender", "disparate_impact_ratio", 0.7, 220),
        ("v3", "gender=f", "positive_rate", 0.12, 220), ("v3", "gender=m", "positive_rate", 0.26, 280),
        ("v3", "gender=f", "accuracy", 0.7, 180), ("v3", "gender=m", "accuracy", 0.72, 220),
        ("v3", "gender=f", "tpr", 0.5, 40), ("v3", "gender=f", "fpr", 0.05, 140),
        ("v3", "gender=f", "prevalence", 0.2, 180),
        ("v3", "gender=f", "tp", 20.0, 180), ("v3", "gender=f", "fn", 20.0, 180),
        ("v3", "gender=f", "fp", 7.0, 180), ("v3", "gender=f", "tn", 133.0, 180),
        ("v3", "gender=m", "tp", 36.0, 220), ("v3", "gender=m", "fn", 4.0, 220),
        ("v3", "gender=m", "fp", 20.0, 220), ("v3", "gender=m", "tn", 160.0, 220),
        ("v3", "", "baseline_discordant_model_right", 18.0, 400),
        ("v3", "", "baseline_discordant_baseline_right", 34.0, 400),
        ("v4", "", "predictions", 500.0, 500), ("v4", "", "accuracy", 0.8, 400),
        ("v4", "", "positive_rate", 0.2, 500),
        ("v4 vs v3", "", "ab_error_diff", -0.09, 800), ("v4 vs v3", "", "ab_error_ci_low", -0.14, 800),
        ("v4 vs v3", "", "ab_error_ci_high", -0.03, 800), ("v4 vs v3", "", "ab_error_p_value", 0.004, 800),
        ("v4 vs v3", "", "ab_error_decision", -1.0, 800), ("v4 vs v3", "", "ab_cost_decision", 0.0, 800),
    ]  # fmt: skip
    cols = ("version", "segment", "metric", "value", "n")
    store.insert("metrics", {
        "window_start": [ws] * len(metric_rows), "window_end": [we] * len(metric_rows),
        "model": ["fraud"] * len(metric_rows),
        **{c: [r[i] for r in metric_rows] for i, c in enumerate(cols)},
        "computed_at": [now] * len(metric_rows),
    })  # fmt: skip
    # A window test, a per-event alarm (its ts inside the window) and the error stream's detector.
    alarm = ws + timedelta(seconds=95)
    store.insert("drift", {
        "ts": [we, we, alarm, alarm], "window_start": [ws] * 4, "window_end": [we] * 4, "model": ["fraud"] * 4,
        "version": ["v3"] * 4, "feature": ["amount", "__prediction__", "amount", "__error__"],
        "detector": ["ks", "ks", "mean_shift", "watchkeeper_default"],
        "statistic": [0.31, 0.12, 9.4, 1.0], "threshold": [0.001, 0.001, 8.0, 1.0], "drifted": [1, 0, 1, 1],
        "computed_at": [now] * 4,
    })  # fmt: skip
    evidence = {
        "subject": "", "metric": "accuracy", "reasons": ["performance"], "label_coverage": 0.8,
        "labelled": 400, "reference": {"value": 0.9, "n": 1200, "source": "first labelled windows"},
        "current": {"value": 0.71, "n": 400}, "drop": 0.19, "drop_lower_bound": 0.13,
        "fast_lower_bound": 0.09, "fast_confidence": 0.999, "fast_path": "performance",
        "driving_group": {"attribute": "gender", "group": "f", "value": 0.55, "n": 180, "others_value": 0.84,
                          "share_of_drop": 0.8},
    }  # fmt: skip
    span = {"windows": 2, "model_right": 18, "baseline_right": 52, "pairs": 800, "lift": -0.0425,
            "ci_low": -0.07, "ci_high": -0.021, "p_value": 0.0001}  # fmt: skip
    sunset = {"subject": "below_baseline", "method": "paired", "metric": "accuracy", **span,
              "horizon_from": ws.isoformat(), "spans": [span], "min_effect": 0.02, "confidence": 0.999}  # fmt: skip
    fairness = {
        "subject": "gender", "attribute": "gender",
        "breaches": [{"metric": "equal_opportunity_difference", "rate": "tpr", "bound": 0.1, "bound_type": "max",
                      "value": 0.4, "lower_bound": 0.18, "groups": ["m", "f"]}],
        "checked": ["equal_opportunity_difference"],
        "horizon": {"events": 3000, "from": ws.isoformat(), "to": we.isoformat()},
        "groups": {"f": {"n": 1500, "positive_rate": 0.1, "tpr": 0.5, "fpr": 0.05},
                   "m": {"n": 1500, "positive_rate": 0.3, "tpr": 0.9, "fpr": 0.11}},
        "confidence": 0.95, "tests": 4,
    }  # fmt: skip
    kinds = ["retrain", "challenger", "sunset", "fairness"]
    store.insert("alerts", {
        "ts": [we] * 4, "fired_at": [now] * 4, "alert_id": [f"{k}-1" for k in kinds],
        "model": ["fraud"] * 4, "version": ["v3", "v4", "v3", "v3"], "kind": kinds,
        "severity": ["critical", "info", "info", "warning"], "state": ["firing"] * 4,
        "summary": ["fraud v3: accuracy fell", "fraud v4 vs v3: v4 is better",
                    "fraud v3 does worse than its baseline", "fraud v3: equal opportunity difference for gender"],
        "evidence": [json.dumps(evidence), json.dumps({"pair": "v4 vs v3", "ab_error_diff": -0.09}),
                     json.dumps(sunset), json.dumps(fairness)],
        "owner": ["payments-ml"] * 4,
        "runbook_url": [f"docs/runbooks.md#{k}" for k in kinds],
    })  # fmt: skip
    ts = [now - timedelta(minutes=m) for m in (20, 10)]
    store.insert("predictions", {
        "ts": ts, "model": ["fraud", "fraud"], "version": ["v3", "v4"], "prediction_id": ["p1", "p2"],
        "event_id": ["p1", "p2"], "prediction": [0.9, 0.1], "prediction_class": ["", ""],
        "scores": [{}, {}], "features": [{"amount": 12.5}, {"amount": float("nan")}],
        "features_cat": [{"country": "fr"}, {"country": "de"}], "segments": [{"gender": "f"}, {"gender": "m"}],
        "latency_ms": [8.1, None], "fallback": [0, 0], "baseline": [None, None], "baseline_class": ["", ""],
        "ingested_at": [now, now], "published_at": [t + timedelta(seconds=2) for t in ts],
        "src_partition": [0, 1], "src_offset": [1, 2],
    })  # fmt: skip
    store.insert("outcomes", {
        "ts": [now - timedelta(minutes=5)] * 2, "model": ["fraud", "fraud"], "prediction_id": ["p1", "p9"],
        "event_id": ["o1", "o9"], "outcome": [1.0, 0.0], "outcome_class": ["", ""], "ingested_at": [now, now],
        "src_partition": [0, 0], "src_offset": [3, 4],
    })  # fmt: skip
    store.insert("dead_letters", {
        "ts": [now], "topic": ["predictions"], "partition": [0], "offset": [7], "event_index": [-1],
        "model": ["fraud"], "error": ["invalid JSON"], "payload": ["{not json"],
    })  # fmt: skip
    store.insert("mistakes", {
        "window_start": [ws], "window_end": [we], "model": ["fraud"], "version": ["v3"],
        "prediction_id": ["p1"], "ts": [ts[0]], "features": [{"amount": 12.5}], "features_cat": [{}],
        "segments": [{"gender": "f"}], "prediction": [0.2], "outcome": [1.0], "threshold": [0.5],
        "kind": ["false_negative"],
    })  # fmt: skip
    store.insert("reference", {
        "model": ["fraud"] * 3, "version": [""] * 3, "row_id": [1, 2, 3],
        "features": [{"amount": a} for a in (10.0, 11.0, 30.0)], "features_cat": [{}] * 3,
        "prediction": [0.1, 0.2, 0.9],
    })  # fmt: skip


@pytest.fixture(scope="module")
def runbook_store(store: tuple[str, int]) -> tuple[str, int]:
    """The module's store, with the schema the CLI creates and rows for the runbooks' queries."""
    host, port = store
    settings = load_settings(clickhouse="embedded", store_host=host, store_port=port)
    st = Store.from_settings(settings)
    try:
        migrate(st, settings)
        _seed(st)
    finally:
        st.close()
    return store


def test_the_runbooks_have_sql() -> None:
    assert len(sql_blocks()) >= 16


@pytest.mark.parametrize("query", sql_blocks(), ids=lambda q: " ".join(q.split())[:60])
def test_runbook_sql_runs_through_the_cli(runbook_store: tuple[str, int], query: str) -> None:
    # Exactly what an engineer pastes: watchkeeper sql "<query>" (the doc promises no double quotes).
    result = CliRunner().invoke(main, ["sql", "--format", "JSONEachRow", query], env=_env(runbook_store[1]))
    assert result.exit_code == 0, f"{result.output}\n--- query ---\n{query}"
    assert result.exception is None


def test_the_evidence_query_reads_real_rows(runbook_store: tuple[str, int]) -> None:
    """The seeded retrain alert comes back with its evidence extracted (JSON paths are right)."""
    query = next(q for q in sql_blocks() if "JSONExtractFloat(evidence, 'drop_lower_bound')" in q)
    result = CliRunner().invoke(main, ["sql", "--format", "JSONEachRow", query], env=_env(runbook_store[1]))
    assert result.exit_code == 0, result.output
    [row] = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    assert row["reference"] == 0.9 and row["current"] == 0.71 and int(row["labels"]) == 400
    assert row["drop_lower_bound"] == 0.13 and json.loads(row["reasons"]) == ["performance"]
