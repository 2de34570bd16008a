"""Fairness rules: group gaps per protected attribute, per window or pooled over a horizon of events.

Each group's counts come from the window's ``attr=value`` segment rows; the pooled
rule adds the newest windows' counts until the attribute has ``horizon_events``
events, then fires when a gap's confidence bound clears the tolerance (difference
metrics) or a ratio's bound is below the four-fifths line. Pure, like ``rules``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from watchkeeper.alerts.policy import FairnessRule
from watchkeeper.alerts.rules import subject_name, window_evidence
from watchkeeper.alerts.window import Point, Signal, Window
from watchkeeper.detectors.fairness import GAP_ALIASES, RATIO_RATES
from watchkeeper.detectors.fairness import GAP_RATES as _GAPS
from watchkeeper.detectors.stats import (
    difference_bounds,
    ratio_bounds,
    z_one_sided,
)
from watchkeeper.detectors.timeutil import iso


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
        breaches = [(m, p, b, k) for m, p, b, k in tested if (abs(p.value) > b if k == "max" else p.value < b)]
        ev = {
            **window_evidence(w),
            "attribute": subject,
            "breaches": [
                {"metric": m, "value": p.value, "bound": b, "bound_type": k, "n": p.n} for m, p, b, k in breaches
            ],  # fmt: skip
            "checked": [m for m, *_ in tested],
        }
        verdict: bool | None = None if not tested else bool(breaches)
        if breaches:
            m, p, b, k = max(breaches, key=lambda x: (abs(x[1].value - x[2]), x[0]))
            more = f" (and {len(breaches) - 1} more gaps)" if len(breaches) > 1 else ""
            word = "above" if k == "max" else "below"
            summary = (
                f"{subject_name(model, w.version)}: {m.replace('_', ' ')} for {subject} is {p.value:.3f}, "
                f"{word} its bound {b:g}{more}."
            )
        else:
            summary = f"{subject_name(model, w.version)}: group gaps for {subject} are within their bounds."
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
# Every name a policy may bound (detectors/fairness.py's vocabulary, short names included).
GAP_RATES: dict[str, tuple[str, ...]] = {**_GAPS, **{short: _GAPS[long] for short, long in GAP_ALIASES.items()}}


def pooled_fairness_signals(
    model: str,
    w: Window,
    history: Sequence[tuple[int, int, Mapping[str, Mapping[str, GroupTally]]]],
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
        **window_evidence(w), "attribute": attr, "breaches": breaches, "checked": sorted(set(checked)),
        "horizon": {"events": events, "from": iso(first), "to": iso(w.end)}, "groups": rates_ev,
        "confidence": rule.confidence, "tests": n_tests,
    }  # fmt: skip
    verdict: bool | None = True if breaches else False if within else None
    name = subject_name(model, w.version)
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
