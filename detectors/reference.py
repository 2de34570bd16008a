"""What a window is compared with: reference types and reference selection (pure).

Two kinds of reference, one per question:

- :class:`MetricBaseline` — a metric's value to judge later windows against
  (the alert rules' "did accuracy drop?"): pooled over a version's first
  windows until they hold a sample size (its first M labels) by
  :func:`baseline_from_sample`, or configured.
- :class:`BinnedReference` — bucket edges learnt from reference data and the
  reference's counts per bucket (the drift stage's "did the distribution move?").

``select_reference(window_start, window_seconds, policy)`` returns the time
ranges (epoch seconds, ``[start, end)``) whose window summaries, merged, form
the reference for the window starting at ``window_start``:

- ``fixed``: one range chosen once (e.g. the training period loaded as reference);
- ``first_n``: the earliest windows holding the model's first ``n_events`` events
  (needs ``history``: events per past window start);
- ``first_windows``: the ``n_windows`` windows from the first one with events in
  ``history`` on, whether they have passed yet or not (a window inside them is
  part of the reference, not tested against it);
- ``rolling``: the ``n_windows`` windows just before this one;
- ``seasonal``: the same slot ``period`` seconds earlier (86 400: same hour
  yesterday; 604 800: same hour last week), pooled over ``n_periods`` periods.

A seasonal reference does not flag a daily cycle as drift; a fixed one does.

>>> pol = ReferencePolicy.seasonal(period=86_400, n_periods=2)
>>> select_reference(200_000, 3_600, pol).ranges
((113600, 117200), (27200, 30800))
>>> select_reference(200_000, 3_600, ReferencePolicy.rolling(3)).ranges
((189200, 200000),)
>>> hist = {0: 400, 3600: 500, 7200: 700}
>>> sel = select_reference(10_800, 3_600, ReferencePolicy.first_n(800), history=hist)
>>> sel.ranges, sel.complete
(((0, 7200),), True)
>>> select_reference(3_600, 3_600, ReferencePolicy.first_windows(3), history={3600: 10}).ranges
((3600, 14400),)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from .config import ReferencePolicy
from .drift import CategoricalBinning, NumericBinning
from .multivariate import MultivariateReference
from .summary import Summary, merge_all
from .timeutil import iso

__all__ = [
    "BinnedReference",
    "MetricBaseline",
    "ReferencePolicy",
    "ReferenceSelection",
    "baseline_from_sample",
    "merge_reference",
    "pooled_baseline",
    "select_reference",
]

# Quantile bins of a numeric feature in a binned reference.
NUMERIC_BINS = 100


# Selection ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReferenceSelection:
    """Time ranges ``[start, end)`` forming the reference; ``complete`` is False while data is short."""

    ranges: tuple[tuple[int, int], ...]
    complete: bool = True

    def contains(self, window_start: int) -> bool:
        return any(a <= window_start < b for a, b in self.ranges)


def select_reference(
    window_start: int,
    window_seconds: int,
    policy: ReferencePolicy,
    *,
    history: Mapping[int, int] | None = None,
) -> ReferenceSelection:
    """The reference ranges for the window starting at ``window_start`` (see module docstring)."""
    w = int(window_seconds)
    t = int(window_start)
    if policy.kind == "fixed":
        assert policy.start is not None and policy.end is not None
        return ReferenceSelection(((policy.start, policy.end),))
    if policy.kind == "rolling":
        return ReferenceSelection(((t - policy.n_windows * w, t),))
    if policy.kind == "seasonal":
        starts = [t - k * policy.period for k in range(1, policy.n_periods + 1)]
        return ReferenceSelection(tuple((s, s + w) for s in starts))
    if policy.kind == "first_windows":
        # Counted in windows from the first one with events, not in events: a version's first
        # windows are its reference however busy they were.
        first = min((int(s) for s, n in (history or {}).items() if n), default=None)
        if first is None:
            return ReferenceSelection((), complete=False)
        end = first + policy.n_windows * w
        return ReferenceSelection(((first, end),), complete=t >= end)
    # first_n: the earliest past windows reaching n_events.
    total, last = 0, None
    past = sorted((s, n) for s, n in (history or {}).items() if s + w <= t)
    for s, n in past:
        total += int(n)
        last = s + w
        if total >= policy.n_events:
            break
    if last is None:
        return ReferenceSelection((), complete=False)
    return ReferenceSelection(((past[0][0], last),), complete=total >= policy.n_events)


def merge_reference(summaries: Mapping[int, Any], selection: ReferenceSelection) -> Any:
    """Merge the window summaries or bucket counts (keyed by window start) in the selected ranges.

    Returns None when no window falls in the ranges.
    """
    chosen = [v for s, v in sorted(summaries.items()) if selection.contains(s)]
    if not chosen:
        return None
    if isinstance(chosen[0], Summary):
        return merge_all(chosen)
    return np.sum([np.asarray(c) for c in chosen], axis=0)


# A metric's baseline (alert rules) -------------------------------------------------------------


class Measured(Protocol):
    """A metric's value and the number of events behind it."""

    @property
    def value(self) -> float: ...

    @property
    def n(self) -> int: ...


@dataclasses.dataclass(frozen=True)
class MetricBaseline:
    """What a version's metric is compared with: pooled over its first windows (a sample size), or configured."""

    value: float
    n: int  # 0: a configured value, taken as exact
    starts: tuple[int, ...] = ()  # the reference windows (epoch seconds)

    @property
    def configured(self) -> bool:
        return not self.starts

    def covers(self, start: int) -> bool:
        """True for the baseline's own windows (and earlier ones): they are not judged against it."""
        return bool(self.starts) and start <= self.starts[-1]

    def evidence(self) -> dict[str, Any]:
        if self.configured:
            return {"value": self.value, "source": "configured"}
        return {"value": self.value, "n": self.n, "source": "first events of the version",
                "windows": [iso(s) for s in self.starts]}  # fmt: skip


def pooled_baseline(points: Sequence[tuple[int, Measured]], k: int) -> MetricBaseline | None:
    """The n-weighted mean of the first ``k`` windows (start, point); None until there are ``k``.

    >>> from types import SimpleNamespace as P
    >>> pooled_baseline([(0, P(value=0.8, n=100)), (300, P(value=0.9, n=300))], k=2)
    MetricBaseline(value=0.875, n=400, starts=(0, 300))
    """
    first = sorted(points, key=lambda sp: sp[0])[:k]
    if len(first) < k:
        return None
    n = sum(p.n for _, p in first)
    if n <= 0:
        return None
    value = sum(p.value * p.n for _, p in first) / n
    return MetricBaseline(value=value, n=n, starts=tuple(s for s, _ in first))


def baseline_from_sample(points: Sequence[tuple[int, Measured]], n: int) -> MetricBaseline | None:
    """The n-weighted mean of the first windows (start, point) that together hold ``n`` events (labels, for
    a labelled metric); None until they do — a reference from a sample size, not a window count.

    >>> from types import SimpleNamespace as P
    >>> pts = [(0, P(value=0.8, n=100)), (300, P(value=0.9, n=300)), (600, P(value=0.5, n=900))]
    >>> baseline_from_sample(pts, n=300)
    MetricBaseline(value=0.875, n=400, starts=(0, 300))
    >>> baseline_from_sample(pts[:1], n=300) is None
    True
    """
    total, first = 0, []
    for s, p in sorted(points, key=lambda sp: sp[0]):
        if p.n <= 0:
            continue
        first.append((s, p))
        total += int(p.n)
        if total >= n:
            value = sum(q.value * q.n for _, q in first) / total
            return MetricBaseline(value=value, n=total, starts=tuple(t for t, _ in first))
    return None


# Bucketed reference data (drift) ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BinnedReference:
    """Bucket edges and reference counts of one model version's features, from reference data in [start, end).

    ``start == end`` (e.g. 0, 0) for data loaded from outside the stream: no window is inside it.

    >>> ref = BinnedReference.build({"x": np.arange(100.0)}, {"c": np.array(["a", "b", "a"], dtype=object)}, 0, 300)
    >>> ref.kinds, ref.contains(0), ref.contains(300)
    ({'x': 'numeric', 'c': 'categorical'}, True, False)
    >>> cur = ref.current_counts({}, {"c": np.array(["a"], dtype=object)}, 1)
    >>> int(cur["x"][-1]), int(cur["c"].sum())  # x missing in the current data: counted as missing
    (1, 1)
    """

    start: int
    end: int
    binnings: dict[str, NumericBinning | CategoricalBinning]
    counts: dict[str, np.ndarray]
    kinds: dict[str, str]
    # The joint distribution of the numeric features (a change of their correlations), when they allow it.
    multivariate: MultivariateReference | None = None

    @classmethod
    def build(
        cls,
        numeric: Mapping[str, np.ndarray],
        categorical: Mapping[str, np.ndarray],
        start: int,
        end: int,
        *,
        multivariate_alpha: float | None = None,
        exclude: tuple[str, ...] = (),
    ) -> BinnedReference:
        """Quantile buckets of each numeric feature with two finite values or more; each categorical's categories.

        With ``multivariate_alpha``, also the PCA reconstruction reference of the numeric features (two or
        more that vary, not in ``exclude``, at least 50 rows): a per-window test at that level.
        """
        binnings: dict[str, NumericBinning | CategoricalBinning] = {}
        counts: dict[str, np.ndarray] = {}
        kinds: dict[str, str] = {}
        for name, arr in numeric.items():
            if np.isfinite(arr).sum() < 2:
                continue
            b = NumericBinning.from_reference(arr, NUMERIC_BINS)
            binnings[name], counts[name], kinds[name] = b, b.counts(arr), "numeric"
        for name, cats in categorical.items():
            cb = CategoricalBinning.from_reference(cats)
            binnings[name], counts[name], kinds[name] = cb, cb.counts(cats), "categorical"
        joint = None
        names = sorted(n for n, k in kinds.items() if k == "numeric" and n not in exclude)
        if multivariate_alpha is not None and len(names) >= 2:
            X = np.column_stack([numeric[n] for n in names])
            try:
                joint = MultivariateReference.fit(X, names, alpha=multivariate_alpha)
            except ValueError:  # too few rows, or nothing varies: no joint test for this reference
                joint = None
        return cls(start, end, binnings, counts, kinds, joint)

    def contains(self, window_start: int) -> bool:
        """True for a window inside the reference's own range (it is not tested against it)."""
        return self.start <= window_start < self.end

    def current_counts(
        self, numeric: Mapping[str, np.ndarray], categorical: Mapping[str, np.ndarray], n: int
    ) -> dict[str, np.ndarray]:
        """Counts of ``n`` current rows in the reference's buckets (a feature absent from them: all missing)."""
        current: dict[str, np.ndarray] = {}
        for name, binning in self.binnings.items():
            if isinstance(binning, NumericBinning):
                values = numeric.get(name)
                current[name] = binning.counts(values if values is not None else np.full(n, np.nan))
            else:
                cats = categorical.get(name)
                current[name] = binning.counts(cats if cats is not None else np.full(n, None, dtype=object))
        return current
