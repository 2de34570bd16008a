"""Looks at the labels so far (windows/label_looks.py): where they fall, what they read, their level, what
the alert engine decides from them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from watchkeeper.alerts.evaluator import ModelEvaluator
from watchkeeper.alerts.policy import AlertPolicy, RetrainRule
from watchkeeper.alerts.rules import label_look_signal, look_rule, retrain_signal
from watchkeeper.alerts.window import DriftRow, Point, Window
from watchkeeper.detectors.reference import MetricBaseline
from watchkeeper.windows.config import WindowConfig, WindowKey
from watchkeeper.windows.label_looks import (
    LABEL_GROWTH,
    LABEL_LOOK_EVERY_SECONDS,
    LABEL_MIN_AFTER,
    MAX_LABEL_LOOKS,
    LabelLooks,
    label_marks,
)
from watchkeeper.windows.sequential import ErrorStream

W = 300
DELAY = 60
REF = MetricBaseline(value=0.87, n=3000, starts=(0,))


@pytest.mark.parametrize("arrived", [0.1, 19.9, 20.0, 150.5, 299.0, 331.0, 345.0, 359.9])
def test_the_marks_are_the_label_clock_marks_after_the_alarms_labels_arrived(arrived: float) -> None:
    start = 6000
    until = start + W + DELAY  # the alarm's window is final then
    marks = label_marks(start + arrived, until)
    assert marks == [m for m in range(start, until, LABEL_LOOK_EVERY_SECONDS) if m > start + arrived]


def test_each_look_splits_every_confidence_of_the_retrain_rule_over_the_looks() -> None:
    rule = RetrainRule()
    split = look_rule(rule, MAX_LABEL_LOOKS)
    for name in ("confidence", "fast_confidence", "concept_confidence"):
        assert (1 - getattr(split, name)) * MAX_LABEL_LOOKS == pytest.approx(1 - getattr(rule, name))
    assert look_rule(rule, 1) == rule


def alarm_window(accuracy: float, n: int = 450, alarm: float = 760.4, drifted: bool = True) -> Window:
    row = DriftRow("__error__", "watchkeeper_default", 1 - accuracy, 0.0, drifted, alarm)
    return Window("v1", 600, 900, {"accuracy": Point(accuracy, n)}, drift=(row,), final=False)


def test_a_look_confirms_a_material_drop_after_an_alarm_and_nothing_else() -> None:
    s = label_look_signal("m", alarm_window(0.73), REF, RetrainRule(), MAX_LABEL_LOOKS, 800)
    assert s is not None and s.bad and s.strong and s.kind == "retrain"
    assert s.ts == 761  # the alarm: the evidence's time
    assert s.evidence["labels_until"] == "1970-01-01T00:13:20Z" and s.evidence["looks"] == MAX_LABEL_LOOKS
    assert "labels so far" in s.summary
    assert label_look_signal("m", alarm_window(0.86), REF, RetrainRule(), MAX_LABEL_LOOKS, 800) is None
    assert label_look_signal("m", alarm_window(0.73, drifted=False), REF, RetrainRule(), MAX_LABEL_LOOKS, 800) is None
    assert label_look_signal("m", alarm_window(0.73), None, RetrainRule(), MAX_LABEL_LOOKS, 800) is None
    assert label_look_signal("m", alarm_window(0.73, n=50), REF, RetrainRule(), MAX_LABEL_LOOKS, 800) is None


def test_a_drop_the_whole_window_level_would_confirm_is_not_confirmed_by_a_look_at_its_share() -> None:
    """Between the rule's level and a look's (its error divided by the looks) a drop is not confirmed."""
    rule, share = RetrainRule(), look_rule(RetrainRule(), MAX_LABEL_LOOKS)
    between = [a for a in np.arange(0.700, 0.870, 0.001)
               if retrain_signal("m", alarm_window(a), REF, (), rule).strong
               and not retrain_signal("m", alarm_window(a), REF, (), share).strong]  # fmt: skip
    assert between, "no accuracy separates the two levels"
    for a in between:
        assert label_look_signal("m", alarm_window(a), REF, rule, MAX_LABEL_LOOKS, 800) is None


class LabelStore:
    """Answers the looks' queries from labelled predictions in memory: (prediction time, error, label time), the
    same for every version it is asked about."""

    def __init__(self, t: np.ndarray, err: np.ndarray, label_after: float | np.ndarray = 20.0) -> None:
        self.t, self.err, self.arrived = t, err, t + label_after
        self.reads: list[tuple[str, float]] = []  # (query, until)
        self.statements = 0
        self.rows_read = 0

    def query_rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        self.statements += 1
        out: list[tuple[Any, ...]] = []
        if "untils" in params:  # the errors so far of every version of the pass
            for i, (model, version) in enumerate(params["mv"]):
                until = params["untils"][i] / 1000
                self.reads.append(("errors", until))
                sel = np.flatnonzero((self.t * 1000 >= params["t0s"][i]) & (self.t < until) & (self.arrived < until))
                t_ms, at_ms = np.round(self.t[sel] * 1000).astype(np.int64), np.round(self.arrived[sel] * 1000)
                after_t, after_id = params["after_t"][i], params["after_id"][i]
                pids = [f"p{j:08d}" for j in sel]
                fresh = (t_ms > after_t) | ((t_ms == after_t) & np.array([p > after_id for p in pids], dtype=bool))
                redo = bool(np.any(~fresh & (at_ms >= params["since_ms"][i])))
                mine = [(model, version, int(t_ms[k]), pids[k], int(self.t[j] // W) * W, int(self.err[j]),
                         int(at_ms[k]), int(redo)) for k, j in enumerate(sel) if redo or fresh[k]]  # fmt: skip
                self.rows_read += len(mine)
                out += mine
            return out
        # The labels after each version's alarm before its mark: (predicted class, label, arrival), an error being
        # a positive prediction of a negative label.
        for i, (model, version) in enumerate(params["mv"]):
            until = params["until"][i] / 1000
            self.reads.append(("labels", until))
            sel = np.flatnonzero((self.t * 1000 > params["after"][i]) & (self.arrived < until))
            out += [(model, version, round(self.t[j] * 1000), f"p{j:08d}", int(self.err[j]), 0,
                     round(self.arrived[j] * 1000)) for j in sel]  # fmt: skip
        return out


def looks_over(store: LabelStore, detector: Any = None, versions: tuple[str, ...] = ("v1",)) -> LabelLooks:
    from watchkeeper.detectors import build

    sequential: Any = type("Seq", (), {"error_streams": {}})()
    for version in versions:
        sequential.error_streams[("m", version)] = ErrorStream(detector or build("watchkeeper_default"), -W)
    return LabelLooks(store, WindowConfig(window_seconds=W, label_delay_seconds=DELAY), sequential)  # type: ignore[arg-type]


def concept(change: float, seed: int = 4, rate: int = 10) -> LabelStore:
    rng = np.random.default_rng(seed)
    t = np.arange(3 * W * rate) / rate
    err = (rng.uniform(size=t.size) < np.where(t < change, 0.13, 0.27)).astype(np.int8)
    return LabelStore(t, err)


def after_alarm(alarm: float, mark: int, rate: int = 10, label_after: float = 20.0) -> int:
    """Labels of the predictions after ``alarm`` (one every 1/rate s) that arrived before ``mark``."""
    return max(0, math.ceil((mark - label_after) * rate) - (math.floor(alarm * rate) + 1))


def expected_looks(alarm: float, marks: list[int]) -> list[int]:
    """The looks among ``marks``: the first with LABEL_MIN_AFTER labels after the alarm, each next one with
    LABEL_GROWTH times the labels of the one before, MAX_LABEL_LOOKS in all."""
    out: list[int] = []
    need = LABEL_MIN_AFTER
    for m in marks:
        if len(out) < MAX_LABEL_LOOKS and after_alarm(alarm, m) >= need:
            out.append(m)
            need = math.ceil(after_alarm(alarm, m) * LABEL_GROWTH)
    return out


def test_an_alarm_is_looked_at_on_the_labels_after_it_at_the_first_marks_with_enough_of_them() -> None:
    store = concept(change=450.0)
    looks = looks_over(store)
    for mark in range(0, 3 * W, 20):  # a pass every 20 s of event time, the watermark at the pass
        looks.open({("m", "v1"): 0}, {"m": mark})
    found = looks.take()
    assert found, "no look after a concept change"
    first = found[0]
    assert first.start == 300 and first.end == 600 and 450 <= first.alarm < first.mark - 20
    # The looks are the first marks with enough labels of predictions after the alarm (a mark with fewer is
    # passed over), and each reads those labels only: none from before the change.
    candidates = [m for m in range(0, 3 * W, 20) if m > first.alarm + 20]
    assert [x.mark for x in found if x.alarm == first.alarm] == expected_looks(first.alarm, candidates)
    for look in found[:MAX_LABEL_LOOKS]:
        assert {m: n for m, _, n in look.metrics}["labelled"] == after_alarm(look.alarm, look.mark)
    assert all(until <= 3 * W for _, until in store.reads)
    # Each mark once per version; a pass again reads nothing new.
    marks = [look.mark for look in found]
    assert len(marks) == len(set(marks))
    reads = len(store.reads)
    looks.open({("m", "v1"): 0}, {"m": 3 * W - 1})
    assert len(store.reads) == reads and looks.take() == []


def test_a_look_reads_no_label_of_a_prediction_before_its_alarm() -> None:
    """Labels before the alarm (those that tripped it) would make a chance alarm confirm itself: with every
    prediction before the alarm wrong and every one after it right, the looks see no error."""
    t = np.arange(2 * W * 10) / 10
    err = (t <= 471.3).astype(np.int8)
    looks = looks_over(LabelStore(t, err))
    looks.closed({WindowKey("m", "v1", 300): [(471.3, 491.3)]}, {"m": 10_000.0})
    found = looks.take()
    assert len(found) == MAX_LABEL_LOOKS and all(look.error_rate == 0.0 for look in found)


def test_a_pass_reads_the_labels_of_every_version_in_a_fixed_number_of_statements() -> None:
    """A fleet of versions with windows not final: each pass costs one statement for their labels so far, and
    one for the looks due (of every version), however many versions — and each version finds the looks it
    finds alone."""
    versions = tuple(f"v{i}" for i in range(12))
    alone_store, fleet_store = concept(change=450.0), concept(change=450.0)
    alone, fleet = looks_over(alone_store), looks_over(fleet_store, versions=versions)
    per_pass = []
    for mark in range(0, 3 * W, 20):
        alone.open({("m", "v1"): 0}, {"m": mark})
        before = fleet_store.statements
        fleet.open({("m", v): 0 for v in versions}, {"m": mark})
        per_pass.append(fleet_store.statements - before)
    assert max(per_pass) == 2 and per_pass.count(2) >= MAX_LABEL_LOOKS  # the passes with looks due
    mine = [(x.mark, x.alarm, x.metrics) for x in alone.take()]
    found = fleet.take()
    assert mine and all([(x.mark, x.alarm, x.metrics) for x in found if x.version == v] == mine for v in versions)


@pytest.mark.parametrize("in_order", [True, False])
def test_a_copy_read_pass_by_pass_finds_the_looks_a_copy_read_at_once_finds(in_order: bool) -> None:
    """Each pass reads only the labels that are new, or reads again from the stream's state when a label
    arrived for a prediction already passed: the looks are those of a copy read whole at every pass."""
    rng = np.random.default_rng(5)
    t = np.arange(2 * W * 10) / 10
    err = (rng.uniform(size=t.size) < np.where(t < 400, 0.13, 0.27)).astype(np.int8)
    after = 20.0 if in_order else rng.uniform(5, 40, size=t.size)
    full_reads, new_reads = LabelStore(t, err, after), LabelStore(t, err, after)
    full, incremental = looks_over(full_reads), looks_over(new_reads)
    for mark in range(0, 2 * W + 1, 20):
        full.copies.clear()  # read whole
        full.open({("m", "v1"): 0}, {"m": mark})
        incremental.open({("m", "v1"): 0}, {"m": mark})
    assert full.done[("m", "v1")] and full.done == incremental.done
    assert [(x.mark, x.alarm) for x in full.take()] == [(x.mark, x.alarm) for x in incremental.take()]
    if in_order:  # each label read once
        assert new_reads.rows_read == int(np.sum(t + after < 2 * W))
    else:
        assert new_reads.rows_read > int(np.sum(t + after < 2 * W))


def test_the_alarms_of_a_window_fed_to_the_stream_are_looked_at_up_to_the_watermark() -> None:
    """A replay: the window is final before any pass looked at it; its alarm's looks are made then, each at
    the mark it would have had live (one statement for all of them), and not again."""
    store = concept(change=450.0)
    looks = looks_over(store)
    looks.closed({WindowKey("m", "v1", 300): [(471.3, 491.3)]}, {"m": 10_000.0})
    found = looks.take()
    assert [look.mark for look in found] == expected_looks(471.3, label_marks(491.3, 600 + DELAY))
    assert found[0].mark > label_marks(491.3, 600 + DELAY)[0]  # the first mark came too soon after the alarm
    assert store.statements == 1
    looks.closed({WindowKey("m", "v1", 300): [(471.3, 491.3)]}, {"m": 10_000.0})
    assert looks.take() == [] and store.statements == 1


def label_look(alarm: float = 761.2, accuracy: float = 0.72) -> tuple[int, int, Window]:
    return (800, MAX_LABEL_LOOKS, alarm_window(accuracy, alarm=alarm))


def evaluator(policy: AlertPolicy | None = None) -> ModelEvaluator:
    return ModelEvaluator("m", policy or AlertPolicy(), window_seconds=W, label_delay=DELAY, grace=10)


def test_a_confirmed_label_look_is_decided_at_its_mark_with_the_alarm_as_evidence() -> None:
    ev = evaluator()
    [d] = ev.feed([], label_early=[label_look()], references={"v1": REF}, watermark=800)
    assert (d.kind, d.state, d.ts, d.evidence_ts) == ("retrain", "firing", 800, 762)
    assert d.evidence["labels_until"] == "1970-01-01T00:13:20Z"
    # The final window (its end plus the label delay) does not decide it again.
    whole = Window("v1", 600, 900, {"accuracy": Point(0.74, 3000), "predictions": Point(3000, 3000)},
                   drift=(DriftRow("__error__", "watchkeeper_default", 0.26, 0.0, True, 761.2),))  # fmt: skip
    assert [d for d in ev.feed([whole], references={"v1": REF}, watermark=960) if d.kind == "retrain"] == []


def test_a_label_look_is_not_decided_unconfirmed_disabled_without_reference_or_after_its_final_window() -> None:
    assert evaluator().feed([], label_early=[label_look(accuracy=0.86)], references={"v1": REF}) == []
    assert evaluator().feed([], label_early=[label_look()]) == []  # no reference yet
    off = AlertPolicy(retrain=RetrainRule(fast_path=False))
    assert evaluator(off).feed([], label_early=[label_look()], references={"v1": REF}) == []
    ev = evaluator()
    final = Window("v1", 600, 900, {"accuracy": Point(0.86, 3000), "predictions": Point(3000, 3000)})
    ev.feed([final], references={"v1": REF}, watermark=960)
    assert [d for d in ev.feed([], label_early=[label_look()], references={"v1": REF}) if d.kind == "retrain"] == []


def test_a_label_look_is_merged_in_event_time_before_the_label_based_decisions_after_its_mark() -> None:
    """Fed with the alarm's final window in one call (a replay), the look still decides at its mark."""
    ev = evaluator()
    whole = Window("v1", 600, 900, {"accuracy": Point(0.74, 3000), "predictions": Point(3000, 3000)},
                   drift=(DriftRow("__error__", "watchkeeper_default", 0.26, 0.0, True, 761.2),))  # fmt: skip
    out = ev.feed([whole], label_early=[label_look()], references={"v1": REF}, watermark=960)
    assert [(d.kind, d.ts) for d in out if d.kind == "retrain"] == [("retrain", 800)]


class ErrorRows:
    """Answers the error stream's query (``windows/sequential.py`` ERRORS) from rows in memory."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def query_rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        due = {ws for _, _, ws in params["due"]}
        return [r for r in self.rows if r[2] in due]


def test_the_stream_dates_an_alarm_after_every_label_it_was_fed_before_it() -> None:
    """An alarm early in a window is dated (``arrived``) no earlier than the last label of the window fed before
    it, though its own labels came sooner: the detector's state behind the alarm had read that label."""
    from datetime import UTC, datetime

    from watchkeeper.windows.sequential import SequentialDrift

    rng = np.random.default_rng(6)
    rows = []
    for i in range(2 * W * 10):
        t = i / 10
        err = int(rng.uniform() < (0.13 if t < W else 0.6))
        late = 400.0 if i == W * 10 - 1 else t + 20  # the first window's last label came late
        rows.append(("m", "v1", int(t // W) * W, round(t * 1000), err, round(late * 1000)))
    seq = SequentialDrift(ErrorRows(rows), WindowConfig(window_seconds=W))  # type: ignore[arg-type]
    now = datetime.now(UTC)
    seq.error_rows([WindowKey("m", "v1", 0)], now)
    seq.error_rows([WindowKey("m", "v1", W)], now)
    alarms = seq.take_error_alarms()[WindowKey("m", "v1", W)]
    alarm, arrived = alarms[0]
    assert W <= alarm < 380 and arrived == 400.0
    assert all(at >= max(al + 20, 400.0) for al, at in alarms)
