"""Alarms carried across the window boundary (windows/carry.py): what the test reads, its level, its reads."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import numpy as np

from tests.unit.test_partial_looks import EventStore
from watchkeeper.detectors import DriftConfig
from watchkeeper.windows.carry import Carry
from watchkeeper.windows.config import WindowConfig, WindowKey
from watchkeeper.windows.partial import CARRIED, CARRY_WINDOWS, LOOK_MIN_AFTER, MAX_LOOKS, PartialLooks
from watchkeeper.windows.sample import Sample, build_reference

W = 300
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def stage(times: np.ndarray, x: np.ndarray, alpha: float = 0.001) -> SimpleNamespace:
    """A drift stage of events in memory (one event a second), its reference N(0, 1) before t = 0."""
    ref_x = np.random.default_rng(0).normal(size=(1000, 3))
    ref = build_reference(Sample(1000, {f"f{j}": ref_x[:, j] for j in range(3)}, {}), -W, 0)
    drift = SimpleNamespace(store=EventStore(times, x), window=WindowConfig(window_seconds=W),
                            config=DriftConfig(alpha=alpha), reference_for=lambda key: ref)  # fmt: skip
    drift.carry = Carry(drift)  # type: ignore[arg-type]
    return drift


def alarm_row(feature: str, t: float) -> dict[str, Any]:
    return {"feature": feature, "detector": "mean_shift", "drifted": 1, "ts": t}


def shifted(shift_at: float, size: float, seed: int = 1, n: int = 3 * W) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    times = np.arange(n) + 0.5
    x = rng.normal(size=(n, 3))
    x[times >= shift_at, 1] += size
    return times, x


def window(times: np.ndarray, x: np.ndarray, start: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    mine = (times >= start) & (times < start + W)
    return np.round(times[mine] * 1000).astype(np.int64), {f"f{j}": x[mine, j] for j in range(3)}


def close(drift: SimpleNamespace, times: np.ndarray, x: np.ndarray, keys: list[WindowKey],
          own: dict[WindowKey, list[dict[str, Any]]]) -> list[dict[str, Any]]:  # fmt: skip
    """The drift stage's close of ``keys`` (one round, in order): the carried rows of each."""
    carry = drift.carry
    carry.seeded.update((k.model, k.version) for k in keys)  # nothing stored before
    carry.prepare(keys)
    out = []
    for k in keys:
        t, num = window(times, x, k.start)
        out += carry.rows(k, t, num, own.get(k, []), NOW)
    return out


def test_an_alarm_with_too_few_events_after_it_is_judged_in_the_next_window_once_150_came() -> None:
    """An alarm 10 s before its window's end (10 events after it): carried, judged at the next window's end
    on the 310 events after it, at the test's own level; then carried no more."""
    times, x = shifted(shift_at=280, size=0.7)
    drift = stage(times, x)
    w0, w1, w2 = (WindowKey("m", "v1", s) for s in (0, W, 2 * W))
    rows = close(drift, times, x, [w0, w1, w2], {w0: [alarm_row("f1", 290.0)]})
    assert [(r["window_start"].timestamp(), r["feature"], r["detector"], r["drifted"]) for r in rows] == [
        (W, "f1", CARRIED, 1)
    ]
    assert rows[0]["ts"].timestamp() == 290.0  # the alarm's time: the alert's evidence, not its decision time
    assert drift.carry.pending_at(WindowKey("m", "v1", 3 * W)) == {}


def test_a_carried_alarm_waits_for_150_events_and_is_dropped_past_the_bound() -> None:
    """At 30 events a window an alarm needs 5 windows: past CARRY_WINDOWS it is left to the slow path."""
    times, x = shifted(shift_at=280, size=0.7, n=8 * W)
    keep = (np.arange(times.size) % 10) == 0  # one event in 10 s: 30 a window
    times, x = times[keep], x[keep]
    drift = stage(times, x)
    keys = [WindowKey("m", "v1", s * W) for s in range(CARRY_WINDOWS + 2)]
    rows = close(drift, times, x, keys, {keys[0]: [alarm_row("f1", 290.0)]})
    assert rows == [] and drift.carry.pending_at(WindowKey("m", "v1", (CARRY_WINDOWS + 2) * W)) == {}


def test_the_carried_test_reads_only_the_events_after_the_alarm() -> None:
    """Stable streams (an event every 2 s) with a chance excursion (3 sigma, 40 events) just before an alarm at
    the window's end: over 200 seeds the carried test confirms none (its level is 0.001), while the same test
    begun at the excursion confirms most: it is the events after the alarm that are judged."""
    carried = earlier = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        times = np.arange(0, 2 * W, 2.0) + 0.5
        x = rng.normal(size=(times.size, 3))
        x[(times >= 210) & (times < 290), 1] += 3.0  # the excursion that trips the detector
        for alarm in (290.0, 209.0):
            drift = stage(times, x)
            w0, w1 = WindowKey("m", "v1", 0), WindowKey("m", "v1", W)
            rows = close(drift, times, x, [w0, w1], {w0: [alarm_row("f1", alarm)]})
            hit = int(any(r["drifted"] for r in rows))
            carried += hit if alarm == 290.0 else 0
            earlier += hit if alarm != 290.0 else 0
    assert carried <= 1 and earlier >= 100, (carried, earlier)


def test_the_carried_alarms_of_many_versions_cost_one_read_at_the_close_and_one_for_the_looks() -> None:
    """Set-based: 30 versions with an alarm carried into their next window: the events after the alarms are read
    in one query when the windows are written, and in one when their marks are looked at; each version's
    carried alarm is decided at the first mark with 150 events after it, at the test's level over MAX_LOOKS."""
    times, x = shifted(shift_at=280, size=1.0)
    drift = stage(times, x)
    store = drift.store
    models = [f"m{i:02d}" for i in range(30)]
    for m in models:
        drift.carry.fold(WindowKey(m, "v1", 0), [alarm_row("f1", 290.0)])
    later = [WindowKey(m, "v1", W) for m in models]
    rows = close(drift, times, x, later, {})
    assert store.queries == 1 and {r["model"] for r in rows if r["drifted"]} == set(models)
    looks = PartialLooks(drift)  # type: ignore[arg-type]
    looks.closed({}, {}, drift.carry.take())
    found = looks.take()
    assert store.queries == 2
    assert {look.model for look in found} == set(models)
    # Events at 290.5 s on: the 150th after the alarm is at 439.5 s, so the first look is at the mark of 440 s.
    assert {look.mark for look in found} == {440} and all(looks.clooked[k] <= MAX_LOOKS for k in later)
    assert all(r["detector"] == CARRIED and r["ts"] == 290.0 for look in found for r in look.rows)
    assert 440 - 290 >= LOOK_MIN_AFTER
