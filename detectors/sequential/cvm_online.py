"""Online Cramer-von Mises detector (alibi-detect; optional extra)."""

from __future__ import annotations

from ..registry import register
from ._alibi import AlibiOnlineDetector

__all__ = ["CVMOnline"]


@register("cvm_online")
class CVMOnline(AlibiOnlineDetector):
    """Online Cramer-von Mises test of a numeric stream against a reference sample.

    Wraps ``alibi_detect.cd.CVMDriftOnline`` (imported on first use). Detects any
    change of distribution; thresholds target an expected run time ``ert`` without
    drift and are configured once per (reference size, ``ert``, windows,
    bootstraps, seed) and memoised. The statistic is rank-based, so the thresholds
    do not depend on the reference values.

    Parameters
    ----------
    reference
        Reference values; ``None`` takes the first ``n_reference`` values of the stream.
    n_reference
        Size of the reference collected from the stream.
    ert
        Expected run time (updates) between false alarms.
    window_sizes
        Sliding test windows: short ones react to large changes, long ones to small ones.
    n_bootstraps
        Simulated streams used to configure thresholds (should exceed ``ert`` several times).
    seed
        Seed of the threshold simulation.

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.detectors import CVMOnline
    >>> rng = np.random.default_rng(7)
    >>> stream = np.r_[rng.normal(0, 1, 500), rng.normal(1.5, 1, 300)]
    >>> det = CVMOnline(n_reference=200, ert=2000, window_sizes=(20,), n_bootstraps=6000)
    >>> for i, x in enumerate(stream):
    ...     if det.update(x).drift_detected:
    ...         print(f"Change detected at index {i}")
    Change detected at index 512

    References
    ----------
    [^1]: Ross, G.J. and Adams, N.M., 2012. Two nonparametric control charts for detecting
    arbitrary distribution changes. Journal of Quality Technology 44(2).
    """

    _alibi_name = "CVMDriftOnline"
    input_kind = "numeric"

    def __init__(
        self,
        reference: tuple[float, ...] | None = None,
        n_reference: int = 300,
        ert: float = 2_000.0,
        window_sizes: tuple[int, ...] = (20, 100),
        n_bootstraps: int = 20_000,
        seed: int = 0,
    ) -> None:
        self.reference = reference
        self.n_reference = n_reference
        self.ert = ert
        self.window_sizes = tuple(window_sizes)
        self.n_bootstraps = n_bootstraps
        self.seed = seed
        super().__init__()
