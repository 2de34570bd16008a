"""``watchkeeper reference MODEL FILE``: a file that cannot serve as a reference is refused, by name, before the store.

The store is never reached in these cases: the refusal comes first, so a stand-in that fails on use
proves the model's earlier reference is left untouched.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.reference import LATEST_PREDICTION, MIN_ROWS, RECENT_FEATURES, load_reference


class _NoStore:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was used ({name}) for a file that should have been refused")


class _Store:
    """Answers the store's clock and the features of the model's recent predictions (``recent``)."""

    def __init__(self, recent: tuple[list[str], list[str]] = ([], [])) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.recent = recent

    def query_rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        if sql == LATEST_PREDICTION:
            return [(datetime(2026, 12, 4, tzinfo=UTC), int(any(self.recent)))]
        if sql == RECENT_FEATURES:
            return [self.recent]
        return [(datetime(2026, 12, 4, tzinfo=UTC),)]  # the store's clock

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
    assert load_reference(store, "fraud", features, force=True).rows == 2  # type: ignore[arg-type]
    (_, inserted) = store.calls[0]  # the new rows first, then the older ones deleted
    assert inserted["features"] == [{"amount": 1.5}, {"amount": 2.5}]
    assert inserted["features_cat"] == [{"region": "eu"}, {"region": "us"}]
    scores = tmp_path / "scores.csv"
    scores.write_text("prediction,label\n0.2,0\n0.9,1\n")
    assert load_reference(_Store(), "fraud", scores, force=True).rows == 2  # type: ignore[arg-type]


def _rows(path: Path, header: str, n: int, row: str) -> Path:
    path.write_text(header + "\n" + "".join(row.format(i=i) + "\n" for i in range(n)))
    return path


def test_too_few_rows_are_refused_before_the_store_unless_forced(tmp_path: Path) -> None:
    path = _rows(tmp_path / "train.csv", "amount,region", MIN_ROWS - 1, "{i}.5,eu")
    with pytest.raises(ValueError, match=f"{MIN_ROWS - 1} rows; the drift tests need at least {MIN_ROWS}"):
        load_reference(_NoStore(), "fraud", path)  # type: ignore[arg-type]
    store = _Store()
    assert load_reference(store, "fraud", path, force=True).rows == MIN_ROWS - 1  # type: ignore[arg-type]
    assert [c for c, _ in store.calls] == ["insert", "delete"]


def test_a_semicolon_file_sharing_no_feature_never_replaces_the_reference(tmp_path: Path) -> None:
    """`amount;n` read as one column replaced a good reference ("loaded 1 reference rows")."""
    path = _rows(tmp_path / "train.csv", "amount;n", 50, "{i}.5;3")
    store = _Store(recent=(["amount", "n"], []))
    with pytest.raises(ValueError) as exc:
        load_reference(store, "fraud", path)  # type: ignore[arg-type]
    message = str(exc.value)
    assert "shares no feature with the recent predictions of fraud" in message
    assert "the file has amount;n; the predictions have amount, n, all missing from the file" in message
    assert "is the file separated by semicolons?" in message and "--force" in message
    assert store.calls == []  # nothing inserted, nothing deleted: the good reference stays
    assert load_reference(store, "fraud", path, force=True).rows == 50  # type: ignore[arg-type]


def test_missing_features_are_reported_when_some_are_shared(tmp_path: Path) -> None:
    path = _rows(tmp_path / "train.csv", "amount,region", 40, "{i}.5,eu")
    loaded = load_reference(_Store(recent=(["amount", "n"], ["channel", "region"])), "fraud", path)  # type: ignore[arg-type]
    assert (loaded.rows, loaded.features, loaded.missing) == (40, ["amount", "region"], ["channel", "n"])
    first = load_reference(_Store(), "new-model", path)  # type: ignore[arg-type]
    assert first.recent is None and first.missing == []  # no predictions yet: nothing to compare with
