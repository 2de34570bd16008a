"""Smoke runs of the alert benchmark: ``--quick`` on two families, ``--not-tuned`` on two, and a short
``--live`` run with its replay.

Checks the shape of what each writes and that a clear change (a 1 sigma covariate shift, a categorical
mix shift at 1 event/s) is detected, not how fast: timing belongs to the benchmark. The live run checks
that every event the client sent was counted by the worker and that the replay decided the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

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


def test_not_tuned_families_get_their_own_results_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import alerts, record

    monkeypatch.setattr(record, "RESULTS_DIR", tmp_path)
    argv = ["--not-tuned", "--families", "categorical_mix,groups_3", "--seeds", "1", "--hours", "2", "--onset", "1"]
    code = alerts.main(argv)
    doc = record.load("alerts_not_tuned")
    assert code in (0, 1) and doc["commit"]["sha"] and doc["machine"]["cpus"]
    assert set(doc["results"]["table"]) == {"categorical_mix", "groups_3"}
    assert doc["families"]["groups_3"]["expect"] == "fairness"
    assert [t["target"] for t in doc["targets"]] == [t.name for t in alerts.NOT_TUNED_TARGETS]
    # A 50/30/20 -> 30/30/40 mix of a categorical feature at 1 event/s is found (not how fast).
    mix = doc["results"]["table"]["categorical_mix"]["300"]["new"]
    assert mix["missed"] == 0 and mix["delay_median_min"] is not None


@pytest.mark.slow
def test_live_mode_streams_through_the_worker_and_replays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A short live run (the change after 20 s, too early for any reference): every event is counted by
    the worker, the targets are judged, and the replay of the same events decides the same."""
    from bench import alerts, record

    monkeypatch.setattr(record, "RESULTS_DIR", tmp_path)
    code = alerts.main(["--live", "--history-seconds", "20", "--observe-seconds", "20"])
    doc = record.load("alerts_live")
    res = doc["results"]
    assert code in (0, 1)
    assert res["all_counted"] is True and res["events"] > 3 * 10 * 30
    assert res["publisher"]["sent"] == res["events"] and res["publisher"]["dropped"] == 0
    assert [t["measure"] for t in doc["targets"]] == ["drift_page_s", "retrain_page_s", "stable_pages",
                                                      "replay_differences"]  # fmt: skip
    assert res["replay_differences"] == 0 and res["replay_decisions"] == res["decisions"]
