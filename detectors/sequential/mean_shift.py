"""Per-feature covariate-shift detector: vectorised two-sided CUSUMs on standardised features."""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np

from ..base import DriftDetector
from ..registry import register

__all__ = ["MeanShift", "cusum_threshold"]


def cusum_threshold(shift: float, arl: float) -> float:
    """Threshold ``h`` of a one-sided CUSUM on N(0, 1) values with reference ``k = shift / 2``.

    Siegmund's approximation ``ARL = (exp(2kb) - 2kb - 1) / (2k^2)``, ``b = h + 1.166``,
    solved for the in-control average run length ``arl``.
    """
    k = shift / 2.0

    def f(b: float) -> float:
        return (math.expm1(2 * k * b) - 2 * k * b) / (2 * k * k) - arl

    # f rises with b, from below 0 to above it: bisection (scipy.optimize would cost a worker ~24 MB).
    lo, hi = 1e-9, (math.log1p(2 * k * k * arl) + 2 * math.log(arl + 2.0)) / (2 * k)
    while hi - lo > 1e-12 * hi:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if f(mid) > 0 else (mid, hi)
    return (lo + hi) / 2 - 1.166


@register("mean_shift")
class MeanShift(DriftDetector):
    """Two-sided CUSUMs on each standardised feature: fast enough to run per event or batch.

    Each feature is standardised with a reference mean and standard deviation
    (given, or estimated from the first ``warmup`` updates) and monitored by two
    CUSUMs tuned for a mean shift of ``shift`` standard deviations, upwards and
    downwards. The threshold gives each feature an average of ``arl`` updates
    between false alarms. ``update`` takes one value or one row of features;
    ``update_many`` takes a ``(n, n_features)`` batch and is vectorised over
    both axes. A feature that fires restarts its CUSUMs; ``drifted_features``
    tells which fired in the last call.

    Parameters
    ----------
    reference_mean
        Reference mean per feature (``None``: estimate during warm-up).
    reference_std
        Reference standard deviation per feature.
    shift
        Mean shift, in standard deviations, the CUSUMs are tuned for.
    arl
        Average updates of one feature between false alarms.
    warmup
        Updates used to estimate the reference when none is given.
    clip
        Standardised values are clipped to ``[-clip, clip]`` (robustness to outliers).

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.detectors import MeanShift
    >>> rng = np.random.default_rng(7)
    >>> x = rng.normal(size=(3000, 5))
    >>> x[2000:, 3] += 0.5
    >>> det = MeanShift(reference_mean=(0.0,) * 5, reference_std=(1.0,) * 5)
    >>> for i, row in enumerate(x):
    ...     if det.update(row).drift_detected:
    ...         print(f"Change detected at index {i} in feature {det.drifted_features.nonzero()[0]}")
    ...         break
    Change detected at index 2025 in feature [3]
    >>> MeanShift(reference_mean=(0.0,) * 5, reference_std=(1.0,) * 5).update_many(x[:2000]).size
    0
    """

    input_kind = "numeric"

    def __init__(
        self,
        reference_mean: tuple[float, ...] | None = None,
        reference_std: tuple[float, ...] | None = None,
        shift: float = 0.5,
        arl: float = 500_000.0,
        warmup: int = 1000,
        clip: float = 4.0,
    ) -> None:
        super().__init__()
        self.reference_mean = reference_mean
        self.reference_std = reference_std
        self.shift = shift
        self.arl = arl
        self.warmup = warmup
        self.clip = clip
        self._reset()

    @property
    def threshold(self) -> float:
        """CUSUM threshold (in standard deviations) for each side of each feature."""
        return cusum_threshold(self.shift, 2.0 * self.arl)

    def _reset(self) -> None:
        super()._reset()
        self._h = self.threshold
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None
        if self.reference_mean is not None:
            self._mean = np.asarray(self.reference_mean, dtype=np.float64).ravel()
            std = self.reference_std if self.reference_std is not None else np.ones_like(self._mean)
            self._std = np.asarray(std, dtype=np.float64).ravel()
        # The warm-up's running moments (not its rows: a fleet's detectors each held up to ``warmup`` rows).
        self._warm = _Moments()
        self._n_warm = 0
        self._up: np.ndarray | None = None
        self._down: np.ndarray | None = None
        self.drifted_features = np.zeros(0, dtype=bool)
        self.alarms: list[tuple[int, int]] = []  # (row in the last batch, feature) of each alarm

    @property
    def statistic(self) -> np.ndarray:
        """Current CUSUM value per feature (the larger side), in standard deviations."""
        if self._up is None or self._down is None:
            return np.zeros(0)
        return np.maximum(self._up, self._down)

    def update(self, x: Any) -> Self:
        self.update_many(np.atleast_1d(np.asarray(x, dtype=np.float64))[None, :])
        return self

    def update_many(self, xs: Any) -> np.ndarray:
        """Feed a batch ``(n, n_features)`` (or ``(n,)`` for one feature); return rows that fired."""
        x = np.asarray(xs, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x
        self._drift_detected = False
        self.alarms = []
        self.drifted_features = np.zeros(x.shape[1], dtype=bool)
        if self._mean is None:
            need = self.warmup - self._n_warm
            self._warm.add(x[:need])
            self._n_warm += min(need, x.shape[0])
            if self._n_warm < self.warmup:
                return np.zeros(0, dtype=np.int64)
            self._mean, self._std = self._warm.mean_std()
            self._warm = _Moments()
            offset, x = need, x[need:]
        else:
            offset = 0
        assert self._std is not None
        if self._up is None or self._down is None:
            self._up = np.zeros_like(self._mean)
            self._down = np.zeros_like(self._mean)
        z = np.clip((x - self._mean) / self._std, -self.clip, self.clip)
        k = self.shift / 2.0
        inc_up = np.where(np.isnan(z), 0.0, z - k)
        inc_down = np.where(np.isnan(z), 0.0, -z - k)
        s_up = _cusum_path(self._up, inc_up)
        s_down = _cusum_path(self._down, inc_down)
        hit = (s_up > self._h) | (s_down > self._h)
        rows: list[int] = []
        row = -1
        while True:
            later = np.flatnonzero(hit[row + 1 :].any(axis=1))
            if later.size == 0:
                break
            row = row + 1 + int(later[0])
            feats = np.flatnonzero(hit[row])
            # Those features restart from zero; the others' paths are unaffected.
            s_up[row, feats] = 0.0
            s_down[row, feats] = 0.0
            if row + 1 < x.shape[0]:
                zero = np.zeros(feats.size)
                up = _cusum_path(zero, inc_up[row + 1 :, feats])
                down = _cusum_path(zero, inc_down[row + 1 :, feats])
                s_up[row + 1 :, feats], s_down[row + 1 :, feats] = up, down
                hit[row + 1 :, feats] = (up > self._h) | (down > self._h)
            self.drifted_features[feats] = True
            rows.append(offset + row)
            self.alarms.extend((offset + row, int(f)) for f in feats)
        if x.shape[0]:
            self._up, self._down = s_up[-1].copy(), s_down[-1].copy()
        self._drift_detected = bool(rows)
        return np.asarray(rows, dtype=np.int64)


class _Moments:
    """Count, mean and sum of squared deviations of each column of the rows added so far, NaNs left out.

    Batches are merged as Chan et al. do (parallel variance), so the warm-up keeps 3 numbers per feature
    whatever its length; one batch gives exactly the two-pass mean and deviation.

    >>> m = _Moments().add(np.array([[1.0, np.nan]])).add(np.array([[3.0, np.nan]]))
    >>> [v.tolist() for v in m.mean_std()]
    [[2.0, nan], [1.4142135623730951, 1.0]]
    """

    def __init__(self) -> None:
        self.n: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, w: np.ndarray) -> _Moments:
        seen = ~np.isnan(w)
        n = seen.sum(axis=0)
        mean = np.divide(np.where(seen, w, 0.0).sum(axis=0), n, out=np.zeros(w.shape[1]), where=n > 0)
        m2 = (np.where(seen, w - mean, 0.0) ** 2).sum(axis=0)
        if self.n is None or self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = n, mean, m2
            return self
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * np.divide(n, total, out=np.zeros(w.shape[1]), where=total > 0)
        self.m2 = self.m2 + m2 + delta**2 * np.divide(self.n * n, total, out=np.zeros(w.shape[1]), where=total > 0)
        self.n = total
        return self

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Each column's mean and standard deviation (n - 1). A feature with no value in the warm-up (all
        null) gets a NaN mean: its standardised values are NaN, so its CUSUMs never move. A constant one
        gets a deviation of 1."""
        assert self.n is not None and self.mean is not None and self.m2 is not None
        mean = np.where(self.n > 0, self.mean, np.nan)
        var = np.divide(self.m2, self.n - 1, out=np.zeros(self.n.shape), where=self.n > 1)
        std = np.sqrt(var)
        return mean, np.where(std > 0, std, 1.0)


def _cusum_path(s0: np.ndarray, inc: np.ndarray) -> np.ndarray:
    """CUSUM values after each row: ``S_t = max(0, S_{t-1} + inc_t)``, vectorised over rows.

    Unrolled, ``S_t = C_t - min(-S_0, min_{j <= t} C_j)`` with ``C`` the cumulative sum.
    """
    c = np.cumsum(inc, axis=0)
    return c - np.minimum(-s0[None, :], np.minimum.accumulate(c, axis=0))
