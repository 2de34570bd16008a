"""Latency quantiles from a mergeable log-bucketed sketch (DDSketch-like), and ops metrics.

A value ``x`` (milliseconds) above ``min_value`` goes to bucket
``key = ceil(log(x) / log(gamma))`` with ``gamma = (1 + a) / (1 - a)``; the
bucket's representative value ``2 gamma^key / (gamma + 1)`` is within relative
error ``a`` (``relative_accuracy``, 1% by default) of every value in it, so each
quantile is too. Values at or below ``min_value`` (including 0) are counted in a
zero bucket; values above ``max_value`` are clamped into the top bucket.
Buckets are a dense array (about 1 200 for 1 µs .. 3 h at 1%): merging is
adding arrays, and the sketch pickles and serialises as plain numbers.

SQL: ``countIf(latency_ms <= min_value)`` for the zero bucket and, per key,
``count()`` grouped by ``toInt32(ceil(log(latency_ms) / log(gamma)))``, passed to
``LatencySketch.from_key_counts``.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> lat = rng.lognormal(3, 0.5, 100_000)
>>> sk = LatencySketch.from_arrays(lat[:50_000]) + LatencySketch.from_arrays(lat[50_000:])
>>> exact = np.quantile(lat, 0.99, method="lower")
>>> bool(abs(sk.quantile(0.99) / exact - 1) <= 0.01)
True
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ._util import ratio
from .summary import Summary, param

__all__ = ["LatencySketch", "OpsSummary"]


@dataclasses.dataclass(frozen=True, eq=False)
class LatencySketch(Summary):
    """Mergeable quantile sketch with bounded relative error (see module docstring)."""

    relative_accuracy: float = param(0.01)
    min_value: float = param(1e-3)
    max_value: float = param(1e7)
    counts: np.ndarray = None  # type: ignore[assignment]  # filled with zeros when omitted
    zero_count: int = 0
    n: int = 0
    total: float = 0.0

    def _validate(self) -> None:
        if not 0 < self.relative_accuracy < 1 or not 0 < self.min_value < self.max_value:
            raise ValueError("need 0 < relative_accuracy < 1 and 0 < min_value < max_value")
        size = self.key_max - self.key_min + 1
        if self.counts is None:
            object.__setattr__(self, "counts", np.zeros(size, np.int64))
        elif np.shape(self.counts) != (size,):
            raise ValueError(f"counts must have {size} buckets for these parameters")

    @property
    def gamma(self) -> float:
        return (1 + self.relative_accuracy) / (1 - self.relative_accuracy)

    @property
    def key_min(self) -> int:
        return math.ceil(math.log(self.min_value) / math.log(self.gamma))

    @property
    def key_max(self) -> int:
        return math.ceil(math.log(self.max_value) / math.log(self.gamma))

    def keys(self, values: Any) -> np.ndarray:
        """Bucket key of each value (values at or below ``min_value`` get ``key_min - 1``)."""
        v = np.asarray(values, dtype=np.float64).ravel()
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.ceil(np.log(v) / math.log(self.gamma))
        k = np.where(v > self.min_value, k, self.key_min - 1)
        return np.minimum(k, self.key_max).astype(np.int64)

    @classmethod
    def from_arrays(
        cls, values: Any, relative_accuracy: float = 0.01, min_value: float = 1e-3, max_value: float = 1e7
    ) -> LatencySketch:
        """Sketch of latencies (ms); NaN values are ignored."""
        v = np.asarray(values, dtype=np.float64).ravel()
        v = v[~np.isnan(v)]
        empty = cls(relative_accuracy, min_value, max_value)
        k = empty.keys(v)
        zero = k < empty.key_min
        counts = np.bincount(k[~zero] - empty.key_min, minlength=empty.counts.size)
        return dataclasses.replace(
            empty, counts=counts.astype(np.int64), zero_count=int(zero.sum()), n=int(v.size), total=float(v.sum())
        )

    @classmethod
    def from_key_counts(
        cls,
        keys: Any,
        counts: Any,
        zero_count: int = 0,
        total: float = float("nan"),
        relative_accuracy: float = 0.01,
        min_value: float = 1e-3,
        max_value: float = 1e7,
    ) -> LatencySketch:
        """Sketch from per-key counts (e.g. a SQL ``GROUP BY`` of the key formula)."""
        empty = cls(relative_accuracy, min_value, max_value)
        k = np.clip(np.asarray(keys, dtype=np.int64), empty.key_min, empty.key_max) - empty.key_min
        c = np.bincount(k, weights=np.asarray(counts, dtype=np.float64), minlength=empty.counts.size)
        n = int(c.sum()) + int(zero_count)
        return dataclasses.replace(empty, counts=c.astype(np.int64), zero_count=int(zero_count), n=n, total=total)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0 <= q <= 1), within the relative accuracy; NaN when empty."""
        if self.n == 0:
            return float("nan")
        rank = q * (self.n - 1)
        if rank < self.zero_count:
            return 0.0
        cum = np.cumsum(self.counts) + self.zero_count
        i = int(np.searchsorted(cum, rank, side="right"))
        i = min(i, self.counts.size - 1)
        return float(2 * self.gamma ** (i + self.key_min) / (self.gamma + 1))

    def quantiles(self, qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> dict[str, float]:
        """``{"p50": ..., "p95": ..., "p99": ...}``."""
        return {f"p{round(q * 100):g}": self.quantile(q) for q in qs}

    @property
    def mean(self) -> float:
        return ratio(self.total, self.n)


@dataclasses.dataclass(frozen=True, eq=False)
class OpsSummary(Summary):
    """Operational counts of one window: events, fallbacks and latency.

    SQL: ``n = count()``, ``n_fallback = countIf(fallback)``, latency as in ``LatencySketch``.
    """

    n: int = 0
    n_fallback: int = 0
    latency: LatencySketch = dataclasses.field(default_factory=LatencySketch)

    @classmethod
    def from_arrays(cls, latency_ms: Any = None, fallback: Any = None, n: int | None = None) -> OpsSummary:
        lat = np.asarray([] if latency_ms is None else latency_ms, dtype=np.float64).ravel()
        fb = np.asarray([] if fallback is None else fallback, dtype=bool).ravel()
        count = n if n is not None else max(lat.size, fb.size)
        return cls(int(count), int(fb.sum()), LatencySketch.from_arrays(lat))

    def metrics(self, window_seconds: float | None = None) -> dict[str, float]:
        """Traffic (events per second when the window length is given), fallback rate, latency."""
        out = {
            "traffic": float(self.n) if not window_seconds else self.n / window_seconds,
            "fallback_rate": ratio(self.n_fallback, self.n),
            "latency_mean": self.latency.mean,
        }
        out.update({f"latency_{k}": v for k, v in self.latency.quantiles().items()})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "n_fallback": self.n_fallback, "latency": self.latency.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpsSummary:
        return cls(int(data["n"]), int(data["n_fallback"]), LatencySketch.from_dict(data["latency"]))
