"""The due set of a pass: every window the pass closes, of every model, as query parameters.

A pass of the model stage hands the store its whole due set in one array
parameter (``due``: (model, version, window start) tuples), with the models and
the time range beside it so that the store reads only their parts, and every
model's decision threshold (``thr_m`` → ``thr_v``, default ``thr``): one
statement covers the fleet, whatever its size.

>>> from watchkeeper.windows.config import ModelStageConfig, WindowConfig, WindowKey
>>> cfg = WindowConfig(window_seconds=60, models={"a": ModelStageConfig(threshold=0.7)})
>>> p = due_params(cfg, [WindowKey("a", "v1", 120), WindowKey("b", "v2", 60)])
>>> p["due"], p["models"], p["thr_m"], p["thr_v"], p["thr"]
([('a', 'v1', 120), ('b', 'v2', 60)], ['a', 'b'], ['a'], [0.7], 0.5)
>>> p["t0"].isoformat(), p["t1"].isoformat()
('1970-01-01T00:01:00+00:00', '1970-01-01T00:03:00+00:00')
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from watchkeeper.detectors.timeutil import utc
from watchkeeper.windows.config import WindowConfig, WindowKey

__all__ = ["due_params"]


def due_params(config: WindowConfig, keys: Iterable[WindowKey]) -> dict[str, Any]:
    """The parameters of the due-set queries (``windows/queries.py``) for ``keys`` (not empty)."""
    keys = sorted(set(keys))
    w = config.window_seconds
    models = sorted({k.model for k in keys})
    configured = [m for m in models if m in config.models]
    return {
        "w": w,
        "due": [(k.model, k.version, k.start) for k in keys],
        "models": models,
        "t0": utc(min(k.start for k in keys)),
        "t1": utc(max(k.start for k in keys) + w),
        "thr_m": configured,
        "thr_v": [float(config.models[m].threshold) for m in configured],
        "thr": float(config.default_model.threshold),
    }
