"""Sequential drift detectors in the model stage: fed each window's events once, in event time.

Two streams per model version, their state kept in this process:

- the error stream (concept drift): the ``watchkeeper_default`` detector fed
  each labelled binary window's errors (``__error__`` rows);
- per-event covariate shift: the ``covariate_shift`` preset fed each window's
  numeric features (``mean_shift`` rows, one per feature).

A window recomputed for late labels gets the rows it got the first time: a
detector sees an event once and cannot see it again.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from watchkeeper.detectors.timeutil import utc
from watchkeeper.windows.config import WindowConfig, WindowKey
from watchkeeper.windows.due import due_params
from watchkeeper.windows.queries import BINARY_OUTCOMES, DUE, P_WS, PREDICTIONS_OF_DUE, WHERE_DUE, WITH_THR, WS
from watchkeeper.windows.sample import map_columns

if TYPE_CHECKING:
    from watchkeeper.sinks.writer import Store
    from watchkeeper.windows.carry import Carry

__all__ = ["ErrorStream", "SequentialDrift"]

# The errors of every labelled binary window of the pass, in event-time order per model version. The
# predictions are the outer FROM: on a cluster the join runs on each model's shard (windows/queries.py).
ERRORS = f"""
{WITH_THR}
SELECT p.model AS model, p.version AS version, {P_WS}, toUnixTimestamp64Milli(p.ts) AS t,
       toUInt8((assumeNotNull(p.prediction) >= thr) != (o.y = 1)) AS err,
       greatest(toUnixTimestamp64Milli(p.ts), o.arrived_ms) AS arrived
{PREDICTIONS_OF_DUE}
INNER JOIN {BINARY_OUTCOMES}
{WHERE_DUE} AND p.prediction IS NOT NULL
ORDER BY model, version, t, p.prediction_id
"""
ERROR_FEATURE = "__error__"
ERROR_DETECTOR = "watchkeeper_default"

# Per-event covariate shift: the ``covariate_shift`` preset (CUSUMs per standardised feature, tuned for
# a 0.5 sigma mean shift, ARL 2e7 updates of a feature: ~2e-7 false alarms measured) fed every event of each
# window in event-time order; its rows name the firing event's time. Windows of more events are
# subsampled by event id (the order is kept).
SHIFT_DETECTOR = "mean_shift"
SHIFT_MAX_EVENTS = 5000
SHIFT_MAX_FEATURES = 100
# The events of every window of the pass, subsampled per window to SHIFT_MAX_EVENTS (by event id).
SHIFT_EVENTS = f"""
SELECT model, version, ws, t, features FROM (
    SELECT model, version, {WS} AS ws, toUnixTimestamp64Milli(ts) AS t, ts, event_id, features,
           cityHash64(event_id) AS h, count() OVER (PARTITION BY model, version, ws) AS n
    FROM predictions FINAL
    WHERE {DUE})
WHERE h % toUInt64(greatest(1, ceil(n / {{max_events:UInt32}}))) = 0
ORDER BY model, version, ts, event_id
"""


# The rows confirming a window's per-event alarms: (window, event times in ms, numeric features, first alarms).
Confirm = Callable[[WindowKey, np.ndarray, dict[str, np.ndarray], dict[str, float]], list[dict[str, Any]]]

# Rows a sequential detector wrote per window, kept for this many windows: a window recomputed for late
# labels gets its rows again (the detector saw its events once and cannot see them again).
KEEP_EMITTED = 1000


@dataclass
class ErrorStream:
    """A sequential detector over one version's events, the last window it has seen and what it wrote."""

    detector: Any
    last_window: int
    features: tuple[str, ...] = ()
    emitted: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    arrived: int = 0  # the error stream's latest label fed (event time, ms)

    def seen(self, window: int) -> list[dict[str, Any]] | None:
        """The rows written for a window already fed (copies), or None for a new window."""
        if window > self.last_window:
            return None
        return [dict(r) for r in self.emitted.get(window, [])]

    def record(self, window: int, rows: list[dict[str, Any]]) -> None:
        self.last_window = window
        self.emitted[window] = [dict(r) for r in rows]
        while len(self.emitted) > KEEP_EMITTED:
            del self.emitted[min(self.emitted)]


class SequentialDrift:
    """The sequential detectors of every model version this process has fed, and the rows they wrote."""

    def __init__(self, store: Store, config: WindowConfig) -> None:
        self.store = store
        self.config = config
        self.error_streams: dict[tuple[str, str], ErrorStream] = {}
        self.shift_streams: dict[tuple[str, str], ErrorStream] = {}
        # Windows fed to the per-event covariate shift since the last take: feature -> first alarm (event time).
        self.alarms: dict[WindowKey, dict[str, float]] = {}
        # Windows fed to the error stream since the last take whose errors made it fire: per alarm, (its
        # prediction time, when the labels it read had all arrived), event time (windows/label_looks.py).
        self.error_alarms: dict[WindowKey, list[tuple[float, float]]] = {}

    def take_alarms(self) -> dict[WindowKey, dict[str, float]]:
        out, self.alarms = self.alarms, {}
        return out

    def take_error_alarms(self) -> dict[WindowKey, list[tuple[float, float]]]:
        out, self.error_alarms = self.error_alarms, {}
        return out

    def error_rows(self, keys: Sequence[WindowKey], computed_at: datetime) -> list[dict[str, Any]]:
        """Concept drift: the ``watchkeeper_default`` detector fed each binary window's errors in event-time order.

        Each window is fed once, in order (a recomputed window is not fed again); the row's
        ``ts`` is the event time of the first error that made the detector fire, else the
        window's end. Detector state lives in this process: a restarted leader starts a new
        detector from the next window on. One query reads the errors of every window of the pass.
        """
        from watchkeeper.detectors import build

        w = self.config.window_seconds
        out: list[dict[str, Any]] = []
        todo = list(_unseen(self.error_streams, keys, out))
        if not todo:
            return out
        events: dict[WindowKey, list[tuple[int, int, int]]] = defaultdict(list)
        for model, version, ws, t, err, arrived in self.store.query_rows(ERRORS, due_params(self.config, todo)):
            events[WindowKey(model, version, int(ws))].append((int(t), int(err), int(arrived)))
        for k in todo:
            errors = events.get(k)
            if not errors:
                continue
            state = self.error_streams.get((k.model, k.version))
            if state is None:
                state = self.error_streams[(k.model, k.version)] = ErrorStream(build(ERROR_DETECTOR), k.start)
            fired_at: float | None = None
            for t, err, at in errors:
                state.detector.update(float(err))
                state.arrived = max(state.arrived, at)
                if state.detector.drift_detected:
                    self.error_alarms.setdefault(k, []).append((t / 1000, state.arrived / 1000))
                    if fired_at is None:
                        fired_at = t / 1000
            end = utc(k.start + w)
            rate = sum(e for _, e, _ in errors) / len(errors)
            out.append(
                {
                    "ts": utc(fired_at) if fired_at is not None else end,
                    "window_start": utc(k.start),
                    "window_end": end,
                    "model": k.model,
                    "version": k.version,
                    "feature": ERROR_FEATURE,
                    "detector": ERROR_DETECTOR,
                    "statistic": rate,
                    "threshold": 0.0,
                    "drifted": int(fired_at is not None),
                    "computed_at": computed_at,
                }
            )
            state.record(k.start, out[-1:])
        return out

    def shift_rows(
        self, keys: Sequence[WindowKey], computed_at: datetime, confirm: Confirm | None = None,
        carry: Carry | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Covariate shift per event: one ``mean_shift`` row per numeric feature and window.

        The detector learns each feature's mean and spread from the version's first 1,000
        events, so it runs only with a fixed reference (``drift_reference`` ``auto`` or
        ``first_predictions``): a rolling or seasonal reference is for cycles a fixed mean
        would read as shifts. A row's ``ts`` is the event time of the feature's first
        alarm in the window, else the window's end; ``statistic`` the feature's CUSUM (in
        standard deviations; at least the threshold when it fired). State lives in this
        process, as for the error stream. One query reads the events of every window of the pass.

        ``confirm``: the rows that confirm a window's alarms, from its events (times in ms, the numeric
        features the detector reads) and the features' first alarm; kept with the window's ``mean_shift``
        rows, so that a recomputed window writes them again. ``carry``: the alarms of earlier windows judged on
        the events after them across the window boundary (``windows/carry.py``), kept with them too.
        """
        from watchkeeper.detectors import build

        fixed_refs = ("auto", "first_predictions", "first_windows")
        fixed = [k for k in keys if self.config.model(k.model).drift_reference in fixed_refs]
        w = self.config.window_seconds
        out: list[dict[str, Any]] = []
        todo = list(_unseen(self.shift_streams, fixed, out))
        if not todo:
            return out
        params = {**due_params(self.config, todo), "max_events": SHIFT_MAX_EVENTS}
        # Columnar (Arrow, then one array per feature and window): a pass of a backlog reads up to
        # SHIFT_MAX_EVENTS events a window, and a Python dict per event cost the worker ~1.7 KB each.
        by_window = _window_slices(self.store.query_arrow(SHIFT_EVENTS, params))
        if carry is not None:
            carry.prepare(todo)
        for k in todo:
            window = by_window.get(k)
            if window is None:
                continue
            times, numeric = window
            state = self.shift_streams.get((k.model, k.version))
            if state is None:
                names = sorted(numeric)[:SHIFT_MAX_FEATURES]
                if not names:
                    continue
                state = ErrorStream(build("covariate_shift"), k.start, tuple(names))
                self.shift_streams[(k.model, k.version)] = state
            missing = np.full(times.size, math.nan)
            x = np.column_stack([numeric.get(f, missing) for f in state.features])
            det = state.detector
            det.update_many(x)
            first: dict[int, float] = {}
            for row, feature in det.alarms:
                first.setdefault(feature, float(times[row]) / 1000)
            rows: list[dict[str, Any]] = []
            statistic = det.statistic
            if statistic.size:  # armed: the reference is learnt
                end = utc(k.start + w)
                for j, name in enumerate(state.features):
                    fired = j in first
                    rows.append(
                        {
                            "ts": utc(first[j]) if fired else end,
                            "window_start": utc(k.start),
                            "window_end": end,
                            "model": k.model,
                            "version": k.version,
                            "feature": name,
                            "detector": SHIFT_DETECTOR,
                            "statistic": max(float(statistic[j]), det.threshold) if fired else float(statistic[j]),
                            "threshold": float(det.threshold),
                            "drifted": int(fired),
                            "computed_at": computed_at,
                        }
                    )
            alarms = {state.features[j]: t for j, t in first.items()}
            if confirm is not None and alarms and rows:
                rows += confirm(k, times, {f: numeric[f] for f in state.features if f in numeric}, alarms)
            if carry is not None:  # the carried alarms need no armed detector (a new owner's is not yet)
                rows += carry.rows(k, times, {f: numeric[f] for f in state.features if f in numeric}, rows,
                                   computed_at)  # fmt: skip
            state.record(k.start, rows)
            self.alarms[k] = alarms
            out.extend(rows)
        return out


def _window_slices(table: Any) -> dict[WindowKey, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Per window of an Arrow result (rows grouped by model, version, ws): its event times (ms) and one
    array per numeric feature present in it (NaN where an event lacks it; a feature with no value in the
    window is left out)."""
    if table.num_rows == 0:
        return {}
    times = table["t"].to_numpy()
    out: dict[WindowKey, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for key, lo, hi in window_runs(table):
        numeric = map_columns(table["features"].slice(lo, hi - lo), hi - lo, np.nan, np.float64)
        present = {f: col for f, col in numeric.items() if not np.isnan(col).all()}
        out[key] = (times[lo:hi], present)
    return out


def window_runs(table: Any) -> list[tuple[WindowKey, int, int]]:
    """Each window's run of rows ``[lo, hi)`` in an Arrow result whose rows come grouped by model, version, ws."""
    n = table.num_rows
    if n == 0:
        return []
    model = table["model"].to_numpy(zero_copy_only=False)
    version = table["version"].to_numpy(zero_copy_only=False)
    ws = table["ws"].to_numpy()
    cut = np.flatnonzero((model[1:] != model[:-1]) | (version[1:] != version[:-1]) | (ws[1:] != ws[:-1])) + 1
    return [(WindowKey(str(model[lo]), str(version[lo]), int(ws[lo])), int(lo), int(hi))
            for lo, hi in zip(np.r_[0, cut], np.r_[cut, n], strict=True)]  # fmt: skip


def _unseen(
    streams: dict[tuple[str, str], ErrorStream], keys: Sequence[WindowKey], out: list[Any]
) -> Iterator[WindowKey]:
    """The versioned windows a sequential detector has not been fed, in order; the rows of
    those it has (a recomputed window) go to ``out`` again."""
    for k in sorted(k for k in keys if k.version):
        state = streams.get((k.model, k.version))
        again = state.seen(k.start) if state is not None else None
        if again is None:
            yield k
        else:
            out.extend(again)
