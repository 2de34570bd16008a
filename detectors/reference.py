"""Which past data a window is compared with: reference selection policies (pure).

``select_reference(window_start, window_seconds, policy)`` returns the time
ranges (epoch seconds, ``[start, end)``) whose window summaries, merged, form
the reference for the window starting at ``window_start``:

- ``fixed``: one range chosen once (e.g. the training period loaded as reference);
- ``first_n``: the earliest windows holding the model's first ``n_events`` events
  (needs ``history``: events per past window start);
- ``rolling``: the ``n_windows`` windows just before this one;
- ``seasonal``: the same slot ``period`` seconds earlier (86 400: same hour
  yesterday; 604 800: same hour last week), pooled over ``n_periods`` periods.

A seasonal reference does not flag a daily cycle as drift; a fixed one does.

>>> pol = ReferencePolicy.seasonal(period=86_400, n_periods=2)
>>> select_reference(200_000, 3_600, pol).ranges
((113600, 117200), (27200, 30800))
>>> select_reference(200_000, 3_600, ReferencePolicy.rolling(3)).ranges
((189200, 200000),)
>>> hist = {0: 400, 3600: 500, 7200: 700}
>>> sel = select_reference(10_800, 3_600, ReferencePolicy.first_n(800), history=hist)
>>> sel.ranges, sel.complete
(((0, 7200),), True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from .config import ReferencePolicy
from .summary import Summary, merge_all

__all__ = ["ReferencePolicy", "ReferenceSelection", "select_reference", "merge_reference"]


@dataclasses.dataclass(frozen=True)
class ReferenceSelection:
    """Time ranges ``[start, end)`` forming the reference; ``complete`` is False while data is short."""

    ranges: tuple[tuple[int, int], ...]
    complete: bool = True

    def contains(self, window_start: int) -> bool:
        return any(a <= window_start < b for a, b in self.ranges)


def select_reference(
    window_start: int,
    window_seconds: int,
    policy: ReferencePolicy,
    *,
    history: Mapping[int, int] | None = None,
) -> ReferenceSelection:
    """The reference ranges for the window starting at ``window_start`` (see module docstring)."""
    w = int(window_seconds)
    t = int(window_start)
    if policy.kind == "fixed":
        assert policy.start is not None and policy.end is not None
        return ReferenceSelection(((policy.start, policy.end),))
    if policy.kind == "rolling":
        return ReferenceSelection(((t - policy.n_windows * w, t),))
    if policy.kind == "seasonal":
        starts = [t - k * policy.period for k in range(1, policy.n_periods + 1)]
        return ReferenceSelection(tuple((s, s + w) for s in starts))
    # first_n: the earliest past windows reaching n_events.
    total, end = 0, None
    past = sorted((s, n) for s, n in (history or {}).items() if s + w <= t)
    for s, n in past:
        total += int(n)
        end = s + w
        if total >= policy.n_events:
            break
    if end is None:
        return ReferenceSelection((), complete=False)
    return ReferenceSelection(((past[0][0], end),), complete=total >= policy.n_events)


def merge_reference(summaries: Mapping[int, Any], selection: ReferenceSelection) -> Any:
    """Merge the window summaries or bucket counts (keyed by window start) in the selected ranges.

    Returns None when no window falls in the ranges.
    """
    chosen = [v for s, v in sorted(summaries.items()) if selection.contains(s)]
    if not chosen:
        return None
    if isinstance(chosen[0], Summary):
        return merge_all(chosen)
    return np.sum([np.asarray(c) for c in chosen], axis=0)
