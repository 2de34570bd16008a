"""Windowed drift tests: a current window's histogram against a reference's.

Bucketing is derived from the reference and then fixed, so the stream (or SQL)
only counts events per bucket and counts merge across partitions and windows.

Numeric features: ``NumericBinning`` has quantile edges of the reference,
open-ended first and last buckets and one bucket for missing values (NaN/NULL).
Bucket ``i`` of a value ``x`` is the number of edges ``<= x``; missing is the last
bucket (SQL: ``if(isNaN(x) OR isNull(x), length(edges) + 1, arrayCount(e -> e <= x, edges))``).
Use fine bins (100 by default): KS reads their CDF and the others coarsen them.

Categorical features: ``CategoricalBinning`` keeps the reference's categories;
unseen ones share the ``other`` bucket and missing values have their own.

Tests (all from counts): PSI, Jensen-Shannon distance, chi-square and
Kolmogorov-Smirnov (CDF compared at the bucket edges; from raw samples when
they are at hand, ``ks_samples``). ``drift_report`` runs one test per feature and
controls false alarms across features with Benjamini-Hochberg (or Bonferroni);
``calibrate_threshold`` sets a statistic's threshold from reference windows.
Prediction and label drift use the same functions on the score histogram and
the label counts.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> binning = NumericBinning.from_reference(rng.normal(size=5000))
>>> ref = binning.counts(rng.normal(size=5000))
>>> same, moved = binning.counts(rng.normal(size=1000)), binning.counts(rng.normal(0.3, 1, 1000))
>>> round(psi(coarsen(ref, 10), coarsen(same, 10)), 3), round(psi(coarsen(ref, 10), coarsen(moved, 10)), 3)
(0.009, 0.107)
>>> [(r.drifted, round(r.p_value, 4)) for r in drift_report({"x": ref}, {"x": moved}, {"x": "numeric"})]
[(True, 0.0)]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

# Special functions only: scipy.stats (with scipy.optimize, which it imports) costs a worker ~45 MB of
# memory, for tests that need no more than these (each checked against scipy.stats in the unit tests).
from scipy import special

from .config import DriftConfig
from .missing import MIN_EFFECT as MISSING_MIN_EFFECT
from .missing import MISSING_RATE, cohens_h, missing_rise_pvalue

__all__ = [
    "NumericBinning",
    "CategoricalBinning",
    "DriftConfig",
    "DriftResult",
    "psi",
    "psi_pvalue",
    "js_distance",
    "chi2_test",
    "ks_binned",
    "ks_samples",
    "benjamini_hochberg",
    "bonferroni",
    "drift_report",
    "calibrate_threshold",
    "coarsen",
    "MISSING_RATE",
]

MISSING = "__missing__"
OTHER = "__other__"


# -- bucketing ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class NumericBinning:
    """Reference-derived buckets of a numeric feature: ``len(edges) + 1`` ranges, then missing."""

    edges: np.ndarray

    def __post_init__(self) -> None:
        e = np.asarray(self.edges, dtype=np.float64)
        if e.ndim != 1 or np.any(np.diff(e) <= 0) or not np.isfinite(e).all():
            raise ValueError("edges must be finite and strictly increasing")
        object.__setattr__(self, "edges", e)

    @classmethod
    def from_reference(cls, values: Any, n_bins: int = 100) -> NumericBinning:
        """Quantile edges of the reference (duplicates dropped, so discrete data get fewer bins)."""
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            return cls(np.zeros(0))
        qs = np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1], method="lower")
        edges = np.unique(qs)
        # The bucket of value x is #edges <= x: make the minimum share the first bucket with below-min
        # values only if it is not an edge, so every bucket of the reference has some mass.
        if edges.size and edges[0] == v.min():
            edges = edges[1:] if edges.size > 1 else np.array([np.nextafter(edges[0], np.inf)])
        return cls(edges)

    @property
    def n_buckets(self) -> int:
        """Value buckets plus the missing bucket."""
        return self.edges.size + 2

    def bucket(self, values: Any) -> np.ndarray:
        """Bucket index of each value (missing: the last bucket)."""
        v = np.asarray(values, dtype=np.float64).ravel()
        out = np.searchsorted(self.edges, v, side="right")
        out[np.isnan(v)] = self.edges.size + 1
        return out

    def counts(self, values: Any) -> np.ndarray:
        """Counts per bucket."""
        return np.bincount(self.bucket(values), minlength=self.n_buckets).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "numeric", "edges": self.edges.tolist()}


@dataclasses.dataclass(frozen=True)
class CategoricalBinning:
    """Reference categories, then an ``other`` bucket (unseen) and a ``missing`` bucket."""

    categories: tuple[str, ...]

    @classmethod
    def from_reference(cls, values: Any, max_categories: int = 50) -> CategoricalBinning:
        """The reference's most frequent categories (ties by name)."""
        v = np.asarray(values, dtype=object).ravel()
        v = v[~_is_missing(v)]
        if v.size == 0:
            return cls(())
        uniq, cnt = np.unique(v.astype(str), return_counts=True)
        order = np.lexsort((uniq, -cnt))[:max_categories]
        return cls(tuple(sorted(uniq[order].tolist())))

    @property
    def n_buckets(self) -> int:
        return len(self.categories) + 2

    def bucket(self, values: Any) -> np.ndarray:
        """Bucket index of each value (unseen: ``len(categories)``, missing: the last)."""
        v = np.asarray(values, dtype=object).ravel()
        missing = _is_missing(v)
        s = v.astype(str)
        cats = np.asarray(self.categories, dtype=str)
        pos = np.searchsorted(cats, s) if cats.size else np.zeros(s.size, np.int64)
        pos = np.minimum(pos, max(cats.size - 1, 0))
        found = cats[pos] == s if cats.size else np.zeros(s.size, bool)
        out = np.where(found, pos, cats.size)
        out[missing] = cats.size + 1
        return out.astype(np.int64)

    def counts(self, values: Any) -> np.ndarray:
        return np.bincount(self.bucket(values), minlength=self.n_buckets).astype(np.int64)

    def counts_from_mapping(self, counts: Mapping[str | None, int]) -> np.ndarray:
        """Bucket counts from ``{category: count}`` (e.g. a SQL ``GROUP BY``); ``None`` = missing."""
        out = np.zeros(self.n_buckets, np.int64)
        index = {c: i for i, c in enumerate(self.categories)}
        for k, c in counts.items():
            i = self.n_buckets - 1 if k is None else index.get(str(k), len(self.categories))
            out[i] += int(c)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "categorical", "categories": list(self.categories)}


def _is_missing(v: np.ndarray) -> np.ndarray:
    """None or NaN, elementwise on an object array."""
    return np.asarray((v == None) | (v != v), dtype=bool)  # noqa: E711 - elementwise


def coarsen(counts: np.ndarray, n_groups: int) -> np.ndarray:
    """Merge adjacent value buckets into about ``n_groups`` (the missing bucket stays last)."""
    c = np.asarray(counts)
    values, missing = c[:-1], c[-1:]
    if values.size <= n_groups:
        return c
    idx = (np.arange(values.size) * n_groups) // values.size
    return np.r_[np.bincount(idx, values, minlength=n_groups).astype(c.dtype), missing]


# -- statistics -----------------------------------------------------------------------------------
def _proportions(ref: Any, cur: Any, eps: float) -> tuple[np.ndarray, np.ndarray]:
    r, c = np.asarray(ref, dtype=np.float64), np.asarray(cur, dtype=np.float64)
    if r.shape != c.shape:
        raise ValueError("reference and current counts must have the same buckets")
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    p, q = r / max(r.sum(), 1.0), c / max(c.sum(), 1.0)
    p, q = np.maximum(p, eps), np.maximum(q, eps)
    return p / p.sum(), q / q.sum()


def psi(ref: Any, cur: Any, eps: float = 1e-4) -> float:
    """Population stability index ``sum((q - p) * ln(q / p))`` (empty buckets floored at ``eps``)."""
    p, q = _proportions(ref, cur, eps)
    return float(np.sum((q - p) * np.log(q / p)))


def psi_pvalue(ref: Any, cur: Any, eps: float = 1e-4) -> float:
    """Approximate p-value of a PSI: under no drift ``psi * n*m/(n+m)`` is about chi-square(k-1)."""
    r, c = np.asarray(ref, dtype=np.float64), np.asarray(cur, dtype=np.float64)
    n, m = r.sum(), c.sum()
    k = int(np.count_nonzero((r + c) > 0))
    if n == 0 or m == 0 or k < 2:
        return float("nan")
    return float(special.chdtrc(k - 1, psi(r, c, eps) * n * m / (n + m)))


def js_distance(ref: Any, cur: Any) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1])."""
    p, q = _proportions(ref, cur, 0.0)
    m = (p + q) / 2.0
    js = (np.sum(special.rel_entr(p, m)) + np.sum(special.rel_entr(q, m))) / math.log(2.0)
    return float(np.sqrt(js / 2.0))


def chi2_test(ref: Any, cur: Any) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count vectors: ``(statistic, p_value)``."""
    r, c = np.asarray(ref, dtype=np.float64), np.asarray(cur, dtype=np.float64)
    keep = (r + c) > 0
    if r.sum() == 0 or c.sum() == 0 or keep.sum() < 2:
        return 0.0, 1.0
    observed = np.vstack([r[keep], c[keep]])
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return statistic, float(special.chdtrc(observed.shape[1] - 1, statistic))


def ks_binned(ref: Any, cur: Any) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov from bucket counts (missing bucket excluded).

    The CDFs are compared at the bucket edges, so the statistic is a lower bound of
    the exact one (equal when no bucket splits the two samples' ordering); the
    p-value is the asymptotic one of ``scipy.stats.ks_2samp`` (see :func:`kolmogorov_sf`).
    """
    r = np.asarray(ref, dtype=np.float64)[:-1]
    c = np.asarray(cur, dtype=np.float64)[:-1]
    n, m = r.sum(), c.sum()
    if n == 0 or m == 0:
        return 0.0, 1.0
    d = float(np.max(np.abs(np.cumsum(r) / n - np.cumsum(c) / m)))
    en = np.round(n * m / (n + m))
    return d, kolmogorov_sf(d, int(en))


def kolmogorov_sf(d: float, n: int) -> float:
    """P(D_n >= d) for the two-sided one-sample Kolmogorov-Smirnov statistic (``scipy.stats.kstwo.sf``).

    The same formulas as scipy in the tails (Ruben-Gambino's) and wherever p is small, i.e. where
    drift is decided (``2 * smirnov`` once ``n * d**2 >= 2.2``: p below about 0.03; scipy switches
    to it at 4 for n <= 140); elsewhere Stephens' corrected limiting distribution instead of scipy's
    exact recursions. Against ``scipy.stats.kstwo.sf`` (tests/unit/test_detectors_drift.py): within
    0.011 absolute (0.023 for n <= 140) and 0.5% relative below p = 0.05 (3.2% for n <= 140).

    >>> round(kolmogorov_sf(0.05, 1000), 4), kolmogorov_sf(0.0, 10), kolmogorov_sf(1.0, 10)
    (0.013, 1.0, 0.0)
    """
    if n < 1 or d <= 0.0:
        return 1.0
    if d >= 1.0:
        return 0.0
    t = n * d
    if t <= 0.5:
        return 1.0
    if t <= 1.0:  # Ruben-Gambino: P(D_n < d) = n!/n^n (2t - 1)^n
        return float(-math.expm1(special.gammaln(n + 1) - n * math.log(n) + n * math.log(2 * t - 1)))
    if t >= n - 1:  # Ruben-Gambino
        return float(2.0 * (1.0 - d) ** n)
    if d >= 0.5 or t * d >= 2.2:
        return float(min(1.0, 2.0 * special.smirnov(n, d)))
    root = math.sqrt(n)
    return float(special.kolmogorov((root + 0.12 + 0.11 / root) * d))


def ks_samples(ref: Any, cur: Any) -> tuple[float, float]:
    """Exact two-sample KS on raw values (NaN dropped): ``(statistic, p_value)``."""
    from scipy import stats  # only here: see the import of scipy.special above

    r, c = np.asarray(ref, dtype=np.float64), np.asarray(cur, dtype=np.float64)
    res = stats.ks_2samp(r[~np.isnan(r)], c[~np.isnan(c)])
    return float(res.statistic), float(res.pvalue)


# -- multiple testing -----------------------------------------------------------------------------
def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (reject where adjusted < alpha; controls the FDR)."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(p)
    out[order] = np.minimum(adj, 1.0)
    return out


def bonferroni(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Bonferroni adjusted p-values (controls the family-wise error rate)."""
    p = np.asarray(p_values, dtype=np.float64)
    return np.minimum(p * p.size, 1.0)


# -- reports --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DriftResult:
    """One feature's drift decision for one window (a row of the ``drift`` table).

    ``statistic`` is the test's own statistic (KS distance, chi-square or PSI, per
    ``detector``); ``p_adjusted`` is its p-value after the correction across the
    window's features and is compared with ``threshold`` (alpha); ``effect`` (PSI
    or JS distance on coarse buckets) is compared with ``min_effect``.

    A ``missing_rate`` row (the share of missing values, ``missing.py``) has the window's missing
    rate as ``statistic``, the reference's as ``threshold`` and Cohen's h as ``effect``.
    """

    feature: str
    detector: str
    statistic: float
    p_value: float
    p_adjusted: float
    effect: float
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    min_effect: float = 0.0


def _test(kind: str, method: str, ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    if method == "ks" and kind == "numeric":
        return ks_binned(ref, cur)
    if method == "psi":
        return psi(ref, cur), psi_pvalue(ref, cur)
    return chi2_test(ref, cur)


def drift_report(
    reference: Mapping[str, Any],
    current: Mapping[str, Any],
    kinds: Mapping[str, str],
    config: DriftConfig | None = None,
    missing_rate: Collection[str] = (),
) -> list[DriftResult]:
    """Test every feature of ``current`` against ``reference`` (bucket counts per feature).

    ``kinds`` maps a feature to ``"numeric"`` (fine quantile buckets; the effect size
    uses them coarsened to ``coarse_bins``) or ``"categorical"``. Features with fewer
    than ``min_count`` events in either window are reported, never flagged.

    The features named in ``missing_rate`` also get a ``missing_rate`` row when either side has a
    missing value (their counts' last bucket): a rise of the share missing, one more test in the
    same Benjamini-Hochberg family, flagged from Cohen's h ``missing.MIN_EFFECT`` on.

    >>> ref, cur = {"f": np.array([490, 490, 20])}, {"f": np.array([120, 120, 60])}
    >>> [(r.detector, r.drifted, r.statistic, r.threshold) for r in drift_report(ref, cur, {}, missing_rate={"f"})]
    [('ks', False, 0.0, 0.01), ('missing_rate', True, 0.2, 0.02)]
    """
    cfg = config or DriftConfig()
    names = [f for f in current if f in reference]
    rows: list[tuple[str, str, float, float, float, int, int]] = []
    for f in names:
        ref, cur = np.asarray(reference[f]), np.asarray(current[f])
        kind = kinds.get(f, "numeric")
        method: str = cfg.numeric_test if kind == "numeric" else cfg.categorical_test
        stat, p = _test(kind, method, ref, cur)
        rc, cc = (coarsen(ref, cfg.coarse_bins), coarsen(cur, cfg.coarse_bins)) if kind == "numeric" else (ref, cur)
        effect = psi(rc, cc) if cfg.effect == "psi" else js_distance(rc, cc) if cfg.effect == "js" else math.inf
        rows.append((f, method, stat, p, effect, int(ref.sum()), int(cur.sum())))
    for f in names:
        row = _missing_row(f, np.asarray(reference[f]), np.asarray(current[f])) if f in missing_rate else None
        if row is not None:
            rows.append(row)
    pv = np.array([r[3] for r in rows], dtype=np.float64)
    tested = np.array([min(r[5], r[6]) >= cfg.min_count for r in rows], dtype=bool)
    adj = np.ones_like(pv)
    if tested.any():
        if cfg.correction == "bh":
            adj[tested] = benjamini_hochberg(pv[tested])
        elif cfg.correction == "bonferroni":
            adj[tested] = bonferroni(pv[tested])
        else:
            adj[tested] = pv[tested]
    out = []
    for (f, method, stat, p, effect, nr, nc), pa, ok in zip(rows, adj, tested, strict=True):
        # A missing-rate row's threshold column is the reference's rate (what the alert quotes).
        missing = method == MISSING_RATE
        threshold = float(reference[f][-1]) / nr if missing else cfg.alpha
        floor = MISSING_MIN_EFFECT if missing else cfg.min_effect
        drifted = bool(ok and pa < cfg.alpha and effect >= floor)
        out.append(DriftResult(f, method, stat, p, float(pa), effect, threshold, drifted, nr, nc, floor))
    return out


def _missing_row(f: str, ref: np.ndarray, cur: np.ndarray) -> tuple[str, str, float, float, float, int, int] | None:
    """The missing-rate test of a feature's counts (missing: the last bucket); None when neither side has
    a missing value (nothing to test, and no row: most features are never missing)."""
    nr, nc, a, b = int(ref.sum()), int(cur.sum()), int(ref[-1]), int(cur[-1])
    if nr == 0 or nc == 0 or a + b == 0:
        return None
    p = missing_rise_pvalue(a, nr, b, nc)
    return f, MISSING_RATE, b / nc, p, cohens_h(a / nr, b / nc), nr, nc


def calibrate_threshold(
    reference_windows: Sequence[Any], statistic: str = "psi", quantile: float = 0.99, n_groups: int = 10
) -> float:
    """A statistic's threshold from windows known to be stable (e.g. the reference period's).

    Each window is compared with the pooled others (leave-one-out) and the
    ``quantile`` of those values is returned: a window must look more different
    than stable windows did to be flagged.
    """
    wins = [np.asarray(w, dtype=np.float64) for w in reference_windows]
    if len(wins) < 2:
        raise ValueError("need at least two reference windows")
    total = np.sum(wins, axis=0)
    fn = {"psi": psi, "js": js_distance, "ks": lambda a, b: ks_binned(a, b)[0],
          "chi2": lambda a, b: chi2_test(a, b)[0]}[statistic]  # fmt: skip
    vals = []
    for w in wins:
        rest = total - w
        a, b = (coarsen(rest, n_groups), coarsen(w, n_groups)) if statistic in ("psi", "js") else (rest, w)
        vals.append(fn(a, b))
    return float(np.quantile(vals, quantile))
