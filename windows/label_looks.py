"""Looks at the labels so far: an error-stream alarm judged before its window's labels are final.

The error-stream detector (``windows/sequential.py``) is fed a window's errors once its label
delay has passed, and the retrain rule judges only final windows: a concept change waited for
its window's end plus the whole label delay (326 s after the labels showed it, in a live run
with 300 s windows and a 60 s delay). Here the labels that have arrived are read as they come.

**The alarm.** On each pass, for each binary model version with windows not yet fed to its error
stream (and at least one fed: before, the version has no reference to judge against either), a copy
of the stream's detector is fed the errors of the version's predictions since the last fed window
whose label has arrived before the label clock's latest mark, in the order the stream itself
reads them (prediction time, then prediction id). Each alarm is kept with ``arrived``: the latest
label time (event time of the outcome, or of its prediction if later) among the errors read up to
the alarm, the stream's own included — when the alarm could first have been raised. The copy is
kept between passes and each pass feeds it only the labels that are new (after the last prediction
it read); when a label arrives for a prediction it has already passed (labels out of order), it is
copied again from the stream and fed from the start, so each pass sees what a copy fed at once
would. When a window is fed to the stream itself (final), its alarms and ``arrived`` come from that
feed: a replay, a backlog, or an alarm the copies missed are looked at too.

**The looks.** An alarm may be judged at the multiples of ``LABEL_LOOK_EVERY_SECONDS`` (event
time, from the epoch) after ``arrived`` and before its window's end plus the label delay (then the
final window is judged whole, at its own level). A look at mark ``m`` reads the labels of the
version's predictions **after the alarm** that arrived before ``m`` (each prediction's latest label
before ``m``). A mark with fewer of them than the alarm's next look needs is passed over — it is not
a look: the first needs ``LABEL_MIN_AFTER``, each later one ``LABEL_GROWTH`` times the labels of the
one before (on a slow stream three looks 20 s apart would read nearly the same labels). An alarm
gets at most ``MAX_LABEL_LOOKS`` looks, and a mark judged for an earlier alarm of the version is not
judged again. A look writes the confusion counts of its labels as a :class:`LabelLook`. The alert
engine applies the retrain rule's test to them (``alerts/evaluator.py``: the drop of ``rule.metric``
against the version's reference, each confidence's error split over the ``MAX_LABEL_LOOKS`` looks:
Bonferroni) and, if confirmed, decides the retrain alert at ``m``: every label it read had arrived
before ``m``, on the label clock that the model's watermark follows. ``evidence_ts`` is the alarm's
prediction time.

Why only the labels after the alarm: the Bonferroni split holds the level only if each look is
independent of the alarm. Under no change, the errors that tripped a chance alarm lie before it and
the labels after it are new draws; a real change starts before its alarm, so the labels after it
carry it whole. An earlier design read the labels of the last 45 s before the mark (or the last 300):
on a slow stream (1 event/s, labels 90-150 s late) those reached back to before the change, and no
look confirmed a change that the final window did 13 minutes after the labels showed it. Whether a
mark is a look depends on label counts only, never on their values. ``bench/label_looks.py`` measures
the level on stable models and the delay after a change, fast and slow streams.

**Set-based.** A pass reads the new labels of every version in one statement (``ERRORS_SO_FAR``:
each copy's cursor an element of array parameters) and, when a look is due, the labels of every
version with a look due in one more (``LOOK_LABELS``): the statements of a pass do not grow with
the number of versions.

Where the looks fall depends on event time only: a look at ``m`` reads labels that arrived before
``m``, and is made at the first pass whose watermark reaches ``m`` (live) or when the alarm's window
is fed to the stream (a replay), so a replay decides the same alerts at the same times. Caveats:
labels that arrive out of order (a later label for an earlier prediction after a pass) can move a
copy's alarm; a restarted worker's copies start from a new detector, as its stream does.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from watchkeeper.detectors.timeutil import utc
from watchkeeper.windows.config import WindowConfig, WindowKey
from watchkeeper.windows.due import due_params
from watchkeeper.windows.queries import P_WS, WITH_THR
from watchkeeper.windows.sequential import ERROR_DETECTOR, ERROR_FEATURE, SequentialDrift

if TYPE_CHECKING:
    from watchkeeper.sinks.writer import Store

__all__ = [
    "LABEL_GROWTH",
    "LABEL_LOOK_EVERY_SECONDS",
    "LABEL_MIN_AFTER",
    "MAX_LABEL_LOOKS",
    "LabelLook",
    "LabelLooks",
    "confusion_points",
    "label_marks",
    "look_counts",
]

# Label-clock time between two marks, and the most looks one alarm gets.
LABEL_LOOK_EVERY_SECONDS = 20
MAX_LABEL_LOOKS = 3
# A mark with fewer labels of predictions after the alarm than an alarm's next look needs is passed over (it is
# not a look): its first look needs LABEL_MIN_AFTER (the retrain rule's default min_labels: with fewer it
# decides nothing), each later one LABEL_GROWTH times the labels of the one before — three looks 20 s apart on
# a slow stream would read nearly the same labels, and a look spent there would be one less where the test
# has power. bench/label_looks.py measured the choice: on 200 slow changes (1 event/s) a first look at 100
# labels decided a median 23 s sooner than one at 150, at 10 events/s 1.4 s sooner.
LABEL_MIN_AFTER = 100
LABEL_GROWTH = 1.5
# The most labelled events one alarm feed or one version's looks read (the earliest after its alarm).
LABEL_CAP = 20_000
# A version's labels for its looks: prediction time, whether the next row is the same prediction's, predicted
# class, label, arrival (``look_counts``).
Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
# Looks kept for the alert engine at most (a closer whose looks nobody takes keeps the latest).
MAX_FOUND = 10_000

# The labelled errors of the pass's versions (``mv``, each with its first prediction time ``t0s`` and the label
# clock's latest mark ``untils``, ms) whose label arrived before that mark, in the error stream's order, after
# each copy's cursor (prediction time and id). ``redo``: a label arrived since the copy's last read
# (``since_ms``) for a prediction before its cursor, and then every row of the version is returned (its copy is
# fed again from the stream's state). One statement for every version of the pass. ``arrived``: the label's
# event time, or its prediction's if later.
ERRORS_SO_FAR = f"""
SELECT model, version, t, pid, ws, err, arrived, redo FROM (
    {WITH_THR}, indexOf({{mv:Array(Tuple(String, String))}}, (p.model, p.version)) AS i
    SELECT p.model AS model, p.version AS version, toUnixTimestamp64Milli(p.ts) AS t, p.prediction_id AS pid,
           {P_WS}, toUInt8((assumeNotNull(p.prediction) >= thr) != (o.y = 1)) AS err,
           greatest(t, o.arrived_ms) AS arrived,
           (t, pid) > ({{after_t:Array(Int64)}}[i], {{after_id:Array(String)}}[i]) AS fresh,
           max(NOT fresh AND o.arrived_ms >= {{since_ms:Array(Int64)}}[i]) OVER (PARTITION BY p.model, p.version)
               AS redo
    FROM predictions AS p FINAL
    INNER JOIN (
        SELECT model, prediction_id, assumeNotNull(argMax(outcome, ts)) AS y,
               toUnixTimestamp64Milli(max(ts)) AS arrived_ms
        FROM outcomes FINAL
        WHERE model IN {{models:Array(String)}} AND outcome IN (0, 1) AND ts < {{t1:DateTime64(3, 'UTC')}}
          AND toUnixTimestamp64Milli(ts) < {{until_m:Array(Int64)}}[indexOf({{models:Array(String)}}, model)]
          AND (model, prediction_id) IN (
              SELECT model, prediction_id FROM predictions
              WHERE model IN {{models:Array(String)}} AND ts >= {{t0:DateTime64(3, 'UTC')}}
                AND ts < {{t1:DateTime64(3, 'UTC')}} AND (model, version) IN {{mv:Array(Tuple(String, String))}})
        GROUP BY model, prediction_id
    ) AS o ON p.model = o.model AND p.prediction_id = o.prediction_id
    WHERE p.model IN {{models:Array(String)}} AND p.ts >= {{t0:DateTime64(3, 'UTC')}}
      AND p.ts < {{t1:DateTime64(3, 'UTC')}} AND (p.model, p.version) IN {{mv:Array(Tuple(String, String))}}
      AND p.prediction IS NOT NULL AND t >= {{t0s:Array(Int64)}}[i] AND t < {{untils:Array(Int64)}}[i]
)
WHERE fresh OR redo
ORDER BY model, version, t, pid
LIMIT {{cap:UInt32}} BY model, version
"""
# The labels of the predictions after each version's earliest alarm to judge (``after``, ms: the alarm's own
# excluded) and before its latest mark to judge (``until``), one row per 0/1 outcome that came before that
# mark (a look keeps, per prediction, the latest before its own mark): predicted class, label, and when it
# arrived (its event time, or its prediction's if later). One statement for every look of the pass; past ``cap``
# rows a version's later marks read the earliest predictions.
LOOK_LABELS = f"""
{WITH_THR}, indexOf({{mv:Array(Tuple(String, String))}}, (p.model, p.version)) AS i
SELECT p.model AS model, p.version AS version, toUnixTimestamp64Milli(p.ts) AS t, p.prediction_id AS pid,
       toUInt8(assumeNotNull(p.prediction) >= thr) AS yhat, o.y AS y, greatest(t, o.at) AS arrived
FROM predictions AS p FINAL
INNER JOIN (
    SELECT model, prediction_id, assumeNotNull(outcome) AS y, toUnixTimestamp64Milli(ts) AS at
    FROM outcomes FINAL
    WHERE model IN {{models:Array(String)}} AND outcome IN (0, 1) AND ts < {{t1:DateTime64(3, 'UTC')}}
      AND (model, prediction_id) IN (
          SELECT model, prediction_id FROM predictions
          WHERE model IN {{models:Array(String)}} AND ts >= {{t0:DateTime64(3, 'UTC')}}
            AND ts < {{t1:DateTime64(3, 'UTC')}} AND (model, version) IN {{mv:Array(Tuple(String, String))}})
) AS o ON p.model = o.model AND p.prediction_id = o.prediction_id
WHERE p.model IN {{models:Array(String)}} AND p.ts >= {{t0:DateTime64(3, 'UTC')}} AND p.ts < {{t1:DateTime64(3, 'UTC')}}
  AND (p.model, p.version) IN {{mv:Array(Tuple(String, String))}} AND p.prediction IS NOT NULL
  AND t > {{after:Array(Int64)}}[i] AND t < {{until:Array(Int64)}}[i] AND o.at < {{until:Array(Int64)}}[i]
ORDER BY model, version, t, pid, o.at
LIMIT {{cap:UInt32}} BY model, version
"""


def label_marks(arrived: float, until: float, every: int = LABEL_LOOK_EVERY_SECONDS) -> list[int]:
    """The marks at which an alarm whose labels had all arrived at ``arrived`` may be looked at: the multiples
    of ``every`` after it and before ``until`` (its window's end plus the label delay). The first
    ``MAX_LABEL_LOOKS`` of them with ``LABEL_MIN_AFTER`` labels after the alarm are its looks.

    >>> label_marks(155.5, 240)
    [160, 180, 200, 220]
    >>> label_marks(160.0, 240)  # labels in at a mark: judged from the next one
    [180, 200, 220]
    >>> label_marks(335.0, 360)  # no mark left but one
    [340]
    """
    first = (math.floor(arrived / every) + 1) * every
    return list(range(first, math.ceil(until), every))


def look_counts(
    t: np.ndarray, same_next: np.ndarray, yhat: np.ndarray, y: np.ndarray, arrived: np.ndarray, after: int, mark: int
) -> tuple[int, int, int, int]:
    """The confusion counts (tp, fp, tn, fn) of a look at ``mark`` (ms) at an alarm at ``after`` (ms): the
    labels of the predictions after the alarm that arrived before the mark, each prediction's latest.

    The rows (``LOOK_LABELS``) are one per outcome, sorted by prediction then label time; ``same_next[j]``:
    row ``j + 1`` is of the same prediction. Under no change the labels after the alarm are new draws (the
    errors that tripped it are before it); a real change starts before its alarm, so they carry it whole.

    >>> t = np.array([10, 20, 20, 30]); same = np.array([False, True, False, False])
    >>> yhat = np.array([1, 1, 1, 0]); y = np.array([1, 1, 0, 0]); at = np.array([15, 25, 40, 35])
    >>> look_counts(t, same, yhat, y, at, after=10, mark=36)  # 20's first label, 30's
    (1, 0, 1, 0)
    >>> look_counts(t, same, yhat, y, at, after=10, mark=50)  # 20's label corrected
    (0, 1, 1, 0)
    """
    mine = (t > after) & (arrived < mark)
    # Per prediction its labels before the mark are the first of its rows: keep the last of them.
    last = mine & ~np.append(mine[1:] & same_next[:-1], False)
    yh, yy = yhat[last].astype(bool), y[last] == 1
    return int(np.sum(yh & yy)), int(np.sum(yh & ~yy)), int(np.sum(~yh & ~yy)), int(np.sum(~yh & yy))


def confusion_points(tp: int, fp: int, tn: int, fn: int) -> dict[str, tuple[float, int]]:
    """The proportions a retrain rule may use, as (value, n), from confusion counts (those with n > 0).

    >>> confusion_points(40, 10, 30, 20)["accuracy"]
    (0.7, 100)
    >>> sorted(confusion_points(0, 0, 5, 5))
    ['accuracy', 'labelled', 'npv', 'recall', 'specificity']
    """
    out = {"labelled": (float(tp + fp + tn + fn), tp + fp + tn + fn)}
    for name, num, den in (("accuracy", tp + tn, tp + fp + tn + fn), ("precision", tp, tp + fp),
                           ("recall", tp, tp + fn), ("specificity", tn, tn + fp), ("npv", tn, tn + fn)):  # fmt: skip
        if den > 0:
            out[name] = (num / den, den)
    return out


@dataclass
class Copy:
    """A copy of a version's error-stream detector fed the labels so far: what it was copied from (the stream's
    last fed window, the first window it reads), how far it has read, and its alarms whose marks are to come."""

    base: tuple[int, int]
    detector: Any
    cursor: tuple[int, str] = (-1, "")  # the last prediction fed (time in ms, id)
    until: int = 0  # labels that arrived before this were read (ms)
    arrived: int = 0  # the latest label fed (ms)
    alarms: list[tuple[WindowKey, float, float]] = field(default_factory=list)  # (window, alarm, arrived)


@dataclass(frozen=True)
class LabelLook:
    """An error-stream alarm and the labels that arrived in the span before a mark, for the retrain rule."""

    model: str
    version: str
    start: int  # the alarm's window
    end: int
    mark: int  # the look's label-clock time: the decision time
    alarm: float  # the alarm's prediction time (the evidence)
    error_rate: float  # of the labels read
    metrics: tuple[tuple[str, float, int], ...]  # (metric, value, n) of the labels read
    looks: int = MAX_LABEL_LOOKS  # the looks an alarm gets (the rule's level is split over them)
    feature: str = ERROR_FEATURE  # the error stream's drift row, as the retrain rule knows it
    detector: str = ERROR_DETECTOR


class LabelLooks:
    """The label looks of the versions a closer works on: alarms found, marks looked at."""

    def __init__(self, store: Store, config: WindowConfig, sequential: SequentialDrift) -> None:
        self.store = store
        self.config = config
        self.sequential = sequential
        self.done: dict[tuple[str, str], set[int]] = {}  # version -> marks judged (a look or passed over)
        # (window, alarm in ms) -> (looks made at it, the labels after it its next look needs)
        self.looked: dict[tuple[WindowKey, int], tuple[int, int]] = {}
        self.checked: dict[tuple[str, str], int] = {}  # version -> the last mark its labels were read up to
        self.copies: dict[tuple[str, str], Copy] = {}  # version -> its detector fed the labels so far
        self.made = 0  # looks made in all, for a benchmark's counts
        self.found: list[LabelLook] = []

    def take(self) -> list[LabelLook]:
        """The looks found since the last call (for the alert engine)."""
        out, self.found = self.found, []
        return out

    def forget(self, gone: Callable[[str], bool]) -> None:
        self.done = {k: v for k, v in self.done.items() if not gone(k[0])}
        self.looked = {k: v for k, v in self.looked.items() if not gone(k[0].model)}
        self.checked = {k: v for k, v in self.checked.items() if not gone(k[0])}
        self.copies = {k: v for k, v in self.copies.items() if not gone(k[0])}
        self.found = [look for look in self.found if not gone(look.model)]

    def closed(self, alarms: Mapping[WindowKey, list[tuple[float, float]]], watermarks: Mapping[str, float]) -> None:
        """Windows just fed to the error stream whose errors made it fire (each alarm with when its labels had
        arrived): their looks not made yet, at the marks the model's watermark has reached (one statement)."""
        self._look_all([(key, alarm, arrived, math.floor(watermarks.get(key.model, arrived)))
                        for key, found in sorted(alarms.items()) for alarm, arrived in found])  # fmt: skip
        for key in sorted(alarms):
            # No alarm to come is in a window before the one just fed, nor looked at before its start.
            done = self.done.get((key.model, key.version), set())
            done.difference_update([m for m in done if m < key.start])
            for old in [k for k in self.looked if (k[0].model, k[0].version) == (key.model, key.version)
                        and k[0].start < key.start]:  # fmt: skip
                del self.looked[old]

    def open(self, first_open: Mapping[tuple[str, str], int], watermarks: Mapping[str, float]) -> None:
        """Versions whose windows from ``first_open[(model, version)]`` on are not fed to their error stream yet:
        an alarm on their labels so far (before the latest mark each model's watermark reached), and its looks.
        One statement reads the new labels of every version, and one (if any is due) the looks of every alarm."""
        w = self.config.window_seconds
        todo: dict[tuple[str, str], tuple[int, int, Copy]] = {}  # version -> (t0, mark reached, its copy)
        for mv, first in sorted(first_open.items()):
            reached = math.floor(watermarks.get(mv[0], 0.0) / LABEL_LOOK_EVERY_SECONDS) * LABEL_LOOK_EVERY_SECONDS
            if reached <= self.checked.get(mv, 0):
                continue
            self.checked[mv] = reached
            state = self.sequential.error_streams.get(mv)
            if state is None:  # no final labelled binary window yet: no reference to judge against either
                continue
            t0 = max(first, state.last_window + w)
            if t0 >= reached:
                continue
            base = (state.last_window, t0)
            mine = self.copies.get(mv)
            if mine is None or mine.base != base:
                mine = self.copies[mv] = Copy(base, copy.deepcopy(state.detector), arrived=state.arrived)
            todo[mv] = (t0, reached, mine)
        rows = self._errors(todo)
        due: list[tuple[WindowKey, float, float, int]] = []
        for mv, (_, reached, mine) in todo.items():
            got = rows.get(mv, [])
            if got and got[0][-1]:  # a label arrived for a prediction already passed: read from the stream's state
                state = self.sequential.error_streams[mv]
                mine = self.copies[mv] = Copy(mine.base, copy.deepcopy(state.detector), arrived=state.arrived)
            for t, pid, ws, err, at, _ in got:
                mine.detector.update(float(err))
                mine.cursor, mine.arrived = (int(t), str(pid)), max(mine.arrived, int(at))
                if mine.detector.drift_detected:
                    mine.alarms.append((WindowKey(mv[0], mv[1], int(ws)), int(t) / 1000, mine.arrived / 1000))
            mine.until = reached * 1000
            due += [(key, alarm, arrived, reached) for key, alarm, arrived in mine.alarms]
        self._look_all(due)
        delay = self.config.label_delay_seconds
        for _, reached, mine in todo.values():
            # An alarm with all its looks, or whose marks have all been reached, is done with.
            mine.alarms = [a for a in mine.alarms if self._looks((a[0], round(a[1] * 1000)))[0] < MAX_LABEL_LOOKS
                           and any(m > reached for m in label_marks(a[2], a[0].start + w + delay))]  # fmt: skip
        # The looks made at alarms whose every mark has passed are kept no longer (their marks are in ``done``).
        for alarm in [k for k in self.looked if (k[0].model, k[0].version) in todo
                      and k[0].start + w + delay <= todo[(k[0].model, k[0].version)][1]]:  # fmt: skip
            del self.looked[alarm]

    def _errors(self, todo: Mapping[tuple[str, str], tuple[int, int, Copy]]) -> dict[tuple[str, str], list[Any]]:
        """The labelled errors each version's copy has not read, by version: after its cursor, or all of them
        (``redo``, the last column) when a label arrived since its last read for a prediction before its cursor."""
        if not todo:
            return {}
        mvs = sorted(todo)
        models = sorted({m for m, _ in mvs})
        reached = {mv[0]: r for mv, (_, r, _) in todo.items()}
        params = self._params(models) | {
            "mv": mvs, "until_m": [reached[m] * 1000 for m in models],
            "t0": utc(min(todo[mv][0] for mv in mvs)), "t1": utc(max(todo[mv][1] for mv in mvs)),
            "t0s": [todo[mv][0] * 1000 for mv in mvs], "untils": [todo[mv][1] * 1000 for mv in mvs],
            "after_t": [todo[mv][2].cursor[0] for mv in mvs], "after_id": [todo[mv][2].cursor[1] for mv in mvs],
            "since_ms": [todo[mv][2].until for mv in mvs], "cap": LABEL_CAP,
        }  # fmt: skip
        out: dict[tuple[str, str], list[Any]] = {}
        for model, version, *row in self.store.query_rows(ERRORS_SO_FAR, params):
            out.setdefault((model, version), []).append(tuple(row))
        return out

    def _params(self, models: list[str]) -> dict[str, Any]:
        """The threshold parameters of ``models`` (``WITH_THR``), the window length and the models."""
        p = due_params(self.config, [WindowKey(m, "", 0) for m in models])
        return {k: p[k] for k in ("w", "thr_m", "thr_v", "thr")} | {"models": models}

    def _look_all(self, alarms: list[tuple[WindowKey, float, float, int]]) -> None:
        """The looks not made yet at ``alarms`` (window, alarm, when its labels had arrived, the last mark
        reached), in that order: one statement reads the labels of every version with a mark due."""
        w, delay = self.config.window_seconds, self.config.label_delay_seconds
        due: list[tuple[WindowKey, int, list[int]]] = []  # (window, alarm in ms, marks to judge)
        for key, alarm, arrived, upto in alarms:
            mv, after = (key.model, key.version), round(alarm * 1000)
            if self._looks((key, after))[0] >= MAX_LABEL_LOOKS:
                continue
            done = self.done.get(mv, set())
            marks = [m for m in label_marks(arrived, key.start + w + delay) if m <= upto and m not in done]
            if marks:
                due.append((key, after, marks))
        if not due:
            return
        rows = self._labels(due)
        for key, after, marks in due:
            mv = (key.model, key.version)
            done = self.done.setdefault(mv, set())
            for mark in marks:
                made, need = self._looks((key, after))
                if made >= MAX_LABEL_LOOKS:
                    break
                if mark in done:  # looked at for an earlier alarm of the version in this call
                    continue
                done.add(mark)
                counts = look_counts(*rows[mv], after=after, mark=mark * 1000) if mv in rows else (0, 0, 0, 0)
                if sum(counts) < need:  # too few labels after the alarm yet: not a look
                    continue
                self.looked[(key, after)] = (made + 1, math.ceil(sum(counts) * LABEL_GROWTH))
                self.made += 1
                self.found.append(self._look(key, mark, after / 1000, *counts))
                del self.found[:-MAX_FOUND]

    def _looks(self, alarm: tuple[WindowKey, int]) -> tuple[int, int]:
        """The looks made at ``alarm`` and the labels after it that its next look needs."""
        return self.looked.get(alarm, (0, LABEL_MIN_AFTER))

    def _labels(self, due: list[tuple[WindowKey, int, list[int]]]) -> dict[tuple[str, str], Columns]:
        """The labels the looks of ``due`` read, per version as the columns :func:`look_counts` takes."""
        after: dict[tuple[str, str], int] = {}
        until: dict[tuple[str, str], int] = {}
        for key, a, marks in due:
            mv = (key.model, key.version)
            after[mv] = min(after.get(mv, a), a)
            until[mv] = max(until.get(mv, 0), marks[-1] * 1000)
        mvs = sorted(after)
        params = self._params(sorted({m for m, _ in mvs})) | {
            "mv": mvs, "after": [after[mv] for mv in mvs], "until": [until[mv] for mv in mvs],
            "t0": utc(min(after.values()) / 1000), "t1": utc(max(until.values()) / 1000), "cap": LABEL_CAP,
        }  # fmt: skip
        by: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        for model, version, *row in self.store.query_rows(LOOK_LABELS, params):
            by.setdefault((model, version), []).append(tuple(row))
        out: dict[tuple[str, str], Columns] = {}
        for mv, got in by.items():
            t = np.array([r[0] for r in got], dtype=np.int64)
            pid = np.array([str(r[1]) for r in got], dtype=object)
            same_next = np.append((t[1:] == t[:-1]) & (pid[1:] == pid[:-1]), False)
            yhat, y, arrived = (np.array([r[k] for r in got], dtype=np.int64) for k in (2, 3, 4))
            out[mv] = (t, same_next, yhat, y, arrived)
        return out

    def _look(self, key: WindowKey, mark: int, alarm: float, tp: int, fp: int, tn: int, fn: int) -> LabelLook:
        """A look at ``mark`` with the confusion counts of the labels it read."""
        metrics = tuple((m, v, n) for m, (v, n) in sorted(confusion_points(tp, fp, tn, fn).items()))
        end = key.start + self.config.window_seconds
        return LabelLook(key.model, key.version, key.start, end, mark, alarm, (fp + fn) / (tp + fp + tn + fn), metrics)
