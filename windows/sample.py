"""A deterministic sample of a window's (or a reference's) features, as columns.

Rows are read lowest ``cityHash64(event_id)`` first, so a replay samples the
same events; each feature becomes one numpy array (NaN or None where a row
lacks it). The score is a numeric feature too, named :data:`PREDICTION`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.detectors.reference import BinnedReference

__all__ = ["PREDICTION", "Sample", "build_reference", "map_columns"]

PREDICTION = "__prediction__"


@dataclass(frozen=True)
class Sample:
    """A sample's feature values, one array per feature (NaN or None where a row lacks it)."""

    n: int
    numeric: dict[str, np.ndarray]
    categorical: dict[str, np.ndarray]

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Sample:
        """From the ``features``, ``features_cat`` and ``prediction`` columns of a query's Arrow result.

        Columnar all the way: no Python object per row (a window's sample as Python rows
        cost the worker more than all the drift tests on it).
        """
        n = table.num_rows
        numeric = map_columns(table["features"], n, np.nan, np.float64)
        if n:
            numeric[PREDICTION] = pc.fill_null(table["prediction"], math.nan).to_numpy().astype(np.float64)
        return cls(n, numeric, map_columns(table["features_cat"], n, None, object))


def map_columns(column: pa.ChunkedArray, n: int, missing: Any, dtype: Any) -> dict[str, np.ndarray]:
    """One array per key of a Map column, ``missing`` where a row lacks the key (the last value of a
    repeated key wins)."""
    maps = column.combine_chunks()
    offsets = maps.offsets.to_numpy()
    if n == 0 or offsets[-1] == offsets[0]:
        return {}
    lo, hi = int(offsets[0]), int(offsets[-1])
    rows = np.repeat(np.arange(n), np.diff(offsets))
    keys = maps.keys.slice(lo, hi - lo).dictionary_encode()
    codes = keys.indices.to_numpy()
    values = maps.items.slice(lo, hi - lo).to_numpy(zero_copy_only=False)
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(keys.dictionary.to_pylist()):
        mask = codes == i
        col = np.full(n, missing, dtype=dtype)
        col[rows[mask]] = values[mask]
        out[name] = col
    return out


# The multivariate test's level per window: one test per window, ~8,600 five-minute windows a month,
# so about 0.09 expected false alarms per model version per month (detectors/multivariate.py).
MULTIVARIATE_ALPHA = 1e-5


def build_reference(sample: Sample, start: int, end: int) -> BinnedReference:
    """The binned reference learnt from a sample of the data in [start, end), with the joint test of its
    numeric input features (the score is left out: its drift is ``__prediction__``'s)."""
    return BinnedReference.build(sample.numeric, sample.categorical, start, end,
                                 multivariate_alpha=MULTIVARIATE_ALPHA, exclude=(PREDICTION,))  # fmt: skip
