"""One model's evaluator: hysteresis, cooldown, dedup, grouping, resolution, replays, restore."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import pytest

from watchkeeper.alerts.evaluator import Anchor, Decision, ModelEvaluator
from watchkeeper.alerts.model import alert_id_for
from watchkeeper.alerts.policy import AlertPolicy, DriftRule, Hysteresis, NoDataRule, RetrainRule, SunsetRule
from watchkeeper.alerts.rules import DriftRow, MetricBaseline, Point, Window

W = 300
REF = {"v1": MetricBaseline(0.85, 1200, (0, 300, 600))}


def win(i: int, acc: float | None = 0.85, version: str = "v1", drifted: Iterable[str] = (), **m: float) -> Window:
    metrics = {"predictions": Point(500, 500), **{k: Point(v, 400) for k, v in m.items()}}
    if acc is not None:
        metrics["accuracy"] = Point(acc, 400)
    feats = sorted({"f1", "f2", "f3", *drifted})
    drift = tuple(DriftRow(f, "ks", 0.3 if f in drifted else 0.01, 0.05, f in drifted) for f in feats)
    return Window(version, i * W, (i + 1) * W, metrics, {}, drift)


def states(ds: list[Decision]) -> list[tuple[str, str, str, int]]:
    return [(d.kind, d.subject, d.state, d.ts // W) for d in ds]


def evaluator(policy: AlertPolicy | None = None) -> ModelEvaluator:
    return ModelEvaluator("m", policy or AlertPolicy(), W)


def accuracy_series() -> list[Window]:
    return [win(i, 0.6 if 10 <= i < 16 else 0.85) for i in range(25)]


def test_hysteresis_fires_after_k_and_resolves_after_l() -> None:
    p = AlertPolicy(retrain=RetrainRule(fast_path=False, hysteresis=Hysteresis(fire_after=2, resolve_after=4)))
    out = evaluator(p).feed(accuracy_series(), references=REF)
    # Bad windows 10..15: fires at the end of 11; good from 16: resolves at the end of 19.
    assert states(out) == [("retrain", "", "firing", 12), ("retrain", "", "resolved", 20)]


def test_same_decisions_whether_fed_at_once_or_window_by_window() -> None:
    windows = accuracy_series()
    at_once = evaluator().feed(windows, references=REF, fleet_watermark=25 * W)
    ev = evaluator()
    one_by_one = [d for i, w in enumerate(windows) for d in ev.feed([w], references=REF, fleet_watermark=(i + 1) * W)]
    assert at_once == one_by_one and len(at_once) == 2


def test_feeding_the_same_windows_again_decides_nothing_new() -> None:
    ev = evaluator()
    first = ev.feed(accuracy_series(), references=REF)
    assert ev.feed(accuracy_series(), references=REF) == [] and len(first) == 2
    assert ev.feed(list(reversed(accuracy_series())), references=REF) == []


def test_drift_groups_features_into_one_alert_per_model_version() -> None:
    windows = [win(i, drifted={"f1", "f2", "f3"} if 5 <= i < 12 else ()) for i in range(20)]
    out = evaluator(AlertPolicy(drift=DriftRule(windows=3))).feed(windows, references=REF)
    assert states(out) == [("drift", "features", "firing", 8), ("drift", "features", "resolved", 15)]
    assert [f["feature"] for f in out[0].evidence["features"]] == ["f1", "f2", "f3"]
    assert out[0].alert_id == alert_id_for("m", "v1", "drift", "features") == out[1].alert_id


def test_cooldown_holds_back_a_flapping_alert() -> None:
    quick = Hysteresis(fire_after=1, resolve_after=1, cooldown_seconds=5 * W)
    p = AlertPolicy(retrain=RetrainRule(hysteresis=quick))
    accs = [0.85] * 4 + [0.6, 0.85, 0.6, 0.85, 0.6, 0.85, 0.85, 0.85, 0.6]
    out = evaluator(p).feed([win(i, a) for i, a in enumerate(accs)], references=REF)
    # Fires at 4, resolves at 5; the bad windows 6 and 8 fall in the cooldown; 12 is after it.
    assert states(out) == [("retrain", "", "firing", 5), ("retrain", "", "resolved", 6), ("retrain", "", "firing", 13)]


def test_resolution_keeps_the_severity_and_says_since_when() -> None:
    out = evaluator().feed(accuracy_series(), references=REF)
    fired, resolved = out
    assert fired.severity == resolved.severity == "critical"
    assert resolved.evidence["firing_since"] == "1970-01-01T00:55:00Z"  # the first bad window decided
    assert len(fired.evidence["run_ends"]) == 1 and fired.evidence["fast_path"] == "performance"


def test_no_data_gap_inside_the_history_and_at_its_end() -> None:
    p = AlertPolicy(no_data=NoDataRule(after_minutes=30), sunset=SunsetRule(enabled=False))
    windows = [win(i) for i in [*range(5), *range(20, 25)]]
    out = evaluator(p).feed(windows, references=REF, fleet_watermark=40 * W)
    # Last traffic ends at 5 (x 300 s); 30 minutes = 6 windows later: fires at 11; traffic again in
    # window 20: resolves at its end; then the trailing gap after 25 fires at 31.
    assert states(out) == [("no_data", "traffic", "firing", 11), ("no_data", "traffic", "resolved", 21),
                           ("no_data", "traffic", "firing", 31)]  # fmt: skip
    assert out[0].version == "" and out[0].evidence["last_traffic"] == "1970-01-01T00:25:00Z"


def test_idle_and_superseded_versions_are_sunset() -> None:
    p = AlertPolicy(sunset=SunsetRule(idle_days=1 / 24, superseded_days=1 / 24), no_data=NoDataRule(enabled=False))
    windows = [win(i, version="v1") for i in range(10)] + [win(i, version="v2") for i in range(8, 30)]
    out = evaluator(p).feed(windows, references=REF, fleet_watermark=50 * W)
    assert [(d.version, d.subject, d.state, d.ts // W) for d in out if d.kind == "sunset"] == [
        ("v1", "superseded", "firing", 22),  # v1 last seen at 10; 1 hour = 12 windows; v2 has traffic
        ("", "idle", "firing", 42),  # no traffic at all after 30
    ]


def test_stale_firing_alert_resolves_itself() -> None:
    p = AlertPolicy(auto_resolve_hours=1)
    windows = [win(i, 0.6 if i >= 5 else 0.85) for i in range(10)] + [win(i, None) for i in range(10, 30)]
    out = evaluator(p).feed(windows, references=REF)
    assert states(out) == [("retrain", "", "firing", 6), ("retrain", "", "resolved", 22)]
    assert out[1].evidence["reason"] == "no evidence"


def test_restored_state_does_not_repeat_recorded_transitions() -> None:
    ev = evaluator()
    fired = Anchor(alert_id_for("m", "v1", "retrain", ""), "v1", "retrain", "", "firing", 13 * W, 13 * W, None,
                   "critical", "s", {"subject": ""})  # fmt: skip
    ev.restore([fired])
    out = ev.feed(accuracy_series(), references=REF)
    assert states(out) == [("retrain", "", "resolved", 19)]
    assert [d.state for d in ev.firing()] == []


def test_firing_lists_what_is_firing_now() -> None:
    ev = evaluator()
    ev.feed(accuracy_series()[:14], references=REF)
    [d] = ev.firing()
    assert (d.kind, d.state) == ("retrain", "firing")


def test_orphan_windows_only_feed_ops() -> None:
    ev = evaluator()
    out = ev.feed([Window("", i * W, (i + 1) * W, {"orphaned_outcomes": Point(50, 200)}) for i in range(5)])
    assert states(out) == [("ops", "orphaned_outcomes", "firing", 3)]
    assert out[0].version == "" and "25.0% of outcomes had no prediction" in out[0].summary


# Fast paths, evidence-based sunset and fairness, challenger alerts ---------------------------------


def test_a_first_window_with_a_strongly_significant_drop_fires_in_that_window() -> None:
    windows = [win(i, 0.85 if i < 10 else 0.6) for i in range(14)]
    out = evaluator().feed(windows, references=REF)
    assert states(out) == [("retrain", "", "firing", 11)]  # decided at the end of window 10, the first bad one
    old = evaluator(AlertPolicy.previous()).feed(windows, references=REF)
    assert states(old) == [("retrain", "", "firing", 13)]  # three windows in a row


def shifted(i: int) -> Window:
    """Window ``i``; from window 10 on, f1 flagged by the per-event alarm (at 45 s into window 10), the KS test
    and the test of the events after the alarm (``after_alarm``)."""
    w = win(i)
    if i < 10:
        return w
    alarm = DriftRow("f1", "mean_shift", 9.0, 8.0, True, i * W + 45.0 if i == 10 else i * W + 1.0)
    return Window(w.version, w.start, w.end, w.metrics, w.segments,
                  (*w.drift, alarm, DriftRow("f1", "ks", 0.3, 0.05, True),
                   DriftRow("f1", "after_alarm", 0.3, 0.05, True)))  # fmt: skip


def test_a_per_event_drift_alarm_confirmed_by_the_window_test_keeps_its_event_time_as_evidence() -> None:
    out = evaluator().feed([shifted(i) for i in range(14)], references=REF)
    [fired] = [d for d in out if d.kind == "drift"]
    assert fired.state == "firing" and fired.evidence_ts == 10 * W + 45  # the alarm's event time
    assert fired.ts == 11 * W  # decided when the window test ran: its window written (no label delay here)
    assert fired.evidence["alarm"] == "1970-01-01T00:50:45Z"


def test_a_flapping_signal_does_not_fire_resolve_fire() -> None:
    # Bad and good windows alternate: fires on the first strong one, never gets three good ones in a row.
    windows = [win(i, 0.85 if i < 4 or i % 2 else 0.6) for i in range(30)]
    out = evaluator().feed(windows, references=REF)
    assert [d.state for d in out] == ["firing"]


def paired_window(i: int, b: int, c: int, n: int = 400) -> Window:
    m = {"predictions": Point(500, 500), "accuracy": Point(0.85, 400), "lift_accuracy": Point((b - c) / n, n),
         "baseline_discordant_model_right": Point(b, n), "baseline_discordant_baseline_right": Point(c, n)}  # fmt: skip
    return Window("v1", i * W, (i + 1) * W, m)


def test_sunset_needs_a_significant_paired_difference() -> None:
    coin = [paired_window(i, 40, 41) for i in range(24)]  # lift -0.0025 in every window
    assert [d for d in evaluator().feed(coin, references=REF) if d.kind == "sunset"] == []
    old = evaluator(AlertPolicy.previous()).feed(coin, references=REF)
    assert [(d.kind, d.state) for d in old if d.kind == "sunset"] == [("sunset", "firing")]  # a coin-flip run
    worse = [paired_window(i, 40 if i < 6 else 20, 41 if i < 6 else 80) for i in range(24)]
    out = [d for d in evaluator().feed(worse, references=REF) if d.kind == "sunset"]
    assert [(d.subject, d.state) for d in out] == [("below_baseline", "firing")]
    assert out[0].ts <= 9 * W and out[0].evidence["ci_high"] < -0.01


def test_sunset_resolves_on_evidence_and_does_not_flap() -> None:
    # Worse for 12 windows, then as good as the baseline: resolves once the pooled lower bound clears
    # -min_effect; then hovering at the edge neither fires nor resolves again.
    ws = [paired_window(i, 20, 80) for i in range(12)] + [paired_window(i, 60, 40) for i in range(12, 36)]
    ws += [paired_window(i, 40, 44) for i in range(36, 80)]
    out = [d for d in evaluator().feed(ws, references=REF) if d.kind == "sunset"]
    assert [d.state for d in out] == ["firing", "resolved"]
    assert out[1].evidence["ci_low"] > -0.01


def test_fairness_gap_fires_within_30_minutes_at_300_events_a_window() -> None:
    windows = group_windows({"eu": 75, "us": 75, "apac": 75, "latam": 75}, 0.3, 12, seed=11)
    out = [d for d in evaluator().feed(windows, references=REF) if d.kind == "fairness"]
    assert [(d.subject, d.state) for d in out] == [("region", "firing")] and out[0].ts <= 1800
    assert out[0].evidence["breaches"][0]["groups"][1] == "latam"


def test_challenger_alert_names_the_challenger_and_resolves_when_the_comparison_stops() -> None:
    def pair(i: int, decision: float) -> Window:
        m = {"ab_error_decision": Point(decision, 2000), "ab_error_diff": Point(0.05, 2000),
             "ab_error_ci_low": Point(0.01, 2000), "ab_error_ci_high": Point(0.09, 2000),
             "ab_error_p_value": Point(0.004, 2000)}  # fmt: skip
        return Window("v2 vs v1", i * W, (i + 1) * W, m)

    windows = [pair(i, 0.0 if i < 5 else 1.0) for i in range(10)] + [win(i) for i in range(10, 400)]
    out = [d for d in evaluator().feed(windows, references=REF, fleet_watermark=400 * W) if d.kind == "challenger"]
    assert [(d.version, d.subject, d.state, d.severity) for d in out] == [
        ("v2", "error_rate", "firing", "warning"), ("v2", "error_rate", "resolved", "warning")]
    assert out[0].ts == 6 * W and out[0].evidence["decision"] == "worse" and out[0].evidence["champion"] == "v1"
    assert out[1].evidence["reason"] == "no evidence"

def group_windows(sizes: dict[str, int], gap: float, count: int, seed: int) -> list[Window]:
    """Windows whose groups have ``sizes`` events each; the last (smallest) group's TPR is ``gap`` lower."""
    import numpy as np

    rng = np.random.default_rng(seed)
    unfair = list(sizes)[-1]

    def window(i: int) -> Window:
        segs = {}
        for g, n in sizes.items():
            tpr = 0.8 - (gap if g == unfair else 0.0)
            pos = int(rng.binomial(n, 0.3))
            tp, fp = int(rng.binomial(pos, tpr)), int(rng.binomial(n - pos, 0.2))
            segs[f"region={g}"] = {"positive_rate": Point((tp + fp) / n, n), "tp": Point(tp, n), "fp": Point(fp, n),
                                   "tn": Point(n - pos - fp, n), "fn": Point(pos - tp, n)}  # fmt: skip
        total = sum(sizes.values())
        return Window("v1", i * W, (i + 1) * W, {"predictions": Point(total, total)}, segs)

    return [window(i) for i in range(count)]


# Off the design point (4 equal groups, 300 events, gap 0.3): 2, 3 and 6 groups of unequal sizes.
GROUP_LAYOUTS = [
    {"a": 200, "b": 40},
    {"a": 150, "b": 100, "c": 30},
    {"a": 100, "b": 80, "c": 60, "d": 30, "e": 20, "f": 10},
]


@pytest.mark.parametrize("sizes", GROUP_LAYOUTS, ids=lambda s: f"{len(s)}-groups")
def test_fair_groups_of_unequal_sizes_raise_no_fairness_alert(sizes: dict[str, int]) -> None:
    for seed in range(3):  # 3 x 300 windows (75 hours) of equal TPRs: not one alert
        out = evaluator().feed(group_windows(sizes, 0.0, 300, seed), references=REF)
        assert [d for d in out if d.kind == "fairness"] == [], (sizes, seed)


@pytest.mark.parametrize("sizes", GROUP_LAYOUTS, ids=lambda s: f"{len(s)}-groups")
@pytest.mark.parametrize(("gap", "within"), [(0.4, 15), (0.25, 60)])
def test_a_gap_in_the_smallest_group_fires(sizes: dict[str, int], gap: float, within: int) -> None:
    for seed in range(3):
        out = [d for d in evaluator().feed(group_windows(sizes, gap, within, seed), references=REF)
               if d.kind == "fairness"]  # fmt: skip
        assert out and out[0].state == "firing", (sizes, gap, seed)
        assert out[0].evidence["breaches"][0]["groups"][1] == list(sizes)[-1]


def test_decision_time_is_when_the_model_stage_wrote_the_window_never_the_evidence() -> None:
    """Honest times: a label-free alert (drift) is decided when the window's label-free results are written,
    its end plus the grace, not its label delay; a window flushed idle sooner is decided at the stream's
    last event; never before the evidence."""
    ev = ModelEvaluator("m", AlertPolicy(), window_seconds=W, label_delay=600, grace=10)
    [fired] = [d for d in ev.feed([shifted(i) for i in range(14)], references=REF, watermark=20 * W)
               if d.kind == "drift"]  # fmt: skip
    assert (fired.evidence_ts, fired.ts) == (10 * W + 45, 11 * W + 10)
    # Flushed idle: the stream stopped 4 s after window 10 ended, before the grace passed.
    ev = ModelEvaluator("m", AlertPolicy(), window_seconds=W, label_delay=600, grace=10)
    [fired] = [d for d in ev.feed([shifted(i) for i in range(11)], references=REF, watermark=11 * W + 4,
                                  stream_watermark=11 * W + 4) if d.kind == "drift"]  # fmt: skip
    assert (fired.evidence_ts, fired.ts) == (10 * W + 45, 11 * W + 4)
    # The same windows fed one at a time decide the same, at the same times (replays are exact).
    ev = ModelEvaluator("m", AlertPolicy(), window_seconds=W, label_delay=600, grace=10)
    again = [d for i in range(11) for d in ev.feed([shifted(i)], references=REF, watermark=11 * W + 4,
                                                      stream_watermark=11 * W + 4) if d.kind == "drift"]
    assert [(d.evidence_ts, d.ts) for d in again] == [(10 * W + 45, 11 * W + 4)]


def test_label_based_rules_wait_for_the_final_window_label_free_ones_do_not() -> None:
    """A provisional window (labels so far) is judged at once on drift and not on its accuracy; the same
    window, final, is judged on its accuracy then, dated its end plus the label delay."""
    def worse(final: bool) -> Window:  # window 10: drifted, and its accuracy collapsed
        w = shifted(10)
        return replace(w, metrics={**w.metrics, "accuracy": Point(0.3, 400)}, final=final)

    ev = ModelEvaluator("m", AlertPolicy(), window_seconds=W, label_delay=600, grace=10)
    out = ev.feed([shifted(i) for i in range(10)] + [worse(False)], references=REF, watermark=11 * W + 10)
    assert [(d.kind, d.ts) for d in out] == [("drift", 11 * W + 10)]
    assert ev.label_cursor_of("v1") == 10 * W and ev.cursor_of("v1") == 11 * W
    # The final version of window 10: its label-based rules run (dated by the label delay), the label-free
    # ones do not run twice.
    out = ev.feed([worse(True)], references=REF, watermark=11 * W + 600)
    assert [(d.kind, d.state, d.ts) for d in out] == [("retrain", "firing", 11 * W + 600)]
    assert ev.label_cursor_of("v1") == 11 * W
