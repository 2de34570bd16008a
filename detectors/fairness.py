"""Group fairness from per-group counts (one protected attribute at a time).

``GroupCounts`` holds, per group value, what SQL gives with
``GROUP BY segments['attr']``: ``n = count()``, ``n_pred_pos =
countIf(s >= threshold)``, and over labelled rows ``tp, fp, tn, fn``. It merges
across partitions and windows (groups are united by name).

``fairness_metrics`` reports per group the count, positive (selection) rate,
TPR and FPR, and across groups (largest minus smallest, as fairlearn does):
demographic parity difference, equal-opportunity (TPR) difference, FPR
difference, equalized-odds difference and the disparate-impact ratio (smallest
over largest positive rate; the "four-fifths rule" flags below 0.8). Groups with
fewer than ``min_count`` events are reported but left out of the comparisons.

>>> g = GroupCounts.from_arrays(["a", "a", "a", "b", "b"], [1, 0, 1, 0, 1], [1, 0, 0, 0, 1])
>>> m = fairness_metrics(g, min_count=1)
>>> m["positive_rate"], m["demographic_parity_difference"]
({'a': 0.6666666666666666, 'b': 0.5}, 0.16666666666666663)
>>> round(m["disparate_impact_ratio"], 3)
0.75
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from ._util import as_float_array, group_index

__all__ = ["GAP_ALIASES", "GAP_METRICS", "GAP_NAMES", "GAP_RATES", "RATIO_RATES", "GroupCounts", "fairness_metrics"]

# The vocabulary of fairness gaps, defined once: the model stage writes these metrics, the alert rules
# and policies judge them, the dashboards chart them (all derive their lists from here).
# A gap between groups (largest minus smallest) and the per-group rates it compares.
GAP_RATES: dict[str, tuple[str, ...]] = {
    "demographic_parity_difference": ("positive_rate",),
    "equal_opportunity_difference": ("tpr",),
    "fpr_difference": ("fpr",),
    "equalized_odds_difference": ("tpr", "fpr"),
}
# A ratio between groups (smallest over largest) and the rate it compares.
RATIO_RATES: dict[str, str] = {"disparate_impact_ratio": "positive_rate"}
# Short names accepted wherever a gap is named (a policy's bounds, the dashboards): short -> long.
GAP_ALIASES: dict[str, str] = {
    "demographic_parity_diff": "demographic_parity_difference",
    "equal_opportunity_diff": "equal_opportunity_difference",
    "equalized_odds_diff": "equalized_odds_difference",
}
GAP_METRICS: tuple[str, ...] = (*GAP_RATES, *RATIO_RATES)
GAP_NAMES: tuple[str, ...] = (*GAP_METRICS, *GAP_ALIASES)

_FIELDS = ("n", "n_pred_pos", "tp", "fp", "tn", "fn")


@dataclasses.dataclass(frozen=True, eq=False)
class GroupCounts:
    """Confusion counts per group of one protected attribute."""

    groups: tuple[str, ...] = ()
    n: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    n_pred_pos: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    tp: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    fp: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    tn: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    fn: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(str(g) for g in self.groups))
        for f in _FIELDS:
            arr = np.asarray(getattr(self, f), dtype=np.int64).ravel()
            if arr.shape != (len(self.groups),):
                raise ValueError(f"{f} must have one count per group")
            object.__setattr__(self, f, arr)

    @classmethod
    def from_arrays(
        cls,
        groups: Sequence[Hashable] | np.ndarray,
        predictions: Any,
        outcomes: Any = None,
        *,
        threshold: float = 0.5,
    ) -> GroupCounts:
        """Counts from a group value, a score (or 0/1 decision) and an outcome (NaN: unlabelled) per event."""
        names, g = group_index(groups)
        k = len(names)
        pred = as_float_array(predictions) >= threshold
        y = np.full(pred.shape, np.nan) if outcomes is None else as_float_array(outcomes)
        lab = ~np.isnan(y)
        pos, neg = lab & (y >= 0.5), lab & (y < 0.5)

        def cnt(mask: np.ndarray) -> np.ndarray:
            return np.bincount(g[mask], minlength=k)

        return cls(
            tuple(names), np.bincount(g, minlength=k), cnt(pred),
            cnt(pos & pred), cnt(neg & pred), cnt(neg & ~pred), cnt(pos & ~pred),
        )  # fmt: skip

    def merge(self, other: GroupCounts) -> GroupCounts:
        """Counts of both sets of events (groups united by name)."""
        groups = tuple(sorted(set(self.groups) | set(other.groups)))
        index = {g: i for i, g in enumerate(groups)}
        out = {f: np.zeros(len(groups), np.int64) for f in _FIELDS}
        for src in (self, other):
            idx = np.array([index[g] for g in src.groups], dtype=np.int64)
            for f in _FIELDS:
                np.add.at(out[f], idx, getattr(src, f))
        return GroupCounts(groups, **out)

    __add__ = merge

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GroupCounts) or self.groups != other.groups:
            return False
        return all(np.array_equal(getattr(self, f), getattr(other, f)) for f in _FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        return {"groups": list(self.groups), **{f: getattr(self, f).tolist() for f in _FIELDS}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupCounts:
        return cls(tuple(data["groups"]), **{f: data[f] for f in _FIELDS})


def _rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def _spread(values: np.ndarray) -> float:
    v = values[~np.isnan(values)]
    return float(v.max() - v.min()) if v.size >= 2 else float("nan")


def fairness_metrics(counts: GroupCounts, *, min_count: int = 30) -> dict[str, Any]:
    """Per-group rates and between-group gaps (see module docstring)."""
    pr = _rate(counts.n_pred_pos, counts.n)
    tpr = _rate(counts.tp, counts.tp + counts.fn)
    fpr = _rate(counts.fp, counts.fp + counts.tn)
    big = counts.n >= min_count
    pr_c, tpr_c, fpr_c = np.where(big, pr, np.nan), np.where(big, tpr, np.nan), np.where(big, fpr, np.nan)
    valid_pr = pr_c[~np.isnan(pr_c)]
    di = float(valid_pr.min() / valid_pr.max()) if valid_pr.size >= 2 and valid_pr.max() > 0 else float("nan")
    tpr_gap, fpr_gap = _spread(tpr_c), _spread(fpr_c)

    def per_group(v: np.ndarray) -> dict[str, float]:
        return {g: float(x) for g, x in zip(counts.groups, v, strict=True)}

    return {
        "count": {g: int(x) for g, x in zip(counts.groups, counts.n, strict=True)},
        "positive_rate": per_group(pr),
        "tpr": per_group(tpr),
        "fpr": per_group(fpr),
        "demographic_parity_difference": _spread(pr_c),
        "equal_opportunity_difference": tpr_gap,
        "fpr_difference": fpr_gap,
        "equalized_odds_difference": float(np.nanmax([tpr_gap, fpr_gap]))
        if not (np.isnan(tpr_gap) and np.isnan(fpr_gap))
        else float("nan"),
        "disparate_impact_ratio": di,
    }
