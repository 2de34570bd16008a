"""Small numeric helpers shared by the summaries (no I/O)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

EPS = float(np.finfo(np.float64).eps)


def ratio(num: float, den: float) -> float:
    """``num / den``, or NaN when the denominator is zero (an undefined metric)."""
    return float(num) / float(den) if den else float("nan")


def as_float_array(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).ravel()


def labeled_mask(outcomes: np.ndarray) -> np.ndarray:
    """True where an outcome is present (NaN marks an event without a label yet)."""
    return ~np.isnan(outcomes)


def group_index(keys: Sequence[Hashable] | np.ndarray) -> tuple[list[Any], np.ndarray]:
    """Distinct keys (sorted) and each row's position among them, vectorised."""
    arr = np.asarray(keys, dtype=object) if not isinstance(keys, np.ndarray) else keys
    if arr.dtype == object:
        arr = arr.astype(str)
    uniq, inverse = np.unique(arr, return_inverse=True)
    return uniq.tolist(), inverse.ravel()


def bincount2(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], weights: Any = None) -> np.ndarray:
    """A 2-D bincount: ``out[r, c] = sum(weights where rows == r and cols == c)``."""
    flat = rows.astype(np.int64) * shape[1] + cols.astype(np.int64)
    out = np.bincount(flat, weights=weights, minlength=shape[0] * shape[1])
    return out.reshape(shape)


def to_list(a: np.ndarray) -> list[Any]:
    return np.asarray(a).tolist()
