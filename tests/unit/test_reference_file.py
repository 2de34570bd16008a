"""``watchkeeper reference MODEL FILE``: a file that cannot serve as a reference is refused, by name, before the store.

The store is never reached in these cases: the refusal comes first, so a stand-in that fails on use
proves the model's earlier reference is left untouched.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.reference import load_reference


class _NoStore:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was used ({name}) for a file that should have been refused")


class _Store:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def query_rows(self, sql: str) -> list[tuple[Any, ...]]:  # the store's clock
        return [(datetime(2026, 12, 4, tzinfo=UTC),)]

    def delete(self, table: str, where: str, params: dict[str, Any]) -> None:
        self.calls.append(("delete", params))

    def insert(self, table: str, cols: dict[str, Any]) -> None:
        self.calls.append(("insert", cols))


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("train.csv", b"", "empty file"),
        ("train.csv", b"amount,region\n", "no rows"),
        ("train.jsonl", b"", "no rows"),
        ("train.jsonl", b'{"amount": \n', "not readable as JSONL"),
        ("train.parquet", b"not parquet", "not readable as Parquet"),
        ("train.csv", b"\xff\xfe\x00a,b\n\xff,\x00\n", "not readable as CSV"),
        ("train.txt", b"amount\n1\n", "expected .csv, .parquet or .jsonl"),
        ("train.csv", b"label,ts,prediction_id\n1,2,p1\n", "no feature or prediction columns (found label, ts"),
    ],
)
def test_an_unusable_reference_file_is_refused_naming_it(
    tmp_path: Path, name: str, content: bytes, fragment: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError) as exc:  # the CLI turns a ValueError into one `Error:` line
        load_reference(_NoStore(), "fraud", path)  # type: ignore[arg-type]
    assert str(exc.value).startswith(f"{path}: ") and fragment in str(exc.value)


def test_a_file_with_features_or_scores_only_is_loaded(tmp_path: Path) -> None:
    features = tmp_path / "train.csv"
    features.write_text("amount,region,label\n1.5,eu,1\n2.5,us,0\n")
    store = _Store()
    assert load_reference(store, "fraud", features) == 2  # type: ignore[arg-type]
    (_, inserted) = store.calls[0]  # the new rows first, then the older ones deleted
    assert inserted["features"] == [{"amount": 1.5}, {"amount": 2.5}]
    assert inserted["features_cat"] == [{"region": "eu"}, {"region": "us"}]
    scores = tmp_path / "scores.csv"
    scores.write_text("prediction,label\n0.2,0\n0.9,1\n")
    assert load_reference(_Store(), "fraud", scores) == 2  # type: ignore[arg-type]
