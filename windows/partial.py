"""Looks at a window before it ends: a per-event drift alarm judged on the window's events after it.

The drift rule's fast path confirms a ``mean_shift`` alarm with a window test of the window's events
after the alarm (``alerts/rules.py``: a drift row of detector ``AFTER_ALARM``); waiting for the window's
end made a change mid-window wait up to a window length. Here, once the per-event detector has alarmed
on a window's events, the window is judged at fixed event-time marks, multiples of
``LOOK_EVERY_SECONDS`` (counted from the window's start) after the alarm and before the window's end. A
look at mark ``m`` runs the drift stage's window test against the reference on the window's events
**after the alarm** and before ``m`` — of those, the last ``LOOK_SPAN_SECONDS``, or the last
``LOOK_MIN_EVENTS`` if those are more — at level ``alpha / MAX_LOOKS`` (Bonferroni over the looks). A
mark with fewer than ``LOOK_MIN_AFTER`` such events is passed over (it is not a look); a window gets at
most ``MAX_LOOKS`` looks. An alarmed feature a look flags is a :class:`Look`, which the alert engine
decides at ``m`` (the event-time watermark at the look). At the window's end the alarm is judged once
more, at the test's own level, on all the window's events after it (:func:`confirm_after_alarm`, the
``after_alarm`` rows the drift stage writes), when at least ``LOOK_MIN_AFTER`` came. With fewer, the
alarm is carried into the next windows of its version (at most ``CARRY_WINDOWS``, ``windows/carry.py``):
their looks and their end judge it the same way on the events after it across the window boundary (the rest
of its window, then theirs), once ``LOOK_MIN_AFTER`` of them came (``carried_alarm`` rows, :class:`Look`
rows of detector :data:`CARRIED`); an alarm the bound passes undecided is left to the slow path (the same
feature in several windows in a row). The test of the whole window never confirms an alarm: it holds the
chance excursion that tripped the alarm, and ``bench/looks.py`` measured it confirming chance alarms at 0.5
a model-month on models of 20 features at 1 event/s.

How a look keeps the confirmation's level: a window is looked at only after a per-event alarm on
its events, at most ``MAX_LOOKS`` times, each at ``alpha / MAX_LOOKS``: by the union bound its
looks confirm an alarm with probability at most ``alpha``, provided each look's test is
independent of the alarm. That is why a look reads only the events after the alarm (after the
latest alarm of the features it may confirm): on a stable stream the chance excursion that
tripped the alarm lies before it, and the events after it are new draws. An earlier design read
the last 45 s before the mark, the excursion included: ``bench/looks.py`` (``make bench-looks``)
measured it confirming 7 % to 9 % of the chance alarms at 1 event/s and 0.6 % to 0.75 % at 10
events/s (against the 0.1 % of an independent test), up to 1.0 false drift decisions a model-month.
What remains shared between the alarm and the look is the reference (the detector and the window
test learn it from the same first predictions): a reference whose estimate is off makes both more
likely, as it does for the full-window test. The same bench measures the level and the delay of
this design (figures in ``bench/results/looks.json``, quoted in the README's Alerts section).
A real shift starts before its alarm, so the events after the alarm carry it whole. A carried alarm
had no look in its own window (a look needs ``LOOK_MIN_AFTER`` events after the alarm, which its window
never had) and gets its looks in the one later window where those events are reached, on the same
budget: ``MAX_LOOKS`` at ``alpha / MAX_LOOKS``, then the test at ``alpha`` when that window is written,
as an alarm judged within its window.

Where the looks fall depends on event time only: a look at ``m`` happens at the first pass
whose watermark reaches ``m`` while the window is open, or, when a pass finds the window
already ended (a replay, a backlog), when the window is written; both see the same events
before ``m`` (events arriving after the watermark passed ``m`` with an earlier time are the
exception, as for the window itself), so a replay decides the same alerts at the same times.
Windows of more than ``SHIFT_MAX_EVENTS`` events are subsampled when written: their looks
may differ between a live run and a replay.

Set-based: a pass reads the events of all the windows it looks at in one query (:data:`LOOK_EVENTS`,
each window its own range of event time; the windows a carried alarm spans are ranges of the same query),
and the events so far of all its open windows, where it looks for new alarms, in one more: two statements
at most, however many models and carried alarms.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from watchkeeper.detectors import drift_report
from watchkeeper.windows.config import WindowKey
from watchkeeper.windows.due import due_params
from watchkeeper.windows.queries import DUE, WS
from watchkeeper.windows.sample import Sample, map_columns
from watchkeeper.windows.sequential import SHIFT_DETECTOR, SHIFT_MAX_EVENTS, ErrorStream, window_runs

if TYPE_CHECKING:
    from watchkeeper.detectors import DriftConfig, DriftResult
    from watchkeeper.detectors.reference import BinnedReference
    from watchkeeper.windows.drift import DriftStage

__all__ = [
    "AFTER_ALARM",
    "CARRIED",
    "CARRY_WINDOWS",
    "LOOK_EVENTS",
    "LOOK_EVERY_SECONDS",
    "LOOK_MIN_AFTER",
    "LOOK_MIN_EVENTS",
    "LOOK_SPAN_SECONDS",
    "MAX_LOOKS",
    "Look",
    "PartialLooks",
    "confirm_after_alarm",
    "look_alpha",
    "look_marks",
    "read_events",
]

# Event time between two marks of an open window, the most looks one window gets, and the span of event
# time before a look that its window test reads (never before the alarm).
LOOK_EVERY_SECONDS = 10
MAX_LOOKS = 3
LOOK_SPAN_SECONDS = 45
# A span of fewer events is widened to the window's last this many after the alarm.
LOOK_MIN_EVENTS = 300
# A mark with fewer events after the alarm is passed over: the window test of a 0.5 sigma shift on fewer
# than ~150 events against a reference of 1,000 has little power at alpha / MAX_LOOKS, and a look spent
# there would be one less where it has.
LOOK_MIN_AFTER = 150
# The detector of a drift row that confirms a per-event alarm: the window test on the events after the alarm
# (a look's, or the window's end's: :func:`confirm_after_alarm`). The drift rule's fast path pairs an alarm
# with this row only (``alerts.policy.DriftRule.confirming_detector``), never with a test of the whole window.
AFTER_ALARM = "after_alarm"
# The drift row of an alarm carried into a later window (``windows/carry.py``): its ``ts`` is the alarm's event
# time (in an earlier window), its test the window test of the events after the alarm read across the window
# boundary. ``alerts.policy.DriftRule.carried_detector`` pairs it on its own (it holds both legs).
CARRIED = "carried_alarm"
# An alarm whose window ended with fewer than LOOK_MIN_AFTER events after it is carried into at most this many
# windows after its own: at 60 events a window (0.2 events/s) 3 windows bring 180 events after an alarm on
# the window's last event, so every alarm of a model of that traffic is decided; a slower model's alarm that
# has not had LOOK_MIN_AFTER events after it when the bound passes is left to the slow path. The bound keeps
# the state (a few alarms per version) and the reads (the events of at most 4 windows) small.
CARRY_WINDOWS = 3
# Looks kept for the alert engine at most (a closer without one, e.g. a tool's, does not grow without bound).
MAX_FOUND = 10_000

# The events of the windows a pass reads, each window its own range of event time ``[lo, hi)`` (ms), in event
# order, at most ``cap`` a window: one query for every window of the pass (the windows are the due set of
# windows/queries.py; a row finds its window's range by its position in ``due``).
LOOK_EVENTS = f"""
SELECT model, version, ws, t, features, features_cat, prediction FROM (
    SELECT model, version, {WS} AS ws, toUnixTimestamp64Milli(ts) AS t, ts, event_id, features, features_cat,
           prediction, indexOf({{due:Array(Tuple(String, String, UInt32))}}, (model, version, ws)) AS i
    FROM predictions FINAL
    WHERE {DUE})
WHERE t >= arrayElement({{lo:Array(Int64)}}, i) AND t < arrayElement({{hi:Array(Int64)}}, i)
ORDER BY model, version, ws, ts, event_id
LIMIT {{cap:UInt32}} BY model, version, ws
"""


# A window's carried alarms to judge at its marks: (reference, alarms, the window's marks, the marks to judge).
CarriedTask = tuple["BinnedReference", dict[str, tuple[float, int]], list[int], list[int]]


def read_events(drift: DriftStage, ranges: Mapping[WindowKey, tuple[int, int]]) -> dict[WindowKey, pa.Table]:
    """Each window's events in its range ``[lo, hi)`` (ms), in event order, at most ``SHIFT_MAX_EVENTS``:
    one :data:`LOOK_EVENTS` query for all of them (none for none); a window without events is left out."""
    keys = sorted(k for k, (lo, hi) in ranges.items() if lo < hi)
    if not keys:
        return {}
    params = {**due_params(drift.window, keys), "lo": [ranges[k][0] for k in keys],
              "hi": [ranges[k][1] for k in keys], "cap": SHIFT_MAX_EVENTS}  # fmt: skip
    return _per_window(drift.store.query_arrow(LOOK_EVENTS, params))


def merge_range(ranges: dict[WindowKey, tuple[int, int]], key: WindowKey, lo: int, hi: int) -> None:
    """Widen ``key``'s range in ``ranges`` to cover ``[lo, hi)`` too (one read serves both: readers filter by time).

    >>> r = {}
    >>> merge_range(r, WindowKey("m", "v", 0), 5, 9); merge_range(r, WindowKey("m", "v", 0), 2, 7); r
    {WindowKey(model='m', version='v', start=0): (2, 9)}
    """
    old = ranges.get(key)
    ranges[key] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))


def look_marks(start: int, end: int, alarm: float, every: int = LOOK_EVERY_SECONDS, k: int = MAX_LOOKS) -> list[int]:
    """The event times of the looks at a window ``[start, end)`` whose first alarm was at ``alarm``: the
    first ``k`` marks ``start + i * every`` after the alarm and before the end.

    >>> look_marks(0, 300, 150.5)
    [160, 170, 180]
    >>> look_marks(0, 300, 160.0)  # an alarm on a mark is judged at the next one
    [170, 180, 190]
    >>> look_marks(0, 300, 285.0)  # one mark left before the window's end
    [290]
    """
    first = start + (math.floor((alarm - start) / every) + 1) * every
    return list(range(first, end, every))[:k]


def look_alpha(alpha: float, k: int = MAX_LOOKS) -> float:
    """The level of each look: the window test's ``alpha`` split over the ``k`` looks (Bonferroni).

    >>> look_alpha(0.001)
    0.0003333333333333333
    """
    return alpha / k


def _after(alarms: Iterable[float]) -> float:
    """The first event time a look may read: just after the latest of ``alarms`` (its own event excluded).

    >>> _after([161.3, 150.0])
    161.301
    """
    return (round(max(alarms) * 1000) + 1) / 1000


@dataclass(frozen=True)
class Look:
    """A window judged before its end: the drift rows that confirmed an alarm on its events so far."""

    model: str
    version: str
    start: int
    end: int
    mark: int  # the look's event time: the decision time
    rows: tuple[dict[str, Any], ...]  # the alarmed features' per-event rows and window-test rows


class PartialLooks:
    """The looks at the windows of the models a closer works on (marks done, looks not yet taken).

    Set-based: :meth:`closed` and :meth:`open` queue the windows to judge; :meth:`run` (the closer calls it
    once a pass; :meth:`take` too) reads the events of every queued window in one query. :meth:`open` finds
    the alarms of the open windows with one query for all of them."""

    def __init__(self, drift: DriftStage) -> None:
        self.drift = drift
        self.done: dict[WindowKey, set[int]] = {}  # window -> marks judged (all of them once confirmed)
        self.looked: dict[WindowKey, int] = {}  # window -> looks made (marks with enough events after the alarm)
        self.made = 0  # looks made in all, for a benchmark's counts
        self.checked: dict[WindowKey, int] = {}  # open window -> the last mark its events were read up to
        self.queued: dict[WindowKey, tuple[dict[str, float], float]] = {}  # window -> (first alarms, judge before)
        # The alarms carried into a window from earlier ones (windows/carry.py), judged at its marks on their
        # events after the alarm across the window boundary; their own marks done, looks made and queue.
        self.cdone: dict[WindowKey, set[int]] = {}
        self.clooked: dict[WindowKey, int] = {}
        self.cqueued: dict[WindowKey, tuple[dict[str, tuple[float, int]], float]] = {}  # -> (carried, judge before)
        self.found: list[Look] = []

    def take(self) -> list[Look]:
        """The looks found since the last call (for the alert engine), the queued windows judged first."""
        self.run()
        out, self.found = self.found, []
        return out

    def forget(self, gone: Callable[[str], bool]) -> None:
        self.done = {k: v for k, v in self.done.items() if not gone(k.model)}
        self.looked = {k: v for k, v in self.looked.items() if not gone(k.model)}
        self.checked = {k: v for k, v in self.checked.items() if not gone(k.model)}
        self.queued = {k: v for k, v in self.queued.items() if not gone(k.model)}
        self.cdone = {k: v for k, v in self.cdone.items() if not gone(k.model)}
        self.clooked = {k: v for k, v in self.clooked.items() if not gone(k.model)}
        self.cqueued = {k: v for k, v in self.cqueued.items() if not gone(k.model)}
        self.found = [look for look in self.found if not gone(look.model)]

    def closed(
        self,
        alarms: Mapping[WindowKey, Mapping[str, float]],
        watermarks: Mapping[str, float],
        carried: Mapping[WindowKey, Mapping[str, tuple[float, int]]] | None = None,
    ) -> None:
        """Windows written in this pass, with their features' first alarm and the alarms carried into them
        (``carried``: feature -> (alarm, its window's start), ``windows/carry.py``): their looks not made yet,
        at the marks before their end that the model's watermark has reached (all of them unless the stream
        went idle before the window's end), queued for :meth:`run`."""
        w = self.drift.window.window_seconds
        carried = carried or {}
        for key in sorted(set(alarms) | set(carried)):
            end = key.start + w
            upto = min(end, math.floor(watermarks.get(key.model, end)) + 1)
            if alarms.get(key):
                self.queued[key] = (dict(alarms[key]), upto)
            if carried.get(key):
                self.cqueued[key] = (dict(carried[key]), upto)
            # Written: every mark of the window is judged; the version's earlier windows are forgotten.
            mine = (key.model, key.version)
            for old in [k for k in self.done if (k.model, k.version) == mine and k.start < key.start]:
                del self.done[old]
                self.looked.pop(old, None)
            for old in [k for k in self.cdone if (k.model, k.version) == mine and k.start < key.start]:
                del self.cdone[old]
                self.clooked.pop(old, None)
            self.checked.pop(key, None)

    def open(self, windows: Mapping[WindowKey, float]) -> None:
        """Windows not written yet, each version's detector fed up to their start, with their model's
        watermark: the alarms among their events up to the mark the watermark has reached, found with one
        query for all of them; a window with one is queued for :meth:`run`."""
        w = self.drift.window.window_seconds
        todo: dict[WindowKey, tuple[ErrorStream, int]] = {}
        for key, watermark in sorted(windows.items()):
            state = self.drift.sequential.shift_streams.get((key.model, key.version))
            if state is None or state.last_window >= key.start:
                continue
            reached = key.start + math.floor((min(watermark, key.start + w) - key.start) / LOOK_EVERY_SECONDS) * (
                LOOK_EVERY_SECONDS
            )
            if reached <= self.checked.get(key, key.start):
                continue
            self.checked[key] = reached
            todo[key] = (state, reached)
            # The alarms of earlier windows still waiting for LOOK_MIN_AFTER events after them (windows/carry.py).
            carried = self.drift.carry.pending_at(key)
            if carried:
                self.cqueued[key] = (carried, reached + 1)
        tables = read_events(
            self.drift, {key: (key.start * 1000, reached * 1000) for key, (_, reached) in todo.items()}
        )
        for key, (state, reached) in todo.items():
            table = tables.get(key)
            first = _alarms(state, table) if table is not None else {}
            if first:
                self.queued[key] = (first, reached + 1)

    def run(self) -> None:
        """Judge the queued windows' marks not judged yet (after the first alarm, before the window's bound),
        until each has had ``MAX_LOOKS`` looks or one confirms: one query reads every window's events after
        its alarms and before its last mark."""
        queued, self.queued = self.queued, {}
        w = self.drift.window.window_seconds
        tasks: dict[WindowKey, tuple[BinnedReference, dict[str, float], list[int], list[int]]] = {}
        for key, (first, upto) in sorted(queued.items()):
            ref = self.drift.reference_for(key)
            if ref is None or ref.contains(key.start):
                continue
            done = self.done.setdefault(key, set())
            marks = look_marks(key.start, key.start + w, min(first.values()), k=w // LOOK_EVERY_SECONDS)
            todo = [m for m in marks if m < upto and m not in done]
            if todo and self.looked.get(key, 0) < MAX_LOOKS:
                tasks[key] = (ref, first, marks, todo)
        ctasks = self._carried_tasks()
        reads: dict[WindowKey, tuple[int, int]] = {}
        for key, (_, first, _, todo) in tasks.items():
            merge_range(reads, key, round(_after(first.values()) * 1000), todo[-1] * 1000)
        for key, (_, carried, _, todo) in ctasks.items():
            # The events after the earliest carried alarm: the rest of its window, the windows between, and
            # this window's up to its last mark (the rows of one query; each look filters by time).
            lo = round(_after([min(a for a, _ in carried.values())]) * 1000)
            for x in range(min(ws for _, ws in carried.values()), key.start, w):
                merge_range(reads, WindowKey(key.model, key.version, x), max(lo, x * 1000), (x + w) * 1000)
            merge_range(reads, key, key.start * 1000, todo[-1] * 1000)
        tables = read_events(self.drift, reads)
        for key, (ref, first, marks, todo) in tasks.items():
            self._marks(key, ref, first, marks, todo, tables[key] if key in tables else _no_events())
        for key, (ref, carried, marks, todo) in ctasks.items():
            chain = [WindowKey(key.model, key.version, x) for x in range(min(ws for _, ws in carried.values()),
                                                                          key.start + 1, w)]  # fmt: skip
            parts = [tables[k] for k in chain if k in tables]
            events = pa.concat_tables(parts) if parts else _no_events()
            self._carried_marks(key, ref, carried, marks, todo, events)

    def _carried_tasks(self) -> dict[WindowKey, CarriedTask]:
        """The queued windows' carried alarms to judge (their marks not judged yet, before the bound), until
        ``MAX_LOOKS`` looks at a window's carried alarms or one confirms; an alarm of a window its reference
        holds is not judged (nor is it at the window's end)."""
        queued, self.cqueued = self.cqueued, {}
        w = self.drift.window.window_seconds
        out = {}
        for key, (carried, upto) in sorted(queued.items()):
            ref = self.drift.reference_for(key)
            if ref is None or ref.contains(key.start):
                continue
            mine = {f: (a, ws) for f, (a, ws) in carried.items() if not ref.contains(ws)}
            done = self.cdone.setdefault(key, set())
            marks = list(range(key.start + LOOK_EVERY_SECONDS, key.start + w, LOOK_EVERY_SECONDS))
            todo = [m for m in marks if m < upto and m not in done]
            if mine and todo and self.clooked.get(key, 0) < MAX_LOOKS:
                out[key] = (ref, mine, marks, todo)
        return out

    def _carried_marks(self, key: WindowKey, ref: BinnedReference, carried: Mapping[str, tuple[float, int]],
                       marks: list[int], todo: list[int], events: pa.Table) -> None:  # fmt: skip
        """Judge the marks ``todo`` of one window on the events after the alarms carried into it, in order: a
        mark with fewer than ``LOOK_MIN_AFTER`` of them is not a look; at most ``MAX_LOOKS`` looks."""
        w = self.drift.window.window_seconds
        done = self.cdone.setdefault(key, set())
        alarms = {f: a for f, (a, _) in carried.items()}
        for mark in todo:
            if self.clooked.get(key, 0) >= MAX_LOOKS:
                break
            done.add(mark)
            judged = self._judge(ref, events, mark, alarms, carried=True)
            if judged is None:
                continue
            self.clooked[key] = self.clooked.get(key, 0) + 1
            self.made += 1
            if judged:
                self.found.append(Look(key.model, key.version, key.start, key.start + w, mark, tuple(judged)))
                del self.found[:-MAX_FOUND]
                done.update(marks)
                return

    def _marks(self, key: WindowKey, ref: BinnedReference, first: Mapping[str, float], marks: list[int],
               todo: list[int], events: pa.Table) -> None:  # fmt: skip
        """Judge the marks ``todo`` of one window on its events after the alarm (``events``), in order."""
        w = self.drift.window.window_seconds
        done = self.done.setdefault(key, set())
        for mark in todo:
            if self.looked.get(key, 0) >= MAX_LOOKS:
                break
            done.add(mark)
            judged = self._judge(ref, events, mark, {f: t for f, t in first.items() if t < mark})
            if judged is None:  # too few events after the alarm yet: not a look
                continue
            self.looked[key] = self.looked.get(key, 0) + 1
            self.made += 1
            if judged:
                self.found.append(Look(key.model, key.version, key.start, key.start + w, mark, tuple(judged)))
                del self.found[:-MAX_FOUND]  # a closer whose looks nobody takes keeps the latest
                done.update(marks)  # decided: no more looks at this window
                return

    def _judge(
        self, ref: BinnedReference, events: pa.Table, mark: int, alarmed: Mapping[str, float], carried: bool = False
    ) -> list[dict[str, Any]] | None:
        """The window test at ``alpha / MAX_LOOKS`` on the window's events after the alarms and before
        ``mark`` (their span, see the module doc): the rows of the alarmed features it flags (none: not
        confirmed); ``None`` when fewer than ``LOOK_MIN_AFTER`` events came after the alarms (no look)."""
        if not alarmed:
            return []
        times = events["t"].to_numpy()
        # After the latest alarm among the features this look may confirm (its own event excluded).
        mine = np.flatnonzero((times >= round(_after(alarmed.values()) * 1000)) & (times < mark * 1000))
        if mine.size < LOOK_MIN_AFTER:
            return None
        span = mine[
            (times[mine] >= (mark - LOOK_SPAN_SECONDS) * 1000) | (np.arange(mine.size) >= mine.size - LOOK_MIN_EVENTS)
        ]
        sample = Sample.from_arrow(events.take(pa.array(span)))
        config = self.drift.config.model_copy(update={"alpha": look_alpha(self.drift.config.alpha)})
        results = drift_report(ref.counts, ref.current_counts(sample.numeric, sample.categorical, sample.n),
                               ref.kinds, config)  # fmt: skip
        out: list[dict[str, Any]] = []
        for r in results:
            if r.drifted and r.feature in alarmed and carried:  # one row holds both legs (windows/carry.py)
                out.append({"feature": r.feature, "detector": CARRIED, "statistic": float(r.statistic),
                            "threshold": float(r.threshold), "drifted": True, "ts": alarmed[r.feature]})  # fmt: skip
            elif r.drifted and r.feature in alarmed:
                out.append({"feature": r.feature, "detector": AFTER_ALARM, "statistic": float(r.statistic),
                            "threshold": float(r.threshold), "drifted": True, "ts": None})  # fmt: skip
                out.append({"feature": r.feature, "detector": SHIFT_DETECTOR, "statistic": float(r.statistic),
                            "threshold": float(r.threshold), "drifted": True, "ts": alarmed[r.feature]})  # fmt: skip
        return out


def _no_events() -> pa.Table:
    """The events of a window without any in its range (every mark of it is passed over). Built on use:
    ``pa.table`` imports pyarrow's pandas layer, and the worker does not load pandas."""
    return pa.table({"t": pa.array([], pa.int64())})


def _alarms(state: ErrorStream, table: pa.Table) -> dict[str, float]:
    """The features' first alarm among a window's events so far (``table``), on a copy of its detector."""
    if table.num_rows == 0:
        return {}
    times = table["t"].to_numpy()
    numeric = map_columns(table["features"], table.num_rows, np.nan, np.float64)
    missing = np.full(times.size, math.nan)
    det = copy.deepcopy(state.detector)
    det.update_many(np.column_stack([numeric.get(f, missing) for f in state.features]))
    first: dict[str, float] = {}
    for row, feature in det.alarms:
        first.setdefault(state.features[feature], float(times[row]) / 1000)
    return first


def _per_window(table: pa.Table) -> dict[WindowKey, pa.Table]:
    """The slices of a :data:`LOOK_EVENTS` result per window (its rows come grouped by window)."""
    return {key: table.slice(lo, hi - lo) for key, lo, hi in window_runs(table)}


def confirm_after_alarm(
    ref: BinnedReference,
    times: np.ndarray,
    numeric: Mapping[str, np.ndarray],
    alarms: Mapping[str, float],
    config: DriftConfig,
) -> dict[str, DriftResult]:
    """The confirmation of a window's per-event alarms at its end: each alarmed feature's window test (KS
    against ``ref``, Benjamini-Hochberg over the numeric features of ``numeric``, at ``config.alpha``) on the
    window's events after its alarm only (``times`` in ms, ``alarms`` in s). A feature with fewer than
    ``LOOK_MIN_AFTER`` events after its alarm is left out: its alarm is not confirmed, and the test of the
    whole window counts for it as an ordinary window drift row (the slow path).

    Why after the alarm: the chance excursion that trips a per-event detector on a stable stream lies before
    its alarm, and a test of the whole window reads it too (``bench/looks.py`` measured such tests confirming
    chance alarms at 0.5 a model-month on models of 20 features at 1 event/s); the events after it are new
    draws. A real shift starts before its alarm, so they carry it whole.

    >>> from watchkeeper.detectors import DriftConfig
    >>> from watchkeeper.windows.sample import Sample, build_reference
    >>> rng = np.random.default_rng(0)
    >>> ref = build_reference(Sample(1000, {"a": rng.normal(size=1000), "b": rng.normal(size=1000)}, {}), 0, 1)
    >>> t = np.arange(300) * 1000  # one event a second
    >>> x = {"a": rng.normal(size=300) + (t >= 60_000), "b": rng.normal(size=300)}
    >>> [(f, r.drifted) for f, r in confirm_after_alarm(ref, t, x, {"a": 80.0}, DriftConfig(alpha=0.001)).items()]
    [('a', True)]
    >>> confirm_after_alarm(ref, t, x, {"a": 200.0}, DriftConfig(alpha=0.001))  # 99 events after the alarm
    {}
    """
    family = [f for f in numeric if ref.kinds.get(f) == "numeric"]
    out: dict[str, DriftResult] = {}
    for at in sorted(set(alarms.values())):
        mine = [f for f, t in alarms.items() if t == at and f in family]
        after = times >= round(_after([at]) * 1000)
        n = int(after.sum())
        if not mine or n < LOOK_MIN_AFTER:
            continue
        current = ref.current_counts({f: numeric[f][after] for f in family}, {}, n)
        for r in drift_report(ref.counts, {f: current[f] for f in family}, ref.kinds, config):
            if r.feature in mine:
                out[r.feature] = r
    return out
