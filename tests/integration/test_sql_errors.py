"""`watchkeeper sql` shows a ClickHouse error once, and an unknown --format as what it is."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def _sql(store: tuple[str, int], monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from watchkeeper.cli import main

    monkeypatch.setenv("WATCHKEEPER_STORE_PORT", str(store[1]))
    result = CliRunner().invoke(main, ["sql", *args])
    return result.exit_code, result.output


def test_an_unknown_format_option_is_named_once(store: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = _sql(store, monkeypatch, "SELECT 1", "--format", "Bogus")
    assert code == 1
    assert "unknown output format 'Bogus' (--format)" in out and "JSONEachRow" in out
    assert out.count("Bogus") == 1 and "DB::Exception" not in out


def test_an_unknown_format_clause_is_the_stores_error_once(
    store: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = _sql(store, monkeypatch, "SELECT 1 FORMAT Bogus")
    assert code == 1
    assert out.count("Unknown format Bogus") == 1 and out.count("UNKNOWN_FORMAT") == 1, out
