"""Feature and prediction drift of closed windows against the model version's reference.

The reference of a version is, by the model's ``drift_reference`` setting: the
training data loaded with ``watchkeeper reference`` (``auto``, when present), else
its first ``REFERENCE_WINDOWS`` windows of traffic (the "first N events" default of
DESIGN.md); or the previous window (slow trends); or the same hour yesterday or
last week (daily and weekly cycles). Each later window's features are
bucketed with edges learnt from the reference (quantiles for numbers, the seen
categories for strings) and tested with ``watchkeeper.detectors.drift_report`` (KS or
chi-square, Benjamini–Hochberg across the window's features, and a PSI effect
size). The score distribution is tested too, as feature ``__prediction__``, and the joint
distribution of the numeric features, as ``__multivariate__`` (PCA reconstruction error against
the reference's, ``detectors.MultivariateReference``): a change in their correlation that no
single feature shows.
The reference is a ``detectors.reference.BinnedReference``, its time range
chosen by ``detectors.reference.select_reference``; the samples are
``windows/sample.py``'s, the sequential detectors ``windows/sequential.py``'s.

Both samples are deterministic (lowest ``cityHash64(event_id)`` first), so a
replay gives the same decisions.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from watchkeeper.detectors import DriftConfig, drift_report
from watchkeeper.detectors.reference import BinnedReference, ReferencePolicy, select_reference
from watchkeeper.detectors.timeutil import utc
from watchkeeper.windows.config import WindowConfig, WindowKey
from watchkeeper.windows.sample import PREDICTION, Sample, build_reference
from watchkeeper.windows.sequential import SequentialDrift

if TYPE_CHECKING:
    from watchkeeper.sinks.writer import Store

# ``PREDICTION`` and ``build_reference`` are re-exported: the drift stage's names for its sample.
__all__ = ["PREDICTION", "POLICIES", "DriftStage", "Sample", "build_reference"]

REFERENCE_WINDOWS = 3
# The drift row of the joint test of a version's numeric features (detectors/multivariate.py).
MULTIVARIATE = "__multivariate__"
# The ``drift_reference`` setting as a selection policy (``auto``: a loaded file, else ``first_windows``).
POLICIES: dict[str, ReferencePolicy] = {
    "first_windows": ReferencePolicy.first_windows(REFERENCE_WINDOWS),
    "previous_window": ReferencePolicy.rolling(1),
    "same_hour_yesterday": ReferencePolicy.seasonal(period=86_400),
    "same_hour_last_week": ReferencePolicy.seasonal(period=7 * 86_400),
}
SAMPLE_PER_WINDOW = 5000

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


LOADED = """
SELECT features, features_cat, prediction FROM reference
WHERE model = {m:String} AND version = {v:String}
ORDER BY cityHash64(row_id) LIMIT {cap:UInt32}
"""
LOADED_CAP = 20000
MIN_REFERENCE_ROWS = 30


class DriftStage:
    """Keeps each version's reference (rebuilt from the store on demand) and tests windows against it."""

    def __init__(self, store: Store, config: WindowConfig, drift: DriftConfig | None = None) -> None:
        self.store = store
        self.window = config
        # alpha 0.001 per window (BH across its features): a fleet tests hundreds of windows a day,
        # and the alert policy asks for several drifted windows in a row on top.
        self.config = drift or DriftConfig(alpha=0.001)
        self.references: dict[tuple[str, str], BinnedReference | None] = {}
        self.loaded_refs: dict[tuple[str, str], tuple[float, BinnedReference | None]] = {}
        self.sequential = SequentialDrift(store, config)

    def label_rows(self, model: str, keys: Sequence[WindowKey], computed_at: datetime) -> list[dict[str, Any]]:
        """Label drift of labelled binary windows: their positive/negative balance against the reference
        windows' (chi-square, same decision rule as the features). A loaded training file has no labels
        here, so label drift uses the version's first windows then."""
        w = self.window.window_seconds
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
                for r in self.store.query(LABELS, {"m": model, "v": version, "t0": utc(t0), "t1": utc(t1)})
            }
            reference = sum((c for ws, c in counts.items() if ref.contains(ws)), np.zeros(2, np.int64))
            if reference.sum() == 0:
                continue
            for k in vkeys:
                cur = counts.get(k.start)
                if cur is None or cur.sum() == 0 or ref.contains(k.start):
                    continue
                (r,) = drift_report({LABEL: reference}, {LABEL: cur}, {LABEL: "categorical"}, self.config)
                out.append(_drift_row(k, w, r, computed_at))
        return out

    def error_rows(self, model: str, keys: Sequence[WindowKey], computed_at: datetime) -> list[dict[str, Any]]:
        """Concept drift rows of labelled binary windows (see ``windows/sequential.py``)."""
        return self.sequential.error_rows(model, keys, computed_at)

    def shift_rows(self, model: str, keys: Sequence[WindowKey], computed_at: datetime) -> list[dict[str, Any]]:
        """Per-event covariate shift rows (see ``windows/sequential.py``)."""
        return self.sequential.shift_rows(model, keys, computed_at)

    def _sample(self, model: str, version: str, t0: int, t1: int) -> Sample:
        w = self.window.window_seconds
        params = {"w": w, "m": model, "v": version, "t0": utc(t0), "t1": utc(t1), "cap": SAMPLE_PER_WINDOW}
        return Sample.from_arrow(self.store.query_arrow(SAMPLE, params))

    def first_windows(self, model: str, version: str) -> BinnedReference | None:
        """The version's first REFERENCE_WINDOWS windows of traffic (cached once built)."""
        key = (model, version)
        if self.references.get(key) is not None:
            return self.references[key]
        w = self.window.window_seconds
        first = self.store.query(FIRST_TS, {"w": w, "m": model, "v": version})
        # Counted from the first window with events, whichever window is judged (hence window start 0).
        history = {int(r["ws"]): int(r["n"]) for r in first}
        selection = select_reference(0, w, POLICIES["first_windows"], history=history)
        if not selection.ranges:
            return None
        ((start, end),) = selection.ranges
        sample = self._sample(model, version, start, end)
        if not sample.n:
            return None
        self.references[key] = ref = build_reference(sample, start, end)
        return ref

    def loaded(self, model: str, version: str) -> BinnedReference | None:
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

    def reference_for(self, model: str, version: str, window_start: int) -> BinnedReference | None:
        """The reference a window is compared with, by the model's ``drift_reference`` policy."""
        policy = self.window.model(model).drift_reference
        if policy == "auto":
            return self.loaded(model, version) or self.first_windows(model, version)
        if policy == "first_windows":
            return self.first_windows(model, version)
        w = self.window.window_seconds
        # One window at the same phase of the cycle (a wider range would mix phases).
        ((t0, t1),) = select_reference(window_start, w, POLICIES[policy]).ranges
        sample = self._sample(model, version, t0, t1)
        return build_reference(sample, t0, t1) if sample.n >= MIN_REFERENCE_ROWS else None

    def rows(self, model: str, keys: Sequence[WindowKey], computed_at: datetime) -> list[dict[str, Any]]:
        """``drift`` rows of the given windows (a window inside its own reference is not tested)."""
        w = self.window.window_seconds
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
                if ref is None or ref.contains(k.start):
                    continue
                out.extend(self._window_rows(ref, k, sample, w, computed_at))
        return out

    def _window_rows(
        self, ref: BinnedReference, key: WindowKey, sample: Sample, w: int, computed_at: datetime
    ) -> list[dict[str, Any]]:
        current = ref.current_counts(sample.numeric, sample.categorical, sample.n)
        results = drift_report(ref.counts, current, ref.kinds, self.config)
        rows = [_drift_row(key, w, r, computed_at) for r in results]
        if ref.multivariate is not None:
            rows.append(self._joint_row(ref, key, sample, w, computed_at))
        return rows

    @staticmethod
    def _joint_row(
        ref: BinnedReference, key: WindowKey, sample: Sample, w: int, computed_at: datetime
    ) -> dict[str, Any]:
        """The multivariate row (``__multivariate__``): a change in how the numeric features move together,
        which no single feature's test shows. A too-low error (features tightened) is drift too."""
        joint = ref.multivariate
        assert joint is not None
        missing = np.full(sample.n, np.nan)
        X = np.column_stack([sample.numeric.get(name, missing) for name in joint.names])
        r = joint.test(X, names=joint.names)
        result = SimpleNamespace(feature=MULTIVARIATE, detector=r.detector, statistic=r.statistic,
                                 threshold=r.threshold, drifted=r.drifted)  # fmt: skip
        return _drift_row(key, w, result, computed_at)

def _drift_row(key: WindowKey, w: int, r: Any, computed_at: datetime) -> dict[str, Any]:
    end = utc(key.start + w)
    return {
        "ts": end,
        "window_start": utc(key.start),
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
