"""A self-calibrating bank of CUSUM tests (watchkeeper's own detector)."""

from __future__ import annotations

import math
from typing import Self

from ..base import DriftDetector
from ..registry import register

__all__ = ["CUSUM"]


@register("cusum")
class CUSUM(DriftDetector):
    """Bank of log-likelihood-ratio CUSUM tests against a baseline learnt from the stream.

    The first ``warmup`` values after a reset estimate the baseline: an error rate
    (0/1 input, ``kind="bernoulli"``) or a mean and standard deviation (numeric
    input, ``kind="gaussian"``); ``kind="auto"`` picks from those values. Later
    values join the baseline whenever every CUSUM is back at zero (so data that
    carries evidence of a change never dilutes it), and each test is run against
    a pessimistic baseline (``margin`` standard errors towards the alternative)
    so an early, noisy estimate does not cause false alarms.

    Each member tests one alternative: an error rate multiplied in odds by each of
    ``odds_ratios`` (Bernoulli), or a mean shifted by each of ``shifts`` standard
    deviations (Gaussian). Each member's threshold comes from Siegmund's
    approximation of the in-control run length of a log-likelihood-ratio CUSUM,
    so that the whole bank runs ``arl`` updates on average between false alarms;
    small alternatives get low thresholds, which is what makes them fast.

    For 0/1 input there is one more rule, for a model that had been perfect: an
    error after ``clean_run`` error-free updates fires at once. Whatever the
    true error rate ``p``, such an error happens at rate ``p (1 - p)^clean_run <=
    1 / (e * clean_run)`` per update (3.7 per 100k for 10,000).

    Parameters
    ----------
    kind
        ``"auto"``, ``"bernoulli"`` or ``"gaussian"``.
    shifts
        Mean shifts (in standard deviations) the Gaussian members are tuned for.
    odds_ratios
        Error-odds ratios the Bernoulli members are tuned for.
    direction
        ``"up"``, ``"down"``, ``"both"`` or ``"auto"`` (Bernoulli: up, i.e. more errors; Gaussian: both).
    arl
        Target average run length between false alarms of the whole bank.
    warmup
        Values used to estimate the baseline before testing.
    margin
        Standard errors of the baseline estimate the tests concede to it.
    refresh
        Updates between re-estimations of the baseline, alternatives and thresholds.
    clip
        Gaussian mode: values are clipped to the baseline mean +- ``clip`` standard deviations,
        which keeps heavy-tailed streams from raising false alarms.
    clean_run
        0/1 input: fire on an error after this many error-free updates (``None``: never).

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.detectors import CUSUM
    >>> rng = np.random.default_rng(7)
    >>> errors = np.r_[rng.binomial(1, 0.1, 1000), rng.binomial(1, 0.4, 1000)]
    >>> det = CUSUM()
    >>> for i, x in enumerate(errors):
    ...     if det.update(x).drift_detected:
    ...         print(f"Change detected at index {i}")
    Change detected at index 1063

    References
    ----------
    [^1]: Page, E.S., 1954. Continuous inspection schemes. Biometrika 41, 100-115.
    [^2]: Lorden, G., 1971. Procedures for reacting to a change in distribution. Ann. Math. Stat. 42.
    """

    def __init__(
        self,
        kind: str = "auto",
        shifts: tuple[float, ...] = (0.5, 1.0, 2.0),
        odds_ratios: tuple[float, ...] = (1.2, 1.5, 2.5, 6.0),
        direction: str = "auto",
        arl: float = 50_000.0,
        warmup: int = 1000,
        margin: float = 1.5,
        refresh: int = 100,
        clip: float = 2.5,
        clean_run: int | None = 10_000,
    ) -> None:
        if kind not in ("auto", "bernoulli", "gaussian"):
            raise ValueError("kind must be 'auto', 'bernoulli' or 'gaussian'")
        if direction not in ("auto", "up", "down", "both"):
            raise ValueError("direction must be 'auto', 'up', 'down' or 'both'")
        super().__init__()
        self.kind = kind
        self.shifts = tuple(shifts)
        self.odds_ratios = tuple(odds_ratios)
        self.direction = direction
        self.arl = arl
        self.warmup = warmup
        self.margin = margin
        self.refresh = refresh
        self.clip = clip
        self.clean_run = clean_run
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._n = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._binary = True
        self._run = 0  # error-free updates in a row
        self._mode = ""  # set when warm-up ends
        self._sides: tuple[int, ...] = ()
        self._stats: list[float] = []
        self._h: list[float] = []
        self._coefs: list[tuple[float, float]] = []
        self._clip_range = (-math.inf, math.inf)
        self._since_refresh = 0
        self._pend: tuple[int, float, float] = (0, 0.0, 0.0)  # values not yet in the baseline
        self.statistic = 0.0

    def _start(self) -> None:
        self._mode = self.kind if self.kind != "auto" else ("bernoulli" if self._binary else "gaussian")
        direction = self.direction
        if direction == "auto":
            direction = "up" if self._mode == "bernoulli" else "both"
        self._sides = {"up": (1,), "down": (-1,), "both": (1, -1)}[direction]
        mags = self.odds_ratios if self._mode == "bernoulli" else self.shifts
        self._stats = [0.0] * (len(mags) * len(self._sides))
        self._h = [math.inf] * len(self._stats)
        self._refresh()

    def _refresh(self) -> None:
        """Recompute each member's alternative and threshold from the current baseline estimate."""
        n = self._n
        se_scale = self.margin / math.sqrt(n)
        target = self.arl * len(self._stats)
        coefs: list[tuple[float, float]] = []
        hs: list[float] = []
        if self._mode == "bernoulli":
            p = (self._mean * n + 0.5) / (n + 1.0)
            se = se_scale * math.sqrt(p * (1.0 - p))
            for side in self._sides:
                p0 = min(max(p + side * se, 1e-9), 1 - 1e-9)
                odds0 = p0 / (1.0 - p0)
                for r in self.odds_ratios:
                    o1 = odds0 * (r if side > 0 else 1.0 / r)
                    p1 = o1 / (1.0 + o1)
                    a, b = math.log(p1 / p0), math.log((1.0 - p1) / (1.0 - p0))
                    coefs.append((a, b))  # increment: a on a one, b on a zero
                    hs.append(_llr_threshold(-(p0 * a + (1.0 - p0) * b), target, 0.0))
        else:
            sd = math.sqrt(self._m2 / max(n - 1, 1)) or 1e-12
            self._clip_range = (self._mean - self.clip * sd, self._mean + self.clip * sd)
            for side in self._sides:
                mu0 = self._mean + side * se_scale * sd
                for d in self.shifts:
                    # LLR of N(mu0 + side*d*sd, sd) against N(mu0, sd): (side*d/sd) * x + const.
                    slope = side * d / sd
                    coefs.append((slope, -slope * mu0 - 0.5 * d * d))
                    hs.append(_llr_threshold(0.5 * d * d, target, 1.166 * d))
        self._coefs = coefs
        self._h = hs
        self._since_refresh = 0

    def _increments(self, x: float) -> list[float]:
        if self._mode == "bernoulli":
            one = x >= 0.5
            return [a if one else b for a, b in self._coefs]
        lo, hi = self._clip_range
        x = min(max(x, lo), hi)
        return [a * x + b for a, b in self._coefs]

    def update(self, x: float) -> Self:
        if self._drift_detected:
            self._reset()
        x = float(x)
        if math.isnan(x):
            return self
        if self._binary and self.kind != "gaussian" and x in (0.0, 1.0):
            if x == 1.0 and self.clean_run is not None and self._run >= self.clean_run:
                self._drift_detected = True
                return self
            self._run = self._run + 1 if x == 0.0 else 0
        if self._mode:
            stats, hs, fired = self._stats, self._h, False
            for j, inc in enumerate(self._increments(x)):
                stats[j] = max(0.0, stats[j] + inc)
                fired = fired or stats[j] > hs[j]
            self.statistic = max(s / h for s, h in zip(stats, hs, strict=True))
            if fired:
                self._drift_detected = True
                return self
        if self._binary and x not in (0.0, 1.0):
            self._binary = False
        if not self._mode:
            self._n, self._mean, self._m2 = _welford(self._n, self._mean, self._m2, x)
            if self._n >= self.warmup:
                self._start()
            return self
        # Values join the baseline only once every CUSUM is back at zero: data that carries
        # evidence of a change never dilutes the baseline it is compared with.
        self._pend = _welford(*self._pend, x)
        if self.statistic == 0.0:
            self._n, self._mean, self._m2 = _merge_moments((self._n, self._mean, self._m2), self._pend)
            self._pend = (0, 0.0, 0.0)
        self._since_refresh += 1
        if self._since_refresh >= self.refresh:
            self._refresh()
        return self


def _welford(n: int, mean: float, m2: float, x: float) -> tuple[int, float, float]:
    n += 1
    delta = x - mean
    mean += delta / n
    return n, mean, m2 + delta * (x - mean)


def _merge_moments(a: tuple[int, float, float], b: tuple[int, float, float]) -> tuple[int, float, float]:
    """Chan et al.'s pairwise merge of (count, mean, sum of squared deviations)."""
    n = a[0] + b[0]
    if b[0] == 0:
        return a
    delta = b[1] - a[1]
    return n, a[1] + delta * b[0] / n, a[2] + b[2] + delta * delta * a[0] * b[0] / n


def _llr_threshold(kl0: float, arl: float, overshoot: float) -> float:
    """CUSUM threshold ``h`` on a log-likelihood-ratio scale for an in-control run length ``arl``.

    Siegmund's approximation ``ARL = (exp(b) - b - 1) / I0`` with ``b = h + overshoot`` and
    ``I0`` the Kullback-Leibler divergence of the pre-change from the post-change law
    (the in-control drift of the increments), solved by Newton's method.
    """
    kl0 = max(kl0, 1e-12)
    target = arl * kl0
    b = max(math.log(target + 1.0), 1.0)
    for _ in range(50):
        f = math.expm1(b) - b - target
        b -= f / (math.expm1(b))
        if abs(f) < 1e-9 * target:
            break
    return max(b - overshoot, 1e-6)
