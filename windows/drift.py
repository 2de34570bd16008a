"""Feature and prediction drift of closed windows against the model version's reference.

The reference of a version is, by the model's ``drift_reference`` setting: the
training data loaded with ``watchkeeper reference`` (``auto``, when present), else
its first ``reference_predictions`` predictions (the "first N events" of DESIGN.md;
a setting, 1,000 by default: a window is tested once they have all arrived, and the
windows they fall in are the reference's own, not tested); or the previous window
(slow trends); or the same hour yesterday or last week (daily and weekly cycles). Each later window's features are
bucketed with edges learnt from the reference (quantiles for numbers, the seen
categories for strings) and tested with ``watchkeeper.detectors.drift_report`` (KS or
chi-square, Benjamini–Hochberg across the window's features, and a PSI effect
size), and each input feature's share of missing values (absent or null) with a one-sided Fisher
test of a rise, in the same Benjamini–Hochberg family (detector ``missing_rate``,
``detectors/missing.py``). The score distribution is tested too, as feature ``__prediction__``, and the joint
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
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from watchkeeper.detectors import DriftConfig, drift_report
from watchkeeper.detectors.reference import BinnedReference, ReferencePolicy, select_reference
from watchkeeper.detectors.timeutil import utc
from watchkeeper.windows.carry import Carry
from watchkeeper.windows.config import WindowConfig, WindowKey
from watchkeeper.windows.due import due_params
from watchkeeper.windows.partial import AFTER_ALARM, confirm_after_alarm
from watchkeeper.windows.queries import DUE, WS
from watchkeeper.windows.sample import PREDICTION, Sample, build_reference
from watchkeeper.windows.sequential import SequentialDrift

if TYPE_CHECKING:
    from watchkeeper.sinks.writer import Store

# ``PREDICTION`` and ``build_reference`` are re-exported: the drift stage's names for its sample.
__all__ = ["PREDICTION", "POLICIES", "DriftStage", "Sample", "build_reference"]

# The drift row of the joint test of a version's numeric features (detectors/multivariate.py).
MULTIVARIATE = "__multivariate__"
# The ``drift_reference`` setting as a selection policy (``auto``: a loaded file, else the first predictions,
# selected by :data:`FIRST_N`, not by time ranges).
FIRST = ("first_predictions", "first_windows")
POLICIES: dict[str, ReferencePolicy] = {
    "previous_window": ReferencePolicy.rolling(1),
    "same_hour_yesterday": ReferencePolicy.seasonal(period=86_400),
    "same_hour_last_week": ReferencePolicy.seasonal(period=7 * 86_400),
}
SAMPLE_PER_WINDOW = 5000
# The sampled rows a round of the drift stage's queries reads at most (each window counts its sample, at
# most SAMPLE_PER_WINDOW): a pass of many or large windows has several rounds, so that the worker holds
# one round's rows at a time. Measured (peak RSS through the 100-model x 20-feature backlog, fresh
# store): 2M rows 323 MB with the per-event covariate shift read as Python rows, 248 MB once read
# columnar; then 50k rows 248 MB, 20k rows 234 MB, 10k rows 226 MB. Again in December, the stage's whole
# pass after the backlog included (two runs each): 20k 255-261 MB, 15k 254 MB, 10k 243 MB; but at 10k a
# pass of 40 windows of 5,000 sampled rows took 4.6-6.0 s against 3.6-4.6 s (twice the rounds), and a
# fleet of small windows (160 of 60 rows) no longer fit one round. A fleet of small windows is one round.
ROWS_PER_ROUND = 15_000

# The first ``n`` predictions (in event time) of the versions without a reference yet, in one query: a
# version with fewer has no reference yet.
FIRST_N = """
SELECT model, version, toUnixTimestamp64Milli(ts) AS ts_ms, features, features_cat, prediction
FROM predictions FINAL
WHERE (model, version) IN {pairs:Array(Tuple(String, String))}
ORDER BY model, version, ts, cityHash64(event_id)
LIMIT {n:UInt32} BY model, version
"""

# Every window's sample (the due windows and the windows of the references built in the pass) in one query.
SAMPLE = f"""
SELECT model, version, {WS} AS ws, features, features_cat, prediction
FROM predictions FINAL
WHERE {DUE}
ORDER BY model, version, ws, cityHash64(event_id)
LIMIT {{cap:UInt32}} BY model, version, ws
"""


# Label balance per window, from the confusion counts the model stage just wrote.
LABELS = """
SELECT model, version, toUnixTimestamp(window_start) AS ws,
       sumIf(value, metric IN ('tp', 'fn')) AS pos, sumIf(value, metric IN ('fp', 'tn')) AS neg
FROM metrics FINAL
WHERE (model, version) IN {pairs:Array(Tuple(String, String))} AND segment = ''
  AND metric IN ('tp', 'fn', 'fp', 'tn')
  AND window_start >= {t0:DateTime('UTC')} AND window_start < {t1:DateTime('UTC')}
GROUP BY model, version, ws
"""
LABEL = "__label__"


# The loaded training data of the pass's models (every version's, and the model-wide '' one).
LOADED = """
SELECT model, version, features, features_cat, prediction FROM reference
WHERE model IN {models:Array(String)}
ORDER BY model, version, cityHash64(row_id)
LIMIT {cap:UInt32} BY model, version
"""
LOADED_CAP = 20000
MIN_REFERENCE_ROWS = 30
LOADED_TTL_SECONDS = 60.0


class DriftStage:
    """Keeps each version's reference (rebuilt from the store on demand) and tests windows against it.

    :meth:`pass_rows` tests every due window of the pass in a fixed number of queries: the loaded
    references, the first predictions of the versions without a reference yet, one sample query for every
    window it needs (the due ones and their references'), the label balance, the sequential detectors'
    events; the tests then run per window in Python.
    """

    def __init__(self, store: Store, config: WindowConfig, drift: DriftConfig | None = None) -> None:
        self.store = store
        self.window = config
        # alpha 0.001 per window (BH across its features): a fleet tests hundreds of windows a day,
        # and the alert policy asks for several drifted windows in a row on top.
        self.config = drift or DriftConfig(alpha=0.001)
        self.references: dict[tuple[str, str], BinnedReference | None] = {}
        self.loaded_refs: dict[tuple[str, str], tuple[float, BinnedReference | None]] = {}
        self.sequential = SequentialDrift(store, config)
        # Per-event alarms carried into the next windows for their confirmation (windows/carry.py).
        self.carry = Carry(self)

    def pass_rows(
        self,
        keys: Sequence[WindowKey],
        labelled: Sequence[WindowKey],
        computed_at: datetime,
        sizes: Mapping[WindowKey, int] | None = None,
        final: Sequence[WindowKey] | set[WindowKey] | None = None,
    ) -> list[dict[str, Any]]:
        """Every ``drift`` row of the pass: features, score and joint drift of ``keys``; label drift of the
        ``labelled`` binary windows, and their error stream once ``final`` (default: all of them: the error
        stream sees each event once, so a window's errors are fed when its labels are all in); per-event
        covariate shift of ``keys``.

        ``sizes`` (a window's predictions) bound the rows one round of queries reads: a backlog of large
        windows is tested in rounds of at most ``ROWS_PER_ROUND`` rows (in window order, so that each
        sequential detector still sees its windows in order); a fleet of small windows is one round.
        """
        out: list[dict[str, Any]] = []
        done = set(labelled)
        closed = set(keys) if final is None else set(final)
        for part in _rounds(sorted(keys), sizes or {}):
            mine = [k for k in part if k in done]
            out += (
                self.rows(part, computed_at, mine)
                + self.label_rows(mine, computed_at)
                + self.sequential.error_rows([k for k in mine if k in closed], computed_at)
                + self.sequential.shift_rows(
                    part, computed_at, partial(self._confirm_rows, computed_at=computed_at), self.carry
                )
            )
        return out

    def _confirm_rows(
        self, key: WindowKey, times: np.ndarray, numeric: dict[str, np.ndarray], alarms: dict[str, float],
        computed_at: datetime,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """The ``after_alarm`` rows of a window's alarmed features: the window test on its events after each
        alarm (``windows.partial.confirm_after_alarm``); none for a window its reference holds."""
        ref = self.reference_for(key)
        if ref is None or ref.contains(key.start):
            return []
        w = self.window.window_seconds
        out = []
        for f, r in sorted(confirm_after_alarm(ref, times, numeric, alarms, self.config).items()):
            result = SimpleNamespace(feature=f, detector=AFTER_ALARM, statistic=r.statistic, threshold=r.threshold,
                                     drifted=r.drifted)  # fmt: skip
            out.append(_drift_row(key, w, result, computed_at))
        return out

    # References -------------------------------------------------------------
    def _load(self, models: set[str]) -> None:
        """Refresh the loaded references of ``models`` whose cache is a minute old (one query)."""
        now = time.monotonic()
        stale = {mv for mv in self._pairs_of(models) if now - self.loaded_refs.get(mv, (-1e18, None))[0]
                 >= LOADED_TTL_SECONDS}  # fmt: skip
        if not stale:
            return
        params = {"models": sorted({m for m, _ in stale}), "cap": LOADED_CAP}
        samples = _split(self.store.query_arrow(LOADED, params), ("model", "version"))
        for model, version in stale:
            ref = None
            for v in (version, ""):
                sample = samples.get((model, v))
                if sample is not None and sample.n:
                    ref = build_reference(sample, 0, 0)
                    break
            self.loaded_refs[(model, version)] = (now, ref)

    def _pairs_of(self, models: set[str]) -> set[tuple[str, str]]:
        return {mv for mv in self._wanted if mv[0] in models}

    def _policy(self, model: str) -> str:
        return self.window.model(model).drift_reference

    def _build_first(self, pairs: set[tuple[str, str]]) -> None:
        """Build the reference of the versions in ``pairs`` without one from their first
        ``reference_predictions`` predictions (one query); a version with fewer gets none yet.

        The reference's range runs from its first window's start to just after its last prediction: the
        windows it touches are its own (not tested), the next one is the first tested."""
        todo = sorted(mv for mv in pairs if self.references.get(mv) is None)
        if not todo:
            return
        w, n = self.window.window_seconds, int(self.window.reference_predictions)
        table = self.store.query_arrow(FIRST_N, {"pairs": todo, "n": n})
        for (model, version), part in _split_tables(table, ("model", "version")).items():
            if part.num_rows < n:
                continue
            ts = part["ts_ms"].to_numpy()
            start = int(ts.min() // 1000) // w * w
            end = int(ts.max() // 1000) + 1
            self.references[(model, version)] = build_reference(Sample.from_arrow(part), start, end)

    def _prepare(self, keys: Sequence[WindowKey], labelled: Sequence[WindowKey]) -> dict[WindowKey, Sample]:
        """Load and build the references the pass needs; returns the samples of the due windows."""
        w = self.window.window_seconds
        due = sorted(k for k in keys if k.version)
        self._wanted = {(k.model, k.version) for k in due}
        auto = {k.model for k in due if self._policy(k.model) == "auto"}
        if auto:
            self._load(auto)
        firsts = {(k.model, k.version) for k in labelled}
        for k in due:
            policy = self._policy(k.model)
            if policy in FIRST or (policy == "auto" and self._loaded(k.model, k.version) is None):
                firsts.add((k.model, k.version))
        self._build_first(firsts)
        wanted: set[WindowKey] = set(due)
        rolling: dict[WindowKey, WindowKey] = {}
        for k in due:
            policy = self._policy(k.model)
            if policy not in ("auto", *FIRST):
                # One window at the same phase of the cycle (a wider range would mix phases).
                ((t0, _t1),) = select_reference(k.start, w, POLICIES[policy]).ranges
                rolling[k] = WindowKey(k.model, k.version, t0 - t0 % w)
                wanted.add(rolling[k])
        samples: dict[WindowKey, Sample] = {}
        tables: dict[tuple[Any, ...], Any] = {}
        if wanted:
            params = {**due_params(self.window, wanted), "cap": SAMPLE_PER_WINDOW}
            tables = _split_tables(self.store.query_arrow(SAMPLE, params), ("model", "version", "ws"))
        due_set = set(due)
        for k, sample in _split_samples(tables).items():
            if WindowKey(*k) in due_set:
                samples[WindowKey(*k)] = sample
        self._rolling = {}
        for k, ref_key in rolling.items():
            table = tables.get((ref_key.model, ref_key.version, ref_key.start))
            sample = Sample.from_arrow(table) if table is not None else None
            self._rolling[k] = (
                build_reference(sample, ref_key.start, ref_key.start + w)
                if sample is not None and sample.n >= MIN_REFERENCE_ROWS else None
            )  # fmt: skip
        return samples

    def _loaded(self, model: str, version: str) -> BinnedReference | None:
        cached = self.loaded_refs.get((model, version))
        return cached[1] if cached is not None else None

    def first_windows(self, model: str, version: str) -> BinnedReference | None:
        """The version's first ``reference_predictions`` predictions (once they have arrived)."""
        return self.references.get((model, version))

    def reference_for(self, key: WindowKey) -> BinnedReference | None:
        """The reference a window is compared with, by the model's ``drift_reference`` policy."""
        policy = self._policy(key.model)
        if policy == "auto":
            return self._loaded(key.model, key.version) or self.first_windows(key.model, key.version)
        if policy in FIRST:
            return self.first_windows(key.model, key.version)
        return self._rolling.get(key)

    # Rows -------------------------------------------------------------------
    def rows(
        self, keys: Sequence[WindowKey], computed_at: datetime, labelled: Sequence[WindowKey] = ()
    ) -> list[dict[str, Any]]:
        """``drift`` rows of the given windows (a window inside its own reference is not tested)."""
        w = self.window.window_seconds
        samples = self._prepare(keys, labelled)
        out: list[dict[str, Any]] = []
        for k in sorted(samples):
            sample = samples[k]
            if not sample.n:
                continue
            ref = self.reference_for(k)
            if ref is None or ref.contains(k.start):
                continue
            out.extend(self._window_rows(ref, k, sample, w, computed_at))
        return out

    def label_rows(self, keys: Sequence[WindowKey], computed_at: datetime) -> list[dict[str, Any]]:
        """Label drift of labelled binary windows: their positive/negative balance against the reference
        windows' (chi-square, same decision rule as the features). A loaded training file has no labels
        here, so label drift uses the version's first windows then. Call after :meth:`rows` (which builds
        the references) and after the pass's metrics are written (it reads their confusion counts)."""
        w = self.window.window_seconds
        out: list[dict[str, Any]] = []
        by_version: dict[tuple[str, str], list[WindowKey]] = defaultdict(list)
        for k in keys:
            if self.first_windows(k.model, k.version) is not None:
                by_version[(k.model, k.version)].append(k)
        if not by_version:
            return out
        t0 = min(min(self.references[mv].start, *(k.start for k in ks)) for mv, ks in by_version.items())  # type: ignore[union-attr]
        t1 = max(k.start for ks in by_version.values() for k in ks) + w
        params = {"pairs": sorted(by_version), "t0": utc(t0), "t1": utc(t1)}
        counts: dict[tuple[str, str], dict[int, np.ndarray]] = defaultdict(dict)
        for model, version, ws, pos, neg in self.store.query_rows(LABELS, params):
            counts[(model, version)][int(ws)] = np.array([neg, pos], dtype=np.int64)
        for mv, vkeys in sorted(by_version.items()):
            ref = self.references[mv]
            assert ref is not None
            mine = counts.get(mv, {})
            reference = sum((c for ws, c in mine.items() if ref.contains(ws)), np.zeros(2, np.int64))
            if reference.sum() == 0:
                continue
            for k in sorted(vkeys):
                cur = mine.get(k.start)
                if cur is None or cur.sum() == 0 or ref.contains(k.start):
                    continue
                (r,) = drift_report({LABEL: reference}, {LABEL: cur}, {LABEL: "categorical"}, self.config)
                out.append(_drift_row(k, w, r, computed_at))
        return out

    def _window_rows(
        self, ref: BinnedReference, key: WindowKey, sample: Sample, w: int, computed_at: datetime
    ) -> list[dict[str, Any]]:
        current = ref.current_counts(sample.numeric, sample.categorical, sample.n)
        # Every input feature's missing rate too (the score's is not an input's).
        inputs = [f for f in ref.counts if f != PREDICTION]
        results = drift_report(ref.counts, current, ref.kinds, self.config, missing_rate=inputs)
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


def _rounds(keys: list[WindowKey], sizes: Mapping[WindowKey, int]) -> list[list[WindowKey]]:
    """``keys`` (sorted) cut into rounds of at most ROWS_PER_ROUND sampled rows (a window of more is a round).

    >>> keys = [WindowKey("m", "v", 60 * i) for i in range(25)]
    >>> [len(r) for r in _rounds(keys, {k: 10**6 for k in keys})]  # each window reads its sample: <= 5,000 rows
    [3, 3, 3, 3, 3, 3, 3, 3, 1]
    >>> len(_rounds(keys, {}))
    1
    """
    out: list[list[WindowKey]] = [[]]
    rows = 0
    for k in keys:
        n = min(sizes.get(k, 0), SAMPLE_PER_WINDOW)
        if out[-1] and rows + n > ROWS_PER_ROUND:
            out.append([])
            rows = 0
        out[-1].append(k)
        rows += n
    return out if out[-1] else []


def _split_tables(table: pa.Table, by: tuple[str, ...]) -> dict[tuple[Any, ...], pa.Table]:
    """The slices of ``table`` (sorted by the ``by`` columns) per value of those columns."""
    n = table.num_rows
    if n == 0:
        return {}
    cols = [table.column(c).to_pylist() for c in by]
    keys = list(zip(*cols, strict=True))
    out: dict[tuple[Any, ...], pa.Table] = {}
    start = 0
    for i in range(1, n + 1):
        if i == n or keys[i] != keys[start]:
            key = tuple(int(x) if isinstance(x, int) else x for x in keys[start])
            out[key] = table.slice(start, i - start)
            start = i
    return out


def _split_samples(tables: dict[tuple[Any, ...], pa.Table]) -> dict[tuple[Any, ...], Sample]:
    """Each slice's Sample, from one conversion of the whole table: the slices of ``_split_tables`` share
    its buffers, so the columns are converted once and cut per window (a feature a window lacks is left
    out of its sample, as a sample of that window alone has it)."""
    if not tables:
        return {}
    parts = list(tables.items())
    whole = pa.concat_tables([t for _, t in parts])
    full = Sample.from_arrow(whole)
    out: dict[tuple[Any, ...], Sample] = {}
    start = 0
    for key, table in parts:
        n = table.num_rows
        end = start + n
        numeric = {}
        for name, col in full.numeric.items():
            cut = col[start:end]
            if name == PREDICTION or not np.isnan(cut).all():
                numeric[name] = cut
        categorical = {}
        for name, col in full.categorical.items():
            cut = col[start:end]
            if any(v is not None for v in cut):
                categorical[name] = cut
        out[key] = Sample(n, numeric, categorical)
        start = end
    return out


def _split(table: pa.Table, by: tuple[str, ...]) -> dict[tuple[Any, ...], Sample]:
    return {k: Sample.from_arrow(t) for k, t in _split_tables(table, by).items()}


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
