"""Base class of the sequential drift detectors (river-style).

A detector is a small object: ``update(x)`` returns ``self``, ``drift_detected``
is read-only, and all state is built in ``_reset()`` so that a clone, a pickle
round-trip and a fresh instance behave the same. Parameters are the arguments of
``__init__`` stored under the same names, as in river and scikit-learn.
"""

from __future__ import annotations

import abc
import copy
import inspect
from collections.abc import Iterable
from typing import Any, Self

import numpy as np

__all__ = ["DriftDetector"]


class DriftDetector(abc.ABC):
    """A sequential change detector fed one value at a time.

    Subclasses implement ``_reset`` (build every piece of state) and ``update``.
    A detector that fired resets itself on the next ``update``, like river's.
    """

    #: the kind of input: ``"binary"`` (0/1 errors), ``"numeric"`` or ``"any"``.
    input_kind: str = "any"

    def __init__(self) -> None:
        self._drift_detected = False

    def _reset(self) -> None:
        """Build the detector's state from its parameters."""
        self._drift_detected = False

    @property
    def drift_detected(self) -> bool:
        """Whether a change was detected by the last update."""
        return self._drift_detected

    @abc.abstractmethod
    def update(self, x: float) -> Self:
        """Feed one value; return ``self``."""

    def update_many(self, xs: Iterable[float]) -> np.ndarray:
        """Feed values in order; return the (0-based) positions where drift fired."""
        hits = []
        for i, x in enumerate(np.asarray(xs, dtype=float).ravel()):
            if self.update(float(x)).drift_detected:
                hits.append(i)
        return np.asarray(hits, dtype=np.int64)

    # -- parameters ---------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def _get_params(self) -> dict[str, Any]:
        """The constructor arguments of this detector."""
        return {name: getattr(self, name) for name in self._param_names()}

    def clone(self, **new_params: Any) -> Self:
        """A fresh detector with the same (optionally overridden) parameters and no state."""
        params = copy.deepcopy(self._get_params())
        params.update(new_params)
        return type(self)(**params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"{type(self).__name__}({args})"
