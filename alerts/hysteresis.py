"""The state machine of one alert: hysteresis, cooldown, monotone event time.

``step`` is a pure function: (state, signal) -> (new state, transition or None).
A signal is ``True`` (bad window), ``False`` (good window) or ``None`` (not
enough evidence: neither counts nor breaks a run); a *strong* bad signal fires
without a run (the fast paths of ``alerts/policy.py``). Signals at or before the
last one seen are ignored, which makes re-feeding a window harmless and lets a
state restored from the ``alerts`` table skip what it already decided.

>>> h = Hysteresis(fire_after=3, resolve_after=2, cooldown_seconds=0)
>>> s, out = SeriesState(), []
>>> for ts, bad in enumerate([True, True, None, True, False, True, False, False], start=1):
...     s, t = step(s, ts, bad, h)
...     if t:
...         out.append((t.state, t.ts, t.run))
>>> out
[('firing', 4, (1, 2, 4)), ('resolved', 8, (7, 8))]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from watchkeeper.alerts.model import State
from watchkeeper.alerts.policy import Hysteresis


@dataclass(frozen=True, slots=True)
class SeriesState:
    """Where one alert stands. Rebuildable: a restored state needs only ``firing`` and the times."""

    firing: bool = False
    bad_run: tuple[int, ...] = ()  # ends of the current bad windows (at most ``fire_after``)
    good_run: tuple[int, ...] = ()  # ends of the current good windows while firing
    last_ts: int | None = None  # latest signal (or restored transition) seen
    last_evidence_ts: int | None = None  # latest informative (non-None) signal
    fired_ts: int | None = None
    resolved_ts: int | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change decided at event time ``ts`` after the windows ending at ``run``."""

    state: State
    ts: int
    run: tuple[int, ...]


def step(
    state: SeriesState, ts: int, bad: bool | None, h: Hysteresis, strong: bool = False
) -> tuple[SeriesState, Transition | None]:
    """Advance one alert by one signal at event time ``ts`` (seconds).

    A ``strong`` bad signal (evidence that needs no run) fires at once, cooldown permitting.
    """
    if state.last_ts is not None and ts <= state.last_ts:
        return state, None
    if bad is None:
        return dataclasses.replace(state, last_ts=ts), None
    seen = dataclasses.replace(state, last_ts=ts, last_evidence_ts=ts)
    if not state.firing:
        if not bad:
            return dataclasses.replace(seen, bad_run=()), None
        run = (*state.bad_run, ts)[-h.fire_after :]
        cooling = state.resolved_ts is not None and ts - state.resolved_ts < h.cooldown_seconds
        if (len(run) < h.fire_after and not strong) or cooling:
            return dataclasses.replace(seen, bad_run=run), None
        fired = dataclasses.replace(seen, firing=True, bad_run=(), good_run=(), fired_ts=ts)
        return fired, Transition("firing", ts, run)
    if bad:
        return dataclasses.replace(seen, good_run=()), None
    good = (*state.good_run, ts)[-h.resolve_after :]
    if len(good) < h.resolve_after:
        return dataclasses.replace(seen, good_run=good), None
    resolved = dataclasses.replace(seen, firing=False, bad_run=(), good_run=(), resolved_ts=ts)
    return resolved, Transition("resolved", ts, good)


def force_resolve(state: SeriesState, ts: int) -> tuple[SeriesState, Transition | None]:
    """Resolve a firing alert at ``ts`` whatever its runs (auto-resolve of an alert without evidence).

    ``ts`` may precede signals without evidence already seen; it must follow the last evidence.
    """
    if not state.firing or (state.last_evidence_ts is not None and ts <= state.last_evidence_ts):
        return state, None
    last = ts if state.last_ts is None else max(ts, state.last_ts)
    resolved = dataclasses.replace(state, firing=False, bad_run=(), good_run=(), resolved_ts=ts, last_ts=last)
    return resolved, Transition("resolved", ts, ())


def restored(state: State, ts: int, fired_ts: int | None, resolved_ts: int | None) -> SeriesState:
    """The state after a recorded transition (from the ``alerts`` table): counters start afresh."""
    return SeriesState(
        firing=state == "firing", last_ts=ts, last_evidence_ts=ts, fired_ts=fired_ts, resolved_ts=resolved_ts
    )
