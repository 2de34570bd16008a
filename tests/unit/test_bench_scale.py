"""``make bench-scale``: throughput per worker count (median and spread of its runs), targets that can fail,
and README tables that quote ``bench/results/scale.json``. The stacks are faked: this checks the bookkeeping."""

from __future__ import annotations

import doctest
from pathlib import Path
from typing import Any

import pytest

from bench import record
from tests.unit.test_bench_results import marked_tables, unquoted


def _fleet(case: str, closed: float) -> dict[str, Any]:
    phase = {"publish_seconds": 12.7, "closed_seconds_after_ingest": closed, "model_windows": 6000,
             "windows_written": 12000, "model_windows_per_second_after_ingest": round(6000 / closed, 1), "passes": 2,
             "statements_per_pass": [19, 21], "pass_seconds_max": 56.12, "store_cpu_ms_per_window": 0.71,
             "worker_cpu_ms_per_window": 1.64}  # fmt: skip
    return {"case": case, "models": 2000, "predictions": 72000, "ingest": phase, "mutations": 0, "labelled": 72000,
            "exact": True}  # fmt: skip


def _fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, closed: float, rates: dict[int, list[float]]) -> Any:
    import bench.scale as scale

    monkeypatch.setattr(record, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(scale, "fleet_run", lambda case, *a: _fleet(case, closed))
    calls: dict[int, int] = {}

    def run(n: int, *a: Any) -> dict[str, Any]:
        i = calls[n] = calls.get(n, -1) + 1
        # Two workers split the stage work: the busiest one does about half of it.
        return {"workers": n, "windows": 800, "windows_per_wall_second": rates[n][i],
                "store_cpu_ms_per_window": 95.0 + i, "store_cpu_share": 0.8, "worker_cpu_ms_per_window": 20.0,
                "max_worker_stage_cpu_seconds": 6.0 / n + 0.1 * i, "close_latency_p50": 4.0, "load_1m": 6.5,
                "per_worker": []}  # fmt: skip

    monkeypatch.setattr(scale, "run", run)
    return scale


ARGS = ["--wide-models", "2", "--rewrite-models", "1", "--models", "2", "--per-model", "4", "--workers", "1,2"]


def test_each_worker_count_reports_the_median_and_spread_of_its_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    scale = _fake(monkeypatch, tmp_path, closed=50.0, rates={1: [10.0, 12.0, 9.0], 2: [15.0, 13.0, 18.0]})
    assert scale.main(ARGS) == 0
    doc = record.load("scale")
    one, two = doc["results"]["scaling"]
    assert (one["workers"], one["runs"], two["workers"], two["runs"]) == (1, 3, 2, 3)
    assert one["windows_per_wall_second"] == {"median": 10.0, "min": 9.0, "max": 12.0}
    assert two["windows_per_wall_second"] == {"median": 15.0, "min": 13.0, "max": 18.0}
    assert two["store_cpu_share"]["median"] == 0.8 and two["store_cpu_ms_per_window"]["max"] == 97.0
    assert doc["results"]["windows_per_wall_second_2_vs_1"] == 1.5
    assert len(doc["results"]["runs"]) == 6 and doc["commit"]["sha"] and doc["machine"]["cpus"]
    assert {v["measure"]: v["met"] for v in doc["targets"]} == {
        "wide_closed_seconds_after_ingest": True, "mutations": True, "exact_share": True,
        "windows_per_wall_second_2_vs_1": True, "max_worker_stage_cpu_2_vs_1": True}  # fmt: skip


def test_a_missed_target_exits_nonzero(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A second worker that closes fewer windows per second, and a wide fleet closed in 70 s, are misses."""
    scale = _fake(monkeypatch, tmp_path, closed=70.0, rates={1: [10.0, 12.0, 9.0], 2: [8.0, 9.0, 7.0]})
    assert scale.main(ARGS) == 1
    missed = {v["measure"] for v in record.load("scale")["targets"] if not v["met"]}
    assert missed == {"wide_closed_seconds_after_ingest", "windows_per_wall_second_2_vs_1"}


def test_the_tables_the_bench_prints_quote_its_results_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    scale = _fake(monkeypatch, tmp_path, closed=50.0, rates={1: [10.0, 12.0, 9.0], 2: [15.0, 13.0, 18.0]})
    scale.main(ARGS)
    doc = record.load("scale")
    tables = marked_tables(scale.markdown(doc))
    assert [f for f, _ in tables] == ["bench/results/scale.json"] * 2
    (_, fleet), (_, workers) = tables
    assert len(fleet) == 2 + 2 and len(workers) == 2 + 2
    assert "| 2 | 3 | 15.0 (13.0–18.0) |" in workers[3]
    assert unquoted(fleet, doc) == [] and unquoted(workers, doc) == []


def test_the_readme_quotes_the_committed_scale_results() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert [f for f, _ in marked_tables(readme)].count("bench/results/scale.json") == 2
    assert "scale_results.json" not in readme


def test_doctests() -> None:
    import bench.scale as scale

    assert doctest.testmod(scale).failed == 0
