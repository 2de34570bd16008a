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
0.187
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from watchkeeper.alerts.policy import DriftRule, FairnessRule, OpsRule, RetrainRule, SunsetRule
from watchkeeper.alerts.window import DriftRow, Point, Signal, Window, build_windows
from watchkeeper.detectors.reference import MetricBaseline, pooled_baseline
from watchkeeper.detectors.stats import newcombe_drop_bound, wilson, z_one_sided
from watchkeeper.detectors.timeutil import iso

# The window types, the baseline and the statistics are re-exported: a rule's caller needs them too.
__all__ = [
    "PROPORTIONS", "DriftRow", "FeatureDrift", "MetricBaseline", "Point", "Signal", "Window", "build_windows",
    "concept_rows", "drift_signal", "drifted_features", "drop_and_bound", "estimate_signal", "fairness_signals",
    "is_concept", "lift_signal", "ops_signals", "pooled_baseline", "retrain_signal", "wilson", "z_one_sided",
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


def _name(model: str, version: str) -> str:
    return f"{model} {version}" if version else model


def _window_evidence(w: Window) -> dict[str, Any]:
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
    name = _name(model, w.version)
    ev: dict[str, Any] = {**_window_evidence(w), "metric": rule.metric, "reasons": []}
    lr, lab = w.metrics.get("label_rate"), w.metrics.get("labelled")
    ev["label_coverage"] = lr.value if lr else None
    ev["labelled"] = int(lab.value) if lab else None

    perf: bool | None = None
    cur = w.metrics.get(rule.metric)
    if cur is not None and ref is not None and cur.n >= rule.min_labels and not ref.covers(w.start):
        drop, lower = drop_and_bound(rule.metric, ref, cur, z_one_sided(rule.confidence), rule.higher_is_better)
        perf = True if (drop > rule.min_drop and lower > 0) else False if drop <= rule.min_drop else None
        ev.update(
            reference=ref.evidence(), current={"value": cur.value, "n": cur.n}, drop=drop, drop_lower_bound=lower,
            confidence=rule.confidence, min_drop=rule.min_drop,
        )  # fmt: skip

    concept: bool | None = None
    rows = concept_rows(w, rule)
    if rows:
        fired = [d for d in rows if d.drifted]
        recent = [*concept_history, bool(fired)][-rule.concept_windows :]
        concept = sum(recent) >= rule.concept_min_windows
        ev["concept_drift"] = {
            "detectors": sorted({d.detector for d in fired}),
            "fired_windows": sum(recent),
            "of_windows": len(recent),
        }

    if perf:
        ev["reasons"].append("performance")
    if concept:
        ev["reasons"].append("concept_drift")
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
    return Signal("retrain", "", w.version, w.end, verdict, rule.severity, summary, ev)


def estimate_signal(model: str, w: Window, ref: MetricBaseline | None, rule: RetrainRule) -> Signal:
    """Before labels arrive: the label-free estimate (``est_accuracy``) dropped against its reference."""
    name, metric = _name(model, w.version), rule.estimate_metric
    ev: dict[str, Any] = {**_window_evidence(w), "metric": metric}
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
    """A feature flagged in one window: its largest statistic among the detectors that flagged it."""

    feature: str
    statistic: float
    threshold: float
    detectors: tuple[str, ...]


def drifted_features(w: Window, retrain: RetrainRule) -> dict[str, FeatureDrift] | None:
    """The input features flagged in ``w`` (None when the window has no input-drift rows)."""
    rows = [d for d in w.drift if not is_concept(d, retrain)]
    if not rows:
        return None
    out: dict[str, FeatureDrift] = {}
    for d in rows:
        if not d.drifted:
            continue
        prev = out.get(d.feature)
        if prev is None or d.statistic > prev.statistic:
            dets = tuple(sorted({*(prev.detectors if prev else ()), d.detector}))
            out[d.feature] = FeatureDrift(d.feature, d.statistic, d.threshold, dets)
        else:
            out[d.feature] = FeatureDrift(prev.feature, prev.statistic, prev.threshold,
                                          tuple(sorted({*prev.detectors, d.detector})))  # fmt: skip
    return out


def drift_signal(
    model: str, w: Window, history: Sequence[Mapping[str, FeatureDrift]], rule: DriftRule
) -> Signal:
    """Features flagged in each of the last ``rule.windows`` windows with drift rows (``history``,
    oldest first, ending with this window), ranked by statistic: one signal per model version."""
    name = _name(model, w.version)
    recent = list(history)[-rule.windows :]
    current = recent[-1] if recent else {}
    persistent = set(current)
    for h in recent[:-1]:
        persistent &= set(h)
    if len(recent) < rule.windows:
        persistent = set()
    ranked = sorted((current[f] for f in persistent), key=lambda fd: (-fd.statistic, fd.feature))
    listed = ranked[: rule.max_features_listed]
    ev: dict[str, Any] = {
        **_window_evidence(w),
        "windows": rule.windows,
        "n_features": len(ranked),
        "features": [
            {"feature": fd.feature, "statistic": fd.statistic, "threshold": fd.threshold,
             "detectors": list(fd.detectors)}
            for fd in listed
        ],  # fmt: skip
        "drifting_now": sorted(set(current) - persistent)[: rule.max_features_listed],
    }
    bad = len(ranked) >= rule.min_features
    if bad:
        names = ", ".join(fd.feature for fd in ranked[:5]) + (f" and {len(ranked) - 5} more" if len(ranked) > 5 else "")
        noun = "feature" if len(ranked) == 1 else "features"
        summary = f"{name}: {len(ranked)} {noun} drifted in each of the last {rule.windows} windows: {names}."
    else:
        summary = f"{name}: no feature has drifted for {rule.windows} windows in a row."
    return Signal("drift", "features", w.version, w.end, bad, rule.severity, summary, ev)


# Fairness -------------------------------------------------------------------


def fairness_signals(model: str, w: Window, rule: FairnessRule) -> list[Signal]:
    """One signal per protected attribute (segment) with group-gap metrics in this window."""
    out = []
    groups = [("", w.metrics), *sorted(w.segments.items())]
    for attr, metrics in groups:
        checks = [(m, p, b, "max") for m, b in rule.max_gap.items() if (p := metrics.get(m)) is not None]
        checks += [(m, p, b, "min") for m, b in rule.min_ratio.items() if (p := metrics.get(m)) is not None]
        if not checks:
            continue
        subject = attr or "all"
        tested = [(m, p, b, k) for m, p, b, k in sorted(checks, key=lambda c: (c[0], c[3])) if p.n >= rule.min_n]
        breaches = [
            (m, p, b, k) for m, p, b, k in tested if (abs(p.value) > b if k == "max" else p.value < b)
        ]
        ev = {
            **_window_evidence(w),
            "attribute": subject,
            "breaches": [{"metric": m, "value": p.value, "bound": b, "bound_type": k, "n": p.n}
                         for m, p, b, k in breaches],  # fmt: skip
            "checked": [m for m, *_ in tested],
        }
        verdict: bool | None = None if not tested else bool(breaches)
        if breaches:
            m, p, b, k = max(breaches, key=lambda x: (abs(x[1].value - x[2]), x[0]))
            more = f" (and {len(breaches) - 1} more gaps)" if len(breaches) > 1 else ""
            word = "above" if k == "max" else "below"
            summary = (
                f"{_name(model, w.version)}: {m.replace('_', ' ')} for {subject} is {p.value:.3f}, "
                f"{word} its bound {b:g}{more}."
            )
        else:
            summary = f"{_name(model, w.version)}: group gaps for {subject} are within their bounds."
        out.append(Signal("fairness", subject, w.version, w.end, verdict, rule.severity, summary, ev))
    return out


# Sunset: worse than the baseline ------------------------------------------------


def lift_signal(model: str, w: Window, rule: SunsetRule) -> Signal | None:
    """Worse than its own baseline: ``lift_metric`` (model minus baseline) on the wrong side of zero."""
    metric = rule.lift_metric if rule.lift_metric in w.metrics else "lift" if "lift" in w.metrics else None
    if metric is None:
        return None
    p = w.metrics[metric]
    ev = {**_window_evidence(w), "metric": metric, "lift": p.value, "n": p.n, "margin": rule.lift_margin}
    if p.n < rule.min_labels:
        return Signal("sunset", "below_baseline", w.version, w.end, None, rule.severity, "", ev)
    worse = p.value < -rule.lift_margin if rule.lift_higher_is_better else p.value > rule.lift_margin
    name = _name(model, w.version)
    if worse:
        summary = f"{name} does worse than its baseline ({metric} {p.value:+.3f}); consider retiring it."
    else:
        summary = f"{name} does at least as well as its baseline ({metric} {p.value:+.3f})."
    return Signal("sunset", "below_baseline", w.version, w.end, worse, rule.severity, summary, ev)


# Ops ------------------------------------------------------------------------


def ops_signals(model: str, w: Window, rule: OpsRule) -> list[Signal]:
    """Pipeline health: orphaned outcomes, late labels, dead letters, lag (when written)."""
    out = []
    name = _name(model, w.version)
    rates = (
        ("orphaned_outcomes", "orphaned_outcomes", rule.max_orphan_rate, "of outcomes had no prediction"),
        ("late_labels", "late_labels", rule.max_late_label_rate, "of labels arrived after the allowed delay"),
    )
    for subject, metric, bound, what in rates:
        p = w.metrics.get(metric)
        if p is None:
            continue
        rate = p.value / p.n if p.n else 0.0
        ev = {**_window_evidence(w), "metric": metric, "rate": rate, "count": p.value, "n": p.n, "bound": bound}
        verdict = None if p.n < rule.min_events else rate > bound
        summary = f"{name}: {rate:.1%} {what} (bound {bound:.1%})."
        out.append(Signal("ops", subject, w.version, w.end, verdict, rule.severity, summary, ev))
    p = w.metrics.get("dead_letter_rate")
    if p is not None:
        ev = {**_window_evidence(w), "metric": "dead_letter_rate", "rate": p.value, "n": p.n,
              "bound": rule.max_dead_letter_rate}  # fmt: skip
        verdict = None if p.n < rule.min_events else p.value > rule.max_dead_letter_rate
        summary = f"{name}: {p.value:.1%} of messages were dead-lettered (bound {rule.max_dead_letter_rate:.1%})."
        out.append(Signal("ops", "dead_letters", w.version, w.end, verdict, rule.severity, summary, ev))
    p = w.metrics.get("lag_seconds")
    if p is not None:
        ev = {**_window_evidence(w), "metric": "lag_seconds", "lag_seconds": p.value, "bound": rule.max_lag_seconds}
        summary = f"{name}: processing lag is {p.value:.0f} s (bound {rule.max_lag_seconds:.0f} s)."
        out.append(Signal("ops", "lag", w.version, w.end, p.value > rule.max_lag_seconds, rule.severity, summary, ev))
    return out
