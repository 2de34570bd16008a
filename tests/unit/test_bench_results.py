"""The README's benchmark figures are those of committed results files, and a benchmark can fail.

A README table preceded by ``<!-- results: bench/results/NAME.json -->`` quotes that
file: every figure in its value columns (all but the first, which names the measure)
must be a number of the file at the precision written. Other benchmarks join by
writing their file with ``bench.record.write`` and marking their table.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bench import record

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MARKER = re.compile(r"<!-- results: (bench/results/[\w.-]+\.json) -->")
FIGURE = re.compile(r"(?<![\w.])[−-]?\d[\d,]*(?:\.\d+)?k?(?![\w.])")


def marked_tables(text: str) -> list[tuple[str, list[str]]]:
    """(results file, table rows) for each marked table: the ``|`` lines right after the marker."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = MARKER.search(line)
        if not m:
            continue
        rows = []
        for row in lines[i + 1 :]:
            if not row.startswith("|"):
                if rows:
                    break
                continue
            rows.append(row)
        out.append((m.group(1), rows))
    return out


def unquoted(rows: list[str], doc: dict[str, Any]) -> list[str]:
    """The figures of a table's value columns that are not numbers of ``doc``."""
    values = record.numbers(doc)
    missing = []
    for row in rows[2:]:  # after the header and its rule
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        for cell in cells[1:]:
            for fig in FIGURE.findall(cell):
                if not record.quotes(fig.replace("−", "-"), values):
                    missing.append(f"{fig} in {cells[0][:40]!r}")
    return missing


def test_the_make_bench_table_is_marked_with_its_results_file() -> None:
    files = [f for f, _ in marked_tables(README.read_text())]
    assert "bench/results/bench.json" in files


@pytest.mark.parametrize("path,rows", marked_tables(README.read_text()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_readme_figure_is_in_the_committed_results(path: str, rows: list[str]) -> None:
    assert (REPO / path).exists(), f"{path} is quoted by the README but not committed"
    assert len(rows) > 2, f"the table after the marker of {path} has no rows"
    doc = record.load(Path(path).stem)
    assert doc["commit"]["sha"], "a results file names the commit it measured"
    assert unquoted(rows, doc) == []


def test_a_figure_that_is_not_in_the_file_is_found() -> None:
    doc = {"results": {"ratio": 0.5512, "rate": 130483.4, "runs": {"rate": [120001.0]}, "lead": -0.7}}
    rows = ["| measure | value | runs |", "|---|---|---|", "| `ratio` (x 4) | 0.55 | 130,483 / 120,001 / 99,999 |"]
    assert unquoted(rows, doc) == ["99,999 in '`ratio` (x 4)'"]
    signed = ["| measure | lead | lag |", "|---|---|---|", "| `lead` | −0.7 | -0.7, 0.7 |"]
    assert unquoted(signed, doc) == ["0.7 in '`lead`'"]


def test_the_rows_the_bench_prints_quote_its_results_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``make bench`` prints for the README passes the check above (the table can be regenerated)."""
    import bench.run as run

    monkeypatch.setattr(record, "RESULTS_DIR", tmp_path)
    results = {
        "noop_ceiling_msgs_per_s": 12645.3, "e2e_per_message_msgs_per_s": 9320.9, "per_message_vs_noop_ceiling": 0.737,
        "decode_ceiling_events_per_s": 236996.2, "e2e_envelope_events_per_s": 130483.0,
        "envelope_vs_decode_ceiling": 0.5506, "rss_mb_100_models_20_features": 246.4, "event_to_store_p99_s": 0.604,
        "runs": {"e2e_envelope_events_per_s": [146000.5, 116000.2, 130483.0]},
    }  # fmt: skip
    record.write("bench", results, record.check(results, run.TARGETS, echo=False))
    doc = record.load("bench")
    rows = ["| measure | value | single runs | target | |", "|---|---|---|---|---|", *run.markdown(doc).splitlines()]
    assert len(rows) == 2 + 8
    assert unquoted(rows, doc) == []
    assert "| 0.55 |" in rows[2 + 5] and "≥ 0.5 | met |" in rows[2 + 5]


def _fake_bench(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rss: float) -> Any:
    import bench.run as run

    class FakeStack:
        settings = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def start_services(self) -> None:
            pass

        def store(self) -> None:
            return None

        def stop(self) -> None:
            pass

    monkeypatch.setattr(record, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(run, "Stack", FakeStack)
    monkeypatch.setattr(run, "migrate", lambda *a: None)
    monkeypatch.setattr(
        run, "envelopes", lambda *a: {"e2e_envelope_events_per_s": 120e3, "envelope_vs_decode_ceiling": 0.55}
    )
    monkeypatch.setattr(run, "memory", lambda *a: {"rss_mb_100_models_20_features": rss})
    return run


def test_bench_quick_exits_nonzero_on_a_missed_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _fake_bench(monkeypatch, tmp_path, rss=310.0)
    assert run.main(["--quick"]) == 1
    doc = record.load("bench-quick")
    assert [(v["measure"], v["met"]) for v in doc["targets"]] == [
        ("envelope_vs_decode_ceiling", True),
        ("e2e_envelope_events_per_s", True),
        ("rss_mb_100_models_20_features", False),
    ]
    assert doc["machine"]["cpus"] and doc["commit"]["sha"]


def test_bench_quick_exits_zero_when_every_target_is_met(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _fake_bench(monkeypatch, tmp_path, rss=250.0)
    assert run.main(["--quick"]) == 0


def test_the_noop_ceiling_takes_the_workers_batches() -> None:
    """bench/noop_app.py cannot import the worker's agents (it would run them): it repeats their batch size."""
    import ast

    def constant(path: Path, name: str) -> Any:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
                return ast.literal_eval(node.value)
        raise AssertionError(f"{name} not in {path}")

    worker = constant(REPO / "streams" / "agents" / "ingest.py", "TAKE_MESSAGES")
    assert constant(REPO / "bench" / "noop_app.py", "TAKE_MESSAGES") == worker
