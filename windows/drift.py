"""Feature and prediction drift of closed windows against the model version's reference.

The reference of a version is, by the model's ``drift_reference`` setting: the
training data loaded with ``watchkeeper reference`` (``auto``, when present), else
its first ``REFERENCE_WINDOWS`` windows of traffic (the "first N events" default of
DESIGN.md); or the previous window (slow trends); or the same hour yesterday or
last week (daily and weekly cycles). Each later window's features are
bucketed with edges learnt from the reference (quantiles for numbers, the seen
categories for strings) and tested with ``watchkeeper.detectors.drift_report`` (KS or
chi-square, Benjamini–Hochberg across the window's features, and a PSI effect
size). The score distribution is tested too, as feature ``__prediction__``.

Both samples are deterministic (lowest ``cityHash64(event_id)`` first), so a
replay gives the same decisions.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.detectors import CategoricalBinning, DriftConfig, NumericBinning, drift_report
from watchkeeper.windows.metrics import BINARY_OUTCOMES

if TYPE_CHECKING:
    from watchkeeper.settings import Settings
    from watchkeeper.sinks.writer import Store
    from watchkeeper.windows.metrics import WindowKey

REFERENCE_WINDOWS = 3
SAMPLE_PER_WINDOW = 5000
PREDICTION = "__prediction__"

FIRST_TS = """
SELECT toUnixTimestamp(toStartOfInterval(min(ts), toIntervalSecond({w:UInt32}))) AS ws, count() AS n
FROM predictions WHERE model = {m:String} AND version = {v:String}
"""

SAMPLE = """
SELECT toUnixTimestamp(toStartOfInterval(ts, toIntervalSecond({w:UInt32}))) AS ws,
       features, features_cat, prediction
FROM predictions FINAL
WHERE model = {m:String} AND version = {v:String}
  AND ts >= {t0:DateTime64(3, 'UTC')} AND ts < {t1:DateTime64(3, 'UTC')}
ORDER BY ws, cityHash64(event_id)
LIMIT {cap:UInt32} BY ws
"""


ERRORS = (
    """
SELECT toUnixTimestamp64Milli(p.ts) AS t, toUInt8((p.prediction >= {thr:Float64}) != (o.y = 1)) AS err
FROM (
    SELECT prediction_id, ts, assumeNotNull(prediction) AS prediction FROM predictions FINAL
    WHERE model = {m:String} AND version = {v:String} AND prediction IS NOT NULL
      AND ts >= {t0:DateTime64(3, 'UTC')} AND ts < {t1:DateTime64(3, 'UTC')}
) AS p
INNER JOIN """
    + BINARY_OUTCOMES
    + """
ORDER BY t, p.prediction_id
"""
)
# Label balance per window, from the confusion counts the model stage just wrote.
LABELS = """
SELECT toUnixTimestamp(window_start) AS ws,
       sumIf(value, metric IN ('tp', 'fn')) AS pos, sumIf(value, metric IN ('fp', 'tn')) AS neg
FROM metrics FINAL
WHERE model = {m:String} AND version = {v:String} AND segment = '' AND metric IN ('tp', 'fn', 'fp', 'tn')
  AND window_start >= {t0:DateTime('UTC')} AND window_start < {t1:DateTime('UTC')}
GROUP BY ws
"""
LABEL = "__label__"
ERROR_FEATURE = "__error__"
ERROR_DETECTOR = "watchkeeper_default"

# Per-event covariate shift: the ``covariate_shift`` preset (CUSUMs per standardised feature, tuned for
# a 0.5 sigma mean shift, one false alarm per 500k updates of a feature) fed every event of each
# window in event-time order; its rows name the firing event's time. Windows of more events are
# subsampled by event id (the order is kept).
SHIFT_DETECTOR = "mean_shift"
SHIFT_MAX_EVENTS = 5000
SHIFT_MAX_FEATURES = 100
SHIFT_EVENTS = """
SELECT toUnixTimestamp64Milli(ts) AS t, features FROM predictions FINAL
WHERE model = {m:String} AND version = {v:String}
  AND ts >= {t0:DateTime64(3, 'UTC')} AND ts < {t1:DateTime64(3, 'UTC')}
  AND cityHash64(event_id) % {every:UInt32} = 0
ORDER BY ts, event_id
"""
WINDOW_COUNT = """
SELECT count() FROM predictions FINAL
WHERE model = {m:String} AND version = {v:String}
  AND ts >= {t0:DateTime64(3, 'UTC')} AND ts < {t1:DateTime64(3, 'UTC')}
"""


LOADED = """
SELECT features, features_cat, prediction FROM reference
WHERE model = {m:String} AND version = {v:String}
ORDER BY cityHash64(row_id) LIMIT {cap:UInt32}
"""
LOADED_CAP = 20000
MIN_REFERENCE_ROWS = 30


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


@dataclass
class Reference:
    """Bucket edges and reference counts of one model version."""

    start: int
    end: int
    binnings: dict[str, NumericBinning | CategoricalBinning]
    counts: dict[str, np.ndarray]
    kinds: dict[str, str]


@dataclass(frozen=True)
class Sample:
    """A sample's feature values, one array per feature (NaN or None where a row lacks it)."""

    n: int
    numeric: dict[str, np.ndarray]
    categorical: dict[str, np.ndarray]

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Sample:
        """From the ``features``, ``features_cat`` and ``prediction`` columns of a query's Arrow result.

        Columnar all the way: no Python object per row (a window's sample as Python rows
        cost the worker more than all the drift tests on it).
        """
        n = table.num_rows
        numeric = _map_columns(table["features"], n, np.nan, np.float64)
        if n:
            numeric[PREDICTION] = pc.fill_null(table["prediction"], math.nan).to_numpy().astype(np.float64)
        return cls(n, numeric, _map_columns(table["features_cat"], n, None, object))


def _map_columns(column: pa.ChunkedArray, n: int, missing: Any, dtype: Any) -> dict[str, np.ndarray]:
    """One array per key of a Map column, ``missing`` where a row lacks the key (the last value of a
    repeated key wins)."""
    maps = column.combine_chunks()
    offsets = maps.offsets.to_numpy()
    if n == 0 or offsets[-1] == offsets[0]:
        return {}
    lo, hi = int(offsets[0]), int(offsets[-1])
    rows = np.repeat(np.arange(n), np.diff(offsets))
    keys = maps.keys.slice(lo, hi - lo).dictionary_encode()
    codes = keys.indices.to_numpy()
    values = maps.items.slice(lo, hi - lo).to_numpy(zero_copy_only=False)
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(keys.dictionary.to_pylist()):
        mask = codes == i
        col = np.full(n, missing, dtype=dtype)
        col[rows[mask]] = values[mask]
        out[name] = col
    return out


def build_reference(sample: Sample, start: int, end: int) -> Reference:
    binnings: dict[str, NumericBinning | CategoricalBinning] = {}
    counts: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for name, arr in sample.numeric.items():
        if np.isfinite(arr).sum() < 2:
            continue
        b = NumericBinning.from_reference(arr, 100)
        binnings[name], counts[name], kinds[name] = b, b.counts(arr), "numeric"
    for name, cats in sample.categorical.items():
        cb = CategoricalBinning.from_reference(cats)
        binnings[name], counts[name], kinds[name] = cb, cb.counts(cats), "categorical"
    return Reference(start, end, binnings, counts, kinds)


class DriftStage:
    """Keeps each version's reference (rebuilt from the store on demand) and tests windows against it."""

    def __init__(self, store: Store, settings: Settings, config: DriftConfig | None = None) -> None:
        self.store = store
        self.settings = settings
        # alpha 0.001 per window (BH across its features): a fleet tests hundreds of windows a day,
        # and the alert policy asks for several drifted windows in a row on top.
        self.config = config or DriftConfig(alpha=0.001)
        self.references: dict[tuple[str, str], Reference | None] = {}
        self.loaded_refs: dict[tuple[str, str], tuple[float, Reference | None]] = {}
        self.error_streams: dict[tuple[str, str], ErrorStream] = {}
        self.shift_streams: dict[tuple[str, str], ErrorStream] = {}

    def label_rows(self, model: str, keys: Sequence[WindowKey], computed_at: datetime) -> list[dict[str, Any]]:
        """Label drift of labelled binary windows: their positive/negative balance against the reference
        windows' (chi-square, same decision rule as the features). A loaded training file has no labels
        here, so label drift uses the version's first windows then."""
        w = self.settings.window_seconds
        out: list[dict[str, Any]] = []
        by_version: dict[str, list[WindowKey]] = defaultdict(list)
        for k in keys:
            by_version[k.version].append(k)
        for version, vkeys in by_version.items():
            ref = self.first_windows(model, version)
            if ref is None:
                continue
            t0 = min(ref.start, *(k.start for k in vkeys))
            t1 = max(k.start for k in vkeys) + w
            counts = {
                int(r["ws"]): np.array([r["neg"], r["pos"]], dtype=np.int64)
                for r in self.store.query(LABELS, {"m": model, "v": version, "t0": _dt(t0), "t1": _dt(t1)})
            }
            reference = sum((c for ws, c in counts.items() if ref.start <= ws < ref.end), np.zeros(2, np.int64))
            if reference.sum() == 0:
                continue
            for k in vkeys:
                cur = counts.get(k.start)
                if cur is None or cur.sum() == 0 or ref.start <= k.start < ref.end:
                    continue
                (r,) = drift_report({LABEL: reference}, {LABEL: cur}, {LABEL: "categorical"}, self.config)
                out.append(_drift_row(k, w, r, computed_at))
        return out

    def error_rows(self, model: str, keys: Sequence[WindowKey], computed_at: datetime) -> list[dict[str, Any]]:
        """Concept drift: the ``watchkeeper_default`` detector fed each binary window's errors in event-time order.

        Each window is fed once, in order (a recomputed window is not fed again); the row's
        ``ts`` is the event time of the first error that made the detector fire, else the
        window's end. Detector state lives in this process: a restarted leader starts a new
        detector from the next window on.
        """
        from watchkeeper.detectors import build

        w = self.settings.window_seconds
        thr = self.settings.model(model).threshold
        out: list[dict[str, Any]] = []
        for k in _unseen(self.error_streams, model, keys, out):
            state = self.error_streams.get((model, k.version))
            errors = self.store.query_rows(
                ERRORS,
                {"m": model, "v": k.version, "thr": thr, "t0": _dt(k.start), "t1": _dt(k.start + w)},
            )
            if not errors:
                continue
            if state is None:
                state = self.error_streams[(model, k.version)] = ErrorStream(build(ERROR_DETECTOR), k.start)
            fired_at: float | None = None
            for t, err in errors:
                state.detector.update(float(err))
                if state.detector.drift_detected and fired_at is None:
                    fired_at = t / 1000
            end = _dt(k.start + w)
            rate = sum(e for _, e in errors) / len(errors)
            out.append(
                {
                    "ts": _dt(fired_at) if fired_at is not None else end,
                    "window_start": _dt(k.start),
                    "window_end": end,
                    "model": model,
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

    def shift_rows(self, model: str, keys: Sequence[WindowKey], computed_at: datetime) -> list[dict[str, Any]]:
        """Covariate shift per event: one ``mean_shift`` row per numeric feature and window.

        The detector learns each feature's mean and spread from the version's first 1,000
        events, so it runs only with a fixed reference (``drift_reference`` ``auto`` or
        ``first_windows``): a rolling or seasonal reference is for cycles a fixed mean
        would read as shifts. A row's ``ts`` is the event time of the feature's first
        alarm in the window, else the window's end; ``statistic`` the feature's CUSUM (in
        standard deviations; at least the threshold when it fired). State lives in this
        process, as for the error stream.
        """
        from watchkeeper.detectors import build

        if self.settings.model(model).drift_reference not in ("auto", "first_windows"):
            return []
        w = self.settings.window_seconds
        out: list[dict[str, Any]] = []
        for k in _unseen(self.shift_streams, model, keys, out):
            state = self.shift_streams.get((model, k.version))
            params = {"m": model, "v": k.version, "t0": _dt(k.start), "t1": _dt(k.start + w)}
            n = int(self.store.query_rows(WINDOW_COUNT, params)[0][0])
            events = self.store.query_rows(SHIFT_EVENTS, {**params, "every": max(1, math.ceil(n / SHIFT_MAX_EVENTS))})
            if not events:
                continue
            if state is None:
                names = sorted({f for _, feats in events for f in feats})[:SHIFT_MAX_FEATURES]
                if not names:
                    continue
                state = ErrorStream(build("covariate_shift"), k.start, tuple(names))
                self.shift_streams[(model, k.version)] = state
            det = state.detector
            x = np.array([[feats.get(f, math.nan) for f in state.features] for _, feats in events], dtype=np.float64)
            det.update_many(x)
            first: dict[int, float] = {}
            for row, feature in det.alarms:
                first.setdefault(feature, events[row][0] / 1000)
            rows: list[dict[str, Any]] = []
            statistic = det.statistic
            if statistic.size:  # armed: the reference is learnt
                end = _dt(k.start + w)
                for j, name in enumerate(state.features):
                    fired = j in first
                    rows.append(
                        {
                            "ts": _dt(first[j]) if fired else end,
                            "window_start": _dt(k.start),
                            "window_end": end,
                            "model": model,
                            "version": k.version,
                            "feature": name,
                            "detector": SHIFT_DETECTOR,
                            "statistic": max(float(statistic[j]), det.threshold) if fired else float(statistic[j]),
                            "threshold": float(det.threshold),
                            "drifted": int(fired),
                            "computed_at": computed_at,
                        }
                    )
            state.record(k.start, rows)
            out.extend(rows)
        return out

    def _sample(self, model: str, version: str, t0: int, t1: int) -> Sample:
        w = self.settings.window_seconds
        params = {"w": w, "m": model, "v": version, "t0": _dt(t0), "t1": _dt(t1), "cap": SAMPLE_PER_WINDOW}
        return Sample.from_arrow(self.store.query_arrow(SAMPLE, params))

    def first_windows(self, model: str, version: str) -> Reference | None:
        """The version's first REFERENCE_WINDOWS windows of traffic."""
        key = (model, version)
        if self.references.get(key) is not None:
            return self.references[key]
        w = self.settings.window_seconds
        first = self.store.query(FIRST_TS, {"w": w, "m": model, "v": version})
        if not first or not first[0]["n"]:
            return None
        start = int(first[0]["ws"])
        end = start + REFERENCE_WINDOWS * w
        sample = self._sample(model, version, start, end)
        if not sample.n:
            return None
        self.references[key] = ref = build_reference(sample, start, end)
        return ref

    def loaded(self, model: str, version: str) -> Reference | None:
        """The training data loaded with ``watchkeeper reference`` (version-specific first), cached a minute."""
        key = (model, version)
        cached = self.loaded_refs.get(key)
        if cached is not None and time.monotonic() - cached[0] < 60:
            return cached[1]
        ref = None
        for v in (version, ""):
            sample = Sample.from_arrow(self.store.query_arrow(LOADED, {"m": model, "v": v, "cap": LOADED_CAP}))
            if sample.n:
                ref = build_reference(sample, 0, 0)
                break
        self.loaded_refs[key] = (time.monotonic(), ref)
        return ref

    def reference_for(self, model: str, version: str, window_start: int) -> Reference | None:
        """The reference a window is compared with, by the model's ``drift_reference`` policy."""
        policy = self.settings.model(model).drift_reference
        if policy == "auto":
            return self.loaded(model, version) or self.first_windows(model, version)
        if policy == "first_windows":
            return self.first_windows(model, version)
        w = self.settings.window_seconds
        offset = {"previous_window": w, "same_hour_yesterday": 86400, "same_hour_last_week": 7 * 86400}[policy]
        # The window at the same phase of the cycle (a wider range would mix phases).
        t0 = window_start - offset
        t1 = t0 + w
        sample = self._sample(model, version, t0, t1)
        return build_reference(sample, t0, t1) if sample.n >= MIN_REFERENCE_ROWS else None

    def rows(self, model: str, keys: Sequence[WindowKey], computed_at: datetime) -> list[dict[str, Any]]:
        """``drift`` rows of the given windows (a window inside its own reference is not tested)."""
        w = self.settings.window_seconds
        out: list[dict[str, Any]] = []
        by_version: dict[str, list[WindowKey]] = defaultdict(list)
        for k in keys:
            if k.version:
                by_version[k.version].append(k)
        for version, vkeys in by_version.items():
            for k in sorted(vkeys):
                # One window's sample at a time: a backlog closes many windows at once, and their
                # samples together made the worker's peak memory.
                sample = self._sample(model, version, k.start, k.start + w)
                if not sample.n:
                    continue
                ref = self.reference_for(model, version, k.start)
                if ref is None or ref.start <= k.start < ref.end:
                    continue
                out.extend(self._window_rows(ref, k, sample, w, computed_at))
        return out

    def _window_rows(
        self, ref: Reference, key: WindowKey, sample: Sample, w: int, computed_at: datetime
    ) -> list[dict[str, Any]]:
        current: dict[str, np.ndarray] = {}
        for name, binning in ref.binnings.items():
            if isinstance(binning, NumericBinning):
                values = sample.numeric.get(name)
                current[name] = binning.counts(values if values is not None else np.full(sample.n, math.nan))
            else:
                cats = sample.categorical.get(name)
                current[name] = binning.counts(cats if cats is not None else np.full(sample.n, None, dtype=object))
        results = drift_report(ref.counts, current, ref.kinds, self.config)
        return [_drift_row(key, w, r, computed_at) for r in results]


def _unseen(
    streams: dict[tuple[str, str], ErrorStream], model: str, keys: Sequence[WindowKey], out: list[Any]
) -> Iterator[WindowKey]:
    """The versioned windows a sequential detector has not been fed, in order; the rows of
    those it has (a recomputed window) go to ``out`` again."""
    for k in sorted(k for k in keys if k.version):
        state = streams.get((model, k.version))
        again = state.seen(k.start) if state is not None else None
        if again is None:
            yield k
        else:
            out.extend(again)


def _drift_row(key: WindowKey, w: int, r: Any, computed_at: datetime) -> dict[str, Any]:
    end = _dt(key.start + w)
    return {
        "ts": end,
        "window_start": _dt(key.start),
        "window_end": end,
        "model": key.model,
        "version": key.version,
        "feature": r.feature,
        "detector": r.detector,
        "statistic": float(r.statistic) if math.isfinite(r.statistic) else 0.0,
        "threshold": float(r.threshold),
        "drifted": int(bool(r.drifted)),
        "computed_at": computed_at,
    }


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)
