"""Ensemble: several detectors on one stream, combined by vote."""

from __future__ import annotations

from typing import Self

from ..base import DriftDetector
from ..config import DetectorConfig
from ..registry import register

__all__ = ["Ensemble"]


@register("ensemble")
class Ensemble(DriftDetector):
    """Runs member detectors side by side; fires when ``vote`` of them fired within ``window`` updates.

    With ``vote=1`` (the default) the ensemble fires as soon as any member does,
    which shortens delays when members are tuned to complementary changes (abrupt
    and gradual, small and large) and each keeps its own false-alarm budget. On
    firing, every member restarts, so they all learn the new regime together.
    ``fired_by`` names the members that fired.

    Parameters
    ----------
    members
        Member detectors by registry name and parameters.
    vote
        Members that must agree.
    window
        Updates within which votes count together.

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.detectors import DetectorConfig, Ensemble
    >>> rng = np.random.default_rng(7)
    >>> errors = np.r_[rng.binomial(1, 0.1, 1000), rng.binomial(1, 0.4, 1000)]
    >>> det = Ensemble(members=(DetectorConfig(name="cusum"), DetectorConfig(name="adwin")))
    >>> for i, x in enumerate(errors):
    ...     if det.update(x).drift_detected:
    ...         print(f"Change detected at index {i} by {det.fired_by}")
    Change detected at index 1063 by ('cusum',)
    """

    def __init__(
        self,
        members: tuple[DetectorConfig, ...] = (DetectorConfig(name="cusum"), DetectorConfig(name="adwin")),
        vote: int = 1,
        window: int = 100,
    ) -> None:
        super().__init__()
        self.members = tuple(m if isinstance(m, DetectorConfig) else DetectorConfig(**m) for m in members)
        if not 1 <= vote <= len(self.members):
            raise ValueError("vote must be between 1 and the number of members")
        self.vote = vote
        self.window = window
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._detectors = [m.build() for m in self.members]
        self._last_fired = [-(10**18)] * len(self._detectors)
        self._t = 0
        self.fired_by: tuple[str, ...] = ()

    def update(self, x: float) -> Self:
        if self._drift_detected:
            self._reset()
        self._t += 1
        for i, det in enumerate(self._detectors):
            if det.update(x).drift_detected:
                self._last_fired[i] = self._t
        recent = [i for i, t in enumerate(self._last_fired) if self._t - t < self.window]
        fired_now = [i for i, t in enumerate(self._last_fired) if t == self._t]
        if fired_now and len(recent) >= self.vote:
            self._drift_detected = True
            self.fired_by = tuple(self.members[i].name for i in recent)
        return self
