"""Hysteresis: fire after K bad windows, resolve after L good ones, cooldown, monotone event time."""

from __future__ import annotations

from collections.abc import Sequence

from watchkeeper.alerts.hysteresis import SeriesState, force_resolve, restored, step
from watchkeeper.alerts.policy import Hysteresis

Signals = Sequence[tuple[int, bool | None]]


def run(signals: Signals, h: Hysteresis, state: SeriesState | None = None) -> list[tuple[str, int]]:
    s = state or SeriesState()
    out: list[tuple[str, int]] = []
    for ts, bad in signals:
        s, t = step(s, ts, bad, h)
        if t:
            out.append((t.state, t.ts))
    return out


H = Hysteresis(fire_after=3, resolve_after=2, cooldown_seconds=0)


def test_fires_after_k_consecutive_bad_windows() -> None:
    assert run([(1, True), (2, True)], H) == []
    assert run([(1, True), (2, True), (3, True)], H) == [("firing", 3)]


def test_a_good_window_breaks_the_run_and_no_evidence_does_not() -> None:
    assert run([(1, True), (2, True), (3, False), (4, True), (5, True)], H) == []
    assert run([(1, True), (2, None), (3, True), (4, None), (5, True)], H) == [("firing", 5)]


def test_resolves_after_l_good_windows_and_a_bad_one_restarts_the_count() -> None:
    bad3 = [(1, True), (2, True), (3, True)]
    assert run([*bad3, (4, False), (5, True), (6, False), (7, False)], H) == [("firing", 3), ("resolved", 7)]


def test_firing_is_reported_once_however_long_it_lasts() -> None:
    assert run([(t, True) for t in range(1, 50)], H) == [("firing", 3)]


def test_cooldown_holds_a_refire_back_until_it_has_passed() -> None:
    h = Hysteresis(fire_after=1, resolve_after=1, cooldown_seconds=10)
    sig = [(1, True), (2, False), (5, True), (8, True), (12, True)]
    # Resolved at 2; bad again at 5 and 8 (within 10 s): held; at 12 the cooldown is over.
    assert run(sig, h) == [("firing", 1), ("resolved", 2), ("firing", 12)]


def test_signals_at_or_before_the_last_one_are_ignored() -> None:
    s, _ = step(SeriesState(), 10, True, Hysteresis(fire_after=2))
    s2, t = step(s, 10, True, Hysteresis(fire_after=2))
    assert t is None and s2 == s
    s3, t = step(s, 9, True, Hysteresis(fire_after=2))
    assert t is None and s3 == s


def test_a_restored_state_continues_from_the_recorded_transition() -> None:
    firing = restored("firing", 100, 100, None)
    # Re-fed windows up to the recorded one are skipped; counting restarts after it.
    assert run([(90, False), (100, False), (110, False), (120, False)], H, firing) == [("resolved", 120)]
    resolved = restored("resolved", 200, 100, 200)
    cooling = Hysteresis(fire_after=3, cooldown_seconds=60)
    assert run([(210, True), (220, True), (230, True)], cooling, resolved) == []  # cooldown until 260
    assert run([(210, True), (220, True), (270, True)], cooling, resolved) == [("firing", 270)]


def test_force_resolve_needs_a_firing_state_and_a_later_time() -> None:
    s = run_state([(1, True)], Hysteresis(fire_after=1))
    assert force_resolve(SeriesState(), 5) == (SeriesState(), None)
    assert force_resolve(s, 1)[1] is None
    new, t = force_resolve(s, 5)
    assert t is not None and t.state == "resolved" and not new.firing and new.resolved_ts == 5


def run_state(signals: Signals, h: Hysteresis) -> SeriesState:
    s = SeriesState()
    for ts, bad in signals:
        s, _ = step(s, ts, bad, h)
    return s
