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

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from watchkeeper.alerts.policy import ChallengerRule, DriftRule, FairnessRule, OpsRule, RetrainRule, SunsetRule
from watchkeeper.alerts.window import DriftRow, Point, Signal, Window, build_windows
from watchkeeper.detectors.reference import MetricBaseline, pooled_baseline
from watchkeeper.detectors.stats import (
    difference_bounds,
    mcnemar_exact,
    newcombe_drop_bound,
    paired_difference_bounds,
    ratio_bounds,
    wilson,
    z_one_sided,
)
from watchkeeper.detectors.timeutil import iso

# The window types, the baseline and the statistics are re-exported: a rule's caller needs them too.
__all__ = [
    "PROPORTIONS", "DriftRow", "FeatureDrift", "GroupTally", "MetricBaseline", "Paired", "Point", "Signal", "Window",
    "build_windows", "challenger_signals", "concept_rows", "drift_signal", "drifted_features", "driving_group",
    "drop_and_bound", "estimate_signal", "fairness_signals", "group_tallies", "is_concept", "is_pair", "lift_signal",
    "ops_signals", "paired_counts", "paired_scales", "paired_signal", "pooled_fairness_signals", "pooled_baseline",
    "retrain_signal", "wilson", "z_one_sided",
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
    strong_perf = strong_concept = False
    fast_lower: float | None = None
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
            ev.update(fast_lower_bound=fast_lower, fast_confidence=rule.fast_confidence)

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
        if fired and rule.fast_path and fast_lower is not None and fast_lower > 0:
            # An error-stream alarm confirmed by the window: its accuracy fell significantly.
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
    """A feature flagged in one window: its largest statistic among the detectors that flagged it, and
    ``alarm_ts``, the earliest alarm (event time) of a sequential detector among them (None: none)."""

    feature: str
    statistic: float
    threshold: float
    detectors: tuple[str, ...]
    alarm_ts: float | None = None


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
        out[d.feature] = FeatureDrift(d.feature, top.statistic, top.threshold, dets, min(alarms) if alarms else None)
    return out


def confirmed(fd: FeatureDrift, sequential: Iterable[str]) -> bool:
    """Flagged by a sequential detector (an alarm) and by a window test (any other detector)."""
    seq = frozenset(sequential)
    return fd.alarm_ts is not None and any(d not in seq for d in fd.detectors)


def drift_signal(
    model: str, w: Window, history: Sequence[Mapping[str, FeatureDrift]], rule: DriftRule
) -> Signal:
    """Features flagged in each of the last ``rule.windows`` windows with drift rows (``history``,
    oldest first, ending with this window), ranked by statistic: one signal per model version.

    Fast path: a feature of this window flagged by a sequential detector and confirmed by the
    window test counts at once; the signal's time is then the earliest such alarm.
    """
    name = _name(model, w.version)
    recent = list(history)[-rule.windows :]
    current = recent[-1] if recent else {}
    persistent = set(current)
    for h in recent[:-1]:
        persistent &= set(h)
    if len(recent) < rule.windows:
        persistent = set()
    fast = {f for f, fd in current.items() if confirmed(fd, rule.sequential_detectors)} if rule.fast_path else set()
    flagged = persistent | fast
    ranked = sorted((current[f] for f in flagged), key=lambda fd: (-fd.statistic, fd.feature))
    listed = ranked[: rule.max_features_listed]
    ev: dict[str, Any] = {
        **_window_evidence(w),
        "windows": rule.windows,
        "n_features": len(ranked),
        "features": [
            {"feature": fd.feature, "statistic": fd.statistic, "threshold": fd.threshold,
             "detectors": list(fd.detectors), "persistent": fd.feature in persistent,
             "alarm": iso(fd.alarm_ts) if fd.feature in fast and fd.alarm_ts is not None else None}
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
            alarm = min(current[f].alarm_ts for f in fast)  # type: ignore[type-var]
            ts = min(w.end, max(w.start + 1, math.ceil(alarm)))  # type: ignore[arg-type]
            ev["alarm"] = iso(alarm)
            summary = (
                f"{name}: {len(ranked)} {noun} drifted, flagged per event and confirmed by the window test: "
                f"{names} (first alarm {iso(alarm)})."
            )
    else:
        summary = f"{name}: no feature has drifted for {rule.windows} windows in a row."
    return Signal("drift", "features", w.version, ts, bad, rule.severity, summary, ev)


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


# Fairness pooled over a horizon of events ---------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupTally:
    """One group's counts: predictions, positive predictions, and the labelled confusion counts."""

    n: int
    pos: int
    tp: int
    fp: int
    tn: int
    fn: int

    def __add__(self, o: GroupTally) -> GroupTally:
        return GroupTally(self.n + o.n, self.pos + o.pos, self.tp + o.tp, self.fp + o.fp, self.tn + o.tn,
                          self.fn + o.fn)  # fmt: skip


def group_tallies(w: Window) -> dict[str, dict[str, GroupTally]]:
    """Per protected attribute, each group's counts in ``w``, from the segment rows ``attr=value``
    (``positive_rate`` with its ``n``, and ``tp``, ``fp``, ``tn``, ``fn``)."""
    out: dict[str, dict[str, GroupTally]] = {}
    for seg, m in w.segments.items():
        attr, eq, group = seg.partition("=")
        pr = m.get("positive_rate")
        if not eq or pr is None or pr.n <= 0:
            continue

        def c(name: str, m: Mapping[str, Point] = m) -> int:
            p = m.get(name)
            return int(round(p.value)) if p is not None else 0

        tally = GroupTally(pr.n, int(round(pr.value * pr.n)), c("tp"), c("fp"), c("tn"), c("fn"))
        out.setdefault(attr, {})[group] = tally
    return out


# A gap metric as the rate it compares: (numerator, denominator) of a group's tally.
_RATES = {
    "positive_rate": (lambda t: t.pos, lambda t: t.n),
    "tpr": (lambda t: t.tp, lambda t: t.tp + t.fn),
    "fpr": (lambda t: t.fp, lambda t: t.fp + t.tn),
}
GAP_RATES: dict[str, tuple[str, ...]] = {
    "demographic_parity_difference": ("positive_rate",),
    "demographic_parity_diff": ("positive_rate",),
    "equal_opportunity_difference": ("tpr",),
    "fpr_difference": ("fpr",),
    "equalized_odds_difference": ("tpr", "fpr"),
}
RATIO_RATES: dict[str, str] = {"disparate_impact_ratio": "positive_rate"}


def pooled_fairness_signals(
    model: str, w: Window, history: Sequence[tuple[int, int, Mapping[str, Mapping[str, GroupTally]]]],
    rule: FairnessRule,
) -> list[Signal]:
    """One signal per protected attribute, on each group's counts pooled over the most recent windows
    (``history``: (start, end, tallies) oldest first, ending with ``w``) up to ``rule.horizon_events``.

    A difference breaches when some pair's one-sided lower bound (Newcombe) exceeds its tolerance;
    a ratio when some pair's upper bound (Katz) is below its bound; the confidence is split
    (Bonferroni) over the pairs and tests. Good when every pooled point estimate is within bounds.
    """
    horizon = rule.horizon_events or 0
    attrs = sorted({a for *_, t in history for a in t} & set(history[-1][2] if history else {}))
    out = []
    for attr in attrs:
        pooled: dict[str, GroupTally] = {}
        events, first = 0, history[-1][0]
        for start, _, tallies in reversed(history):
            groups = tallies.get(attr)
            if groups is None:
                continue
            for g, t in groups.items():
                pooled[g] = pooled[g] + t if g in pooled else t
            events += sum(t.n for t in groups.values())
            first = start
            if events >= horizon:
                break
        out.append(_pooled_attribute(model, w, attr, pooled, events, first, rule))
    return [s for s in out if s is not None]


def _pooled_attribute(
    model: str, w: Window, attr: str, pooled: Mapping[str, GroupTally], events: int, first: int, rule: FairnessRule
) -> Signal | None:
    # Distinct tests: (metric, rate, bound, kind); an alias of a tested rate at the same bound adds nothing.
    tests: list[tuple[str, str, float, str]] = []
    seen: set[tuple[str, float, str]] = set()
    for m, bound in sorted(rule.max_gap.items()):
        for rate in GAP_RATES.get(m, ()):
            if (rate, bound, "max") not in seen:
                seen.add((rate, bound, "max"))
                tests.append((m, rate, bound, "max"))
    for m, bound in sorted(rule.min_ratio.items()):
        if (rate := RATIO_RATES.get(m)) is not None and (rate, bound, "min") not in seen:
            seen.add((rate, bound, "min"))
            tests.append((m, rate, bound, "min"))
    eligible: dict[str, list[tuple[str, int, int]]] = {}
    for _, rate, _, _ in tests:
        num, den = _RATES[rate]
        eligible[rate] = [(g, num(t), den(t)) for g, t in sorted(pooled.items()) if den(t) >= rule.min_group_n]
    n_tests = sum(len(eligible[r]) * (len(eligible[r]) - 1) // 2 for _, r, _, _ in tests)
    if n_tests == 0:
        return None
    z = z_one_sided(1 - (1 - rule.confidence) / n_tests)
    breaches, checked, within = [], [], True
    for m, rate, bound, kind in tests:
        groups = eligible[rate]
        if len(groups) < 2:
            continue
        checked.append(m)
        rates = {g: k / n for g, k, n in groups}
        hi_g, lo_g = max(rates, key=lambda g: (rates[g], g)), min(rates, key=lambda g: (rates[g], g))
        best: dict[str, Any] | None = None
        for i, (ga, ka, na) in enumerate(groups):
            for gb, kb, nb in groups[i + 1 :]:
                (g1, k1, n1), (g2, k2, n2) = ((ga, ka, na), (gb, kb, nb)) if ka / na >= kb / nb else \
                    ((gb, kb, nb), (ga, ka, na))  # fmt: skip
                if kind == "max":
                    d, lower, _ = difference_bounds(k1 / n1, n1, k2 / n2, n2, z)
                    if lower > bound and (best is None or lower > best["lower_bound"]):
                        best = {"value": d, "lower_bound": lower, "groups": [g1, g2]}
                else:
                    r, _, upper = ratio_bounds(k2, n2, k1, n1, z)
                    if upper < bound and (best is None or upper < best["upper_bound"]):
                        best = {"value": r, "upper_bound": upper, "groups": [g2, g1]}
        gap = rates[hi_g] - rates[lo_g]
        point = gap if kind == "max" else (rates[lo_g] / rates[hi_g] if rates[hi_g] > 0 else 1.0)
        within = within and (point <= bound if kind == "max" else point >= bound)
        if best is not None:
            breaches.append({"metric": m, "rate": rate, "bound": bound, "bound_type": kind, **best})
    if not checked:
        return None
    rates_ev = {
        g: {"n": t.n, "positive_rate": t.pos / t.n if t.n else None,
            "tpr": t.tp / (t.tp + t.fn) if t.tp + t.fn else None, "fpr": t.fp / (t.fp + t.tn) if t.fp + t.tn else None}
        for g, t in sorted(pooled.items())
    }  # fmt: skip
    ev = {
        **_window_evidence(w), "attribute": attr, "breaches": breaches, "checked": sorted(set(checked)),
        "horizon": {"events": events, "from": iso(first), "to": iso(w.end)}, "groups": rates_ev,
        "confidence": rule.confidence, "tests": n_tests,
    }  # fmt: skip
    verdict: bool | None = True if breaches else False if within else None
    name = _name(model, w.version)
    if breaches:
        b = max(breaches, key=lambda x: (abs(x["value"] - x["bound"]), x["metric"]))
        more = f" (and {len(breaches) - 1} more gaps)" if len(breaches) > 1 else ""
        if b["bound_type"] == "max":
            detail = f"is {b['value']:.3f} (lower bound {b['lower_bound']:.3f}), above its bound {b['bound']:g}"
        else:
            detail = f"is {b['value']:.3f} (upper bound {b['upper_bound']:.3f}), below its bound {b['bound']:g}"
        summary = (
            f"{name}: {b['metric'].replace('_', ' ')} for {attr} between {b['groups'][0]} and {b['groups'][1]} "
            f"{detail} over the last {events} events{more}."
        )
    elif within:
        summary = f"{name}: group gaps for {attr} are within their bounds over the last {events} events."
    else:
        summary = f"{name}: group gaps for {attr} are not yet significant over the last {events} events."
    return Signal("fairness", attr, w.version, w.end, verdict, rule.severity, summary, ev)


# Sunset: worse than the baseline, paired on the same predictions ------------------------------


@dataclass(frozen=True, slots=True)
class Paired:
    """One window's discordant pairs: model right and baseline wrong, the reverse, and pairs judged."""

    start: int
    end: int
    model_right: int
    baseline_right: int
    n: int


PAIRED_METRICS = ("baseline_discordant_model_right", "baseline_discordant_baseline_right")


def paired_counts(w: Window) -> Paired | None:
    """The window's discordant-pair rows (``windows/metrics.py``), None when not written."""
    b, c = (w.metrics.get(m) for m in PAIRED_METRICS)
    if b is None or c is None:
        return None
    return Paired(w.start, w.end, int(round(b.value)), int(round(c.value)), max(b.n, c.n))


def paired_scales(horizon: int, shortest: int) -> tuple[int, ...]:
    """The spans (in windows) the paired test looks at: doubling from ``shortest`` up to ``horizon``.

    >>> paired_scales(12, 2), paired_scales(1, 2)
    ((2, 4, 8, 12), (1,))
    """
    out, k = set(), max(1, min(shortest, horizon))
    while k < horizon:
        out.add(k)
        k *= 2
    return tuple(sorted({*out, horizon}))


def paired_signal(model: str, w: Window, history: Sequence[Paired], rule: SunsetRule) -> Signal:
    """Worse than its baseline on the same predictions: exact (McNemar) bounds of the accuracy difference
    over the last 2, 4, 8... windows up to ``horizon_windows`` (``history``: windows with pairs, oldest first).

    The confidence is split (Bonferroni) over the spans, so a change is seen in the short spans
    without the longer history diluting it, and a small persistent effect in the long ones.
    Bad when some span's upper bound is below ``-min_effect``; good when none is and the
    longest span's lower bound is above ``-min_effect`` (significantly not worse); else no evidence.
    """
    recent = list(history)[-rule.horizon_windows :]
    scales = [k for k in paired_scales(rule.horizon_windows, rule.min_windows) if k <= len(recent)] or [len(recent)]
    conf = 1 - (1 - rule.confidence) / len(scales)
    spans = []
    for k in scales:
        part = recent[-k:]
        b, c, n = (sum(p.model_right for p in part), sum(p.baseline_right for p in part), sum(p.n for p in part))
        diff, lower, upper = paired_difference_bounds(b, c, n, conf)
        spans.append({"windows": k, "model_right": b, "baseline_right": c, "pairs": n, "lift": diff,
                      "ci_low": lower, "ci_high": upper, "p_value": mcnemar_exact(b, c)})  # fmt: skip
    judged = [sp for sp in spans if sp["pairs"] >= rule.min_labels]
    worse = [sp for sp in judged if sp["ci_high"] < -rule.min_effect]
    # The evidence shown: the span that decided (the most significant worse one), else the longest.
    shown = min(worse, key=lambda sp: (sp["ci_high"], -sp["windows"])) if worse else spans[-1]
    ev = {
        **_window_evidence(w), "method": "paired", "metric": "accuracy", **shown,
        "horizon_from": iso(recent[-shown["windows"]].start) if recent else None, "spans": spans,
        "min_effect": rule.min_effect, "confidence": rule.confidence,
    }  # fmt: skip
    name = _name(model, w.version)
    if not judged:
        return Signal("sunset", "below_baseline", w.version, w.end, None, rule.severity, "", ev)
    diff, lower, upper, b, c, n = (shown[k] for k in ("lift", "ci_low", "ci_high", "model_right", "baseline_right",
                                                      "pairs"))  # fmt: skip
    bounds = f"bounds {lower:+.3f} to {upper:+.3f} at {rule.confidence:.1%}"
    span = f"{n} predictions over {shown['windows']} windows"
    longest = spans[-1]
    if worse:
        verdict: bool | None = True
        summary = (
            f"{name} does worse than its baseline on the same predictions: accuracy {diff:+.3f} ({bounds}; "
            f"{c} predictions only the baseline got right, {b} only the model; {span}); consider retiring it."
        )
    elif longest["pairs"] >= rule.min_labels and longest["ci_low"] > -rule.min_effect:
        verdict = False
        summary = (
            f"{name} is not worse than its baseline by {rule.min_effect:g}: accuracy {diff:+.3f} ({bounds}; {span})."
        )
    else:
        verdict = None
        summary = f"{name}: accuracy against its baseline {diff:+.3f} ({bounds}; {span}): not decided."
    return Signal("sunset", "below_baseline", w.version, w.end, verdict, rule.severity, summary, ev)


# Challenger: the A/B test decided ---------------------------------------------------------------


def is_pair(version: str) -> bool:
    """True for an A/B pair's rows (``'<challenger> vs <champion>'``, ``windows/ab.py``)."""
    return " vs " in version


def challenger_signals(model: str, w: Window, rule: ChallengerRule) -> list[Signal]:
    """One signal per tested metric of an A/B pair's window: the always-valid test's decision (final)."""
    challenger, _, champion = w.version.partition(" vs ")
    out = []
    for metric in rule.metrics:
        dec = w.metrics.get(f"ab_{metric}_decision")
        if dec is None:
            continue

        def val(name: str, metric: str = metric) -> float | None:
            p = w.metrics.get(f"ab_{metric}_{name}")
            return p.value if p is not None else None

        decision = "worse" if dec.value > 0 else "better" if dec.value < 0 else "undecided"
        subject = "error_rate" if metric == "error" else metric
        ev = {
            **_window_evidence(w), "champion": champion, "challenger": challenger, "metric": subject,
            "diff": val("diff"), "ci_low": val("ci_low"), "ci_high": val("ci_high"), "p_value": val("p_value"),
            "decision": decision, "n": dec.n,
        }  # fmt: skip
        verdict = True if decision != "undecided" else None
        severity = rule.severity_worse if decision == "worse" else rule.severity_better
        what = "error rate" if metric == "error" else "expected cost"
        diff = ev["diff"]
        interval = (
            f" (difference {diff:+.4f}, always-valid interval {ev['ci_low']:+.4f} to {ev['ci_high']:+.4f}, "
            f"p = {ev['p_value']:.2g})"
            if diff is not None and ev["ci_low"] is not None and ev["ci_high"] is not None and ev["p_value"] is not None
            else f" (difference {diff:+.4f})" if diff is not None else ""
        )
        head = f"{model} {challenger}: the challenger's {what} is"
        if decision == "worse":
            summary = f"{head} worse than champion {champion}'s{interval}; roll it back."
        elif decision == "better":
            summary = f"{head} better than champion {champion}'s{interval}; consider promoting it."
        else:
            summary = f"{model} {challenger}: the A/B test against {champion} has not decided on {what} yet."
        out.append(Signal("challenger", subject, challenger, w.end, verdict, severity, summary, ev))
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
