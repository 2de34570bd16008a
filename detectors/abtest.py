"""Always-valid A/B and champion/challenger comparison under continuous monitoring.

Each arm (model version) is summarised by ``ArmStats``: the number of events
and the sum and sum of squares of a per-event loss: the error indicator (error
rate) or the cost of each answer (expected cost). SQL: ``count()``,
``sum(loss)``, ``sum(loss * loss)``; from confusion counts use
``ArmStats.from_confusion``.

The test is the mixture sequential probability ratio test (mSPRT) of Johari et
al. for the difference of means ``theta = mean_b - mean_a`` with a normal
approximation: with ``V`` the variance of the observed difference and a
``N(0, tau^2)`` mixing prior,

    Lambda = sqrt(V / (V + tau^2)) * exp(theta_hat^2 tau^2 / (2 V (V + tau^2)))

is (asymptotically) a non-negative martingale under ``theta = 0``, so
``p = min(1, 1 / Lambda)`` may be checked after every window without inflating
the false-positive rate: it is an always-valid p-value, and inverting it gives a
confidence sequence for ``theta``. ``SequentialABTest`` keeps the running
minimum p-value and the intersection of the intervals across looks.

>>> a = ArmStats.from_errors(n=20_000, errors=2_000)   # v1: 10.0% errors
>>> b = ArmStats.from_errors(n=20_000, errors=2_300)   # v2: 11.5% errors
>>> r = msprt(a, b, names=("v1", "v2"))
>>> r.summary, round(r.difference, 4), r.p_value < 0.05
('v2 worse than v1 at 95%', 0.015, True)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from .binary import CostLike
from .config import ABTestConfig
from .summary import Summary

__all__ = ["ArmStats", "ABResult", "msprt", "SequentialABTest"]


@dataclasses.dataclass(frozen=True, eq=False)
class ArmStats(Summary):
    """Events and the sum and sum of squares of a per-event loss, for one arm (mergeable)."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    @classmethod
    def from_errors(cls, n: int, errors: int) -> ArmStats:
        """An error-rate arm: ``errors`` wrong answers out of ``n`` labelled events."""
        return cls(int(n), float(errors), float(errors))

    @classmethod
    def from_confusion(cls, tp: int, fp: int, tn: int, fn: int, cost: CostLike) -> ArmStats:
        """An expected-cost arm from confusion counts and a cost matrix."""
        counts = np.array([tp, fp, tn, fn], dtype=np.float64)
        costs = np.array([cost.tp, cost.fp, cost.tn, cost.fn], dtype=np.float64)
        return cls(int(counts.sum()), float(counts @ costs), float(counts @ costs**2))

    @classmethod
    def from_arrays(cls, losses: Any) -> ArmStats:
        """From per-event losses."""
        v = np.asarray(losses, dtype=np.float64).ravel()
        return cls(int(v.size), float(v.sum()), float(np.sum(v * v)))

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")

    @property
    def var(self) -> float:
        """Sample variance of the per-event loss."""
        if self.n < 2:
            return float("nan")
        return max(self.total_sq - self.total * self.total / self.n, 0.0) / (self.n - 1)


@dataclasses.dataclass(frozen=True)
class ABResult:
    """The comparison at one look: ``difference = mean_b - mean_a`` of the loss."""

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    statistic: float
    decision: str  # "worse", "better" or "inconclusive" (b relative to a; lower loss is better)
    summary: str
    n_a: int
    n_b: int


def _pooled_var(a: ArmStats, b: ArmStats) -> float:
    n = a.n + b.n
    if n < 2:
        return float("nan")
    tot, sq = a.total + b.total, a.total_sq + b.total_sq
    return max(sq - tot * tot / n, 0.0) / (n - 1)


def msprt(
    a: ArmStats,
    b: ArmStats,
    config: ABTestConfig | None = None,
    names: tuple[str, str] = ("a", "b"),
) -> ABResult:
    """Compare arm ``b`` (challenger) with arm ``a`` (champion) at one look (see module docstring)."""
    cfg = config or ABTestConfig()
    alpha = cfg.alpha
    pooled = _pooled_var(a, b)
    if a.n < 2 or b.n < 2 or not pooled > 0:
        return ABResult(float("nan"), -math.inf, math.inf, 1.0, 1.0, "inconclusive",
                        f"{names[1]} vs {names[0]}: not enough data", a.n, b.n)  # fmt: skip
    # Each arm's variance is shrunk towards the pooled one (one pseudo-event): no zero variance.
    va = (a.var * (a.n - 1) + pooled) / a.n
    vb = (b.var * (b.n - 1) + pooled) / b.n
    v = va / a.n + vb / b.n
    tau2 = (cfg.tau**2) * pooled
    theta = b.mean - a.mean
    log_lambda = 0.5 * math.log(v / (v + tau2)) + theta * theta * tau2 / (2 * v * (v + tau2))
    statistic = math.exp(min(log_lambda, 700.0))
    p = min(1.0, math.exp(-log_lambda))
    radius = math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((v + tau2) / v)))
    ok = min(a.n, b.n) >= cfg.min_n
    return _result(theta, theta - radius, theta + radius, p if ok else 1.0, statistic, a.n, b.n, cfg, names)


def _result(
    theta: float,
    lo: float,
    hi: float,
    p: float,
    stat: float,
    n_a: int,
    n_b: int,
    cfg: ABTestConfig,
    names: tuple[str, str],
) -> ABResult:
    level = f"{1 - cfg.alpha:.0%}"
    if p <= cfg.alpha and lo > 0:
        decision, text = "worse", f"{names[1]} worse than {names[0]} at {level}"
    elif p <= cfg.alpha and hi < 0:
        decision, text = "better", f"{names[1]} better than {names[0]} at {level}"
    else:
        decision, text = "inconclusive", f"no difference between {names[1]} and {names[0]} at {level} yet"
    return ABResult(theta, lo, hi, p, stat, decision, text, n_a, n_b)


class SequentialABTest:
    """Continuous monitoring of two arms: call ``update`` with cumulative stats at each look.

    Keeps the running minimum of the always-valid p-value and the running
    intersection of the confidence intervals, so a decision, once reached, stays.
    Picklable (plain attributes).
    """

    def __init__(self, config: ABTestConfig | None = None, names: tuple[str, str] = ("a", "b")) -> None:
        self.config = config or ABTestConfig()
        self.names = names
        self.p_value = 1.0
        self.ci_low = -math.inf
        self.ci_high = math.inf
        self.looks = 0
        self.result: ABResult | None = None

    def update(self, a: ArmStats, b: ArmStats) -> ABResult:
        """Record one look at the cumulative statistics of both arms."""
        r = msprt(a, b, self.config, self.names)
        self.looks += 1
        if min(a.n, b.n) >= self.config.min_n and not math.isnan(r.difference):
            self.p_value = min(self.p_value, r.p_value)
            self.ci_low, self.ci_high = max(self.ci_low, r.ci_low), min(self.ci_high, r.ci_high)
        self.result = _result(
            r.difference, self.ci_low, self.ci_high, self.p_value, r.statistic, a.n, b.n, self.config, self.names
        )
        return self.result
