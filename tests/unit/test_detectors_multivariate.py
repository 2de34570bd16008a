"""Multivariate drift (PCA reconstruction error): catches correlation changes, false alarms at alpha."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from scipy import stats

from watchkeeper.detectors import (
    DriftConfig,
    MultivariateReference,
    NumericBinning,
    drift_report,
    ks_samples,
)
from watchkeeper.detectors.multivariate import MIN_REFERENCE

NAMES5 = ["a", "b", "c", "d", "e"]


def equicorrelated(rng: np.random.Generator, rho: float, n: int, d: int) -> np.ndarray:
    """``n`` rows of ``d`` standard normal features with pairwise correlation ``rho``."""
    shared = rng.normal(size=(n, 1))
    return math.sqrt(rho) * shared + math.sqrt(1.0 - rho) * rng.normal(size=(n, d))


def pair(rng: np.random.Generator, rho: float, n: int) -> np.ndarray:
    """Two N(0, 1) features with correlation ``rho`` (negative allowed)."""
    x, noise = rng.normal(size=(2, n))
    return np.c_[x, rho * x + math.sqrt(1.0 - rho**2) * noise]


# -- (1) a change no single feature shows ---------------------------------------------------------
@pytest.mark.parametrize("rho_window", [-0.9, 0.0])
def test_fires_on_a_correlation_change_that_per_feature_tests_miss(rho_window: float) -> None:
    rng = np.random.default_rng(11)
    reference = pair(rng, 0.9, 5000)
    window = pair(rng, rho_window, 300)
    same = pair(rng, 0.9, 300)
    det = MultivariateReference.fit(reference, ["x", "y"])

    res = det.test(window)
    assert res.drifted and res.statistic > res.threshold and res.p_value < det.alpha
    assert not det.test(same).drifted

    # Each feature alone is still N(0, 1): the exact KS test and the stream's own binned report both pass it.
    for j in range(2):
        _, p = ks_samples(reference[:, j], window[:, j])
        assert p > 0.05
    bins = {f: NumericBinning.from_reference(reference[:, j]) for j, f in enumerate("xy")}
    report = drift_report(
        {f: bins[f].counts(reference[:, j]) for j, f in enumerate("xy")},
        {f: bins[f].counts(window[:, j]) for j, f in enumerate("xy")},
        {"x": "numeric", "y": "numeric"},
        DriftConfig(),
    )
    assert [r.drifted for r in report] == [False, False]


def test_fires_when_features_move_together_more_tightly() -> None:
    # A pipeline bug that copies one feature into another leaves both marginals intact; rows are then
    # reconstructed better than the reference's, and the two-sided test flags the too-low error.
    rng = np.random.default_rng(16)
    det = MultivariateReference.fit(equicorrelated(rng, 0.3, 5000, 3), ["a", "b", "c"])
    window = equicorrelated(rng, 0.3, 300, 3)
    window[:, 2] = window[:, 1]
    res = det.test(window)
    assert res.drifted and res.statistic < res.lower < res.expected < res.threshold
    one_sided = MultivariateReference.fit(equicorrelated(rng, 0.3, 5000, 3), ["a", "b", "c"], alternative="greater")
    assert not one_sided.test(window).drifted and one_sided.test(window).lower == -math.inf


# -- (2) false alarms -------------------------------------------------------------------------------
def _reference_like(kind: str, rng: np.random.Generator, n: int, chol: np.ndarray) -> np.ndarray:
    z = rng.normal(size=(n, chol.shape[0])) @ chol.T
    return np.exp(z / 2.0) if kind == "lognormal" else z


@pytest.mark.parametrize("kind", ["gaussian", "lognormal"])
def test_false_alarm_rate_is_at_most_alpha_at_every_window_size(kind: str) -> None:
    rng = np.random.default_rng(2024)
    a = rng.normal(size=(5, 5))
    chol = np.linalg.cholesky(a @ a.T + 0.3 * np.eye(5))
    det = MultivariateReference.fit(_reference_like(kind, rng, 5000, chol), NAMES5)
    windows = 2000
    # The count a rate of alpha exceeds with probability 0.001 (one-sided binomial tolerance).
    allowed = int(stats.binom.ppf(0.999, windows, det.alpha))
    for n in (50, 300, 2000):
        alarms = sum(det.test(_reference_like(kind, rng, n, chol)).drifted for _ in range(windows))
        assert alarms <= allowed, (kind, n, alarms, allowed)


def test_threshold_is_the_bootstrap_quantile_of_the_window_mean() -> None:
    # The saddlepoint tail against brute force: means of n draws from the reference's errors. A normal
    # approximation would put the threshold too low for skewed errors at small n (too many alarms).
    rng = np.random.default_rng(5)
    chol = np.linalg.cholesky(np.array([[1, 0.7, 0.3], [0.7, 1, 0.5], [0.3, 0.5, 1]]))
    x = np.exp(rng.normal(size=(5000, 3)) @ chol.T / 1.5)
    det = MultivariateReference.fit(x, ["a", "b", "c"], distance="squared", clip=1.0, confidence=0.5)
    half = det.alpha / 2  # two-sided: each side holds half
    for n in (50, 300):
        means = rng.choice(det.atoms, size=(200_000, n)).mean(axis=1)
        lower, upper = det.thresholds(n)
        assert np.mean(means >= upper) == pytest.approx(half, rel=0.3)
        assert np.mean(means <= lower) == pytest.approx(half, rel=0.3)
        assert det.p_value(upper, n) == pytest.approx(det.alpha, rel=1e-6)
        assert det.p_value(lower, n) == pytest.approx(det.alpha, rel=1e-6)
        normal = det.expected + stats.norm.ppf(1 - half) * math.sqrt(det.variance / n)
        assert np.mean(means >= normal) > 3 * half


def test_reference_errors_are_out_of_sample() -> None:
    # In-sample errors of a PCA are optimistically low (more so with many features and few rows);
    # a threshold built on them would raise false alarms on fresh data from the same distribution.
    rng = np.random.default_rng(3)
    chol = np.linalg.cholesky(np.full((20, 20), 0.3) + 0.7 * np.eye(20))
    x = rng.normal(size=(400, 20)) @ chol.T
    det = MultivariateReference.fit(x, [f"f{i}" for i in range(20)], clip=1.0)
    fresh = det.errors(rng.normal(size=(200_000, 20)) @ chol.T).mean()
    assert det.errors(x).mean() < 0.97 * fresh
    assert det.expected == pytest.approx(fresh, rel=0.03)


# -- (3) awkward inputs --------------------------------------------------------------------------------
def test_missing_values_are_imputed_with_the_reference_mean() -> None:
    rng = np.random.default_rng(8)
    x = equicorrelated(rng, 0.6, 3000, 5)
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:, 4] = np.nan  # never observed in the reference
    det = MultivariateReference.fit(x, NAMES5)
    assert np.isfinite(det.mean).all() and det.expected > 0
    w = equicorrelated(rng, 0.6, 300, 5)
    w[rng.random(w.shape) < 0.1] = np.nan
    w[:, 4] = np.nan
    w[0, 0] = np.inf  # a broken value counts as missing, not as an extreme one
    res = det.test(w)
    assert math.isfinite(res.statistic) and not res.drifted
    assert det.test(np.full((300, 5), np.nan)).statistic == 0.0  # all imputed: the reference's centre


def test_a_constant_feature_is_tolerated_and_watched() -> None:
    rng = np.random.default_rng(9)
    x = np.c_[pair(rng, 0.9, 3000), np.full(3000, 5.0)]
    det = MultivariateReference.fit(x, ["x", "y", "k"])
    assert det.scale[2] == 1.0 and det.n_components == 1
    w = np.c_[pair(rng, 0.9, 300), np.full(300, 5.0)]
    assert not det.test(w).drifted
    w[:, 2] = 6.0  # the constant moved: every row is one unit off the reference
    assert det.test(w).drifted


def test_one_feature_keeps_no_component_and_checks_the_spread() -> None:
    # No correlation to watch: the error is |standardised value|, so the test sees a change of
    # location or spread of the one feature (what the univariate tests see too).
    rng = np.random.default_rng(10)
    det = MultivariateReference.fit(rng.normal(size=3000), ["x"])
    assert det.n_components == 0
    assert not det.test(rng.normal(size=300)).drifted
    assert det.test(rng.normal(0.0, 2.0, 300)).drifted


def test_collinear_features_make_any_error_a_drift() -> None:
    z = np.random.default_rng(12).normal(size=1000)
    det = MultivariateReference.fit(np.c_[z, 2 * z], ["a", "b"])
    assert not det.test(np.c_[z[:300], 2 * z[:300]]).drifted
    assert det.test(np.c_[z[:300], -z[:300]]).drifted


def test_pickles_and_matches_columns_by_name() -> None:
    rng = np.random.default_rng(13)
    det = MultivariateReference.fit(equicorrelated(rng, 0.5, 2000, 5), NAMES5)
    w = equicorrelated(rng, 0.5, 300, 5)
    clone = pickle.loads(pickle.dumps(det))
    assert clone.test(w) == det.test(w)
    assert det.test(w[:, ::-1], names=NAMES5[::-1]) == det.test(w)
    # A feature absent from the window is imputed with its reference mean.
    assert det.test(w[:, :4], names=NAMES5[:4]).n == 300


def test_small_windows_are_scored_but_not_flagged() -> None:
    rng = np.random.default_rng(14)
    det = MultivariateReference.fit(pair(rng, 0.9, 2000), ["x", "y"], min_n=30)
    few = det.test(pair(rng, -0.9, 20))
    assert few.statistic > few.threshold and not few.drifted
    empty = det.test(np.zeros((0, 2)))
    assert empty.n == 0 and not empty.drifted and math.isnan(empty.statistic)


def test_bad_references_are_refused() -> None:
    with pytest.raises(ValueError, match="reference rows"):
        MultivariateReference.fit(np.zeros((MIN_REFERENCE - 1, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="no feature varies"):
        MultivariateReference.fit(np.ones((500, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="expected rows of 3"):
        MultivariateReference.fit(np.zeros((500, 2)), ["a", "b", "c"])


# -- (4) power ----------------------------------------------------------------------------------------
def test_power_on_a_correlation_drop_among_five_features() -> None:
    rng = np.random.default_rng(15)
    det = MultivariateReference.fit(equicorrelated(rng, 0.8, 5000, 5), NAMES5)
    fired = sum(det.test(equicorrelated(rng, 0.2, 300, 5)).drifted for _ in range(100))
    assert fired >= 90
