"""`watchkeeper demo` as a user runs it: exits 0, prints the summary, writes reports/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    stack.start_services()
    try:
        out = tmp_path / "reports"
        res = stack.cli("demo", "--minutes", "30", "--out", str(out), timeout=300)
        # The query the README gives right after the demo: one accuracy per model and window.
        readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
        query = re.search(r'\.venv/bin/watchkeeper sql "([^"]+)"', readme)
        assert query is not None
        rows = stack.cli("sql", "--format", "JSONEachRow", query.group(1)).stdout.splitlines()
    finally:
        stack.stop()
    assert "demo.churn" in res.stdout and "dead letters: 8" in res.stdout
    assert ", 8 malformed lines" in res.stdout  # as the README says: eight malformed lines
    keys = [(r["model"], r["window_start"]) for r in map(json.loads, rows)]
    assert keys and len(keys) == len(set(keys)), "the README's query repeats windows (one row per segment)"
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "summary.html").read_text().count("<svg") == 4
    assert "demo.churn" in (out / "index.html").read_text()  # the dashboards' report
    assert (out / "model-demo.churn.html").exists()
    for name, model in summary["models"].items():
        assert model["predictions"] == model["expected"]["predictions"], name
        assert model["labelled"] == model["expected"]["labelled"], name
        assert model["accuracy_before"] == pytest.approx(model["expected"]["accuracy_before"], abs=1e-9)
    churn = summary["models"]["demo.churn"]
    assert churn["accuracy_after"] < churn["accuracy_before"] - 0.2  # the injected drift shows
    assert summary["dead_letters_total"] == 8
    # Alerts: the drifting model only — a retrain alert and a drift alert naming the shifted feature.
    firing = {(a["model"], a["kind"]) for a in summary["alerts"] if a["state"] == "firing"}
    assert {("demo.churn", "retrain"), ("demo.churn", "drift")} <= firing
    assert {m for m, _ in firing} == {"demo.churn"}
    drift = next(a for a in summary["alerts"] if a["kind"] == "drift")
    assert "velocity" in drift["summary"]
    assert "alerts raised" in res.stdout
