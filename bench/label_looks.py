"""Retrain decided on the labels so far: false decisions on stable models, and the delay after a concept change.

``python -m bench.label_looks`` (``make bench-label-looks``; about 14 minutes on a shared machine). Writes
``bench/results/label_looks.json`` (``bench.record``: commit and machine).

Simulated at the statistical level, with the product's own code for everything that decides: each
model's error stream (1 = a wrong prediction) goes through the error-stream detector
(``watchkeeper_default``, fed in prediction order as the model stage feeds it); each alarm gets the
looks of ``windows/label_looks.py`` (``label_marks``: the marks of the label clock after the alarm's
labels arrived, before its window's end plus the label delay, a mark judged once per version; a mark
reads the labels of the predictions after the alarm that arrived before it, and is a look only with
``LABEL_MIN_AFTER`` of them, ``LABEL_GROWTH`` times the previous look's for a later one, 3 looks at
most); each look is
judged by ``alerts.rules.label_look_signal`` (the retrain rule's fast path at the level of one of 3
looks) against the version's reference (``baseline_from_sample``: the first windows holding 300
labels). Not simulated: the store, the worker's passes and the wall clock (the live bench,
``make bench-alerts-live``, measures those), and the hysteresis (every confirmed look is counted,
though a firing alert is not decided again).

- **Stable models**: accuracy 0.87, one prediction a second, 90 % of them labelled, each label 20 s
  after its prediction, 300 s windows, label delay 600 s (the default), ``--months`` model-months
  (default 12): the alarms, the looks, and the looks that confirmed an alarm (false retrain decisions).
- **Concept change**: ten predictions a second, all labelled 20 s after, label delay 60 s (the live
  target's setting); accuracy 0.87 for the first window and up to a window more, then 0.73 (the change at
  a uniformly drawn point of window 1), ``--runs`` runs: the decision's delay after the labels showed the
  change (its mark minus the change minus 20 s), against the final window's (its end plus the delay).
- **Slow concept change**: the concept family of ``make bench-alerts`` at 1 event/s: one prediction a
  second, each labelled 90-150 s after (uniform), label delay 600 s, accuracy 0.87 then 0.69, ``--runs``
  runs: the delay after the labels showed the change (the change plus 120 s), against the final window's.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench import record
from bench.false_alarms import poisson_upper
from watchkeeper.alerts.policy import RetrainRule
from watchkeeper.alerts.rules import label_look_signal
from watchkeeper.alerts.window import DriftRow, Point, Window
from watchkeeper.detectors import build
from watchkeeper.detectors.reference import MetricBaseline, baseline_from_sample
from watchkeeper.windows.label_looks import LABEL_GROWTH, LABEL_MIN_AFTER, MAX_LABEL_LOOKS, label_marks
from watchkeeper.windows.sequential import ERROR_DETECTOR, ERROR_FEATURE

W = 300
LABEL_AFTER = 20.0
SLOW_LABEL_AFTER = (90.0, 150.0)  # make bench-alerts: each label 90-150 s after its prediction, uniform
SLOW_SHOWS = 120.0  # when the labels show a change there (bench.alerts LABEL_REF_DELAY)
MONTH_SECONDS = 30 * 86_400
ACCURACY, CHANGED, SLOW_CHANGED = 0.87, 0.73, 0.69
REFERENCE_LABELS = 300
TARGET_S = 60.0
SLOW_TARGET_S = 300.0


@dataclass(frozen=True)
class Stream:
    """One version's labelled predictions in prediction order: their times (s), errors (0/1) and when their
    labels arrived (s)."""

    t: np.ndarray
    err: np.ndarray
    at: np.ndarray

    def reference(self) -> MetricBaseline | None:
        """The first windows holding ``REFERENCE_LABELS`` labels (as the alert engine pools them)."""
        ws = (self.t // W).astype(np.int64)
        points = []
        for w in np.unique(ws[: 20 * REFERENCE_LABELS]):
            e = self.err[ws == w]
            points.append((int(w) * W, Point(1.0 - float(e.mean()), int(e.size))))
            if sum(p.n for _, p in points) >= REFERENCE_LABELS:
                break
        return baseline_from_sample(points, REFERENCE_LABELS)


def alarms(s: Stream) -> list[int]:
    """The index of each error-stream alarm (the detector fed every labelled error in order)."""
    return [int(i) for i in build(ERROR_DETECTOR).update_many(s.err.astype(float))]


def judge(s: Stream, i: int, ref: MetricBaseline | None, delay: float, done: set[int]) -> tuple[int | None, int]:
    """The looks at the alarm at index ``i`` (marks in ``done`` were judged for an earlier alarm): the mark of
    the first that confirms it (None: none did), and the looks made."""
    alarm = float(s.t[i])
    start = int(alarm // W) * W
    arrived = float(np.max(s.at[: i + 1]))  # the latest label the detector had read at the alarm
    looks, need = 0, LABEL_MIN_AFTER
    for mark in label_marks(arrived, start + W + delay):
        if looks >= MAX_LABEL_LOOKS:
            break
        if mark in done:
            continue
        done.add(mark)
        # The labels of the predictions after the alarm that arrived before the mark; too few: no look.
        hi = int(np.searchsorted(s.t, mark, side="left"))
        e = s.err[i + 1 : hi][s.at[i + 1 : hi] < mark]
        if e.size < need:
            continue
        looks, need = looks + 1, math.ceil(e.size * LABEL_GROWTH)
        row = DriftRow(ERROR_FEATURE, ERROR_DETECTOR, float(e.mean()), 0.0, True, alarm)
        accuracy = Point(1.0 - float(e.mean()), int(e.size))
        w = Window("v1", start, start + W, {"accuracy": accuracy}, drift=(row,), final=False)
        if label_look_signal("sim", w, ref, RetrainRule(), MAX_LABEL_LOOKS, mark) is not None:
            return mark, looks
    return None, looks


def stable_month(seed: int, rate: float = 1.0, labelled: float = 0.9) -> dict[str, int]:
    """One stable model-month: its alarms, looks and confirmed looks."""
    rng = np.random.default_rng(seed)
    n = int(MONTH_SECONDS * rate)
    t = np.arange(n) / rate
    keep = rng.uniform(size=n) < labelled
    s = Stream(t[keep], (rng.uniform(size=int(keep.sum())) >= ACCURACY).astype(np.int8), t[keep] + LABEL_AFTER)
    ref = s.reference()
    found, done = alarms(s), set[int]()
    judged = [judge(s, i, ref, 600.0, done) for i in found]
    return {"alarms": len(found), "looks": sum(n for _, n in judged), "marks": len(done),
            "confirmed": sum(mark is not None for mark, _ in judged)}  # fmt: skip


def concept_run(seed: int, rate: float = 10.0, delay: float = 60.0, slow: bool = False) -> dict[str, Any]:
    """A concept change at a uniform point of window 1: the delay of the first decision after the labels
    showed it, and how many decisions came before the change (false). ``slow``: the slow stream of
    ``make bench-alerts`` (``rate`` 1, labels 90-150 s late, the 600 s label delay, accuracy to 0.69)."""
    rng = np.random.default_rng(seed)
    change = W + float(rng.uniform(0, W))
    t = np.arange(int((6 if slow else 3) * W * rate)) / rate
    after = rng.uniform(*SLOW_LABEL_AFTER, size=t.size) if slow else np.full(t.size, LABEL_AFTER)
    err = rng.uniform(size=t.size) >= np.where(t < change, ACCURACY, SLOW_CHANGED if slow else CHANGED)
    s = Stream(t, err.astype(np.int8), t + after)
    ref = s.reference()
    shows = change + (SLOW_SHOWS if slow else LABEL_AFTER)
    decided, early, done = None, 0, set[int]()
    for i in alarms(s):
        mark, _ = judge(s, i, ref, delay, done)
        if mark is None:
            continue
        if s.t[i] < change:
            early += 1
            continue
        decided = mark
        break
    final = (math.floor(change / W) + 1) * W + delay  # the change's window decided whole
    return {"delay_s": None if decided is None else round(decided - shows, 1), "final_s": round(final - shows, 1),
            "before_change": early}  # fmt: skip


def spread(xs: list[float]) -> dict[str, float | None]:
    """Min, median, 90th percentile and max of ``xs`` (None each when empty)."""
    if not xs:
        return {"min": None, "median": None, "p90": None, "max": None}
    return {"min": min(xs), "median": float(np.median(xs)), "p90": float(np.quantile(xs, 0.9)), "max": max(xs)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--months", type=int, default=12, help="stable model-months (default 12)")
    ap.add_argument("--runs", type=int, default=50, help="concept-change runs (default 50)")
    args = ap.parse_args(argv)
    started = time.monotonic()
    months = [stable_month(1000 + k) for k in range(args.months)]
    n_alarms = sum(m["alarms"] for m in months)
    false = sum(m["confirmed"] for m in months)
    runs = [concept_run(k) for k in range(args.runs)]
    delays = sorted(r["delay_s"] for r in runs if r["delay_s"] is not None)
    finals = sorted(r["final_s"] for r in runs)
    slow_runs = [concept_run(k, rate=1.0, delay=600.0, slow=True) for k in range(args.runs)]
    slow = sorted(r["delay_s"] for r in slow_runs if r["delay_s"] is not None)
    slow_finals = sorted(r["final_s"] for r in slow_runs)
    results: dict[str, Any] = {
        "model_months": args.months,
        "error_stream_alarms": n_alarms,
        "alarms_per_model_month": round(n_alarms / args.months, 2),
        "looks": sum(m["looks"] for m in months),
        "false_retrain_decisions": false,
        "false_per_model_month_upper_95": round(poisson_upper(false, args.months), 3),
        "per_alarm_level_bound": (1 - RetrainRule().concept_confidence) + (1 - RetrainRule().fast_confidence),
        "concept_runs": args.runs,
        "concept_decided": len(delays),
        "concept_delay_s": spread(delays),
        "concept_final_window_delay_s": {"median": float(np.median(finals)), "max": finals[-1]},
        "concept_decided_before_change": sum(r["before_change"] for r in runs),
        "concept_within_target": sum(d <= TARGET_S for d in delays),
        "slow_concept_decided": len(slow),
        "slow_concept_delay_s": spread(slow),
        "slow_concept_final_window_delay_s": {"median": float(np.median(slow_finals)), "max": slow_finals[-1]},
        "slow_concept_decided_before_change": sum(r["before_change"] for r in slow_runs),
        "slow_concept_within_target": sum(d <= SLOW_TARGET_S for d in slow),
        "slow_concept_before_final_window": sum(
            r["delay_s"] is not None and r["delay_s"] < r["final_s"] for r in slow_runs
        ),  # fmt: skip
        "seconds": round(time.monotonic() - started, 1),
    }
    print(f"stable: {args.months} model-months, {n_alarms} error-stream alarms, {false} false retrain decisions "
          f"(95 % upper bound {results['false_per_model_month_upper_95']} a model-month)")  # fmt: skip
    print(f"concept change: decided in {len(delays)} of {args.runs} runs, delay after the labels showed it "
          f"{results['concept_delay_s']} s (final window: {results['concept_final_window_delay_s']} s)")  # fmt: skip
    print(f"slow stream (1/s, labels 90-150 s late, delay 600 s): decided in {len(slow)} of {args.runs} runs, "
          f"{results['slow_concept_delay_s']} s, {results['slow_concept_within_target']} within "
          f"{SLOW_TARGET_S:.0f} s (final window: {results['slow_concept_final_window_delay_s']} s)")  # fmt: skip
    targets = [record.Target("concept_within_target", ">=", args.runs * 0.9),
               record.Target("slow_concept_before_final_window", ">=", args.runs * 0.9),
               record.Target("false_retrain_decisions", "<=", 0)]  # fmt: skip
    verdicts = record.check(results, targets)
    path = record.write("label_looks", results, verdicts, runs=runs, slow_runs=slow_runs, months=months)
    print(f"wrote {path}")
    return 0 if all(v.met for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
