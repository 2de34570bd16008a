"""The drift stage's sample, read from Arrow columns, holds what the rows hold."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from watchkeeper.windows.drift import PREDICTION, Sample, build_reference

ROWS: list[dict[str, Any]] = [
    {"features": {"a": 1.0, "b": 2.0}, "features_cat": {"region": "eu"}, "prediction": 0.1},
    {"features": {}, "features_cat": {"region": "us", "plan": "pro"}, "prediction": None},
    {"features": {"b": 3.0, "c": 4.5}, "features_cat": {}, "prediction": 0.3},
    {"features": {"a": -1.0}, "features_cat": {"plan": "free"}, "prediction": 0.9},
]


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    def maps(name: str, value_type: pa.DataType) -> pa.Array:
        return pa.array([list(r[name].items()) for r in rows], pa.map_(pa.string(), value_type))

    return pa.table(
        {
            "features": maps("features", pa.float64()),
            "features_cat": maps("features_cat", pa.string()),
            "prediction": pa.array([r["prediction"] for r in rows], pa.float64()),
        }
    )


def _expected(rows: list[dict[str, Any]]) -> tuple[dict[str, list[float]], dict[str, list[str | None]]]:
    """Row by row, as the rows read: NaN or None where a row lacks a feature."""
    num_names = {k for r in rows for k in r["features"]}
    cat_names = {k for r in rows for k in r["features_cat"]}
    numeric = {k: [r["features"].get(k, math.nan) for r in rows] for k in num_names}
    if rows:
        numeric[PREDICTION] = [math.nan if r["prediction"] is None else r["prediction"] for r in rows]
    categorical = {k: [r["features_cat"].get(k) for r in rows] for k in cat_names}
    return numeric, categorical


def _check(rows: list[dict[str, Any]], table: pa.Table) -> None:
    sample = Sample.from_arrow(table)
    numeric, categorical = _expected(rows)
    assert sample.n == len(rows)
    assert set(sample.numeric) == set(numeric)
    for name, values in numeric.items():
        np.testing.assert_array_equal(sample.numeric[name], np.array(values, dtype=np.float64))
    assert {k: v.tolist() for k, v in sample.categorical.items()} == categorical


def test_every_feature_is_a_column_with_nan_or_none_where_a_row_lacks_it() -> None:
    _check(ROWS, _table(ROWS))


def test_slices_and_several_chunks_read_the_same() -> None:
    _check(ROWS[1:3], _table(ROWS).slice(1, 2))
    chunked = pa.concat_tables([_table(ROWS[:2]), _table(ROWS[2:])])
    assert chunked["features"].num_chunks == 2
    _check(ROWS, chunked)


def test_an_empty_sample_has_no_features() -> None:
    sample = Sample.from_arrow(_table([]))
    assert sample.n == 0 and sample.numeric == {} and sample.categorical == {}


def test_a_reference_is_built_from_the_columns() -> None:
    rows = [
        {"features": {"x": float(i)}, "features_cat": {"k": "ab"[i % 2]}, "prediction": i / 100} for i in range(100)
    ]
    ref = build_reference(Sample.from_arrow(_table(rows)), 0, 300)
    assert ref.kinds == {"x": "numeric", PREDICTION: "numeric", "k": "categorical"}
    assert int(ref.counts["x"].sum()) == 100
    assert ref.counts["k"].tolist()[:2] == [50, 50]
