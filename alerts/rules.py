"""Alert rules: pure functions from one model's windows to per-window signals.

A *window* (``alerts/window.py``) gathers what the model stage wrote for one
(model, version, window): its metric rows and its drift rows. The statistics
are ``detectors/stats.py``'s, the reference a ``detectors.reference.MetricBaseline``.
A rule looks at one window (and, for persistence, the few before
it) and returns a :class:`Signal`: bad, good, or ``None`` when the window does
not hold enough evidence. Hysteresis (``alerts/hysteresis.py``) turns runs of
signals into alerts. No I/O here: rows come in as plain mappings.

>>> rows = [
...     {"version": "v1", "ws": 0, "we": 300, "segment": "", "metric": "accuracy", "value": 0.62, "n": 400},
...     {"version": "v1", "ws": 0, "we": 300, "segment": "", "metric": "label_rate", "value": 0.8, "n": 500},
... ]
>>> [w] = build_windows(rows)
>>> ref = MetricBaseline(value=0.85, n=1200, starts=(-900, -600, -300))
>>> s = retrain_signal("fraud", w, ref, (), RetrainRule())
>>> s.bad, s.summary
(True, 'fraud v1: accuracy fell to 0.620 from a reference of 0.850 (400 labels); retrain recommended.')
>>> round(s.evidence["drop_lower_bound"], 3)
0.151

Fairness rules are in ``alerts/fairness_rules.py``; the comparisons with the baseline
and with the champion (sunset, challenger) in ``alerts/comparison_rules.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from watchkeeper.alerts.policy import DriftRule, OpsRule, RetrainRule
from watchkeeper.alerts.window import DriftRow, Point, Signal, Window, build_windows
from watchkeeper.detectors.missing import MISSING_RATE
from watchkeeper.detectors.reference import MetricBaseline, pooled_baseline
from watchkeeper.detectors.stats import (
    newcombe_drop_bound,
    wilson,
    z_one_sided,
)
from watchkeeper.detectors.timeutil import iso

# The window types, the baseline and the statistics are re-exported: a rule's caller needs them too.
__all__ = [
    "PROPORTIONS", "DriftRow", "FeatureDrift", "MetricBaseline", "Point", "Signal", "Window",
    "build_windows", "concept_rows", "drift_signal", "drifted_features", "driving_group",
    "drop_and_bound", "estimate_signal", "is_concept", "label_look_signal", "look_rule", "ops_signals",
    "pooled_baseline",
    "retrain_signal", "subject_name", "window_evidence", "wilson", "z_one_sided",
]  # fmt: skip

# Metrics that are proportions of their ``n`` events: their intervals come from the counts.
PROPORTIONS = frozenset(
    {"accuracy", "precision", "recall", "specificity", "npv", "positive_rate", "label_rate", "est_accuracy",
     "error_rate", "fallback_rate"}
)  # fmt: skip


# Statistics (in ``detectors/stats.py``) applied to a metric ----------------------------------------


def drop_and_bound(
    metric: str, ref: MetricBaseline, cur: Point, z: float, higher_is_better: bool
) -> tuple[float, float]:
    """(drop, one-sided lower bound of the drop) of ``cur`` against ``ref``; a drop is a worsening.

    For proportions the bound is Newcombe's hybrid score interval of the difference
    (the Wilson bound of ``cur`` alone when the reference is configured, taken as exact);
    for other metrics there is no interval and the bound is the drop itself.
    """
    r, c = ref.value, cur.value
    drop = (r - c) if higher_is_better else (c - r)
    if metric not in PROPORTIONS or not (0.0 <= r <= 1.0 and 0.0 <= c <= 1.0):
        return drop, drop
    return newcombe_drop_bound(r, None if ref.configured else ref.n, c, cur.n, z, higher_is_better)


def subject_name(model: str, version: str) -> str:
    """How summaries name a model version."""
    return f"{model} {version}" if version else model


def window_evidence(w: Window) -> dict[str, Any]:
    return {"window_start": iso(w.start), "window_end": iso(w.end)}


# Retrain and performance -----------------------------------------------------


def is_concept(d: DriftRow, rule: RetrainRule) -> bool:
    """True for a detector on the error stream (concept drift), as opposed to input drift."""
    sfx = rule.concept_detector_suffix
    return d.feature in rule.concept_features or bool(sfx and d.detector.endswith(sfx))


def concept_rows(w: Window, rule: RetrainRule) -> list[DriftRow]:
    """The window's rows of detectors on the error stream."""
    return [d for d in w.drift if is_concept(d, rule)]


def retrain_signal(
    model: str, w: Window, ref: MetricBaseline | None, concept_history: Sequence[bool], rule: RetrainRule
) -> Signal:
    """Retrain: a material and significant drop of ``rule.metric``, or sustained concept drift.

    ``concept_history``: whether error-stream detectors fired in each of the previous windows
    (oldest first) that had such rows; the current window is added here.
    """
    name = subject_name(model, w.version)
    ev: dict[str, Any] = {**window_evidence(w), "metric": rule.metric, "reasons": []}
    lr, lab = w.metrics.get("label_rate"), w.metrics.get("labelled")
    ev["label_coverage"] = lr.value if lr else None
    ev["labelled"] = int(lab.value) if lab else None

    perf: bool | None = None
    strong_perf = strong_concept = False
    fast_lower: float | None = None
    concept_lower: float | None = None
    cur = w.metrics.get(rule.metric)
    if cur is not None and ref is not None and cur.n >= rule.min_labels and not ref.covers(w.start):
        drop, lower = drop_and_bound(rule.metric, ref, cur, z_one_sided(rule.confidence), rule.higher_is_better)
        perf = True if (drop > rule.min_drop and lower > 0) else False if drop <= rule.min_drop else None
        ev.update(
            reference=ref.evidence(), current={"value": cur.value, "n": cur.n}, drop=drop, drop_lower_bound=lower,
            confidence=rule.confidence, min_drop=rule.min_drop,
        )  # fmt: skip
        if rule.fast_path:
            z_fast = z_one_sided(rule.fast_confidence)
            _, fast_lower = drop_and_bound(rule.metric, ref, cur, z_fast, rule.higher_is_better)
            strong_perf = fast_lower > rule.min_drop
            _, concept_lower = drop_and_bound(
                rule.metric, ref, cur, z_one_sided(rule.concept_confidence), rule.higher_is_better
            )
            ev.update(fast_lower_bound=fast_lower, fast_confidence=rule.fast_confidence,
                      concept_lower_bound=concept_lower, concept_confidence=rule.concept_confidence)  # fmt: skip

    concept: bool | None = None
    rows = concept_rows(w, rule)
    alarm_ts: float | None = None
    if rows:
        fired = [d for d in rows if d.drifted]
        recent = [*concept_history, bool(fired)][-rule.concept_windows :]
        concept = sum(recent) >= rule.concept_min_windows
        ev["concept_drift"] = {
            "detectors": sorted({d.detector for d in fired}),
            "fired_windows": sum(recent),
            "of_windows": len(recent),
        }
        alarms = [d.ts for d in fired if d.ts is not None]
        if fired and rule.fast_path and concept_lower is not None and concept_lower > 0:
            # An error-stream alarm confirmed by the window: its accuracy fell significantly at
            # ``concept_confidence``, a level that holds the budget without the alarm's help.
            strong_concept = concept = True
            alarm_ts = min(alarms) if alarms else None
            ev["concept_drift"]["alarm"] = iso(alarm_ts) if alarm_ts is not None else None

    if perf:
        ev["reasons"].append("performance")
    if concept:
        ev["reasons"].append("concept_drift")
    strong = strong_perf or strong_concept
    if strong:
        ev["fast_path"] = "performance" if strong_perf else "concept_drift"
    driver = driving_group(w, ref, rule) if (perf or strong) and ref is not None else None
    if driver is not None:
        ev["driving_group"] = driver
    bad = perf is True or concept is True
    good = (perf is False or (perf is None and concept is False)) and concept is not True
    verdict: bool | None = True if bad else False if good else None

    if perf is True:
        summary = (
            f"{name}: {rule.metric} fell to {cur.value:.3f} from a reference of {ref.value:.3f} "  # type: ignore[union-attr]
            f"({cur.n} labels)"  # type: ignore[union-attr]
        )
        if concept:
            summary += ", and error-stream detectors fired"
        if driver is not None:
            summary += (
                f", driven by {driver['attribute']}={driver['group']} ({rule.metric} {driver['value']:.3f} there, "
                f"{driver['others_value']:.3f} elsewhere: look at the fairness alert)"
            )
        summary += "; retrain recommended."
    elif concept is True:
        cd = ev["concept_drift"]
        summary = (
            f"{name}: error-stream detectors ({', '.join(cd['detectors']) or 'none now'}) fired in "
            f"{cd['fired_windows']} of the last {cd['of_windows']} windows; retrain recommended."
        )
    elif cur is not None and ref is not None and "drop" in ev:
        summary = f"{name}: {rule.metric} is {cur.value:.3f} against a reference of {ref.value:.3f}."
    else:
        summary = f"{name}: no sign that a retrain is needed."
    ts = w.end
    if strong_concept and alarm_ts is not None:
        # The decision time is the alarm's event time (inside the window; after the previous window).
        ts = min(w.end, max(w.start + 1, math.ceil(alarm_ts)))
    return Signal("retrain", "", w.version, ts, verdict, rule.severity, summary, ev, strong=strong and verdict is True)


def look_rule(rule: RetrainRule, looks: int) -> RetrainRule:
    """The rule at the level of one of ``looks`` looks: each confidence's error split over them (Bonferroni).

    >>> r = look_rule(RetrainRule(), 3)
    >>> round(1 - r.concept_confidence, 9), round(1 - r.fast_confidence, 6)
    (3.333e-06, 0.000333)
    """
    def split(c: float) -> float:
        return 1.0 - (1.0 - c) / looks

    return rule.model_copy(update={"confidence": split(rule.confidence), "fast_confidence": split(rule.fast_confidence),
                                   "concept_confidence": split(rule.concept_confidence)})  # fmt: skip


def label_look_signal(
    model: str, w: Window, ref: MetricBaseline | None, rule: RetrainRule, looks: int, mark: int
) -> Signal | None:
    """Retrain on the labels so far: ``w`` is an error-stream alarm's window holding the alarm (a drifted
    concept row, its ``ts`` the alarm) and the metrics of the labels a look at ``mark`` read
    (``windows/label_looks.py``). The rule's fast path at the level of one of ``looks`` looks
    (:func:`look_rule`) either confirms it — a strong bad signal, its time the alarm's — or not (None).

    >>> alarm = DriftRow("__error__", "watchkeeper_default", 0.3, 0.0, True, 1150.0)
    >>> w = Window("v1", 900, 1200, {"accuracy": Point(0.72, 450)}, drift=(alarm,), final=False)
    >>> ref = MetricBaseline(value=0.87, n=3000, starts=(600,))
    >>> s = label_look_signal("m", w, ref, RetrainRule(), 3, 1180)
    >>> s.bad, s.strong, s.ts, s.evidence["labels_until"]
    (True, True, 1150, '1970-01-01T00:19:40Z')
    >>> label_look_signal("m", replace(w, metrics={"accuracy": Point(0.85, 450)}), ref, RetrainRule(), 3, 1180)
    """
    if ref is None:
        return None
    s = retrain_signal(model, w, ref, (), look_rule(rule, looks))
    alarms = [d.ts for d in concept_rows(w, rule) if d.drifted and d.ts is not None]
    if not (s.bad and s.strong and alarms):
        return None
    ev = {**s.evidence, "labels_until": iso(mark), "looks": looks}
    summary = f"{s.summary[:-1]}; decided on the labels so far (labels before {iso(mark)})."
    return replace(s, ts=min(w.end, max(w.start + 1, math.ceil(min(alarms)))), summary=summary, evidence=ev)


def driving_group(w: Window, ref: MetricBaseline, rule: RetrainRule) -> dict[str, Any] | None:
    """The group that explains a drop of ``rule.metric``: its own drop is material while the rest of the
    traffic (the window without it) stays within ``min_drop`` of the reference. Per protected attribute
    (segments ``attr=value``), the group with the most excess errors; None when no group explains it."""
    cur = w.metrics.get(rule.metric)
    if cur is None or rule.metric not in PROPORTIONS:
        return None
    sign = 1.0 if rule.higher_is_better else -1.0
    best: tuple[float, dict[str, Any]] | None = None
    for seg, metrics in sorted(w.segments.items()):
        attr, eq, group = seg.partition("=")
        p = metrics.get(rule.metric)
        if not eq or p is None or p.n <= 0 or p.n >= cur.n:
            continue
        others = (cur.value * cur.n - p.value * p.n) / (cur.n - p.n)
        drop_g, drop_o = sign * (ref.value - p.value), sign * (ref.value - others)
        if drop_g > rule.min_drop and drop_o <= rule.min_drop:
            excess = drop_g * p.n
            total = sign * (ref.value - cur.value) * cur.n
            item = {"attribute": attr, "group": group, "value": p.value, "n": p.n, "others_value": others,
                    "share_of_drop": excess / total if total > 0 else None}  # fmt: skip
            if best is None or excess > best[0]:
                best = (excess, item)
    return best[1] if best else None


def estimate_signal(model: str, w: Window, ref: MetricBaseline | None, rule: RetrainRule) -> Signal:
    """Before labels arrive: the label-free estimate (``est_accuracy``) dropped against its reference."""
    name, metric = subject_name(model, w.version), rule.estimate_metric
    ev: dict[str, Any] = {**window_evidence(w), "metric": metric}
    lr, lab = w.metrics.get("label_rate"), w.metrics.get("labelled")
    ev["label_coverage"] = lr.value if lr else None
    labelled = int(lab.value) if lab else 0
    labels_ok = labelled >= rule.min_labels and (lr is None or lr.value >= rule.estimate_max_label_rate)
    cur = w.metrics.get(metric)
    if labels_ok:
        summary = f"{name}: labels cover {lr.value:.0%} of predictions; performance is measured directly." if lr \
            else f"{name}: labels are available; performance is measured directly."  # fmt: skip
        return Signal("performance", metric, w.version, w.end, False, rule.estimate_severity, summary, ev)
    if cur is None or ref is None or cur.n < rule.min_labels or ref.covers(w.start):
        return Signal("performance", metric, w.version, w.end, None, rule.estimate_severity, "", ev)
    drop, lower = drop_and_bound(metric, ref, cur, z_one_sided(rule.confidence), rule.higher_is_better)
    ev.update(reference=ref.evidence(), current={"value": cur.value, "n": cur.n}, drop=drop,
              drop_lower_bound=lower, min_drop=rule.min_drop)  # fmt: skip
    bad = drop > rule.min_drop and lower > 0
    verdict: bool | None = True if bad else False if drop <= rule.min_drop else None
    coverage = f"{lr.value:.0%}" if lr else "few"
    if bad:
        summary = (
            f"{name}: estimated {metric.removeprefix('est_')} fell to {cur.value:.3f} from {ref.value:.3f} "
            f"while only {coverage} of predictions are labelled."
        )
    else:
        summary = f"{name}: estimated {metric.removeprefix('est_')} is {cur.value:.3f} (reference {ref.value:.3f})."
    return Signal("performance", metric, w.version, w.end, verdict, rule.estimate_severity, summary, ev)


# Drift ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """A feature flagged in one window: its largest statistic among the detectors that flagged it, and
    ``alarm_ts``, the earliest alarm (event time) of a sequential detector among them (None: none)."""

    feature: str
    statistic: float
    threshold: float
    detectors: tuple[str, ...]
    alarm_ts: float | None = None
    # (window, reference) missing rates when the missing-rate test flagged it.
    missing: tuple[float, float] | None = None


def drifted_features(
    w: Window, retrain: RetrainRule, sequential: Iterable[str] = ()
) -> dict[str, FeatureDrift] | None:
    """The input features flagged in ``w`` (None when the window has no input-drift rows).

    ``sequential``: names of per-event detectors whose rows carry their alarm's event time.
    """
    seq = frozenset(sequential)
    rows = [d for d in w.drift if not is_concept(d, retrain)]
    if not rows:
        return None
    out: dict[str, FeatureDrift] = {}
    for d in rows:
        if not d.drifted:
            continue
        prev = out.get(d.feature)
        alarm = d.ts if d.detector in seq and d.ts is not None else None
        alarms = [t for t in (alarm, prev.alarm_ts if prev else None) if t is not None]
        dets = tuple(sorted({*(prev.detectors if prev else ()), d.detector}))
        top = d if prev is None or d.statistic > prev.statistic else prev
        missing = (d.statistic, d.threshold) if d.detector == MISSING_RATE else prev.missing if prev else None
        out[d.feature] = FeatureDrift(d.feature, top.statistic, top.threshold, dets, min(alarms) if alarms else None,
                                      missing)  # fmt: skip
    return out


def confirmed(fd: FeatureDrift, confirming: str = "after_alarm", carried: str = "carried_alarm") -> bool:
    """Flagged by a sequential detector (an alarm) and by the window test of the events after the alarm
    (``confirming``, a look's or the window end's), or by an alarm of an earlier window carried into this one
    and confirmed on the events after it across the window boundary (``carried``, ``windows/carry.py``). A
    test of the whole window does not confirm an alarm: the chance excursion that tripped the alarm moves it
    too (``windows/partial.py``)."""
    return fd.alarm_ts is not None and (confirming in fd.detectors or carried in fd.detectors)


def drift_signal(
    model: str, w: Window, history: Sequence[Mapping[str, FeatureDrift]], rule: DriftRule
) -> Signal:
    """Features flagged in each of the last ``rule.windows`` windows with drift rows (``history``,
    oldest first, ending with this window), ranked by statistic: one signal per model version.

    Fast path: a feature of this window flagged by a sequential detector and confirmed by the
    window test of the events after the alarm counts at once; the signal's time is then the earliest
    such alarm.
    """
    name = subject_name(model, w.version)
    recent = list(history)[-rule.windows :]
    current = recent[-1] if recent else {}
    persistent = set(current)
    for h in recent[:-1]:
        persistent &= set(h)
    if len(recent) < rule.windows:
        persistent = set()
    fast = (
        {f for f, fd in current.items()
         if confirmed(fd, rule.confirming_detector, rule.carried_detector) or f in rule.strong_features}
        if rule.fast_path
        else set()
    )
    flagged = persistent | fast
    ranked = sorted((current[f] for f in flagged), key=lambda fd: (-fd.statistic, fd.feature))
    listed = ranked[: rule.max_features_listed]
    ev: dict[str, Any] = {
        **window_evidence(w),
        "windows": rule.windows,
        "n_features": len(ranked),
        "features": [
            {"feature": fd.feature, "statistic": fd.statistic, "threshold": fd.threshold,
             "detectors": list(fd.detectors), "persistent": fd.feature in persistent,
             "alarm": iso(fd.alarm_ts) if fd.feature in fast and fd.alarm_ts is not None else None,
             **({"missing_rate": fd.missing[0], "reference_missing_rate": fd.missing[1]} if fd.missing else {})}
            for fd in listed
        ],  # fmt: skip
        "drifting_now": sorted(set(current) - flagged)[: rule.max_features_listed],
    }
    bad = len(ranked) >= rule.min_features
    ts = w.end
    if bad:
        names = ", ".join(fd.feature for fd in ranked[:5]) + (f" and {len(ranked) - 5} more" if len(ranked) > 5 else "")
        noun = "feature" if len(ranked) == 1 else "features"
        if len(persistent) >= rule.min_features:
            summary = f"{name}: {len(ranked)} {noun} drifted in each of the last {rule.windows} windows: {names}."
        else:
            alarms = [current[f].alarm_ts for f in fast if current[f].alarm_ts is not None]
            if alarms:
                alarm = min(alarms)
                ts = min(w.end, max(w.start + 1, math.ceil(alarm)))  # type: ignore[arg-type]
                ev["alarm"] = iso(alarm)
                summary = (
                    f"{name}: {len(ranked)} {noun} drifted, flagged per event and confirmed by the window test: "
                    f"{names} (first alarm {iso(alarm)})."
                )
            else:  # a strict window test alone (e.g. the joint test of the features): decided at the window's end
                summary = f"{name}: {len(ranked)} {noun} drifted, flagged by a strict window test: {names}."
        summary += "".join(
            f" {fd.feature}: missing in {_percent(fd.missing[0])} of predictions, reference {_percent(fd.missing[1])}."
            for fd in ranked[:5] if fd.missing
        )  # fmt: skip
    else:
        summary = f"{name}: no feature has drifted for {rule.windows} windows in a row."
    return Signal("drift", "features", w.version, ts, bad, rule.severity, summary, ev)


def _percent(rate: float) -> str:
    """A rate as a short percentage: ``0.2`` -> ``20 %``, ``0.0213`` -> ``2.1 %``."""
    return f"{rate * 100:.1f}".removesuffix(".0") + " %"


# Ops ------------------------------------------------------------------------


def ops_signals(model: str, w: Window, rule: OpsRule) -> list[Signal]:
    """Pipeline health: orphaned outcomes, late labels, dead letters, lag (when written)."""
    out = []
    name = subject_name(model, w.version)
    rates = (
        ("orphaned_outcomes", "orphaned_outcomes", rule.max_orphan_rate, "of outcomes had no prediction"),
        ("late_labels", "late_labels", rule.max_late_label_rate, "of labels arrived after the allowed delay"),
    )
    for subject, metric, bound, what in rates:
        p = w.metrics.get(metric)
        if p is None:
            continue
        rate = p.value / p.n if p.n else 0.0
        ev = {**window_evidence(w), "metric": metric, "rate": rate, "count": p.value, "n": p.n, "bound": bound}
        verdict = None if p.n < rule.min_events else rate > bound
        summary = f"{name}: {rate:.1%} {what} (bound {bound:.1%})."
        out.append(Signal("ops", subject, w.version, w.end, verdict, rule.severity, summary, ev))
    p = w.metrics.get("dead_letter_rate")
    if p is not None:
        ev = {**window_evidence(w), "metric": "dead_letter_rate", "rate": p.value, "n": p.n,
              "bound": rule.max_dead_letter_rate}  # fmt: skip
        verdict = None if p.n < rule.min_events else p.value > rule.max_dead_letter_rate
        summary = f"{name}: {p.value:.1%} of messages were dead-lettered (bound {rule.max_dead_letter_rate:.1%})."
        out.append(Signal("ops", "dead_letters", w.version, w.end, verdict, rule.severity, summary, ev))
    p = w.metrics.get("lag_seconds")
    if p is not None:
        ev = {**window_evidence(w), "metric": "lag_seconds", "lag_seconds": p.value, "bound": rule.max_lag_seconds}
        summary = f"{name}: processing lag is {p.value:.0f} s (bound {rule.max_lag_seconds:.0f} s)."
        out.append(Signal("ops", "lag", w.version, w.end, p.value > rule.max_lag_seconds, rule.severity, summary, ev))
    return out
