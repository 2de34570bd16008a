"""Alarms carried across the window boundary: a per-event alarm late in a window judged on the next windows.

The drift rule's fast path confirms a ``mean_shift`` alarm with the window test of the events after it
(``windows/partial.py``), which needs ``LOOK_MIN_AFTER`` (150) of them. An alarm late in a window, or in a
window of fewer events, never had them within its window: at 60 events a window no alarm of a 0.5 sigma shift
was confirmed in 3 hours. Such an alarm is *carried*: when a later window of the same model version is written
(at most ``CARRY_WINDOWS`` windows after the alarm's), the window test (KS against the reference,
Benjamini-Hochberg over the numeric features, at the test's own level) reads the events after the alarm across
the window boundary — the rest of the alarm's window, the windows between, the later window — and, once there
are ``LOOK_MIN_AFTER`` of them, decides: a ``carried_alarm`` drift row of the later window, its ``ts`` the
alarm's event time, ``drifted`` the test's verdict (0 records that the alarm was judged and is carried no more).
Before that, the later window's looks (``windows/partial.py``) judge the carried alarm at its marks, at
``alpha / MAX_LOOKS`` each, at most ``MAX_LOOKS`` looks: the same budget as an alarm judged in its own window,
so the union bound holds per alarm. The test reads only events after the alarm: the independence argument of
``windows/partial.py`` holds across the boundary as within a window.

Which alarms are carried into a window is a function of the drift rows of the windows before it: a
``mean_shift`` alarm of a window without an ``after_alarm`` row for its feature (fewer than 150 events came
after it in its window), not judged yet by a ``carried_alarm`` row of a later window, within the bound; per
feature the earliest (the detector restarts after an alarm, and a shift keeps tripping it: the events after
the first alarm hold those after the next). The process keeps that set as it writes windows in order, and
builds it from the store (one query for all the versions it has not seen) when a version comes to it: a
replay, or the next owner after a shard move, carries the same alarms and decides them at the same times.
Alert times are decision times: the written window's (its end, as every window-end decision) or the look's
mark, never the alarm's.

Set-based: a round of the drift stage reads the events after the carried alarms of every version in one
:data:`windows.partial.LOOK_EVENTS` query (the windows before the round; the round's own windows are in
memory), and the drift rows of the versions new to the process in one more.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from watchkeeper.detectors.timeutil import utc
from watchkeeper.windows.config import WindowKey
from watchkeeper.windows.partial import (
    AFTER_ALARM,
    CARRIED,
    CARRY_WINDOWS,
    LOOK_MIN_AFTER,
    _after,
    confirm_after_alarm,
    merge_range,
    read_events,
)
from watchkeeper.windows.sample import map_columns
from watchkeeper.windows.sequential import SHIFT_DETECTOR

if TYPE_CHECKING:
    from watchkeeper.windows.drift import DriftStage

__all__ = ["CARRIED_ROWS", "Carry", "Pending"]

# feature -> (the alarm's event time in s, its window's start)
Pending = dict[str, tuple[float, int]]

# The drift rows that say which alarms are carried, of the windows before a version's first window of a pass
# (within the bound): one query for every version new to the process.
CARRIED_ROWS = """
SELECT model, version, toUnixTimestamp(window_start) AS ws, feature, detector,
       toUnixTimestamp64Milli(ts) AS t, drifted
FROM drift FINAL
WHERE (model, version) IN {pairs:Array(Tuple(String, String))}
  AND window_start >= {t0:DateTime('UTC')} AND window_start < {t1:DateTime('UTC')}
  AND detector IN {detectors:Array(String)}
ORDER BY model, version, ws, feature, detector
"""

Events = tuple[np.ndarray, dict[str, np.ndarray]]  # event times (ms) and one array per numeric feature


class Carry:
    """The alarms carried into the next windows of each version this process writes (see the module doc)."""

    def __init__(self, drift: DriftStage) -> None:
        self.drift = drift
        self.pending: dict[tuple[str, str], Pending] = {}  # version -> alarms carried after its last window
        self.last: dict[tuple[str, str], int] = {}  # version -> the last window folded in
        self.seeded: set[tuple[str, str]] = set()  # versions whose carried alarms were read from the store
        self.at: dict[WindowKey, Pending] = {}  # windows written since the last take -> the alarms carried into them
        self._before: dict[tuple[str, str], Events] = {}  # a round's events after its carried alarms, before it
        self._round: dict[tuple[str, str], list[tuple[int, Events]]] = defaultdict(list)

    def take(self) -> dict[WindowKey, Pending]:
        out, self.at = self.at, {}
        return out

    def forget(self, gone: Callable[[str], bool]) -> None:
        for per_version in (self.pending, self.last):
            for mv in [mv for mv in per_version if gone(mv[0])]:
                del per_version[mv]  # type: ignore[attr-defined]
        self.seeded = {mv for mv in self.seeded if not gone(mv[0])}
        self.at = {k: v for k, v in self.at.items() if not gone(k.model)}

    def pending_at(self, key: WindowKey) -> Pending:
        """The alarms carried into ``key`` (a window after the version's last one written), each with its window.

        >>> from types import SimpleNamespace
        >>> c = Carry(SimpleNamespace(window=SimpleNamespace(window_seconds=300)))
        >>> c.fold(WindowKey("m", "v", 0), [{"feature": "a", "detector": "mean_shift", "drifted": 1, "ts": 290.5}])
        >>> c.pending_at(WindowKey("m", "v", 300)), c.pending_at(WindowKey("m", "v", 1200))
        ({'a': (290.5, 0)}, {})
        """
        mv = (key.model, key.version)
        if self.last.get(mv, -math.inf) >= key.start:
            return {}
        w = self.drift.window.window_seconds
        return {f: v for f, v in self.pending.get(mv, {}).items() if key.start - CARRY_WINDOWS * w <= v[1] < key.start}

    def fold(self, key: WindowKey, rows: Sequence[Mapping[str, Any]]) -> None:
        """The carried alarms after window ``key``, from its drift rows: those it judged (``carried_alarm``)
        leave; its alarms without an ``after_alarm`` row (too few events after them in it) come, unless the
        feature has an earlier one; those whose bound it reached leave."""
        mv = (key.model, key.version)
        w = self.drift.window.window_seconds
        pend = dict(self.pending.get(mv, {}))
        for r in rows:
            if r["detector"] == CARRIED:
                pend.pop(r["feature"], None)
        judged = {r["feature"] for r in rows if r["detector"] == AFTER_ALARM}
        for r in rows:
            f = r["feature"]
            if r["detector"] == SHIFT_DETECTOR and r["drifted"] and f not in judged and f not in pend:
                pend[f] = (_seconds(r["ts"]), key.start)
        self.pending[mv] = {f: v for f, v in pend.items() if v[1] + CARRY_WINDOWS * w > key.start}
        self.last[mv] = key.start

    def prepare(self, keys: Sequence[WindowKey]) -> None:
        """Before a round of new windows (in order): read the carried alarms of the versions new to the process
        (one query), then the events after every version's carried alarms up to the round (one more)."""
        w = self.drift.window.window_seconds
        firsts: dict[tuple[str, str], int] = {}
        for k in sorted(keys):
            firsts.setdefault((k.model, k.version), k.start)
        self._seed({mv: s for mv, s in firsts.items() if mv not in self.seeded})
        ranges: dict[WindowKey, tuple[int, int]] = {}
        chains: dict[tuple[str, str], list[WindowKey]] = {}
        for mv, first in firsts.items():
            pend = self.pending_at(WindowKey(*mv, first))
            if not pend:
                continue
            lo = round(_after([min(a for a, _ in pend.values())]) * 1000)
            chains[mv] = [WindowKey(*mv, x) for x in range(min(ws for _, ws in pend.values()), first, w)]
            for k in chains[mv]:
                merge_range(ranges, k, max(lo, k.start * 1000), (k.start + w) * 1000)
        tables = read_events(self.drift, ranges)
        self._before = {}
        self._round = defaultdict(list)
        for mv, chain in chains.items():
            parts = [tables[k] for k in chain if k in tables]
            if parts:
                self._before[mv] = _concat([(p["t"].to_numpy(), _numeric(p)) for p in parts])

    def _seed(self, firsts: Mapping[tuple[str, str], int]) -> None:
        """Fold in the stored drift rows of the windows before each version's first (within the bound)."""
        if not firsts:
            return
        w = self.drift.window.window_seconds
        params = {"pairs": sorted(firsts), "t0": utc(min(firsts.values()) - CARRY_WINDOWS * w),
                  "t1": utc(max(firsts.values())), "detectors": [SHIFT_DETECTOR, AFTER_ALARM, CARRIED]}  # fmt: skip
        windows: dict[WindowKey, list[dict[str, Any]]] = defaultdict(list)
        for model, version, ws, feature, detector, t, drifted in self.drift.store.query_rows(CARRIED_ROWS, params):
            key = WindowKey(str(model), str(version), int(ws))
            first = firsts.get((key.model, key.version))
            if first is not None and first - CARRY_WINDOWS * w <= key.start < first:
                windows[key].append({"feature": feature, "detector": detector, "drifted": int(drifted),
                                     "ts": int(t) / 1000})  # fmt: skip
        for key in sorted(windows):
            if self.last.get((key.model, key.version), -math.inf) < key.start:
                self.fold(key, windows[key])
        self.seeded.update(firsts)

    def rows(
        self, key: WindowKey, times: np.ndarray, numeric: dict[str, np.ndarray], own: list[dict[str, Any]],
        computed_at: datetime,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """The ``carried_alarm`` rows of a new window (``times`` in ms, ``numeric`` its features; windows in
        order after :meth:`prepare`): each alarm carried into it with ``LOOK_MIN_AFTER`` events after it by the
        window's end, judged; then its own rows (``own``) and those folded in."""
        mv = (key.model, key.version)
        w = self.drift.window.window_seconds
        pend = self.pending_at(key)
        parts = [e for s, e in self._round[mv] if s >= key.start - CARRY_WINDOWS * w] + [(times, numeric)]
        self._round[mv] = [(s, e) for s, e in self._round[mv] if s >= key.start - CARRY_WINDOWS * w]
        self._round[mv].append((key.start, (times, numeric)))
        out: list[dict[str, Any]] = []
        ref = self.drift.reference_for(key)
        if pend and ref is not None and not ref.contains(key.start):
            self.at[key] = pend
            before = self._before.get(mv)
            t_all, x_all = _concat(([before] if before is not None else []) + parts)
            for at in sorted({a for a, _ in pend.values()}):
                mine = {f: a for f, (a, ws) in pend.items() if a == at and not ref.contains(ws)}
                if not mine or int((t_all >= round(_after([at]) * 1000)).sum()) < LOOK_MIN_AFTER:
                    continue  # carried on (or, past the bound, left to the slow path)
                for f, r in sorted(confirm_after_alarm(ref, t_all, x_all, mine, self.drift.config).items()):
                    out.append(_row(key, w, f, at, r, computed_at))
        self.fold(key, own + out)
        return out


def _row(key: WindowKey, w: int, feature: str, alarm: float, r: Any, computed_at: datetime) -> dict[str, Any]:
    end = utc(key.start + w)
    return {
        "ts": utc(alarm),  # the alarm's event time, in an earlier window: the alert's evidence
        "window_start": utc(key.start),
        "window_end": end,
        "model": key.model,
        "version": key.version,
        "feature": feature,
        "detector": CARRIED,
        "statistic": float(r.statistic) if math.isfinite(r.statistic) else 0.0,
        "threshold": float(r.threshold),
        "drifted": int(bool(r.drifted)),
        "computed_at": computed_at,
    }


def _seconds(ts: Any) -> float:
    """A drift row's ``ts`` (a datetime as written, or epoch seconds as read back) in epoch seconds, to the ms."""
    t = ts.timestamp() if isinstance(ts, datetime) else float(ts)
    return round(t * 1000) / 1000


def _numeric(table: Any) -> dict[str, np.ndarray]:
    return map_columns(table["features"], table.num_rows, np.nan, np.float64)


def _concat(parts: Sequence[Events]) -> Events:
    """Events of consecutive windows as one stream (a feature a window lacks is NaN there)."""
    names = sorted({f for _, x in parts for f in x})
    times = np.concatenate([t for t, _ in parts]) if parts else np.zeros(0, np.int64)
    numeric = {f: np.concatenate([x.get(f, np.full(t.size, np.nan)) for t, x in parts]) for f in names}
    return times, numeric
