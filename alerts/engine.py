"""The alert engine: reads ``metrics``/``drift``, decides, records state changes in ``alerts``.

``AlertEngine.evaluate`` is called by the model stage after it wrote windows.
For each model with new windows (or when the fleet watermark moved) it loads
the new rows with parameterised SQL, feeds them to the model's
:class:`~watchkeeper.alerts.evaluator.ModelEvaluator` and writes each state change to the
``alerts`` table with an insert deduplication token derived from
(alert_id, state, ts), so a repeated write inserts nothing. It returns the new
state changes as :class:`~watchkeeper.alerts.model.Alert` s for the caller to publish and
deliver.

State lives in memory and is rebuildable from the store: after a restart the
engine reads the last transition of every alert from ``alerts`` and re-reads
up to ``history_days`` of windows (event time, before the fleet watermark) to
rebuild its counters; transitions already recorded are not repeated, and ones
that a crash kept from being written are written then.

An alert's ``ts`` is its decision time: the event-time watermark at which the
model stage had written the window it was decided from as the rule needs it —
its end plus the grace for the label-free rules (drift, traffic, ops), plus the
label delay for the label-based ones (retrain, fairness, ...), which judge only
final windows — or the stream's last event when an idle flush wrote it sooner; a look before the
window is final decides at its mark (a drift alarm confirmed on the window so far, ``windows/partial.py``;
an error-stream alarm confirmed on the labels so far, ``windows/label_looks.py``);
so it reads the models' event-time watermarks (largest prediction or outcome
time) with each evaluation. The evidence's own time is ``evidence_ts``.
References are pooled from final windows only.

Decisions depend on event time and data only. Replaying the same ``metrics`` and
``drift`` rows into an empty store gives the same alerts (``Alert.decision()``);
``fired_at`` and ``silenced`` are the only wall-time fields. Caveats: a window
first written after later windows of its version were evaluated is not
evaluated (late *labels* rewrite a window; they do not change decisions already
recorded), and a trailing gap (``no_data``) is measured against the fleet
watermark at the time.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from watchkeeper.alerts.config import AlertConfig
from watchkeeper.alerts.evaluator import Anchor, Decision, ModelEvaluator
from watchkeeper.alerts.model import ALERT_COLUMNS_SQL, Alert
from watchkeeper.alerts.policy import AlertPolicy
from watchkeeper.alerts.window import DriftRow, Point, Window, build_windows
from watchkeeper.detectors.reference import MetricBaseline, baseline_from_sample
from watchkeeper.detectors.timeutil import utc
from watchkeeper.sinks.protocols import StoreClient, StoreReader

log = logging.getLogger(__name__)

# ``last_final``: the end of the version's last window whose label delay has passed (its ``labelled`` row,
# or an A/B pair's decision, no longer provisional): the label-based rules' windows.
CATALOGUE = """
SELECT model, version, toUnixTimestamp(min(window_start)) AS first_start,
       toUnixTimestamp(max(window_end)) AS last_end,
       toUnixTimestamp(maxIf(window_end, metric != 'predictions' AND provisional = 0)) AS last_final
FROM metrics FINAL
WHERE window_end > {since:DateTime('UTC')}
  AND metric IN ('predictions', 'labelled', 'orphaned_outcomes', 'ab_error_decision', 'ab_cost_decision')
GROUP BY model, version
"""

FLEET = "SELECT toUnixTimestamp(max(window_end)) AS last_end FROM metrics FINAL WHERE metric = 'predictions'"

# Traffic before the rebuild horizon: when each version was first and last seen.
SEEDS = """
SELECT model, version, toUnixTimestamp(min(window_start)) AS first_start,
       toUnixTimestamp(max(window_end)) AS last_end
FROM metrics FINAL
WHERE model IN {models:Array(String)} AND metric = 'predictions' AND version != '' AND value > 0
  AND window_end <= {start:DateTime('UTC')}
GROUP BY model, version
"""

# The hysteresis runs on evidence times: a restored alert continues from its last evidence.
ANCHORS = """
SELECT model, alert_id, argMax(version, ts) AS last_version, argMax(kind, ts) AS last_kind,
       argMax(state, ts) AS last_state, intDiv(toUnixTimestamp64Milli(max(evidence_ts)), 1000) AS t,
       intDiv(toUnixTimestamp64Milli(maxIf(evidence_ts, state = 'firing')), 1000) AS fired,
       intDiv(toUnixTimestamp64Milli(maxIf(evidence_ts, state = 'resolved')), 1000) AS resolved,
       countIf(state = 'firing') AS n_fired, countIf(state = 'resolved') AS n_resolved,
       argMax(severity, ts) AS last_severity, argMax(summary, ts) AS last_summary,
       argMax(evidence, ts) AS last_evidence
FROM alerts FINAL
WHERE model IN {models:Array(String)}
GROUP BY model, alert_id
"""

# Each model's event-time watermark (its largest prediction or outcome time), which dates decisions. Only
# rows since the earliest window evaluated are read (the tables are partitioned by day): a model with a
# window to judge has events since then.
WATERMARKS = """
SELECT model, max(ms) / 1000 AS max_ts FROM (
    SELECT model, max(toUnixTimestamp64Milli(ts)) AS ms FROM predictions WHERE ts >= {since:DateTime('UTC')}
    GROUP BY model
    UNION ALL
    SELECT model, max(toUnixTimestamp64Milli(ts)) AS ms FROM outcomes WHERE ts >= {since:DateTime('UTC')}
    GROUP BY model
) GROUP BY model
"""

METRIC_ROWS = """
SELECT model, version, toUnixTimestamp(window_start) AS ws, toUnixTimestamp(window_end) AS we,
       segment, metric, value, n, provisional
FROM metrics FINAL
WHERE model IN {models:Array(String)} AND window_end > {since:DateTime('UTC')}
"""

DRIFT_ROWS = """
SELECT model, version, toUnixTimestamp(window_start) AS ws, toUnixTimestamp(window_end) AS we,
       toUnixTimestamp64Milli(ts) AS ts_ms, feature, detector, statistic, threshold, drifted, provisional
FROM drift FINAL
WHERE model IN {models:Array(String)} AND window_end > {since:DateTime('UTC')}
"""

# The first windows of each version until they hold ``size`` events (labels, for a labelled metric): the
# reference, from a sample size (each window's events before it are summed in the store).
REFERENCES = """
SELECT model, version, metric, ws, value, n FROM (
    SELECT model, version, metric, toUnixTimestamp(window_start) AS ws, value, n,
           sum(n) OVER (PARTITION BY model, version, metric ORDER BY window_start
                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
    FROM metrics FINAL
    WHERE model IN {models:Array(String)} AND version != '' AND segment = '' AND metric = {metric:String}
      AND n > 0 AND provisional = 0
)
WHERE before < {size:UInt64}
ORDER BY model, version, metric, ws
"""

def _dt(t: float) -> datetime:
    return utc(max(0.0, float(t)))


class AlertEngine:
    """Evaluates alert policies over the store and records state changes.

    ``config`` holds the window length, the per-model policies (others get its
    default policy), owners and runbooks (see :class:`~watchkeeper.alerts.config.AlertConfig`).
    ``write=False`` evaluates without reading or writing ``alerts`` (a dry run
    from the data alone, as ``sunset-candidates`` does); ``history_days=None``
    considers all windows.

    ``owns``: the models this engine judges (the sharded model stage passes its
    ownership; default all). Others are left to their owner and their state is
    dropped here, to be rebuilt from the store if they come back. The fleet
    watermark is still read from every model, so each owner measures its models'
    trailing gaps (``no_data``) against the whole fleet, and each model's
    alert is raised once, by its owner.
    """

    def __init__(
        self,
        store: StoreClient,
        config: AlertConfig | None = None,
        *,
        history_days: float | None = 7.0,
        write: bool = True,
        clock: Callable[[], datetime] | None = None,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        self.store = store
        self.owns = owns or (lambda model: True)
        self.config = config or AlertConfig()
        self.history_seconds = None if history_days is None else int(history_days * 86_400)
        self.write = write
        self.clock = clock or (lambda: datetime.now(UTC))
        self.window_seconds = int(self.config.window_seconds)
        self.stats: Counter[str] = Counter()
        self._evaluators: dict[str, ModelEvaluator] = {}
        self._references: dict[tuple[str, str, str], MetricBaseline] = {}  # complete ones only
        self._fleet = 0
        self._early: dict[str, list[tuple[int, Window]]] = defaultdict(list)  # model -> windows judged so far
        # model -> error-stream alarms judged on the labels so far: (mark, looks, window)
        self._label_early: dict[str, list[tuple[int, int, Window]]] = defaultdict(list)

    # Configuration -------------------------------------------------------------
    def policy(self, model: str) -> AlertPolicy:
        return self.config.policy(model)

    def reset(self) -> None:
        """Forget all in-memory state: the next ``evaluate`` rebuilds it from the store."""
        self._evaluators.clear()
        self._references.clear()

    def add_looks(self, looks: Iterable[Any]) -> None:
        """Windows judged before their end by the model stage (``windows.partial.Look``: a drift alarm
        confirmed on the events before its mark; ``windows.label_looks.LabelLook``: an error-stream alarm
        and the labels that arrived before its mark), for the next ``evaluate`` to decide at their mark."""
        for look in looks:
            if hasattr(look, "metrics"):  # a LabelLook: the retrain rule judges it with the version's reference
                alarm = DriftRow(look.feature, look.detector, look.error_rate, 0.0, True, look.alarm)
                metrics = {m: Point(v, n) for m, v, n in look.metrics}
                w = Window(look.version, look.start, look.end, metrics, drift=(alarm,), final=False)
                self._label_early[look.model].append((look.mark, look.looks, w))
                continue
            drift = tuple(DriftRow(r["feature"], r["detector"], r["statistic"], r["threshold"], r["drifted"], r["ts"])
                          for r in look.rows)  # fmt: skip
            self._early[look.model].append((look.mark, Window(look.version, look.start, look.end, drift=drift)))

    # Evaluation ----------------------------------------------------------------
    def evaluate(self, models: Sequence[str] | None = None) -> list[Alert]:
        """Evaluate the given models (default: all with metrics); returns the new state changes."""
        catalogue = self._catalogue()
        if not catalogue and not self._evaluators:
            return []
        fleet = max((last for vs in catalogue.values() for v, (_, last, _) in vs.items() if v), default=self._fleet)
        self._fleet = max(self._fleet, fleet)
        self._drop_unowned()
        known = {m for m in set(catalogue) | set(self._evaluators) if self.owns(m)}
        names = sorted(known if models is None else known & set(models))
        fresh = [m for m in names if m not in self._evaluators]
        if fresh:
            self._rebuild(fresh, self._fleet)

        work: dict[str, int | None] = {}
        for m in names:
            ev = self._evaluators[m]
            # New windows (label-free rules) and newly final ones (label-based rules).
            versions = catalogue.get(m, {}).items()
            pending = [ev.cursor_of(v) for v, (_, last, _) in versions if last > ev.cursor_of(v)]
            pending += [ev.label_cursor_of(v) for v, (_, _, done) in versions if done > ev.label_cursor_of(v)]
            if pending or ev.fleet_watermark < self._fleet:
                work[m] = min(pending) if pending else None
            elif self._early.get(m) or self._label_early.get(m):
                work[m] = None
        if not work:
            return []
        metric_rows, drift_rows = self._load(work)
        with_rows = sorted(m for m, since in work.items() if since is not None)
        # A model with label looks needs its retrain reference even without new windows (complete ones are cached).
        refs, ests = self._load_references(sorted({*with_rows, *(m for m in work if self._label_early.get(m))}),
                                           catalogue)  # fmt: skip

        since = min((s for s in work.values() if s is not None), default=self._fleet - self.window_seconds)
        marks = {str(r["model"]): float(r["max_ts"]) for r in self.store.query(WATERMARKS, {"since": _dt(since)})}
        stream = max(marks.values(), default=None)
        decisions: list[Decision] = []
        for m in sorted(work):
            windows = build_windows(metric_rows.get(m, ()), drift_rows.get(m, ()))
            decisions += self._evaluators[m].feed(
                windows, references=refs.get(m, {}), estimates=ests.get(m, {}), fleet_watermark=self._fleet,
                watermark=marks.get(m), stream_watermark=stream, early=self._early.pop(m, ()),
                label_early=self._label_early.pop(m, ()),
            )  # fmt: skip
        # Ownership is checked again after the work: a model revoked meanwhile is its new owner's to record.
        alerts = [a for a in self._alerts(decisions) if self.owns(a.model)]
        self._drop_unowned()
        if self.write and alerts:
            self._record(alerts)
        self.stats["evaluations"] += 1
        self.stats["state_changes"] += len(alerts)
        return alerts

    def firing(self, *, kind: str | None = None, models: Sequence[str] | None = None) -> list[Alert]:
        """Alerts firing now in the engine's state (after ``evaluate``)."""
        out = []
        for m, ev in sorted(self._evaluators.items()):
            if models is not None and m not in models:
                continue
            out += [d for d in ev.firing() if kind is None or d.kind == kind]
        return self._alerts(out, silences=False)

    def _drop_unowned(self) -> None:
        """Forget the models another worker owns now (their state moves with them, through the store)."""
        for m in [m for m in self._evaluators if not self.owns(m)]:
            del self._evaluators[m]
        for key in [k for k in self._references if not self.owns(k[0])]:
            del self._references[key]
        for early in (self._early, self._label_early):
            for m in [m for m in early if not self.owns(m)]:
                del early[m]  # type: ignore[attr-defined]

    # Loading -------------------------------------------------------------------
    def _catalogue(self) -> dict[str, dict[str, tuple[int, int, int]]]:
        """(model -> version -> (first start, last end, last final end)) of windows that may be new.

        The first call looks over the whole history; later ones only as far back as a window
        can still be written late (label delay, orphan horizon), so the per-tick query stays cheap.
        """
        if not self._fleet:
            since = 0
            if self.history_seconds is not None:
                rows = self.store.query(FLEET)
                since = max(0, int(rows[0]["last_end"]) - self.history_seconds) if rows else 0
        else:
            late = int(self.config.late_seconds)
            since = max(0, self._fleet - late - 4 * self.window_seconds)
        out: dict[str, dict[str, tuple[int, int, int]]] = defaultdict(dict)
        for r in self.store.query(CATALOGUE, {"since": _dt(since)}):
            out[r["model"]][r["version"]] = (int(r["first_start"]), int(r["last_end"]), int(r["last_final"]))
        return dict(out)

    def _rebuild(self, models: list[str], fleet: int) -> None:
        w = self.window_seconds
        start = 0 if self.history_seconds is None else max(0, (fleet - self.history_seconds) // w * w)
        cfg = self.config
        evs = {
            m: ModelEvaluator(m, self.policy(m), w, start, label_delay=cfg.label_delay_seconds,
                              orphan_after=cfg.orphan_after_seconds, grace=cfg.grace_seconds)
            for m in models
        }  # fmt: skip
        if self.write:
            anchors: dict[str, list[Anchor]] = defaultdict(list)
            for r in self.store.query(ANCHORS, {"models": models}):
                anchors[r["model"]].append(_anchor(r))
            for m, items in anchors.items():
                evs[m].restore(items)
            self.stats["anchors_restored"] += sum(len(v) for v in anchors.values())
        if start > 0:
            seeds: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
            for r in self.store.query(SEEDS, {"models": models, "start": _dt(start)}):
                seeds[r["model"]][r["version"]] = (int(r["first_start"]), int(r["last_end"]))
            for m, traffic in seeds.items():
                evs[m].seed(traffic)
        self._evaluators.update(evs)
        self.stats["rebuilds"] += len(models)

    def _load(self, work: Mapping[str, int | None]) -> tuple[dict[str, list[dict[str, Any]]], ...]:
        with_rows = {m: s for m, s in work.items() if s is not None}
        metric_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        drift_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if not with_rows:
            return metric_rows, drift_rows
        params = {"models": sorted(with_rows), "since": _dt(min(with_rows.values()))}
        for r in self.store.query(METRIC_ROWS, params):
            metric_rows[r["model"]].append(r)
        for r in self.store.query(DRIFT_ROWS, params):
            drift_rows[r["model"]].append(r)
        return metric_rows, drift_rows

    def _load_references(
        self, models: list[str], catalogue: Mapping[str, Mapping[str, tuple[int, int, int]]]
    ) -> tuple[dict[str, dict[str, MetricBaseline]], dict[str, dict[str, MetricBaseline]]]:
        """Per model and version: the retrain reference and the estimate's reference (complete ones cached)."""
        wanted: dict[tuple[str, int], list[str]] = defaultdict(list)  # (metric, sample size) -> models
        # Versions, not A/B pairs ('<challenger> vs <champion>'), have references.
        versions = {m: sorted(v for v in catalogue.get(m, {}) if v and " vs " not in v) for m in models}
        for m in models:
            rule = self.policy(m).retrain
            if not rule.enabled:
                continue
            # The labelled metric's reference: the first M labels; the label-free estimate's: N predictions.
            sizes = {rule.metric: self.config.reference_labels, rule.estimate_metric: self.config.reference_predictions}
            metrics = [rule.estimate_metric] if rule.baseline is not None else [rule.metric, rule.estimate_metric]
            for metric in metrics:
                if any((m, v, metric) not in self._references for v in versions[m]):
                    wanted[(metric, sizes[metric])].append(m)
        for (metric, size), ms in sorted(wanted.items()):
            points: dict[tuple[str, str], list[tuple[int, Point]]] = defaultdict(list)
            for r in self.store.query(REFERENCES, {"models": ms, "metric": metric, "size": size}):
                points[(r["model"], r["version"])].append((int(r["ws"]), Point(float(r["value"]), int(r["n"]))))
            for (m, v), pts in points.items():
                ref = baseline_from_sample(pts, size)
                if ref is not None:
                    self._references[(m, v, metric)] = ref
        refs: dict[str, dict[str, MetricBaseline]] = defaultdict(dict)
        ests: dict[str, dict[str, MetricBaseline]] = defaultdict(dict)
        for m in models:
            rule = self.policy(m).retrain
            for v in versions[m]:
                if (ref := self._references.get((m, v, rule.metric))) is not None:
                    refs[m][v] = ref
                if (ref := self._references.get((m, v, rule.estimate_metric))) is not None:
                    ests[m][v] = ref
        return refs, ests

    # Output --------------------------------------------------------------------
    def _alerts(self, decisions: Sequence[Decision], *, silences: bool = True) -> list[Alert]:
        if not decisions:
            return []
        now = utc(self.clock())
        active: list[Any] = []
        if silences and self.write:
            from watchkeeper.alerts.silences import active_silences

            try:
                active = active_silences(self.store, now)
            except Exception as exc:  # silences are advisory: never lose a decision over them
                log.warning("could not read silences: %s", type(exc).__name__)
        out = []
        for d in decisions:
            alert = Alert(
                alert_id=d.alert_id, model=d.model, version=d.version, kind=d.kind,  # type: ignore[arg-type]
                severity=d.severity, state=d.state, summary=d.summary,  # type: ignore[arg-type]
                evidence=d.evidence, owner=self.config.owner(d.model),
                runbook_url=self.config.runbook_url(d.model, d.kind),
                ts=utc(d.ts), evidence_ts=utc(d.ts if d.evidence_ts is None else d.evidence_ts), fired_at=now,
            )  # fmt: skip
            if any(s.silences(alert, now) for s in active):
                alert = alert.model_copy(update={"silenced": True})
            out.append(alert)
        return sorted(out, key=lambda a: (a.ts, a.model, a.kind, a.alert_id, a.state))

    def _record(self, alerts: Sequence[Alert]) -> None:
        written: set[str] = set()
        try:
            for a in alerts:
                row = a.to_row()
                self.store.insert("alerts", {c: [v] for c, v in row.items()}, token=a.token)
                written.add(a.alert_id)
        except Exception:
            # The state already moved past what was not written: rebuild those models from the store.
            for m in {a.model for a in alerts if a.alert_id not in written}:
                self._evaluators.pop(m, None)
            raise


def _anchor(r: Mapping[str, Any]) -> Anchor:
    evidence = json.loads(r["last_evidence"] or "{}")
    return Anchor(
        alert_id=r["alert_id"], version=r["last_version"], kind=r["last_kind"],
        subject=str(evidence.get("subject", "")), state=r["last_state"], ts=int(r["t"]),
        fired_ts=int(r["fired"]) if r["n_fired"] else None,
        resolved_ts=int(r["resolved"]) if r["n_resolved"] else None, severity=r["last_severity"],
        summary=r["last_summary"], evidence=evidence,
    )  # fmt: skip


# Reading recorded alerts (CLI, dashboards) -------------------------------------


def list_alerts(
    store: StoreReader,
    *,
    model: str | None = None,
    state: str | None = None,
    kind: str | None = None,
    history: bool = False,
    limit: int = 1000,
) -> list[Alert]:
    """Recorded alerts, newest first: each alert's latest state, or every state change with ``history``."""
    params = {"model": model or "", "state": state or "", "kind": kind or "", "limit": int(limit)}
    where = "({model:String} = '' OR model = {model:String}) AND ({kind:String} = '' OR kind = {kind:String})"
    if history:
        sql = (
            f"SELECT {ALERT_COLUMNS_SQL} FROM alerts FINAL WHERE {where} "
            "AND ({state:String} = '' OR state = {state:String}) ORDER BY ts DESC, alert_id LIMIT {limit:UInt32}"
        )
    else:
        sql = (
            f"SELECT * FROM (SELECT {ALERT_COLUMNS_SQL} FROM alerts FINAL WHERE {where} "
            "ORDER BY alert_id, ts DESC LIMIT 1 BY alert_id) "
            "WHERE {state:String} = '' OR state = {state:String} ORDER BY ts_ms DESC, alert_id LIMIT {limit:UInt32}"
        )
    return [Alert.from_row(r) for r in store.query(sql, params)]
