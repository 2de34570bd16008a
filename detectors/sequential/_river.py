"""Shared plumbing for the detectors that delegate to river.

The wrapped river object is state: it is built in ``_reset()`` from the
parameters, so clones start fresh and pickles carry the full state.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from ..base import DriftDetector

__all__ = ["RiverDetector"]


class RiverDetector(DriftDetector):
    """A river drift detector behind watchkeeper's interface (``update`` returns ``self``)."""

    _river_cls: ClassVar[Any]

    def __init__(self) -> None:
        super().__init__()
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._det = self._river_cls(**self._get_params())
        self._warning_detected = False

    @property
    def warning_detected(self) -> bool:
        """Whether the last update was in the warning zone (detectors that have one)."""
        return self._warning_detected

    def update(self, x: float) -> Self:
        self._det.update(x)
        self._drift_detected = bool(self._det.drift_detected)
        self._warning_detected = bool(getattr(self._det, "warning_detected", False))
        return self
