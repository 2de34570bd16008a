"""DDM: drift detection method (river's implementation)."""

from __future__ import annotations

from river.drift.binary import DDM as _DDM

from ..registry import register
from ._river import RiverDetector

__all__ = ["DDM"]


@register("ddm")
class DDM(RiverDetector):
    """Drift detection method on a stream of 0/1 errors.

    Fires when the error rate plus its standard deviation exceeds its historical
    minimum by ``drift_threshold`` standard deviations. Delegates to
    ``river.drift.binary.DDM``.

    Parameters
    ----------
    warm_start
        Updates before the first test.
    warning_threshold
        Standard deviations for the warning zone.
    drift_threshold
        Standard deviations for a drift.

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.detectors import DDM
    >>> rng = np.random.default_rng(7)
    >>> errors = np.r_[rng.binomial(1, 0.1, 1000), rng.binomial(1, 0.4, 1000)]
    >>> det = DDM()
    >>> for i, x in enumerate(errors):
    ...     if det.update(x).drift_detected:
    ...         print(f"Change detected at index {i}")
    Change detected at index 1138

    References
    ----------
    [^1]: Gama, J., Medas, P., Castillo, G. and Rodrigues, P., 2004. Learning with drift detection.
    """

    _river_cls = _DDM
    input_kind = "binary"

    def __init__(self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0) -> None:
        self.warm_start = warm_start
        self.warning_threshold = warning_threshold
        self.drift_threshold = drift_threshold
        super().__init__()
