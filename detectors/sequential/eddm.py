"""EDDM: early drift detection method (river's implementation)."""

from __future__ import annotations

from river.drift.binary import EDDM as _EDDM

from ..registry import register
from ._river import RiverDetector

__all__ = ["EDDM"]


@register("eddm")
class EDDM(RiverDetector):
    """Early drift detection method: watches the distance between consecutive errors.

    Input is a stream of 0/1 errors. Delegates to ``river.drift.binary.EDDM``.

    Parameters
    ----------
    warm_start
        Errors seen before the first test.
    alpha
        Drift when the mean distance falls below this fraction of its maximum.
    beta
        Warning when it falls below this fraction.

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.detectors import EDDM
    >>> rng = np.random.default_rng(7)
    >>> errors = np.r_[rng.binomial(1, 0.1, 1000), rng.binomial(1, 0.5, 1000)]
    >>> det = EDDM()
    >>> [int(i) for i in det.update_many(errors)]  # sensitive: it also fires before the change
    [327, 727, 993, 1062, 1122]

    References
    ----------
    [^1]: Baena-Garcia, M. et al., 2006. Early drift detection method.
    """

    _river_cls = _EDDM
    input_kind = "binary"

    def __init__(self, warm_start: int = 30, alpha: float = 0.95, beta: float = 0.9) -> None:
        self.warm_start = warm_start
        self.alpha = alpha
        self.beta = beta
        super().__init__()
