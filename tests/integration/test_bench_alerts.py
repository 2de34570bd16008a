"""Smoke run of the alert benchmark (``bench/alerts.py --quick``) on two families.

Checks the shape of its JSON and that a 1 sigma covariate shift at 1 event/s is
detected (under both policies), not how fast: timing belongs to the benchmark.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
POLICIES = ("new", "previous")


def test_quick_bench_on_two_families(tmp_path: Path) -> None:
    out = tmp_path / "alerts_results.json"
    cmd = [sys.executable, "-m", "bench.alerts", "--quick", "--families", "stable,covariate_1", "--out", str(out)]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Targets" in run.stdout and "covariate_1" in run.stdout

    doc = json.loads(out.read_text())
    assert doc["config"]["quick"] is True
    assert doc["config"]["seeds_per_traffic"] == {"300": 1}
    assert set(doc["policies"]) >= set(POLICIES)
    assert doc["policies"]["previous"]["drift"]["windows"] == 3
    assert set(doc["table"]) == {"stable", "covariate_1"}
    assert [t["target"] for t in doc["targets"]]  # every target listed, met or not
    for family, expect in (("stable", None), ("covariate_1", "drift")):
        row = doc["table"][family]["300"]
        assert row["models"] == 1 and row["expect"] == expect
        for p in POLICIES:
            cell = row[p]
            assert {"delay_median_s", "delay_max_s", "missed", "false", "false_per_model_month", "false_kinds"} <= set(
                cell
            )
            assert len(cell["models"]) == 1
    for p in POLICIES:
        shift = doc["table"]["covariate_1"]["300"][p]
        assert shift["missed"] == 0 and shift["detected"] == 1, shift
        assert shift["delay_median_s"] is not None and shift["delay_median_s"] >= 0
