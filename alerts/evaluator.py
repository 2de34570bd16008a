"""One model's alert state, advanced window by window in event time (no I/O).

``ModelEvaluator.feed`` takes the model's windows (any order; each version is
processed in order of window end, and a window at or before that version's
cursor is skipped), runs every rule of the model's policy, passes the signals
through hysteresis and returns the state changes as :class:`Decision` s.
Decisions depend on the windows, the fleet watermark and the model's
event-time watermark only, never on the wall clock, so feeding the same rows in one call or in many gives the same
decisions — that is what makes replays exact.

Two clocks per window. Its label-free rules (traffic and gaps, drift of the
features and the score, ops checks on counts, dead letters and lag) run when
the window is first fed: the model stage writes it once the watermark passes
its end plus the grace (``grace``), and its label-free results never change
after that. Its label-based rules (retrain and its label-free estimate,
fairness, the baseline comparison, the challenger, late labels) run once the
window is ``final`` (its label delay passed): a provisional window (labels so
far) is not judged on them, so their decisions do not depend on when a pass
happened to read the labels. Each clock has its own cursor per version.

Two times per decision. ``evidence_ts`` is the event time of the evidence: the
window's end, or the alarm of the per-event detector it confirms. ``ts`` is the
decision time: the event-time watermark at which the model stage had written
the window as the rule needs it (its end plus the grace for label-free rules,
plus the label delay for label-based ones — the orphan horizon for
outcome-only windows — or, when the stream went idle first, the watermark
then), never before the evidence. Hysteresis runs on evidence times; only the
decision is dated later. Gap rules (``no_data``, ``sunset``) are decided
against the fleet watermark, which is itself a written window's end: the grace
is added the same way.

The state is rebuildable: :meth:`restore` takes the last recorded transition
of each alert (from the ``alerts`` table) and the counters restart from there.

Traffic rules look at the gaps between windows with predictions:

- ``no_data``: no window for ``after_minutes``; fires at the first window end
  (on the window grid) that far after the last traffic, resolves at the end of
  the next window with traffic. The trailing gap is measured against the
  fleet's watermark (the latest window end of any model).
- ``sunset``/``idle``: the same with ``idle_days``; ``sunset``/``superseded``: a
  version without traffic for ``superseded_days`` while a newer version has it.

>>> from watchkeeper.alerts.rules import Point, Window
>>> ev = ModelEvaluator("m", AlertPolicy(), window_seconds=300)
>>> def win(i, acc):
...     return Window("v1", i * 300, i * 300 + 300, {"predictions": Point(500, 500), "accuracy": Point(acc, 400)})
>>> refs = {"v1": MetricBaseline(0.9, 1200, (0, 300, 600))}
>>> out = ev.feed([win(i, 0.9 if i < 5 else 0.6) for i in range(10)], references=refs)
>>> [(d.kind, d.state, d.ts) for d in out]  # a strongly significant drop fires in its first window
[('retrain', 'firing', 1800)]
>>> out = ev.feed([win(i, 0.9) for i in range(10, 13)], references=refs)
>>> [(d.kind, d.state, d.ts) for d in out]
[('retrain', 'resolved', 3900)]

With a label delay the window is final, hence decided, that much after its end (``evidence_ts``: its end):

>>> ev = ModelEvaluator("m", AlertPolicy(), window_seconds=300, label_delay=600)
>>> out = ev.feed([win(i, 0.9 if i < 5 else 0.6) for i in range(10)], references=refs, watermark=3000)
>>> [(d.kind, d.state, d.evidence_ts, d.ts) for d in out]
[('retrain', 'firing', 1800, 2400)]

A provisional window (labels so far) is not judged on its labels; the same window final is:

>>> from dataclasses import replace
>>> ev = ModelEvaluator("m", AlertPolicy(), window_seconds=300, label_delay=600)
>>> early = [win(i, 0.9) for i in range(5)] + [replace(win(5, 0.6), final=False)]
>>> ev.feed(early, references=refs, watermark=1810)
[]
>>> [(d.kind, d.state, d.ts) for d in ev.feed([win(5, 0.6)], references=refs, watermark=2400)]
[('retrain', 'firing', 2400)]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from watchkeeper.alerts.comparison_rules import (
    Paired,
    challenger_signals,
    is_pair,
    lift_signal,
    paired_counts,
    paired_signal,
)
from watchkeeper.alerts.fairness_rules import GroupTally, fairness_signals, group_tallies, pooled_fairness_signals
from watchkeeper.alerts.hysteresis import SeriesState, Transition, force_resolve, restored, step
from watchkeeper.alerts.model import alert_id_for, human_duration
from watchkeeper.alerts.policy import AlertPolicy, Hysteresis
from watchkeeper.alerts.rules import (
    FeatureDrift,
    Signal,
    Window,
    concept_rows,
    drift_signal,
    drifted_features,
    estimate_signal,
    label_look_signal,
    ops_signals,
    retrain_signal,
)
from watchkeeper.detectors.reference import MetricBaseline
from watchkeeper.detectors.timeutil import iso

SeriesKey = tuple[str, str, str]  # (version, kind, subject)

# Gap rules decide on single events: one signal fires, one resolves.
TRAFFIC = Hysteresis(fire_after=1, resolve_after=1, cooldown_seconds=0)
# Kinds about absence are not auto-resolved for lack of evidence.
NO_AUTO_RESOLVE = frozenset({"no_data", "sunset"})


@dataclass(frozen=True)
class Decision:
    """A state change of one alert, decided from data at event time ``ts`` (epoch seconds)."""

    alert_id: str
    model: str
    version: str
    kind: str
    subject: str
    severity: str
    state: str
    ts: int  # decision time
    summary: str
    evidence: dict[str, Any]
    evidence_ts: int | None = None  # the evidence's event time (None: ``ts``)


@dataclass(frozen=True)
class Anchor:
    """The last recorded transition of one alert (from the ``alerts`` table)."""

    alert_id: str
    version: str
    kind: str
    subject: str
    state: str
    ts: int
    fired_ts: int | None
    resolved_ts: int | None
    severity: str
    summary: str
    evidence: dict[str, Any]


class ModelEvaluator:
    """The alert state of one model; ``start`` is the event time from which windows are considered.

    ``grace``/``label_delay``/``orphan_after``: how long after its end the model stage writes a window
    of a version (its label-free results / final) and of outcomes without a prediction
    (``windows.config.WindowConfig``), which dates decisions.
    """

    def __init__(
        self, model: str, policy: AlertPolicy, window_seconds: int, start: int = 0, *,
        label_delay: int = 0, orphan_after: int = 0, grace: float = 0,
    ) -> None:  # fmt: skip
        self.model = model
        self.label_delay = int(label_delay)
        self.grace = min(math.ceil(grace), self.label_delay)
        self.orphan_after = int(orphan_after)
        self.watermark: float | None = None  # the model's event-time watermark (None: not known)
        self.stream_watermark: float | None = None  # the whole stream's (every model's) event-time watermark
        self._decided_at: int | None = 0  # the decision time of the window being fed (None: a gap's own)
        self.policy = policy
        self.w = int(window_seconds)
        self.start = int(start)
        self.cursor: dict[str, int] = {}  # version -> end of the last window processed (label-free rules)
        self.label_cursor: dict[str, int] = {}  # version -> end of the last final window (label-based rules)
        self.last_end: dict[str, int] = {}  # version -> end of its last window with traffic
        self.first_start: dict[str, int] = {}  # version -> start of its first window with traffic
        self.fleet_watermark = 0
        self._series: dict[SeriesKey, SeriesState] = {}
        self._last: dict[SeriesKey, Decision] = {}
        self._drift: dict[str, deque[Mapping[str, FeatureDrift]]] = {}
        self._concept: dict[str, deque[bool]] = {}
        self._groups: dict[str, deque[tuple[int, int, Mapping[str, Mapping[str, GroupTally]]]]] = {}
        self._paired: dict[str, deque[Paired]] = {}

    # State ------------------------------------------------------------------
    def restore(self, anchors: Iterable[Anchor]) -> None:
        """Continue from recorded transitions: signals at or before each one are skipped."""
        for a in anchors:
            key = (a.version, a.kind, a.subject)
            self._series[key] = restored(a.state, a.ts, a.fired_ts, a.resolved_ts)  # type: ignore[arg-type]
            self._last[key] = Decision(a.alert_id, self.model, a.version, a.kind, a.subject, a.severity, a.state,
                                       a.ts, a.summary, a.evidence)  # fmt: skip

    def seed(self, traffic: Mapping[str, tuple[int, int]]) -> None:
        """Traffic before ``start``: version -> (first window start, last window end)."""
        for version, (first, last) in traffic.items():
            self.first_start[version] = min(first, self.first_start.get(version, first))
            self.last_end[version] = max(last, self.last_end.get(version, last))

    def cursor_of(self, version: str) -> int:
        return self.cursor.get(version, self.start)

    def label_cursor_of(self, version: str) -> int:
        return self.label_cursor.get(version, self.start)

    def state(self, version: str, kind: str, subject: str) -> SeriesState:
        return self._series.get((version, kind, subject), SeriesState())

    def firing(self) -> list[Decision]:
        """The firing transition of every alert that is firing now."""
        return [self._last[k] for k, s in sorted(self._series.items()) if s.firing and k in self._last]

    # Feeding ----------------------------------------------------------------
    def feed(
        self,
        windows: Iterable[Window],
        *,
        references: Mapping[str, MetricBaseline] | None = None,
        estimates: Mapping[str, MetricBaseline] | None = None,
        fleet_watermark: int | None = None,
        watermark: float | None = None,
        stream_watermark: float | None = None,
        early: Iterable[tuple[int, Window]] = (),
        label_early: Iterable[tuple[int, int, Window]] = (),
    ) -> list[Decision]:
        """Process new windows, then the gaps up to the fleet watermark; returns the state changes.

        ``watermark``: the model's largest event time seen so far; ``stream_watermark`` the whole
        stream's. They date the decisions on windows that the model stage flushed before they were
        due (the stream idle) and on gaps. ``early``: windows judged before their end (``(mark,
        window)``: the drift rows of the window's events before ``mark``, ``windows/partial.py``),
        decided at ``mark``, in event-time order with the windows. ``label_early``: error-stream alarms
        judged on the labels so far (``(mark, looks, window)``: the alarm's window with the alarm and the
        metrics of the labels that arrived before ``mark``, ``windows/label_looks.py``), decided at
        ``mark`` before the label-based decisions of the windows final after it.
        """
        refs, ests = references or {}, estimates or {}
        if watermark is not None:
            self.watermark = max(self.watermark or 0.0, float(watermark))
        if stream_watermark is not None:
            self.stream_watermark = max(self.stream_watermark or 0.0, float(stream_watermark))
        out: list[Decision] = []
        looks = sorted(early, key=lambda e: (e[0], e[1].version, e[1].start))
        labels = sorted(label_early, key=lambda e: (e[0], e[2].version, e[2].start))
        for w in sorted(windows, key=lambda w: (w.end, w.version, w.start)):
            while looks and looks[0][0] < w.end:
                out += self._early(*looks.pop(0))
            while labels and w.final and labels[0][0] < w.end + self.label_delay:
                out += self._early_labels(*labels.pop(0), refs)
            outcomes_only = not w.version
            if w.end > self.cursor_of(w.version):
                self.cursor[w.version] = w.end
                self._decided_at = self._written_at(w.end, self.orphan_after if outcomes_only else self.grace)
                out += self._label_free(w.label_free())
            if w.final and w.end > self.label_cursor_of(w.version):
                self.label_cursor[w.version] = w.end
                self._decided_at = self._written_at(w.end, self.orphan_after if outcomes_only else self.label_delay)
                out += self._label_based(w, refs.get(w.version), ests.get(w.version))
        for mark, w in looks:
            out += self._early(mark, w)
        for mark, k, w in labels:
            out += self._early_labels(mark, k, w, refs)
        if fleet_watermark is not None:
            self.fleet_watermark = max(self.fleet_watermark, int(fleet_watermark))
        self._decided_at = None
        out += self._trailing()
        return out

    def _written_at(self, end: int, horizon: int, watermark: float | None = None) -> int:
        """When the model stage wrote a window ending at ``end``: once the (model's) watermark passed
        ``end`` + ``horizon``; before that only on an idle flush, when the whole stream had gone quiet:
        at the stream's last event. Never later than ``end`` + ``horizon``: the window of a model that
        stopped while others went on, flushed later, is dated as if written when due (a lower bound)."""
        due = int(end) + int(horizon)
        wm = self.watermark if watermark is None else watermark
        if wm is None or wm >= due:
            return due
        last = self.stream_watermark if self.stream_watermark is not None else wm
        return min(due, math.ceil(max(wm, last)))

    def _label_free(self, w: Window) -> list[Decision]:
        """The rules that need no labels, on the window's label-free results."""
        p, out = self.policy, list[Decision]()
        if is_pair(w.version):
            return out
        if w.version and w.predictions > 0:
            out += self._traffic(w)
        if w.version and p.drift.enabled:
            features = drifted_features(w, p.retrain, p.drift.alarm_detectors)
            if features is not None:
                hist = self._drift.setdefault(w.version, deque(maxlen=p.drift.windows))
                hist.append(features)
                out += self._apply(drift_signal(self.model, w, tuple(hist), p.drift), p.drift.hysteresis)
        if p.ops.enabled:
            for s in ops_signals(self.model, w, p.ops):
                out += self._apply(s, p.ops.hysteresis)
        return out

    def _early(self, mark: int, w: Window) -> list[Decision]:
        """The drift rule's fast path on a window so far (a per-event alarm confirmed by the window test on
        the events before ``mark``), decided at ``mark``; a window already judged whole is not looked at."""
        p = self.policy.drift
        if not (w.version and p.enabled and p.fast_path) or w.end <= self.cursor_of(w.version):
            return []
        features = drifted_features(w, self.policy.retrain, p.alarm_detectors)
        if not features:
            return []
        s = drift_signal(self.model, w, (features,), p)
        if not s.bad:
            return []
        ev = {**s.evidence, "partial_window_until": iso(mark)}
        summary = f"{s.summary[:-1]}; decided on the window so far (events before {iso(mark)})."
        self._decided_at = int(mark)
        try:
            return self._apply(replace(s, summary=summary, evidence=ev), p.hysteresis)
        finally:
            self._decided_at = None

    def _early_labels(self, mark: int, looks: int, w: Window, refs: Mapping[str, MetricBaseline]) -> list[Decision]:
        """The retrain rule's fast path on the labels so far after an error-stream alarm (one of ``looks``
        looks, each at its share of the level), decided at ``mark``; an alarm whose window was judged final
        is not looked at."""
        p = self.policy.retrain
        if not (w.version and p.enabled and p.fast_path) or w.end <= self.label_cursor_of(w.version):
            return []
        ref = MetricBaseline(value=p.baseline, n=0) if p.baseline is not None else refs.get(w.version)
        s = label_look_signal(self.model, w, ref, p, looks, mark)
        if s is None:
            return []
        self._decided_at = int(mark)
        try:
            return self._apply(s, p.hysteresis)
        finally:
            self._decided_at = None

    def _label_based(self, w: Window, ref: MetricBaseline | None, est: MetricBaseline | None) -> list[Decision]:
        """The rules that need labels, on the final window."""
        p, out = self.policy, []
        if is_pair(w.version):  # an A/B pair's rows: only the challenger rule reads them
            if p.challenger.enabled:
                for s in challenger_signals(self.model, w, p.challenger):
                    out += self._apply(s, p.challenger.hysteresis)
            return out
        if w.version:
            if p.retrain.enabled:
                if p.retrain.baseline is not None:
                    ref = MetricBaseline(value=p.retrain.baseline, n=0)
                history = self._concept.setdefault(w.version, deque(maxlen=p.retrain.concept_windows))
                out += self._apply(retrain_signal(self.model, w, ref, tuple(history), p.retrain), p.retrain.hysteresis)
                rows = concept_rows(w, p.retrain)
                if rows:
                    history.append(any(d.drifted for d in rows))
                out += self._apply(estimate_signal(self.model, w, est, p.retrain), p.retrain.hysteresis)
            if p.fairness.enabled:
                out += self._fairness(w)
            if p.sunset.enabled:
                out += self._below_baseline(w)
        if p.ops.enabled:  # late labels (the label-free checks were made when the window was first written)
            for s in ops_signals(self.model, w.label_based(), p.ops):
                out += self._apply(s, p.ops.hysteresis)
        return out

    def _fairness(self, w: Window) -> list[Decision]:
        rule = self.policy.fairness
        out: list[Decision] = []
        if rule.horizon_events is None:
            signals = fairness_signals(self.model, w, rule)
        else:
            tallies = group_tallies(w)
            if not tallies:
                return out
            hist = self._groups.setdefault(w.version, deque(maxlen=rule.max_horizon_windows))
            hist.append((w.start, w.end, tallies))
            signals = pooled_fairness_signals(self.model, w, tuple(hist), rule)
        for s in signals:
            out += self._apply(s, rule.hysteresis)
        return out

    def _below_baseline(self, w: Window) -> list[Decision]:
        rule = self.policy.sunset
        if rule.method == "run":
            lift = lift_signal(self.model, w, rule)
            return self._apply(lift, rule.hysteresis) if lift is not None else []
        pairs = paired_counts(w)
        if pairs is None:
            return []
        hist = self._paired.setdefault(w.version, deque(maxlen=rule.horizon_windows))
        hist.append(pairs)
        return self._apply(paired_signal(self.model, w, tuple(hist), rule), rule.hysteresis)

    def _gap_rules(self) -> list[tuple[str, str, int, str]]:
        p = self.policy
        rules: list[tuple[str, str, int, str]] = []
        if p.no_data.enabled:
            rules.append(("no_data", "traffic", round(p.no_data.after_minutes * 60), p.no_data.severity))
        if p.sunset.enabled:
            rules.append(("sunset", "idle", round(p.sunset.idle_days * 86_400), p.sunset.severity))
        return rules

    def _traffic(self, w: Window) -> list[Decision]:
        """A window with predictions: close gaps (no_data, idle), then look for superseded versions."""
        out: list[Decision] = []
        prev = max(self.last_end.values(), default=None)
        for kind, subject, gap, severity in self._gap_rules():
            if prev is not None and w.start - prev >= gap:
                # A gap in the history was there to see when it reached its length: dated on its own.
                at, self._decided_at = self._decided_at, None
                out += self._apply(self._gap_signal(kind, subject, gap, severity, prev), TRAFFIC)
                self._decided_at = at
            summary = f"{self.model}: traffic is flowing (window {iso(w.start)})."
            ev = {"last_traffic": iso(w.end), "version": w.version}
            out += self._apply(Signal(kind, subject, "", w.end, False, severity, summary, ev), TRAFFIC)
        self.first_start.setdefault(w.version, w.start)
        self.last_end[w.version] = max(w.end, self.last_end.get(w.version, w.end))
        if self.policy.sunset.enabled:
            out += self._superseded(w)
        return out

    def _superseded(self, w: Window) -> list[Decision]:
        """Older versions without traffic for ``superseded_days`` while ``w``'s version has it."""
        sp = self.policy.sunset
        out: list[Decision] = []
        gap = round(sp.superseded_days * 86_400)
        mine = self.first_start[w.version]
        for v, last in sorted(self.last_end.items()):
            if v == w.version or self.first_start.get(v, mine) >= mine or w.end - last < gap:
                continue
            summary = (
                f"{self.model} {v}: version {w.version} has carried all traffic for "
                f"{human_duration(w.end - last)}; consider retiring {v}."
            )
            ev: dict[str, Any] = {
                "superseded_by": w.version,
                "last_traffic": iso(last),
                "days_without_traffic": (w.end - last) / 86_400,
                "after_days": sp.superseded_days,
            }
            out += self._apply(Signal("sunset", "superseded", v, w.end, True, sp.severity, summary, ev), TRAFFIC)
        summary = f"{self.model} {w.version}: the version has traffic again."
        ev = {"last_traffic": iso(w.end)}
        back = Signal("sunset", "superseded", w.version, w.end, False, sp.severity, summary, ev)
        return out + self._apply(back, TRAFFIC)

    def _gap_signal(self, kind: str, subject: str, gap: int, severity: str, prev: int) -> Signal:
        ts = self._align_up(prev + gap)
        versions = {v: iso(t) for v, t in sorted(self.last_end.items())}
        if kind == "no_data":
            minutes = gap / 60
            summary = f"{self.model}: no predictions for {human_duration(gap)} of event time (since {iso(prev)})."
            ev = {"last_traffic": iso(prev), "after_minutes": minutes, "versions_last_seen": versions}
        else:
            days = gap / 86_400
            summary = f"{self.model}: no traffic for {human_duration(gap)} (since {iso(prev)}); consider retiring it."
            ev = {"last_traffic": iso(prev), "idle_days": days, "versions_last_seen": versions}
        return Signal(kind, subject, "", ts, True, severity, summary, ev)

    def _trailing(self) -> list[Decision]:
        out: list[Decision] = []
        wm = self.fleet_watermark
        if not wm:
            return out
        prev = max(self.last_end.values(), default=None)
        if prev is not None:
            for kind, subject, gap, severity in self._gap_rules():
                if self._align_up(prev + gap) <= wm:
                    out += self._apply(self._gap_signal(kind, subject, gap, severity, prev), TRAFFIC)
        auto = round(self.policy.auto_resolve_hours * 3600)
        for key, state in sorted(self._series.items()):
            if state.firing and key[1] not in NO_AUTO_RESOLVE and state.last_evidence_ts is not None:
                t = self._align_up(state.last_evidence_ts + auto)
                if t <= wm:
                    out += self._auto_resolve(key, state, t)
        return out

    # Hysteresis ---------------------------------------------------------------
    def _apply(self, s: Signal, h: Hysteresis) -> list[Decision]:
        key = (s.version, s.kind, s.subject)
        state = self._series.get(key, SeriesState())
        out: list[Decision] = []
        if state.firing and s.kind not in NO_AUTO_RESOLVE and state.last_evidence_ts is not None:
            t = self._align_up(state.last_evidence_ts + round(self.policy.auto_resolve_hours * 3600))
            if s.ts >= t:
                out += self._auto_resolve(key, state, t)
                state = self._series[key]
        new, tr = step(state, s.ts, s.bad, h, s.strong)
        self._series[key] = new
        if tr is not None:
            out.append(self._decide(key, state, tr, s.severity, s.summary, s.evidence))
        return out

    def _auto_resolve(self, key: SeriesKey, state: SeriesState, ts: int) -> list[Decision]:
        new, tr = force_resolve(state, ts)
        if tr is None:
            return []
        self._series[key] = new
        version, kind, subject = key
        hours = self.policy.auto_resolve_hours
        who = f"{self.model} {version}" if version else self.model
        summary = (
            f"{who}: no evidence either way on this {kind} alert for {human_duration(hours * 3600)}; "
            "resolved automatically."
        )
        ev = {"reason": "no evidence", "last_evidence": iso(state.last_evidence_ts or ts)}
        return [self._decide(key, state, tr, "", summary, ev)]

    def _decide(
        self, key: SeriesKey, before: SeriesState, tr: Transition, severity: str, summary: str, ev: dict[str, Any]
    ) -> Decision:
        version, kind, subject = key
        prev = self._last.get(key)
        evidence = {**ev, "subject": subject, "run_ends": [iso(t) for t in tr.run]}
        if tr.state == "resolved":
            # A resolution keeps the severity of what it resolves (receivers pair them by labels).
            severity = prev.severity if prev is not None and prev.state == "firing" else (severity or "info")
            if before.fired_ts is not None:
                evidence["firing_since"] = iso(before.fired_ts)
        d = Decision(alert_id_for(self.model, version, kind, subject), self.model, version, kind, subject,
                     severity, tr.state, max(tr.ts, self._decision_time(tr.ts)), summary, evidence,
                     tr.ts)  # fmt: skip
        self._last[key] = d
        return d

    def _decision_time(self, evidence_ts: int) -> int:
        if self._decided_at is not None:
            return self._decided_at
        # A gap (or an auto-resolution) at ``evidence_ts`` is seen once a window ending then is written.
        return self._written_at(evidence_ts, self.grace, self.stream_watermark)

    def _align_up(self, t: int) -> int:
        return -(-int(t) // self.w) * self.w
