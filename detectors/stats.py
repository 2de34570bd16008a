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

__all__ = ["newcombe_drop_bound", "wilson", "z_one_sided"]


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
