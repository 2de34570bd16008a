"""Looks at a window so far (windows/partial.py): where they fall, their level, and what they confirm."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from watchkeeper.alerts.evaluator import ModelEvaluator
from watchkeeper.alerts.policy import AlertPolicy, DriftRule
from watchkeeper.alerts.window import DriftRow, Point, Window
from watchkeeper.detectors import DriftConfig
from watchkeeper.windows.carry import Carry
from watchkeeper.windows.config import WindowConfig, WindowKey
from watchkeeper.windows.partial import (
    AFTER_ALARM,
    LOOK_EVERY_SECONDS,
    LOOK_MIN_AFTER,
    LOOK_MIN_EVENTS,
    LOOK_SPAN_SECONDS,
    MAX_LOOKS,
    PartialLooks,
    look_alpha,
    look_marks,
)
from watchkeeper.windows.sample import Sample, build_reference

W = 300


@pytest.mark.parametrize("alarm", [0.1, 19.9, 20.0, 150.5, 239.0, 261.0, 299.0])
def test_the_looks_are_the_first_marks_after_the_alarm_on_the_event_time_grid(alarm: float) -> None:
    start = 6000
    marks = look_marks(start, start + W, start + alarm)
    grid = [m for m in range(start, start + W, LOOK_EVERY_SECONDS) if m > start + alarm]
    assert marks == grid[:MAX_LOOKS]
    assert all(start + alarm < m < start + W for m in marks)


def test_the_looks_split_the_window_tests_level_bonferroni() -> None:
    alpha = 0.001
    assert look_alpha(alpha) * MAX_LOOKS == pytest.approx(alpha)
    assert look_alpha(alpha, 5) == pytest.approx(alpha / 5)


def map_array(rows: list[dict[str, float]], value_type: pa.DataType) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array([list(r.items()) for r in rows], pa.map_(pa.string(), value_type))])


class EventStore:
    """Answers the looks' query from events (time, features) in memory: each window's in ``[lo, hi)``."""

    def __init__(self, times: np.ndarray, x: np.ndarray) -> None:
        self.times, self.x = times, x
        self.reads: list[tuple[float, float]] = []  # each window's range read (s)
        self.queries = 0

    def query_arrow(self, sql: str, params: dict[str, Any]) -> pa.Table:
        self.queries += 1
        parts = []
        for (model, version, ws), lo, hi in zip(params["due"], params["lo"], params["hi"], strict=True):
            t0, t1 = lo / 1000, hi / 1000
            self.reads.append((t0, t1))
            sel = np.flatnonzero((self.times >= t0) & (self.times < t1))[: params["cap"]]
            rows = [{f"f{j}": float(v[j]) for j in range(self.x.shape[1])} for v in self.x[sel]]
            parts.append(pa.table({
                "model": pa.array([model] * len(rows), pa.string()),
                "version": pa.array([version] * len(rows), pa.string()),
                "ws": pa.array([ws] * len(rows), pa.uint32()),
                "t": pa.array(np.round(self.times[sel] * 1000).astype(np.int64)),
                "features": map_array(rows, pa.float64()),
                "features_cat": map_array([{} for _ in rows], pa.string()),
                "prediction": pa.array(np.full(len(rows), 0.5)),
            }))  # fmt: skip
        return pa.concat_tables(parts)


def looks_over(x: np.ndarray, times: np.ndarray, alpha: float = 0.001) -> tuple[PartialLooks, EventStore]:
    rng = np.random.default_rng(0)
    ref_x = rng.normal(size=(1000, 3))
    ref = build_reference(Sample(1000, {f"f{j}": ref_x[:, j] for j in range(3)}, {}), -W, 0)
    store = EventStore(times, x)
    drift = SimpleNamespace(store=store, window=WindowConfig(window_seconds=W), config=DriftConfig(alpha=alpha),
                            reference_for=lambda key: ref)  # fmt: skip
    drift.carry = Carry(drift)  # type: ignore[arg-type]
    return PartialLooks(drift), store  # type: ignore[arg-type]


def window_events(shift_at: float, size: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    times = np.arange(W * 10) / 10
    x = rng.normal(size=(times.size, 3))
    x[times >= shift_at, 1] += size
    return times, x


def test_a_look_reads_the_span_before_its_mark_and_confirms_the_alarmed_feature_once() -> None:
    times, x = window_events(shift_at=150, size=0.5)
    looks, store = looks_over(x, times)
    looks.closed({WindowKey("m", "v1", 0): {"f1": 161.3}}, {})
    [look] = looks.take()
    assert look.mark in look_marks(0, W, 161.3, k=W // LOOK_EVERY_SECONDS)
    # One read for every mark: the window's events after the alarm, before its last mark.
    assert store.reads == [(161.301, look_marks(0, W, 161.3, k=30)[-1])]
    # The first mark with LOOK_MIN_AFTER events after the alarm (0.5 sigma since 150 s: confirmed there).
    assert look.mark == 180
    features = {r["feature"] for r in look.rows}
    assert features == {"f1"}
    assert {r["detector"] for r in look.rows} == {AFTER_ALARM, "mean_shift"}
    assert [r["ts"] for r in look.rows if r["detector"] == "mean_shift"] == [161.3]
    looks.closed({WindowKey("m", "v1", 0): {"f1": 161.3}}, {})  # the same window again: no new look
    assert looks.take() == []


def test_a_stable_window_with_a_chance_alarm_is_not_confirmed_and_gets_at_most_max_looks() -> None:
    times, x = window_events(shift_at=1e9, size=0.0)
    looks, store = looks_over(x, times)
    key = WindowKey("m", "v1", 0)
    looks.closed({key: {"f1": 100.0}}, {})
    assert looks.take() == []
    # The mark at 110 s has 99 events after the alarm: passed over; then three looks, and no more.
    assert sorted(looks.done[key]) == [110, 120, 130, 140]
    assert looks.looked[key] == MAX_LOOKS and len(store.reads) == 1


def test_the_excursion_before_the_alarm_is_not_what_a_look_tests() -> None:
    """A chance run of high values trips the per-event detector, then the stream is as before: the
    look reads only the events after the alarm, which are stable, and does not confirm it (a look that
    read the last 45 s, the excursion included, did)."""
    times, x = window_events(shift_at=1e9, size=0.0, seed=3)
    x[(times >= 130) & (times < 150), 1] += 1.5  # the excursion, 20 s before the alarm
    looks, store = looks_over(x, times)
    looks.closed({WindowKey("m", "v1", 0): {"f1": 150.0}}, {})
    assert looks.take() == []
    assert store.reads and all(t0 > 150 for t0, _ in store.reads)


@pytest.mark.parametrize("rate", [10, 1])
def test_each_look_tests_its_span_at_the_window_tests_alpha_over_max_looks(
    monkeypatch: pytest.MonkeyPatch, rate: int
) -> None:
    """At alpha / MAX_LOOKS, on the events after the alarm: of those, the last LOOK_SPAN_SECONDS before the
    mark, or the last LOOK_MIN_EVENTS if those are more (a slow stream); a mark with fewer than
    LOOK_MIN_AFTER events after the alarm is no look."""
    import watchkeeper.windows.partial as partial

    seen: list[tuple[float, int]] = []  # (level, events tested) of each look
    real = partial.drift_report

    def spy(ref: Any, cur: Any, kinds: Any, config: DriftConfig) -> Any:
        seen.append((config.alpha, int(sum(cur["f0"]))))
        return real(ref, cur, kinds, config)

    monkeypatch.setattr(partial, "drift_report", spy)
    rng = np.random.default_rng(2)
    times = np.arange(W * rate) / rate
    looks, _ = looks_over(rng.normal(size=(times.size, 3)), times, alpha=0.003)
    looks.closed({WindowKey("m", "v1", 0): {"f1": 100.0}}, {})
    looks.run()
    after = [int(np.sum((times > 100.0) & (times < m))) for m in look_marks(0, W, 100.0, k=W)]
    expected = [min(n, max(int(LOOK_SPAN_SECONDS * rate), LOOK_MIN_EVENTS)) for n in after if n >= LOOK_MIN_AFTER]
    assert seen == [(pytest.approx(0.003 / MAX_LOOKS), n) for n in expected[:MAX_LOOKS]]
    assert len(seen) == MAX_LOOKS  # at 1 event/s from 260 s, the first mark with 150 events after the alarm


def test_a_window_flushed_before_its_end_is_looked_at_only_up_to_the_watermark() -> None:
    """The stream went idle at 185 s: the marks after it are not judged (a look there would be dated
    after the stream's last event)."""
    times, x = window_events(shift_at=1e9, size=0.0)
    looks, store = looks_over(x[times < 185], times[times < 185])
    looks.closed({WindowKey("m", "v1", 0): {"f1": 150.0}}, {"m": 184.9})
    looks.run()
    assert store.reads == [(150.001, 180)]


def early_window(alarm: float, drifted: bool = True) -> Window:
    rows = (DriftRow("f1", AFTER_ALARM, 0.2, 0.001, drifted), DriftRow("f1", "mean_shift", 0.2, 0.001, True, alarm))
    return Window("v1", 600, 900, drift=rows)


def whole_window(alarm: float) -> Window:
    rows = (DriftRow("f1", "ks", 0.3, 0.001, True), DriftRow("f1", "mean_shift", 30.0, 28.3, True, alarm))
    return Window("v1", 600, 900, {"predictions": Point(3000, 3000)}, drift=rows)


def evaluator(policy: AlertPolicy | None = None) -> ModelEvaluator:
    return ModelEvaluator("m", policy or AlertPolicy(), window_seconds=W, label_delay=60, grace=10)


def test_a_confirmed_look_is_decided_at_its_mark_and_the_window_end_does_not_decide_it_again() -> None:
    ev = evaluator()
    [d] = ev.feed([], early=[(780, early_window(761.2))], watermark=780)
    assert (d.kind, d.state, d.ts, d.evidence_ts) == ("drift", "firing", 780, 762)
    assert d.evidence["partial_window_until"].startswith("1970-01-01T00:13:00")
    assert ev.feed([whole_window(761.2)], watermark=910) == []  # already firing: no second decision


def test_a_look_is_merged_in_event_time_with_the_windows_of_the_same_feed() -> None:
    ev = evaluator()
    before = Window("v1", 300, 600, {"predictions": Point(3000, 3000)})
    out = ev.feed([whole_window(761.2), before], early=[(780, early_window(761.2))], watermark=910)
    assert [(d.kind, d.ts) for d in out if d.kind == "drift"] == [("drift", 780)]


def test_a_look_is_not_decided_when_unconfirmed_disabled_or_its_window_was_judged_whole() -> None:
    assert evaluator().feed([], early=[(780, early_window(761.2, drifted=False))]) == []
    off = AlertPolicy(drift=DriftRule(fast_path=False))
    assert evaluator(off).feed([], early=[(780, early_window(761.2))]) == []
    other = AlertPolicy(drift=DriftRule(sequential_detectors=("page_hinkley",)))
    assert evaluator(other).feed([], early=[(780, early_window(761.2))]) == []
    ev = evaluator()
    ev.feed([Window("v1", 600, 900, {"predictions": Point(3000, 3000)})], watermark=910)
    assert ev.feed([], early=[(780, early_window(761.2))]) == []


def test_a_pass_reads_the_events_of_every_armed_window_in_one_query() -> None:
    """Set-based: the looks at 40 windows with an alarm (40 models) cost one query, not one per window, and
    each window's looks are those it gets when judged alone."""
    times, x = window_events(shift_at=150, size=0.5)
    looks, store = looks_over(x, times)
    keys = [WindowKey(f"m{i:02d}", "v1", 0) for i in range(40)]
    looks.closed({k: {"f1": 161.3 if i % 2 else 100.0} for i, k in enumerate(keys)}, {})
    found = looks.take()
    assert store.queries == 1 and len(store.reads) == len(keys)
    # An alarm at 161.3 s, after the shift at 150 s, is confirmed; one at 100 s gets its three looks before it.
    assert {look.model for look in found} == {k.model for i, k in enumerate(keys) if i % 2}
    assert all(looks.looked[k] == (1 if i % 2 else MAX_LOOKS) for i, k in enumerate(keys))
    for i, key in enumerate(keys[:4]):
        alone, _ = looks_over(x, times)
        alone.closed({key: {"f1": 161.3 if i % 2 else 100.0}}, {})
        assert [look for look in found if look.model == key.model] == alone.take()


def test_the_open_windows_alarms_are_found_in_one_query_and_their_looks_in_one_more() -> None:
    """Windows not written yet: one query reads every window's events so far (their alarms, on a copy of each
    version's detector), one more the events after the alarms for the looks, however many windows."""
    from watchkeeper.detectors.presets import covariate_shift
    from watchkeeper.windows.sequential import ErrorStream

    times, x = window_events(shift_at=30, size=2.0)
    looks, store = looks_over(x, times)
    streams = {}
    for i in range(25):
        det = covariate_shift()
        det.update_many(np.random.default_rng(i).normal(size=(1000, 3)))  # learns the stable stream
        streams[(f"m{i:02d}", "v1")] = ErrorStream(det, -W, ("f0", "f1", "f2"))
    looks.drift.sequential = SimpleNamespace(shift_streams=streams)  # type: ignore[attr-defined]
    looks.open({WindowKey(m, v, 0): 100.0 for m, v in streams})
    looks.run()
    assert store.queries == 2
    found = looks.take()
    assert {look.model for look in found} == {m for m, _ in streams}
    assert all(look.mark <= 100 and {r["feature"] for r in look.rows} == {"f1"} for look in found)
    looks.open({WindowKey(m, v, 0): 105.0 for m, v in streams})  # no new mark reached: nothing read
    assert looks.take() == [] and store.queries == 2
