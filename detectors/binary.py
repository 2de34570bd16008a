"""Binary classification metrics from mergeable per-window sufficient statistics.

A ``BinarySummary`` holds what one window (per model, version, segment) needs.
With ``s`` the score clipped to [0, 1], ``y`` the outcome (1, 0 or NULL) and
``b = least(toUInt32(floor(s * n_bins)), n_bins - 1)`` the score bin:

- ``threshold``, ``n_bins``: parameters (``n_bins=100``: every 0.01 is a bin edge);
- ``n = count()``, ``n_pred_pos = countIf(s >= threshold)``;
- ``hist[b] = count()`` and ``score_sum[b] = sum(s)`` per bin, over all predictions;
- ``tp, fp, tn, fn``: ``countIf(y = 1 AND s >= threshold)`` etc. (exact, not from bins);
- ``hist_pos[b] = countIf(y = 1)``, ``hist_neg[b] = countIf(y = 0)``,
  ``score_sum_labeled[b] = sumIf(s, y IS NOT NULL)`` per bin;
- ``sum_log_loss = sum(-(y * log(p) + (1 - y) * log(1 - p)))`` with ``p`` the score
  clipped to [eps, 1 - eps] (eps = 2.2e-16), and ``sum_brier = sum((s - y) ^ 2)``,
  over labelled rows.

ROC AUC and average precision come from the score histograms split by outcome;
their error against the exact values is bounded by what the bins hide (see
``roc_auc_bin_error``). Confusion counts, log loss and Brier score are exact.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = rng.binomial(1, 0.3, 2000)
>>> s = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.15, 2000), 0, 1)
>>> summ = BinarySummary.from_arrays(s, y)
>>> m = summ.metrics()
>>> round(m["accuracy"], 4), m["tp"], round(m["roc_auc"], 3)
(0.829, 306.0, 0.915)
>>> half = BinarySummary.from_arrays(s[:900], y[:900]) + BinarySummary.from_arrays(s[900:], y[900:])
>>> half == summ
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from typing import Any, Protocol

import numpy as np

from ._util import EPS, as_float_array, group_index, ratio
from .summary import Summary, param

__all__ = [
    "BinarySummary",
    "CostLike",
    "score_bins",
    "roc_auc_from_hist",
    "average_precision_from_hist",
    "lift",
]


class CostLike(Protocol):
    """Anything with per-outcome costs ``tp``, ``fp``, ``tn``, ``fn`` (e.g. ``config.CostMatrix``)."""

    tp: float
    fp: float
    tn: float
    fn: float


def score_bins(scores: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each score in ``n_bins`` uniform bins on [0, 1]; bin ``b`` is ``[b/n, (b+1)/n)``."""
    s = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    return np.minimum(np.floor(s * n_bins).astype(np.int64), n_bins - 1)


def roc_auc_from_hist(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC from per-bin positive and negative counts (bins in increasing score order).

    Scores in one bin are treated as ties (counted one half), as scikit-learn does
    for equal scores; counts may be fractional (expected counts).
    """
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    p_tot, n_tot = pos.sum(), neg.sum()
    if p_tot <= 0 or n_tot <= 0:
        return float("nan")
    pos_below = np.cumsum(pos) - pos  # positives in lower bins
    # A negative in bin b is out-ranked by positives above b and ties half with those in b.
    wins = np.sum(neg * (p_tot - pos_below - pos + 0.5 * pos))
    return float(wins / (p_tot * n_tot))


def average_precision_from_hist(pos: np.ndarray, neg: np.ndarray) -> float:
    """Average precision (step-wise area under the PR curve) with one threshold per bin."""
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    p_tot = pos.sum()
    if p_tot <= 0:
        return float("nan")
    tp = np.cumsum(pos[::-1])
    fp = np.cumsum(neg[::-1])
    d_recall = pos[::-1] / p_tot
    pred = tp + fp
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    return float(np.sum(d_recall * precision))


@dataclasses.dataclass(frozen=True, eq=False)
class BinarySummary(Summary):
    """Sufficient statistics of a binary model over one window (see module docstring)."""

    threshold: float = param(0.5)
    n_bins: int = param(100)
    n: int = 0
    n_pred_pos: int = 0
    hist: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(100, np.int64))
    score_sum: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(100))
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    hist_pos: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(100, np.int64))
    hist_neg: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(100, np.int64))
    score_sum_labeled: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(100))
    sum_log_loss: float = 0.0
    sum_brier: float = 0.0

    def _validate(self) -> None:
        for name in ("hist", "score_sum", "hist_pos", "hist_neg", "score_sum_labeled"):
            if np.shape(getattr(self, name)) != (self.n_bins,):
                raise ValueError(f"{name} must have n_bins={self.n_bins} entries")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def empty(cls, threshold: float = 0.5, n_bins: int = 100) -> BinarySummary:
        """A summary of no events."""
        zi, zf = np.zeros(n_bins, np.int64), np.zeros(n_bins)
        return cls(threshold, n_bins, hist=zi, score_sum=zf, hist_pos=zi, hist_neg=zi, score_sum_labeled=zf)

    @classmethod
    def from_arrays(
        cls, scores: Any, outcomes: Any = None, *, threshold: float = 0.5, n_bins: int = 100
    ) -> BinarySummary:
        """Summarise scores (probabilities of the positive class) and outcomes.

        ``outcomes`` holds 1/0 (or True/False) and NaN where no label arrived yet;
        ``None`` means no event is labelled.
        """
        keys = np.zeros(np.size(scores), dtype=np.int64)
        return cls._grouped(keys, 1, scores, outcomes, threshold, n_bins)[0]

    @classmethod
    def from_arrays_by(
        cls,
        keys: Sequence[Hashable] | np.ndarray,
        scores: Any,
        outcomes: Any = None,
        *,
        threshold: float = 0.5,
        n_bins: int = 100,
    ) -> dict[Any, BinarySummary]:
        """One summary per distinct key (e.g. a segment value), in one vectorised pass."""
        uniq, inverse = group_index(keys)
        return dict(zip(uniq, cls._grouped(inverse, len(uniq), scores, outcomes, threshold, n_bins), strict=True))

    @classmethod
    def _grouped(
        cls, g: np.ndarray, n_groups: int, scores: Any, outcomes: Any, threshold: float, n_bins: int
    ) -> list[BinarySummary]:
        s = as_float_array(scores)
        if np.isnan(s).any():
            raise ValueError("scores contain NaN")
        s = np.clip(s, 0.0, 1.0)
        y = np.full(s.shape, np.nan) if outcomes is None else as_float_array(outcomes)
        if y.shape != s.shape or g.shape != s.shape:
            raise ValueError("scores, outcomes and keys must have the same length")
        lab = ~np.isnan(y)
        pos, neg = lab & (y >= 0.5), lab & (y < 0.5)
        pred = s >= threshold
        b = score_bins(s, n_bins)
        cell = g * n_bins + b
        size = n_groups * n_bins

        def per_bin(mask: np.ndarray | None = None, w: np.ndarray | None = None) -> np.ndarray:
            c, ww = (cell, w) if mask is None else (cell[mask], None if w is None else w[mask])
            out = np.bincount(c, weights=ww, minlength=size).reshape(n_groups, n_bins)
            return out if w is not None else out.astype(np.int64)

        def per_group(mask: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
            return np.bincount(g[mask], weights=None if w is None else w[mask], minlength=n_groups)

        p = np.clip(s, EPS, 1 - EPS)
        yy = np.where(lab, y >= 0.5, 0).astype(np.float64)
        ll = -(yy * np.log(p) + (1 - yy) * np.log1p(-p))
        br = (s - yy) ** 2
        hist, ssum = per_bin(), per_bin(w=s)
        hpos, hneg, ssl = per_bin(pos), per_bin(neg), per_bin(lab, s)
        n = np.bincount(g, minlength=n_groups)
        npp = per_group(pred)
        tp, fp = per_group(pos & pred), per_group(neg & pred)
        tn, fn = per_group(neg & ~pred), per_group(pos & ~pred)
        sll, sbr = per_group(lab, ll), per_group(lab, br)
        return [
            cls(
                threshold, n_bins, int(n[i]), int(npp[i]), hist[i], ssum[i],
                int(tp[i]), int(fp[i]), int(tn[i]), int(fn[i]),
                hpos[i], hneg[i], ssl[i], float(sll[i]), float(sbr[i]),
            )
            for i in range(n_groups)
        ]  # fmt: skip

    # -- metrics ---------------------------------------------------------------------------------
    @property
    def n_labeled(self) -> int:
        """Labelled events (``tp + fp + tn + fn``)."""
        return self.tp + self.fp + self.tn + self.fn

    def roc_auc(self) -> float:
        """ROC AUC from the score histograms of labelled events."""
        return roc_auc_from_hist(self.hist_pos, self.hist_neg)

    def roc_auc_bin_error(self) -> float:
        """Largest possible difference between ``roc_auc()`` and the exact AUC of the raw scores."""
        p, n = self.hist_pos.sum(), self.hist_neg.sum()
        if p == 0 or n == 0:
            return float("nan")
        return float(0.5 * np.sum(self.hist_pos * self.hist_neg.astype(np.float64)) / (p * n))

    def average_precision(self) -> float:
        """Average precision (PR AUC) from the score histograms of labelled events."""
        return average_precision_from_hist(self.hist_pos, self.hist_neg)

    def ece(self, n_bins: int = 10) -> float:
        """Expected calibration error over ``n_bins`` equal-width bins (coarsened from the fine ones)."""
        if self.n_labeled == 0:
            return float("nan")
        centers = (np.arange(self.n_bins) + 0.5) / self.n_bins
        coarse = np.minimum((centers * n_bins).astype(np.int64), n_bins - 1)
        cnt = np.bincount(coarse, self.hist_pos + self.hist_neg, minlength=n_bins)
        pos = np.bincount(coarse, self.hist_pos, minlength=n_bins)
        conf = np.bincount(coarse, self.score_sum_labeled, minlength=n_bins)
        return float(np.sum(np.abs(pos - conf)) / cnt.sum())

    def expected_cost(self, cost: CostLike) -> float:
        """Average cost per labelled event at the model's threshold."""
        total = cost.tp * self.tp + cost.fp * self.fp + cost.tn * self.tn + cost.fn * self.fn
        return ratio(total, self.n_labeled)

    def cost_curve(self, cost: CostLike) -> tuple[np.ndarray, np.ndarray]:
        """Expected cost per labelled event at every bin-edge threshold ``0, 1/n_bins, ..., 1``.

        Costs are from the histograms, so they are exact for thresholds on bin edges.
        """
        pos_ge = np.r_[np.cumsum(self.hist_pos[::-1])[::-1], 0]
        neg_ge = np.r_[np.cumsum(self.hist_neg[::-1])[::-1], 0]
        p_tot, n_tot = pos_ge[0], neg_ge[0]
        total = cost.tp * pos_ge + cost.fp * neg_ge + cost.fn * (p_tot - pos_ge) + cost.tn * (n_tot - neg_ge)
        thresholds = np.arange(self.n_bins + 1) / self.n_bins
        with np.errstate(invalid="ignore", divide="ignore"):
            return thresholds, total / (p_tot + n_tot)

    def metrics(self, cost: CostLike | None = None, ece_bins: int = 10) -> dict[str, float]:
        """All metrics of the window; NaN where undefined (e.g. no labels yet)."""
        tp, fp, tn, fn, nl = self.tp, self.fp, self.tn, self.fn, self.n_labeled
        precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
        out = {
            "n": float(self.n),
            "n_labeled": float(nl),
            "label_rate": ratio(nl, self.n),
            "positive_rate": ratio(self.n_pred_pos, self.n),
            "mean_score": ratio(float(self.score_sum.sum()), self.n),
            "prevalence": ratio(tp + fn, nl),
            "accuracy": ratio(tp + tn, nl),
            "error_rate": ratio(fp + fn, nl),
            "precision": precision,
            "recall": recall,
            "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "fpr": ratio(fp, fp + tn),
            "tp": float(tp),
            "fp": float(fp),
            "tn": float(tn),
            "fn": float(fn),
            "roc_auc": self.roc_auc(),
            "pr_auc": self.average_precision(),
            "log_loss": ratio(self.sum_log_loss, nl),
            "brier": ratio(self.sum_brier, nl),
            "ece": self.ece(ece_bins),
        }
        if cost is not None:
            out["expected_cost"] = self.expected_cost(cost)
        return out

    def metric_rows(self, cost: CostLike | None = None) -> list[tuple[str, float, int]]:
        """``(metric, value, n)`` rows for the metrics table; ``n`` is the events the value rests on."""
        unlabeled = {"n", "label_rate", "positive_rate", "mean_score"}
        return [(k, v, self.n if k in unlabeled else self.n_labeled) for k, v in self.metrics(cost).items()]


_COUNT_KEYS = {"n", "n_labeled", "tp", "fp", "tn", "fn"}


def lift(model: dict[str, float], baseline: dict[str, float]) -> dict[str, float]:
    """``lift_<metric>`` = model metric minus baseline metric, for every shared rate-like metric.

    For losses (``log_loss``, ``brier``, ``ece``, ``error_rate``, ``expected_cost``,
    ``mae``, ``rmse``) a negative lift means the model beats the baseline.

    >>> lift({"accuracy": 0.9, "n": 10.0}, {"accuracy": 0.75, "n": 10.0})
    {'lift_accuracy': 0.15000000000000002}
    """
    return {f"lift_{k}": model[k] - baseline[k] for k in model if k in baseline and k not in _COUNT_KEYS}
