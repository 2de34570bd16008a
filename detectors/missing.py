"""A rise in a feature's missing-value rate, window against reference (pure).

The value tests of ``drift.py`` leave missing values out (KS) or mix them with the
categories (chi-square), so a broken upstream join that blanks a feature in 20 % of the
predictions instead of 2 % moves nothing they flag. This test compares the share of
missing values (the last bucket of a feature's counts: key absent or null) directly.

The test is Fisher's exact test, one-sided (a rise; a drop in missing values is an
upstream fix, not an incident): the p-value is ``P(X >= x)`` for the window's missing
count ``x`` under the hypergeometric law of the pooled counts, computed in logs from
``scipy.special.gammaln`` (no approximation, so small counts and a reference with no
missing value at all are handled exactly). The effect size is Cohen's ``h``,
``2 asin(sqrt(p_window)) - 2 asin(sqrt(p_reference))``, which is defined at a rate of 0
and weighs a change near 0 more than one near 50 %: with the floor of 0.2 (Cohen's
"small"), 2 % -> 20 % (h 0.64) is flagged and 0.1 % -> 0.3 % (h 0.05) is not whatever the
window size; from a reference of 0 % the floor is a window 1 % missing.

>>> p = missing_rise_pvalue(20, 1000, 60, 300)   # 2 % of the reference missing, 20 % of the window
>>> p < 1e-20, round(cohens_h(20 / 1000, 60 / 300), 2)
(True, 0.64)
>>> round(missing_rise_pvalue(20, 1000, 6, 300), 2)  # the same rate: nothing
0.58
>>> missing_rise_pvalue(0, 1000, 0, 300)
1.0
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = ["MIN_EFFECT", "MISSING_RATE", "cohens_h", "missing_rise_pvalue"]

# The test's ``detector`` in the ``drift`` table: its ``statistic`` is the window's missing rate, its
# ``threshold`` the reference's.
MISSING_RATE = "missing_rate"

# Cohen's h a rise must reach to be flagged (his "small" effect): 0 % -> 1 %, 2 % -> 5.3 %, 10 % -> 16.5 %.
MIN_EFFECT = 0.2


def missing_rise_pvalue(ref_missing: int, ref_n: int, cur_missing: int, cur_n: int) -> float:
    """One-sided Fisher exact p-value that the window's missing rate exceeds the reference's
    (``scipy.stats.fisher_exact([[cur_missing, cur_n - cur_missing], [ref_missing, ref_n - ref_missing]],
    alternative="greater")``)."""
    a, n, b, m = int(ref_missing), int(ref_n), int(cur_missing), int(cur_n)
    if not (0 <= a <= n and 0 <= b <= m) or n == 0 or m == 0:
        raise ValueError("counts must satisfy 0 <= missing <= n and n > 0")
    total, k = n + m, a + b
    if b == 0 or k == 0:
        return 1.0
    x = np.arange(b, min(k, m) + 1, dtype=np.float64)
    log_pmf = _log_choose(k, x) + _log_choose(total - k, m - x) - _log_choose(total, m)
    return float(min(1.0, math.exp(special.logsumexp(log_pmf))))


def _log_choose(n: float, k: np.ndarray | float) -> np.ndarray:
    k = np.asarray(k, dtype=np.float64)
    return np.asarray(special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1))


def cohens_h(p_reference: float, p_window: float) -> float:
    """Cohen's h of a change of proportion, signed (positive: the window's is higher).

    >>> round(cohens_h(0.0, 0.01), 3), round(cohens_h(0.001, 0.003), 3)
    (0.2, 0.046)
    """
    return 2.0 * math.asin(math.sqrt(p_window)) - 2.0 * math.asin(math.sqrt(p_reference))
