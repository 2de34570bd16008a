"""Comparisons on the same traffic: the model against its baseline (sunset) and a challenger against its champion.

Sunset by evidence pools paired counts (the predictions one of model and baseline got
right and the other wrong) and tests them exactly (McNemar); the older rule counts a run
of negative-lift windows. Challenger signals read the always-valid A/B decisions that
the model stage writes. Pure, like ``rules``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from watchkeeper.alerts.policy import ChallengerRule, SunsetRule
from watchkeeper.alerts.rules import subject_name, window_evidence
from watchkeeper.alerts.window import Signal, Window
from watchkeeper.detectors.stats import (
    mcnemar_exact,
    paired_difference_bounds,
)
from watchkeeper.detectors.timeutil import iso


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
        **window_evidence(w), "method": "paired", "metric": "accuracy", **shown,
        "horizon_from": iso(recent[-shown["windows"]].start) if recent else None, "spans": spans,
        "min_effect": rule.min_effect, "confidence": rule.confidence,
    }  # fmt: skip
    name = subject_name(model, w.version)
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
            **window_evidence(w), "champion": champion, "challenger": challenger, "metric": subject,
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
            else f" (difference {diff:+.4f})"
            if diff is not None
            else ""
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
    ev = {**window_evidence(w), "metric": metric, "lift": p.value, "n": p.n, "margin": rule.lift_margin}
    if p.n < rule.min_labels:
        return Signal("sunset", "below_baseline", w.version, w.end, None, rule.severity, "", ev)
    worse = p.value < -rule.lift_margin if rule.lift_higher_is_better else p.value > rule.lift_margin
    name = subject_name(model, w.version)
    if worse:
        summary = f"{name} does worse than its baseline ({metric} {p.value:+.3f}); consider retiring it."
    else:
        summary = f"{name} does at least as well as its baseline ({metric} {p.value:+.3f})."
    return Signal("sunset", "below_baseline", w.version, w.end, worse, rule.severity, summary, ev)
