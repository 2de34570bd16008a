"""HDDM_A: Hoeffding drift detection, averages (river's implementation)."""

from __future__ import annotations

from river.drift.binary import HDDM_A as _HDDM_A

from ..registry import register
from ._river import RiverDetector

__all__ = ["HDDM_A"]


@register("hddm_a")
class HDDM_A(RiverDetector):  # noqa: N801 - the name used in the literature and in river
    """Hoeffding-bound test between the mean before and after a cut point.

    Input is a stream of values in [0, 1] (usually 0/1 errors). Delegates to
    ``river.drift.binary.HDDM_A``.

    Parameters
    ----------
    drift_confidence
        Confidence level of the drift test.
    warning_confidence
        Confidence level of the warning test.
    two_sided_test
        Also detect decreases.

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.detectors import HDDM_A
    >>> rng = np.random.default_rng(7)
    >>> errors = np.r_[rng.binomial(1, 0.1, 1000), rng.binomial(1, 0.4, 1000)]
    >>> det = HDDM_A()
    >>> for i, x in enumerate(errors):
    ...     if det.update(x).drift_detected:
    ...         print(f"Change detected at index {i}")
    Change detected at index 1115

    References
    ----------
    [^1]: Frias-Blanco, I. et al., 2014. Online and non-parametric drift detection methods based on
    Hoeffding's bounds. IEEE TKDE 27(3).
    """

    _river_cls = _HDDM_A
    input_kind = "binary"

    def __init__(
        self, drift_confidence: float = 0.001, warning_confidence: float = 0.005, two_sided_test: bool = False
    ) -> None:
        self.drift_confidence = drift_confidence
        self.warning_confidence = warning_confidence
        self.two_sided_test = two_sided_test
        super().__init__()
