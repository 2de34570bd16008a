"""Online Fisher exact test detector (alibi-detect; optional extra)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..registry import register
from ._alibi import AlibiOnlineDetector

__all__ = ["FETOnline"]


@register("fet_online")
class FETOnline(AlibiOnlineDetector):
    """Online Fisher exact test for a change in the rate of a 0/1 stream (e.g. errors).

    Wraps ``alibi_detect.cd.FETDriftOnline`` (imported on first use). Thresholds
    depend on the reference's size and positive count and are memoised per
    (size, count, ``ert``, windows, bootstraps, ``alternative``, ``lam``, seed). A
    reference collected from the stream waits until it holds both values.

    Parameters
    ----------
    reference
        Reference 0/1 values; ``None`` takes the first ``n_reference`` values of the stream.
    n_reference
        Size of the reference collected from the stream.
    ert
        Expected run time (updates) between false alarms.
    window_sizes
        Sliding test windows.
    n_bootstraps
        Simulated streams used to configure thresholds.
    alternative
        ``"greater"`` (the rate rises: more errors) or ``"less"``.
    lam
        Smoothing of the test statistic (exponential moving average weight).
    seed
        Seed of the threshold simulation.

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.detectors import FETOnline
    >>> rng = np.random.default_rng(7)
    >>> errors = np.r_[rng.binomial(1, 0.1, 500), rng.binomial(1, 0.4, 500)]
    >>> det = FETOnline(n_reference=200, ert=300, window_sizes=(30,), n_bootstraps=3000)
    >>> for i, x in enumerate(errors):  # doctest: +ELLIPSIS
    ...     if det.update(x).drift_detected:
    ...         print(f"Change detected at index {i}")
    Change detected at index 51...

    References
    ----------
    [^1]: Ross, G.J., Tasoulis, D.K. and Adams, N.M., 2012. Sequential monitoring of a Bernoulli
    sequence when the pre-change parameter is unknown. Computational Statistics 28.
    """

    _alibi_name = "FETDriftOnline"
    input_kind = "binary"

    def __init__(
        self,
        reference: tuple[float, ...] | None = None,
        n_reference: int = 500,
        ert: float = 2_000.0,
        window_sizes: tuple[int, ...] = (50, 200),
        n_bootstraps: int = 10_000,
        alternative: str = "greater",
        lam: float = 0.99,
        seed: int = 0,
    ) -> None:
        self.reference = reference
        self.n_reference = n_reference
        self.ert = ert
        self.window_sizes = tuple(window_sizes)
        self.n_bootstraps = n_bootstraps
        self.alternative = alternative
        self.lam = lam
        self.seed = seed
        super().__init__()

    def _cache_key(self, x_ref: np.ndarray) -> tuple[Any, ...]:
        return (*super()._cache_key(x_ref), int(x_ref.sum()), self.alternative, self.lam)

    def _alibi_kwargs(self) -> dict[str, Any]:
        return {"alternative": self.alternative, "lam": self.lam}

    def _ready(self, x_ref: np.ndarray) -> bool:
        s = x_ref.sum()
        return 0 < s < x_ref.size
