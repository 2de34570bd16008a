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
    input, ``kind="gaussian"``); ``kind="auto"`` picks from those values. The
    estimate keeps improving while nothing fires, and each test is run against a
    pessimistic baseline (``margin`` standard errors towards the alternative) so
    an early, noisy estimate does not cause false alarms.

    Each member tests one alternative: an error rate multiplied in odds by each of
    ``odds_ratios`` (Bernoulli), or a mean shifted by each of ``shifts`` standard
    deviations (Gaussian). A CUSUM on the log-likelihood ratio with threshold
    ``h`` has an in-control run length of at least ``exp(h)``; ``h`` is set so the
    whole bank runs ``arl`` updates on average between false alarms.

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

    Examples
    --------
    >>> import numpy as np
    >>> from detectors import CUSUM
    >>> rng = np.random.default_rng(7)
    >>> errors = np.r_[rng.binomial(1, 0.1, 1000), rng.binomial(1, 0.4, 1000)]
    >>> det = CUSUM()
    >>> for i, x in enumerate(errors):
    ...     if det.update(x).drift_detected:
    ...         print(f"Change detected at index {i}")
    Change detected at index 1077

    References
    ----------
    [^1]: Page, E.S., 1954. Continuous inspection schemes. Biometrika 41, 100-115.
    [^2]: Lorden, G., 1971. Procedures for reacting to a change in distribution. Ann. Math. Stat. 42.
    """

    def __init__(
        self,
        kind: str = "auto",
        shifts: tuple[float, ...] = (0.5, 1.0, 2.0),
        odds_ratios: tuple[float, ...] = (1.5, 2.5, 6.0),
        direction: str = "auto",
        arl: float = 200_000.0,
        warmup: int = 500,
        margin: float = 2.0,
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
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._n = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._binary = True
        self._mode = ""  # set when warm-up ends
        self._sides: tuple[int, ...] = ()
        self._stats: list[float] = []
        self._h = math.inf
        self.statistic = 0.0

    def _start(self) -> None:
        self._mode = self.kind if self.kind != "auto" else ("bernoulli" if self._binary else "gaussian")
        direction = self.direction
        if direction == "auto":
            direction = "up" if self._mode == "bernoulli" else "both"
        self._sides = {"up": (1,), "down": (-1,), "both": (1, -1)}[direction]
        mags = self.odds_ratios if self._mode == "bernoulli" else self.shifts
        self._stats = [0.0] * (len(mags) * len(self._sides))
        self._h = math.log(self.arl * len(self._stats))

    def _increments(self, x: float) -> list[float]:
        n, se_scale = self._n, self.margin / math.sqrt(self._n)
        out = []
        if self._mode == "bernoulli":
            p = (self._mean * n + 0.5) / (n + 1.0)
            se = se_scale * math.sqrt(p * (1.0 - p))
            for side in self._sides:
                p0 = min(max(p + side * se, 1e-9), 1 - 1e-9)
                odds0 = p0 / (1.0 - p0)
                for r in self.odds_ratios:
                    o1 = odds0 * (r if side > 0 else 1.0 / r)
                    p1 = o1 / (1.0 + o1)
                    out.append(math.log(p1 / p0) if x >= 0.5 else math.log((1.0 - p1) / (1.0 - p0)))
        else:
            sd = math.sqrt(self._m2 / max(n - 1, 1)) or 1e-12
            for side in self._sides:
                z = side * (x - self._mean) / sd - se_scale
                for d in self.shifts:
                    out.append(d * z - 0.5 * d * d)
        return out

    def update(self, x: float) -> Self:
        if self._drift_detected:
            self._reset()
        x = float(x)
        if math.isnan(x):
            return self
        if self._mode:
            stats = self._stats
            for j, inc in enumerate(self._increments(x)):
                stats[j] = max(0.0, stats[j] + inc)
            self.statistic = max(stats)
            if self.statistic > self._h:
                self._drift_detected = True
                return self
        # Welford update of the baseline (skipped once a change has fired).
        self._n += 1
        delta = x - self._mean
        self._mean += delta / self._n
        self._m2 += delta * (x - self._mean)
        if self._binary and x not in (0.0, 1.0):
            self._binary = False
        if not self._mode and self._n >= self.warmup:
            self._start()
        return self
