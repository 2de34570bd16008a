"""Shared plumbing for the alibi-detect online detectors (optional extra ``watchkeeper[alibi]``).

alibi-detect is imported only when a detector first needs it, so ``detectors``
imports without it. Configuring thresholds simulates thousands of streams
(seconds to a minute); the configured detector is memoised in-process, keyed by
everything the thresholds depend on, and copied for each new reference.

alibi-detect is under the Business Source License from 0.12 on: no free
production use. river and watchkeeper's own detectors are the default.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import threading
from collections.abc import Iterator
from typing import Any, ClassVar, Self

import numpy as np

from ..base import DriftDetector

__all__ = ["AlibiOnlineDetector", "alibi_available", "clear_cache"]

_CACHE: dict[tuple[Any, ...], Any] = {}
_LOCK = threading.Lock()


def alibi_available() -> bool:
    """Whether alibi-detect can be imported."""
    try:
        importlib.import_module("alibi_detect.cd")
    except ImportError:
        return False
    return True


def _alibi_cd() -> Any:
    """``alibi_detect.cd``, or an ImportError that names the extra."""
    try:
        return importlib.import_module("alibi_detect.cd")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("alibi_detect"):
            raise
        raise ModuleNotFoundError(
            "the alibi-detect detectors (cvm_online, fet_online) need `pip install 'watchkeeper[alibi]'` "
            "(Python < 3.13, numpy < 2: install it in an environment of its own)",
            name="alibi_detect",
        ) from exc


def clear_cache() -> None:
    """Forget every configured detector (frees memory; thresholds are recomputed on next use)."""
    with _LOCK:
        _CACHE.clear()


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    # alibi's threshold simulation draws from numpy's global generator: seed it, then restore it.
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        np.random.set_state(state)


class AlibiOnlineDetector(DriftDetector):
    """An alibi-detect univariate online detector behind watchkeeper's interface.

    With ``reference=None`` the first ``n_reference`` values form the reference
    (and are collected again after each detection); otherwise the given
    reference is kept across detections.
    """

    _alibi_name: ClassVar[str]
    reference: tuple[float, ...] | None
    n_reference: int
    ert: float
    window_sizes: tuple[int, ...]
    n_bootstraps: int
    seed: int

    def __init__(self) -> None:
        super().__init__()
        self._reset()

    # -- hooks for subclasses -------------------------------------------------------------------
    def _cache_key(self, x_ref: np.ndarray) -> tuple[Any, ...]:
        sizes = tuple(self.window_sizes)
        return (self._alibi_name, x_ref.size, self.ert, sizes, self.n_bootstraps, self.seed)

    def _alibi_kwargs(self) -> dict[str, Any]:
        return {}

    def _ready(self, x_ref: np.ndarray) -> bool:
        """Whether thresholds can be configured from this reference."""
        return True

    # -- state ----------------------------------------------------------------------------------
    def _reset(self) -> None:
        super()._reset()
        self._buffer: list[float] = []
        self._cd: Any = None
        if self.reference is not None:
            self._cd = self._configure(np.asarray(self.reference, dtype=np.float64))

    def _configure(self, x_ref: np.ndarray) -> Any:
        key = self._cache_key(x_ref)
        with _LOCK:
            proto = _CACHE.get(key)
            if proto is None:
                cls = getattr(_alibi_cd(), self._alibi_name)
                with _seeded(self.seed):
                    proto = cls(
                        x_ref,
                        ert=self.ert,
                        window_sizes=list(self.window_sizes),
                        n_bootstraps=self.n_bootstraps,
                        verbose=False,
                        **self._alibi_kwargs(),
                    )
                _CACHE[key] = proto
        cd = copy.deepcopy(proto)
        cd.x_ref = x_ref.reshape(-1, 1)
        cd.n = x_ref.size
        cd._configure_ref()
        cd.reset_state()
        return cd

    def _trim(self) -> None:
        # alibi keeps every value and statistic seen; only the last max(window) values matter.
        cd, keep = self._cd, int(max(self.window_sizes))
        if getattr(cd, "xs", np.empty(0)).shape[0] > 2 * keep:
            cd.xs = cd.xs[-keep:]
        cd.test_stats = cd.test_stats[-1:]
        cd.drift_preds = cd.drift_preds[-1:]

    def update(self, x: float) -> Self:
        if self._drift_detected:
            self._drift_detected = False
            if self.reference is None:
                self._buffer, self._cd = [], None
            else:
                self._cd.reset_state()
        x = float(x)
        if self._cd is None:
            self._buffer.append(x)
            if len(self._buffer) >= self.n_reference:
                x_ref = np.asarray(self._buffer[-self.n_reference :], dtype=np.float64)
                if self._ready(x_ref):
                    self._cd = self._configure(x_ref)
                    self._buffer = []
                else:
                    self._buffer = self._buffer[-self.n_reference :]
            return self
        out = self._cd.predict(np.array([x]), return_test_stat=False)
        self._trim()
        self._drift_detected = bool(out["data"]["is_drift"])
        return self
