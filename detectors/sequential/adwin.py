"""ADWIN: adaptive windowing (river's implementation)."""

from __future__ import annotations

from river.drift import ADWIN as _ADWIN

from ..registry import register
from ._river import RiverDetector

__all__ = ["ADWIN"]


@register("adwin")
class ADWIN(RiverDetector):
    """Adaptive windowing: drops old data when two sub-windows' means differ.

    Works on any bounded numeric stream (errors, losses, scores). Delegates to
    ``river.drift.ADWIN``.

    Parameters
    ----------
    delta
        Significance of the cut test; smaller means fewer false alarms and later detections.
    clock
        Check for a cut every ``clock`` updates.
    max_buckets
        Buckets per row of the exponential histogram.
    min_window_length
        Minimum length of each sub-window compared.
    grace_period
        Updates before the first check.

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.detectors import ADWIN
    >>> rng = np.random.default_rng(7)
    >>> stream = np.r_[rng.binomial(1, 0.1, 1000), rng.binomial(1, 0.4, 1000)]
    >>> det = ADWIN()
    >>> for i, x in enumerate(stream):
    ...     if det.update(x).drift_detected:
    ...         print(f"Change detected at index {i}")
    Change detected at index 1087

    References
    ----------
    [^1]: Bifet, A. and Gavalda, R., 2007. Learning from time-changing data with adaptive windowing.
    """

    _river_cls = _ADWIN
    input_kind = "numeric"

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        super().__init__()

    @property
    def width(self) -> float:
        """Current window length."""
        return float(self._det.width)

    @property
    def estimation(self) -> float:
        """Mean of the current window."""
        return float(self._det.estimation)
