"""Interval statistics of proportions: normal quantiles, Wilson bounds, Newcombe's difference bound (pure).

Used by the alert rules to ask "did this metric drop, beyond noise?" of a
proportion measured on ``n`` events against a reference measured on its own
events (or configured, taken as exact).

>>> tuple(round(x, 3) for x in wilson(0.5, 100, z_one_sided(0.975)))
(0.404, 0.596)

The Wilson interval keeps its coverage on small samples (a seeded check: a
95% two-sided interval of 40 draws covers the true rate in about 95% of runs):

>>> import random
>>> rng = random.Random(7)
>>> z, p, n = z_one_sided(0.975), 0.1, 40
>>> hits = 0
>>> for _ in range(2000):
...     k = sum(rng.random() < p for _ in range(n))
...     lo, hi = wilson(k / n, n, z)
...     hits += lo <= p <= hi
>>> 0.93 <= hits / 2000 <= 0.97
True
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = [
    "binomial_bounds", "difference_bounds", "mcnemar_exact", "newcombe_drop_bound", "paired_difference_bounds",
    "ratio_bounds", "wilson", "z_one_sided",
]


def z_one_sided(confidence: float) -> float:
    """The normal quantile of a one-sided bound at ``confidence``.

    >>> round(z_one_sided(0.95), 3)
    1.645
    """
    return NormalDist().inv_cdf(confidence)


def wilson(p: float, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` of ``n`` events.

    >>> tuple(round(x, 3) for x in wilson(0.5, 100, 1.96))
    (0.404, 0.596)
    >>> wilson(0.5, 0, 1.96)  # no events: anything
    (0.0, 1.0)
    """
    if n <= 0:
        return 0.0, 1.0
    p = min(max(p, 0.0), 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_drop_bound(
    ref: float, ref_n: int | None, cur: float, cur_n: int, z: float, higher_is_better: bool
) -> tuple[float, float]:
    """(drop, one-sided lower bound of the drop) of proportion ``cur`` against ``ref``; a drop is a worsening.

    The bound is Newcombe's hybrid score interval of the difference of two
    proportions; with ``ref_n`` None the reference is configured, taken as exact,
    and the bound is the Wilson bound of ``cur`` alone.

    >>> drop, lower = newcombe_drop_bound(0.85, 1200, 0.62, 400, z_one_sided(0.95), True)
    >>> round(drop, 3), round(lower, 3)
    (0.23, 0.187)
    >>> tuple(round(x, 3) for x in newcombe_drop_bound(0.9, None, 0.8, 400, 1.645, True))
    (0.1, 0.069)
    """
    r, c = ref, cur
    drop = (r - c) if higher_is_better else (c - r)
    lo_c, hi_c = wilson(c, cur_n, z)
    if ref_n is None:
        return drop, (r - hi_c) if higher_is_better else (lo_c - r)
    lo_r, hi_r = wilson(r, ref_n, z)
    if higher_is_better:
        return drop, drop - math.sqrt((r - lo_r) ** 2 + (hi_c - c) ** 2)
    return drop, drop - math.sqrt((c - lo_c) ** 2 + (hi_r - r) ** 2)


def binomial_bounds(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Exact (Clopper–Pearson) one-sided bounds of a proportion: ``k`` successes of ``n``, each at ``confidence``.

    >>> tuple(round(x, 4) for x in binomial_bounds(5, 10, 0.975))
    (0.1871, 0.8129)
    >>> binomial_bounds(0, 10, 0.95)[0], binomial_bounds(10, 10, 0.95)[1], binomial_bounds(0, 0, 0.95)
    (0.0, 1.0, (0.0, 1.0))
    """
    from scipy.special import betaincinv

    if n <= 0:
        return 0.0, 1.0
    a = 1.0 - confidence
    lo = 0.0 if k <= 0 else float(betaincinv(k, n - k + 1, a))
    hi = 1.0 if k >= n else float(betaincinv(k + 1, n - k, 1.0 - a))
    return lo, hi


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of ``b`` against ``c`` discordant pairs at 1/2.

    >>> round(mcnemar_exact(10, 2), 4), mcnemar_exact(5, 5), mcnemar_exact(0, 0)
    (0.0386, 1.0, 1.0)
    """
    from scipy.special import bdtr

    m = b + c
    if m == 0:
        return 1.0
    return min(1.0, 2.0 * float(bdtr(min(b, c), m, 0.5)))


def paired_difference_bounds(b: int, c: int, n: int, confidence: float) -> tuple[float, float, float]:
    """(difference, lower, upper bound) of a paired difference of two proportions on the same ``n`` events.

    ``b``: events the first classifier got right and the second wrong; ``c``: the reverse. The
    difference of their accuracies is ``(b - c) / n``; given the ``m = b + c`` discordant pairs,
    ``b`` is binomial with ``m`` trials, so the exact one-sided bounds of its proportion (at
    ``confidence`` each) give bounds of the difference: ``m / n * (2 p - 1)``. The interval
    excludes zero exactly when the one-sided exact McNemar test rejects at ``1 - confidence``.

    >>> d, lo, hi = paired_difference_bounds(20, 60, 1000, 0.999)
    >>> round(d, 3), round(lo, 3), round(hi, 3)
    (-0.04, -0.061, -0.012)
    >>> paired_difference_bounds(0, 0, 0, 0.99)
    (0.0, -1.0, 1.0)
    """
    m = b + c
    if n <= 0:
        return 0.0, -1.0, 1.0
    lo_p, hi_p = binomial_bounds(b, m, confidence)
    scale = m / n
    return (b - c) / n, scale * (2 * lo_p - 1), scale * (2 * hi_p - 1)


def ratio_bounds(k1: int, n1: int, k2: int, n2: int, z: float) -> tuple[float, float, float]:
    """(ratio, lower, upper bound) of ``(k1 / n1) / (k2 / n2)``, two independent proportions.

    Katz's log interval (one-sided bounds at the quantile ``z``), with half a count added to a
    zero count so that the bounds stay finite.

    >>> r, lo, hi = ratio_bounds(60, 200, 100, 200, z_one_sided(0.95))
    >>> round(r, 3), round(lo, 3), round(hi, 3)
    (0.6, 0.485, 0.742)
    >>> ratio_bounds(1, 0, 3, 4, 1.645)
    (nan, 0.0, inf)
    """
    if n1 <= 0 or n2 <= 0:
        return math.nan, 0.0, math.inf
    a, b = (k1, k2) if k1 > 0 and k2 > 0 else (k1 + 0.5, k2 + 0.5)
    m1, m2 = (n1, n2) if k1 > 0 and k2 > 0 else (n1 + 0.5, n2 + 0.5)
    ratio = (k1 / n1) / (k2 / n2) if k2 > 0 else math.inf
    log_r = math.log((a / m1) / (b / m2))
    se = math.sqrt(max(0.0, 1 / a - 1 / m1 + 1 / b - 1 / m2))
    return ratio, math.exp(log_r - z * se), math.exp(log_r + z * se)


def difference_bounds(p1: float, n1: int, p2: float, n2: int, z: float) -> tuple[float, float, float]:
    """(difference, lower, upper bound) of ``p1 - p2``, two independent proportions (Newcombe's hybrid score).

    >>> tuple(round(x, 3) for x in difference_bounds(0.8, 150, 0.5, 150, z_one_sided(0.95)))
    (0.3, 0.211, 0.382)
    """
    lo1, hi1 = wilson(p1, n1, z)
    lo2, hi2 = wilson(p2, n2, z)
    d = p1 - p2
    return d, d - math.sqrt((p1 - lo1) ** 2 + (hi2 - p2) ** 2), d + math.sqrt((hi1 - p1) ** 2 + (p2 - lo2) ** 2)
