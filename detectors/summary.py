"""Mergeable summaries: the common behaviour of every sufficient-statistics record.

A summary is a frozen dataclass. Fields marked ``param`` (bin count, threshold,
...) must be equal for two summaries to merge; every other field is a count or
a sum, and merging adds them. Merging is associative and commutative, so the
stream may combine partitions, windows and segments in any order and get what
one pass over all events would give (up to float rounding of the sums).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from typing import Any, Self, TypeVar

import numpy as np

__all__ = ["Summary", "param", "merge_all"]


def param(default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that configures the summary instead of counting."""
    return dataclasses.field(default=default, metadata={"param": True})


S = TypeVar("S", bound="Summary")


@dataclasses.dataclass(frozen=True, eq=False)
class Summary:
    """Base of the mergeable summaries (see module docstring)."""

    def __post_init__(self) -> None:
        # Accept lists (from JSON or SQL) for array fields; store float64/int64 arrays.
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list | tuple) and f.metadata.get("array", True) and not f.metadata.get("param"):
                arr = np.asarray(v)
                if arr.dtype.kind in "iub":
                    arr = arr.astype(np.int64)
                elif arr.dtype.kind == "f":
                    arr = arr.astype(np.float64)
                object.__setattr__(self, f.name, arr)
            elif isinstance(v, np.integer | np.bool_):
                object.__setattr__(self, f.name, int(v))
            elif isinstance(v, np.floating):
                object.__setattr__(self, f.name, float(v))
        self._validate()

    def _validate(self) -> None:
        """Check shapes; subclasses override."""

    # -- merging -----------------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("param")}

    def merge(self, other: Self) -> Self:
        """The summary of both sets of events."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(self).__name__} with {type(other).__name__}")
        mine, theirs = self._params(), other._params()
        for k, v in mine.items():
            if not _same(v, theirs[k]):
                raise ValueError(f"cannot merge summaries with different {k}: {v!r} != {theirs[k]!r}")
        values = {}
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            values[f.name] = a if f.metadata.get("param") else a + b
        return type(self)(**values)

    def __add__(self, other: Self) -> Self:
        return self.merge(other)

    # -- comparison and serialisation ------------------------------------------------------
    def isclose(self, other: object, rtol: float = 1e-9, atol: float = 1e-9) -> bool:
        """Equal counts and parameters; sums equal up to float rounding."""
        if type(other) is not type(self):
            return False
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                a, b = np.asarray(a), np.asarray(b)
                if a.shape != b.shape:
                    return False
                if a.dtype.kind == "f" or b.dtype.kind == "f":
                    if not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
                        return False
                elif not np.array_equal(a, b):
                    return False
            elif isinstance(a, float) and isinstance(b, float):
                if not np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
                    return False
            elif a != b:
                return False
        return True

    __eq__ = isclose  # type: ignore[assignment]
    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (arrays become lists); ``from_dict`` inverts it."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                v = v.tolist()
            elif isinstance(v, np.generic):
                v = v.item()
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild a summary written by ``to_dict``."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for k, v in data.items():
            if k not in names:
                raise ValueError(f"{cls.__name__}: unknown field {k!r}")
            if names[k].metadata.get("param") and isinstance(v, list):
                v = tuple(v)
            kwargs[k] = v
        return cls(**kwargs)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    return bool(a == b)


def merge_all(summaries: Iterable[S]) -> S:
    """Merge any number (at least one) of summaries of the same kind."""
    items = list(summaries)
    if not items:
        raise ValueError("merge_all needs at least one summary")
    return functools.reduce(lambda a, b: a.merge(b), items)
