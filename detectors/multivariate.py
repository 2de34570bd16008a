"""Multivariate drift: PCA reconstruction error of a window against the reference (as NannyML does).

A change in how features move together (their correlation) can leave every
feature's own distribution untouched, so no univariate test sees it. A PCA fitted
on the reference learns the directions the features share; rows of a window whose
features no longer move together are reconstructed worse from those directions,
and the window's mean reconstruction error rises.

Fit (``MultivariateReference.fit``): standardise each numeric feature with the
reference mean and standard deviation, impute missing values (NaN, ±inf) with
the reference mean, keep the principal components that explain ``variance`` of
the variance (or ``n_components``), always leaving at least one direction out so
that there is an error to measure. The reference's own errors are cross-fitted
(each fifth of the rows is scored by a PCA fitted on the other four fifths), so
they are out-of-sample errors like a window's, not the optimistically low
in-sample ones.

Test (``MultivariateReference.test``): the statistic is the window's mean error.
Under no drift it is the mean of ``n`` draws from the reference errors; its
``1 - alpha`` quantile (by a saddlepoint approximation of that bootstrap
distribution, which keeps the skew a normal approximation loses at small ``n``)
is the threshold for the window's ``n``, so the false-alarm rate per window is
about ``alpha`` at any window size. The reference's mean error is itself an
estimate: a reference that happens to score low would raise false alarms for as
long as it is used, so the null is centred on an upper confidence bound of the
mean instead (``confidence``, 0.95 by default: for 95% of references the rate is
at most ``alpha``). That margin is ``z * sd / sqrt(n_reference)``, small next to a
window's spread unless the window is nearly as large as the reference.
Per-row errors are capped at the reference's 99th percentile (``clip``), so a few
outlier rows of heavy-tailed features neither fire the test nor hide in a tail
that a reference sample of a few thousand rows cannot describe.

Edge cases: a feature constant in the reference keeps scale 1 (if it moves, the
error grows by the move); with one varying feature no component is kept and the
test watches that feature's distance from its reference mean; if the reference
is reconstructed exactly (collinear features), any error is drift. Numeric
features only: leave categorical ones to the univariate tests.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

# Special functions only (see detectors/drift.py: scipy.stats costs a worker ~45 MB).
from scipy import special

__all__ = ["MultivariateReference", "MultivariateResult"]

DETECTOR = "pca_reconstruction"
MIN_REFERENCE = 50
FOLDS = 5
# The reference errors are kept as at most this many quantiles: the saddlepoint evaluates a sum
# over them a few dozen times per window.
MAX_ATOMS = 1024

Distance = Literal["euclidean", "squared"]
Alternative = Literal["two-sided", "greater"]


@dataclasses.dataclass(frozen=True)
class MultivariateResult:
    """One window's multivariate drift decision (a row of the ``drift`` table).

    ``statistic`` is the window's mean reconstruction error; ``threshold`` and
    ``lower`` bound it under the reference for this window's ``n`` (two-sided: each
    side holds ``alpha / 2``; ``lower`` is ``-inf`` for ``alternative="greater"``).
    ``drifted`` is ``statistic`` outside ``[lower, threshold]`` (equivalently
    ``p_value < alpha``) and is never set below ``min_n`` rows. ``expected`` is the
    reference's mean error: above it, the features stopped moving together as they
    did; below it, they move together more tightly (e.g. one became a copy of another).
    """

    detector: str
    statistic: float
    threshold: float
    lower: float
    p_value: float
    drifted: bool
    n: int
    n_reference: int
    expected: float
    alpha: float


@dataclasses.dataclass(frozen=True, eq=False)
class MultivariateReference:
    """A PCA reconstruction-error drift test fitted on a reference sample (picklable, immutable).

    Build it with :meth:`fit`; then :meth:`test` each window's rows (same columns).

    Parameters
    ----------
    names
        Feature names, in column order.
    mean, scale
        The reference mean and standard deviation of each feature (scale 1 where the
        reference is constant, so a constant feature that moves adds to the error).
    components
        The kept principal directions, ``(k, d)`` with orthonormal rows (``k`` may be 0).
    atoms
        Quantiles of the cross-fitted reference errors, rescaled to their mean and variance.
    expected, variance
        Mean and variance of the reference's per-row error.
    n_reference
        Reference rows.
    alpha
        False-alarm rate per window.
    confidence
        Confidence that the rate is at most ``alpha`` given the reference's own noise
        (0.5: no margin, the rate is ``alpha`` on average over references).
    min_n
        Windows with fewer rows are scored but never flagged.
    distance
        Per-row error: ``"euclidean"`` (NannyML's) or ``"squared"``.
    alternative
        ``"two-sided"``: a mean error too high (correlations loosened) or too low
        (tightened) is drift; ``"greater"``: only too high.
    cap
        Per-row errors are capped here (a quantile of the reference's, ``clip``): one
        outlier row cannot move a window's mean much, and the tail of the mean stays one
        the reference sample can vouch for.

    Examples
    --------
    Two features correlated 0.9 in the reference; in the window each is still N(0, 1)
    but they now move in opposite directions.

    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> def sample(rho, n):
    ...     x, noise = rng.normal(size=(2, n))
    ...     return np.c_[x, rho * x + np.sqrt(1 - rho**2) * noise]
    >>> ref = MultivariateReference.fit(sample(0.9, 5000), ["x", "y"])
    >>> ref.n_components
    1
    >>> same, flipped = ref.test(sample(0.9, 300)), ref.test(sample(-0.9, 300))
    >>> same.drifted, round(same.lower, 3), round(same.statistic, 3), round(same.threshold, 3)
    (False, 0.21, 0.271, 0.29)
    >>> flipped.drifted, round(flipped.statistic, 3), flipped.p_value < 1e-12
    (True, 0.608, True)

    Two-sided: features that move together more tightly than before fire too.

    >>> tight = ref.test(sample(0.99, 300))
    >>> tight.drifted, round(tight.statistic, 3), round(tight.lower, 3)
    (True, 0.084, 0.21)
    """

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray
    atoms: np.ndarray
    expected: float
    variance: float
    n_reference: int
    alpha: float = 0.001
    confidence: float = 0.95
    min_n: int = 30
    distance: Distance = "euclidean"
    alternative: Alternative = "two-sided"
    cap: float = math.inf

    # -- fitting ------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        X: Any,
        names: Sequence[str],
        *,
        variance: float = 0.65,
        n_components: int | None = None,
        alpha: float = 0.001,
        confidence: float = 0.95,
        min_n: int = 30,
        distance: Distance = "euclidean",
        alternative: Alternative = "two-sided",
        clip: float = 0.99,
    ) -> MultivariateReference:
        """Fit on reference rows ``X`` (``(m, d)``, columns named by ``names``).

        Keeps the fewest components explaining ``variance`` of the standardised
        variance, or exactly ``n_components``; either way at most ``d' - 1``, where
        ``d'`` is the number of features that vary in the reference. With a single
        varying feature no component is kept: the error is then the feature's
        standardised distance from the reference mean, a univariate check of its
        location and spread (there is no correlation to watch).

        Raises ``ValueError`` with fewer than ``MIN_REFERENCE`` rows or no varying feature.
        """
        Z0 = _as_matrix(X, len(names))
        m, d = Z0.shape
        if m < MIN_REFERENCE:
            raise ValueError(f"need at least {MIN_REFERENCE} reference rows, got {m}")
        if not (0.0 < variance <= 1.0 and 0.0 < alpha < 1.0 and 0.0 < confidence < 1.0 and 0.5 <= clip <= 1.0):
            raise ValueError("variance must be in (0, 1], alpha and confidence in (0, 1), clip in [0.5, 1]")
        if distance not in ("euclidean", "squared") or alternative not in ("two-sided", "greater"):
            raise ValueError(f"unknown distance {distance!r} or alternative {alternative!r}")
        mean, scale, varying = _moments(Z0)
        if varying == 0:
            raise ValueError("no feature varies in the reference: nothing to learn")
        vt, explained = _principal(_standardise(Z0, mean, scale))
        if n_components is None:
            k = int(np.searchsorted(np.cumsum(explained), variance - 1e-12) + 1)
        else:
            k = int(n_components)
        k = max(0, min(k, varying - 1))
        errors = _cross_fitted_errors(Z0, k, distance)
        # No cap when the reference is reconstructed exactly: it would clamp every error to ~0.
        cap = float(np.quantile(errors, clip)) if clip < 1.0 and errors.std() > _TIE else math.inf
        errors = np.minimum(errors, cap)
        mu, var = float(errors.mean()), float(errors.var())
        return cls(
            names=tuple(str(n) for n in names),
            mean=mean,
            scale=scale,
            components=np.ascontiguousarray(vt[:k]),
            atoms=_atoms(errors, mu, var),
            expected=mu,
            variance=var,
            n_reference=m,
            alpha=float(alpha),
            confidence=float(confidence),
            min_n=int(min_n),
            distance=distance,
            alternative=alternative,
            cap=cap,
        )

    @property
    def n_components(self) -> int:
        """Principal components kept."""
        return int(self.components.shape[0])

    # -- scoring ------------------------------------------------------------------------------
    def errors(self, X: Any, names: Sequence[str] | None = None) -> np.ndarray:
        """Per-row reconstruction error of rows ``X`` (columns ``names``, default: the reference's), capped.

        Columns are matched by name when ``names`` is given: a reference feature
        missing from ``X`` is imputed with its reference mean, an extra one is ignored.
        """
        Z = _standardise(self._align(X, names), self.mean, self.scale)
        return np.minimum(_residual(Z, self.components, self.distance), self.cap)

    @property
    def _exact(self) -> bool:
        """Every reference row is reconstructed exactly (e.g. collinear features): any error is drift."""
        return math.sqrt(self.variance) <= _TIE

    @property
    def margin(self) -> float:
        """How far the null's centre may be from the reference's mean error (see ``confidence``)."""
        return float(special.ndtri(self.confidence)) * math.sqrt(self.variance / self.n_reference)

    def thresholds(self, n: int) -> tuple[float, float]:
        """``(lower, upper)``: a mean error over ``n`` rows outside them is drift (``alpha`` in all)."""
        if n < 1:
            return math.nan, math.nan
        if self._exact:
            return -math.inf, self.expected + _TIE
        two = self.alternative == "two-sided"
        z = float(special.ndtri(1.0 - self.alpha / (2.0 if two else 1.0)))
        sp = _Saddlepoint(self.atoms - self.expected, n)
        upper = self.expected + self.margin + sp.quantile(z)
        return (self.expected - self.margin + sp.quantile(-z) if two else -math.inf), upper

    def threshold(self, n: int) -> float:
        """The upper threshold of a mean error over ``n`` rows (see :meth:`thresholds`)."""
        return self.thresholds(n)[1]

    def p_value(self, statistic: float, n: int) -> float:
        """P-value of a mean error ``statistic`` over ``n`` rows (two-sided unless ``alternative="greater"``)."""
        if n < 1 or not math.isfinite(statistic):
            return math.nan
        if self._exact:
            return 1.0 if statistic <= self.threshold(n) else 0.0
        sp = _Saddlepoint(self.atoms - self.expected, n)
        above = sp.tail(statistic - self.expected - self.margin)[0]  # P(D >= x) at the highest null centre
        if self.alternative == "greater":
            return above
        below = sp.tail(statistic - self.expected + self.margin)[1]  # P(D <= x) at the lowest
        return min(1.0, 2.0 * min(above, below))

    def test(self, X: Any, names: Sequence[str] | None = None) -> MultivariateResult:
        """Test a window's rows against the reference (see :meth:`errors` for ``names``)."""
        e = self.errors(X, names)
        n = int(e.size)
        stat = float(e.mean()) if n else math.nan
        lower, upper = self.thresholds(n)
        p = self.p_value(stat, n)
        drifted = bool(n >= self.min_n and (stat > upper or stat < lower))
        return MultivariateResult(
            DETECTOR, stat, upper, lower, p, drifted, n, self.n_reference, self.expected, self.alpha
        )

    def _align(self, X: Any, names: Sequence[str] | None) -> np.ndarray:
        if names is None or tuple(names) == self.names:
            return _as_matrix(X, len(self.names))
        A = _as_matrix(X, len(names))
        out = np.full((A.shape[0], len(self.names)), np.nan)
        where = {str(f): j for j, f in enumerate(names)}
        for i, f in enumerate(self.names):
            if f in where:
                out[:, i] = A[:, where[f]]
        return out


# -- PCA pieces -----------------------------------------------------------------------------------
def _as_matrix(X: Any, d: int) -> np.ndarray:
    A = np.array(X, dtype=np.float64)  # a copy: callers' arrays are never written to
    if A.ndim == 1 and d == 1:
        A = A[:, None]
    if A.ndim != 2 or A.shape[1] != d:
        raise ValueError(f"expected rows of {d} features, got shape {A.shape}")
    A[~np.isfinite(A)] = np.nan  # ±inf is a broken value, not an extreme one: treat as missing
    return A


def _moments(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and scale per column (NaN ignored; an all-missing column has mean 0) and how many vary."""
    seen = ~np.isnan(A)
    count = seen.sum(axis=0)
    total = np.where(seen, A, 0.0).sum(axis=0)
    mean = np.divide(total, count, out=np.zeros(A.shape[1]), where=count > 0)
    dev = np.where(seen, A - mean, 0.0)
    std = np.sqrt(np.divide((dev**2).sum(axis=0), count, out=np.zeros(A.shape[1]), where=count > 0))
    # A column is constant if its spread is rounding noise next to its level.
    varying = std > 1e-12 * np.maximum(1.0, np.abs(mean))
    return mean, np.where(varying, std, 1.0), int(varying.sum())


def _standardise(A: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    Z = (A - mean) / scale
    Z[np.isnan(Z)] = 0.0  # imputed with the reference mean
    return Z


def _principal(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal directions (rows of ``vt``) of centred ``Z`` and the share of variance of each."""
    _, s, vt = np.linalg.svd(Z - Z.mean(axis=0), full_matrices=False)
    power = s**2
    return vt, power / power.sum() if power.sum() > 0 else power


def _residual(Z: np.ndarray, components: np.ndarray, distance: Distance) -> np.ndarray:
    R = Z - (Z @ components.T) @ components if components.size else Z
    sq = np.einsum("ij,ij->i", R, R)
    return sq if distance == "squared" else np.sqrt(sq)


def _cross_fitted_errors(A: np.ndarray, k: int, distance: Distance) -> np.ndarray:
    """Each row's error under a scaler and PCA fitted without it (interleaved folds)."""
    fold = np.arange(A.shape[0]) % FOLDS
    out = np.empty(A.shape[0])
    for f in range(FOLDS):
        train, held = A[fold != f], A[fold == f]
        mean, scale, _ = _moments(train)
        vt, _ = _principal(_standardise(train, mean, scale))
        out[fold == f] = _residual(_standardise(held, mean, scale), vt[:k], distance)
    return out


def _atoms(errors: np.ndarray, mu: float, var: float) -> np.ndarray:
    """At most ``MAX_ATOMS`` quantiles of the errors, with the errors' own mean and variance."""
    e = np.sort(errors)
    if e.size > MAX_ATOMS:
        e = np.quantile(e, (np.arange(MAX_ATOMS) + 0.5) / MAX_ATOMS)
    sd = float(e.std())
    return mu + (e - e.mean()) * (math.sqrt(var) / sd) if sd > 0 else np.full(e.size, mu)


# -- the null distribution of a window's mean error -----------------------------------------------
# Errors are in standardised units, where rounding noise is ~1e-15: below this, an error is zero.
_TIE = 1e-8


class _Saddlepoint:
    """Tail of ``D``, the mean of ``n`` draws from (centred) ``atoms``, by Barndorff-Nielsen's r*.

    Cumulant generating function ``C(s) = n K(s/n)``, ``K`` that of one draw.
    For ``x = C'(s)``: ``w = sign(s) sqrt(2 (s x - C(s)))``, ``u = s sqrt(C''(s))``,
    ``r* = w + log(u / w) / w`` and ``P(D >= x) ~ 1 - Phi(r*)``.
    """

    def __init__(self, atoms: np.ndarray, n: int) -> None:
        self.a, self.n = atoms, float(n)
        self.sd0 = math.sqrt(float(np.mean(atoms**2)) / n)

    def cgf(self, s: float) -> tuple[float, float, float]:
        """``C(s), C'(s), C''(s)``."""
        t = s * self.a / self.n
        top = float(t.max())
        e = np.exp(t - top)
        s0 = float(e.sum())
        k1 = float(e @ self.a) / s0
        k2 = float(e @ (self.a - k1) ** 2) / s0
        k0 = top + math.log(s0 / self.a.size)
        return self.n * k0, k1, k2 / self.n

    def _r_star(self, s: float) -> tuple[float, float, float]:
        """``(x, r*, dw/ds)`` at ``s`` (``s`` away from 0)."""
        c0, c1, c2 = self.cgf(s)
        w = math.copysign(math.sqrt(max(2.0 * (s * c1 - c0), 0.0)), s)
        u = s * math.sqrt(c2)
        if abs(w) < 1e-8:
            return c1, w, math.sqrt(c2)
        return c1, w + math.log(u / w) / w, s * c2 / w

    def tail(self, x: float) -> tuple[float, float]:
        """``(P(D >= x), P(D <= x))``."""
        if x >= self.a.max():  # beyond every reference error: the bootstrap puts no mass there
            return 0.0, 1.0
        if x <= self.a.min():
            return 1.0, 0.0
        if abs(x) < 1e-6 * self.sd0:  # at the centre r* is 0/0; the normal is right there
            r = x / self.sd0
        else:
            s = _solve(lambda s: self.cgf(s)[1:], x, x / self.sd0**2)
            r = self._r_star(s)[1]
        return float(special.ndtr(-r)), float(special.ndtr(r))

    def quantile(self, z: float) -> float:
        """``x`` with ``r*(x) = z``, i.e. ``P(D >= x) = 1 - Phi(z)`` (``z > 0``) or ``P(D <= x) = Phi(z)``."""
        s = _solve(lambda s: self._r_star(s)[1:], z, z / self.sd0)
        return self._r_star(s)[0]


def _solve(f: Callable[[float], tuple[float, float]], target: float, s: float) -> float:
    """Root of the increasing ``f(s)[0] - target``: Newton (``f(s)[1]`` the slope), kept in a bracket."""
    lo, hi = -math.inf, math.inf
    for _ in range(100):
        val, slope = f(s)
        g = val - target
        if abs(g) <= 1e-10 * (1.0 + abs(target)):
            return s
        if g > 0:
            hi = s
        else:
            lo = s
        step = s - g / slope if slope > 0 else math.nan
        if not lo < step < hi:  # Newton left the bracket: bisect, or widen the open side
            if math.isfinite(lo) and math.isfinite(hi):
                step = 0.5 * (lo + hi)
            elif math.isfinite(lo):
                step = lo + 2.0 * max(abs(lo), 1.0)
            else:
                step = hi - 2.0 * max(abs(hi), 1.0)
        if step == s or (math.isfinite(lo) and math.isfinite(hi) and hi - lo <= 1e-14 * max(abs(hi), 1.0)):
            return step
        s = step
    return s
