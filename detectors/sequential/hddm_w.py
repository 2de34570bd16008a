"""HDDM_W: Hoeffding drift detection, weighted (river's implementation)."""

from __future__ import annotations

from river.drift.binary import HDDM_W as _HDDM_W

from ..registry import register
from ._river import RiverDetector

__all__ = ["HDDM_W"]


@register("hddm_w")
class HDDM_W(RiverDetector):  # noqa: N801 - the name used in the literature and in river
    """McDiarmid-bound test on exponentially weighted means.

    Input is a stream of values in [0, 1] (usually 0/1 errors). Delegates to
    ``river.drift.binary.HDDM_W``.

    Parameters
    ----------
    drift_confidence
        Confidence level of the drift test.
    warning_confidence
        Confidence level of the warning test.
    lambda_val
        Weight of the newest value in the moving average.
    two_sided_test
        Also detect decreases.

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.detectors import HDDM_W
    >>> rng = np.random.default_rng(7)
    >>> errors = np.r_[rng.binomial(1, 0.1, 1000), rng.binomial(1, 0.4, 1000)]
    >>> det = HDDM_W()
    >>> for i, x in enumerate(errors):
    ...     if det.update(x).drift_detected:
    ...         print(f"Change detected at index {i}")
    Change detected at index 1080

    References
    ----------
    [^1]: Frias-Blanco, I. et al., 2014. Online and non-parametric drift detection methods based on
    Hoeffding's bounds. IEEE TKDE 27(3).
    """

    _river_cls = _HDDM_W
    input_kind = "binary"

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        lambda_val: float = 0.05,
        two_sided_test: bool = False,
    ) -> None:
        self.drift_confidence = drift_confidence
        self.warning_confidence = warning_confidence
        self.lambda_val = lambda_val
        self.two_sided_test = two_sided_test
        super().__init__()
