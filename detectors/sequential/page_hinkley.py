"""Page-Hinkley test (river's implementation)."""

from __future__ import annotations

from river.drift import PageHinkley as _PageHinkley

from ..registry import register
from ._river import RiverDetector

__all__ = ["PageHinkley"]


@register("page_hinkley")
class PageHinkley(RiverDetector):
    """Page-Hinkley cumulative-deviation test for a change in the mean.

    Delegates to ``river.drift.PageHinkley``. ``threshold`` is in the units of
    the input: scale it to the stream (the default suits values of order one).

    Parameters
    ----------
    min_instances
        Updates before the first test.
    delta
        Tolerated deviation from the running mean.
    threshold
        Detection threshold (lambda).
    alpha
        Forgetting factor of the cumulative sums.
    mode
        ``"up"``, ``"down"`` or ``"both"``.

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.detectors import PageHinkley
    >>> rng = np.random.default_rng(7)
    >>> stream = np.r_[rng.normal(0, 0.5, 1000), rng.normal(1.0, 0.5, 1000)]
    >>> det = PageHinkley()
    >>> for i, x in enumerate(stream):
    ...     if det.update(x).drift_detected:
    ...         print(f"Change detected at index {i}")
    Change detected at index 1023

    References
    ----------
    [^1]: Page, E.S., 1954. Continuous inspection schemes. Biometrika 41, 100-115.
    """

    _river_cls = _PageHinkley
    input_kind = "numeric"

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.mode = mode
        super().__init__()
