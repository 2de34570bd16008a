"""The static report reads each ReplacingMergeTree table with FINAL: a row not yet merged away is not counted."""

from __future__ import annotations

import re
from pathlib import Path

from watchkeeper.sinks.schema import SILENCES, TABLES

REPO = Path(__file__).resolve().parents[2]
FROM = re.compile(r"\bFROM\s+(\w+)(\s+FINAL\b)?")


def test_the_report_reads_every_replacing_table_with_final() -> None:
    replacing = {t.name for t in (*TABLES, SILENCES) if t.engine.startswith("ReplacingMergeTree")}
    assert {"dead_letters", "alerts", "metrics"} <= replacing
    reads = FROM.findall((REPO / "dashboards" / "report.py").read_text())
    read = {table for table, _ in reads}
    assert {"dead_letters", "alerts", "metrics"} <= read
    assert sorted({table for table, final in reads if table in replacing and not final}) == []
