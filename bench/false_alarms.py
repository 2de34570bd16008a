"""False alarms and power of the default alert policy, simulated with the product's own detectors and rules.

``python -m bench.false_alarms`` (``make bench-false-alarms``) runs stable models
window by window — 5-minute windows of 300 predictions, 270 of them labelled,
5 numeric features, 4 groups of a protected attribute, a baseline exactly as
good as the model — through the same code the worker runs on a window: the
binned window tests against the first windows' reference (``drift_report``,
the multivariate test), the per-event ``covariate_shift`` detector, the
``watchkeeper_default`` error-stream detector, the retrain reference
(``pooled_baseline``) and the alert evaluator with the default
:class:`~watchkeeper.alerts.policy.AlertPolicy` (hysteresis, cooldowns). Only
the store is left out: the windows are built in memory, as the model stage
would have written them. It prints, per alert kind, how many fired over the
simulated exposure (model-months of 8,640 windows) with a 95 % upper bound of
the rate, and the power runs behind the policy's claims (a 0.3 fairness gap
found within 30 minutes; a 0.5 sigma mean shift found). Results go to
``bench/results/false_alarms.json``.

Each simulated model is independent (its own seed), so the exposure adds up.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

W = 300
WINDOWS_PER_MONTH = 30 * 24 * 3600 // W  # 8,640
EVENTS = 300
LABELLED = 270
FEATURES = 5
GROUPS = ("eu", "us", "apac", "latam")
ACCURACY_TPR, FPR, POSITIVES = 0.8, 0.2, 0.3
REFERENCE_WINDOWS = 3
RESULTS = Path(__file__).resolve().parent / "results" / "false_alarms.json"
NOW = datetime(2026, 1, 1, tzinfo=UTC)  # the carried rows' computed_at (not read)


def _group_points(y: np.ndarray, pred: np.ndarray, groups: np.ndarray) -> dict[str, dict[str, Any]]:
    from watchkeeper.alerts.rules import Point

    out = {}
    for gi, g in enumerate(GROUPS):
        sel = groups == gi
        n = int(sel.sum())
        yy, pp = y[sel], pred[sel]
        tp, fp = int((yy & pp).sum()), int((~yy & pp).sum())
        tn, fn = int((~yy & ~pp).sum()), int((yy & ~pp).sum())
        out[f"region={g}"] = {"positive_rate": Point((tp + fp) / max(n, 1), n), "tp": Point(tp, n),
                              "fp": Point(fp, n), "tn": Point(tn, n), "fn": Point(fn, n)}  # fmt: skip
    return out


class SimulatedModel:
    """One model version's stream, window by window, and the detectors the model stage keeps for it."""

    def __init__(self, seed: int, tpr_gap: float = 0.0, shift_at: int | None = None, shift: float = 0.0) -> None:
        from watchkeeper.detectors import build

        self.rng = np.random.default_rng(seed)
        self.tpr_gap = tpr_gap
        self.shift_at, self.shift = shift_at, shift
        self.reference: Any = None
        self.first: list[dict[str, np.ndarray]] = []
        self.errors = build("watchkeeper_default")
        self.shifts: Any = None
        self.accuracy_points: list[tuple[int, Any]] = []
        from types import SimpleNamespace

        from watchkeeper.detectors import DriftConfig
        from watchkeeper.windows.carry import Carry
        from watchkeeper.windows.config import WindowConfig

        # The model stage's carry, its events in memory (each window's handed to it in order: nothing to read).
        stage = SimpleNamespace(window=WindowConfig(window_seconds=W), config=DriftConfig(alpha=0.001),
                                reference_for=lambda key: self.reference)  # fmt: skip
        self.carry = Carry(stage)  # type: ignore[arg-type]

    def window(self, i: int) -> Any:
        """The window the model stage would write for window ``i`` (metrics, segments, drift rows)."""
        from watchkeeper.alerts.rules import DriftRow, Point, Window

        rng = self.rng
        start, end = i * W, (i + 1) * W
        t = start + np.sort(rng.uniform(0, W, EVENTS))
        x = rng.normal(size=(EVENTS, FEATURES))
        if self.shift_at is not None and i >= self.shift_at:
            x[:, 0] += self.shift
        groups = rng.integers(0, len(GROUPS), EVENTS)
        y = rng.uniform(size=EVENTS) < POSITIVES
        tpr = np.where(groups == len(GROUPS) - 1, ACCURACY_TPR - self.tpr_gap, ACCURACY_TPR)
        pred = np.where(y, rng.uniform(size=EVENTS) < tpr, rng.uniform(size=EVENTS) < FPR)
        score = np.clip(np.where(pred, 0.75, 0.25) + rng.normal(0, 0.1, EVENTS), 0, 1)
        labelled = np.zeros(EVENTS, bool)
        labelled[rng.choice(EVENTS, LABELLED, replace=False)] = True
        right = (pred == y)[labelled]
        # The baseline is exactly as good, a quarter of the pairs discordant: P(base wrong | model right)
        # and P(base right | model wrong) chosen so both have the model's accuracy.
        acc = ACCURACY_TPR * POSITIVES + (1 - FPR) * (1 - POSITIVES)
        p_wrong_given_right, p_right_given_wrong = 0.125 / acc, 0.125 / (1 - acc)
        u = rng.uniform(size=right.size)
        base_right = np.where(right, u >= p_wrong_given_right, u < p_right_given_wrong)
        b, c = int((right & ~base_right).sum()), int((~right & base_right).sum())
        n_lab = int(labelled.sum())
        accuracy = float(right.mean())
        metrics = {
            "predictions": Point(EVENTS, EVENTS), "labelled": Point(n_lab, n_lab),
            "accuracy": Point(accuracy, n_lab), "lift_accuracy": Point((b - c) / n_lab, n_lab),
            "baseline_discordant_model_right": Point(b, n_lab), "baseline_discordant_baseline_right": Point(c, n_lab),
        }  # fmt: skip
        drift = self._drift_rows(i, t, x, score, right, t[labelled])
        return Window("v1", start, end, metrics, _group_points(y[labelled], pred[labelled], groups[labelled]),
                      tuple(DriftRow(**r) for r in drift))  # fmt: skip

    def _drift_rows(
        self, i: int, t: np.ndarray, x: np.ndarray, score: np.ndarray, right: np.ndarray, t_lab: np.ndarray
    ) -> list[dict[str, Any]]:
        from watchkeeper.detectors import DriftConfig, build, drift_report
        from watchkeeper.windows.config import WindowKey
        from watchkeeper.windows.partial import AFTER_ALARM, confirm_after_alarm
        from watchkeeper.windows.sample import build_reference

        numeric = {f"f{j}": x[:, j] for j in range(FEATURES)} | {"__prediction__": score}
        rows: list[dict[str, Any]] = []
        end = float((i + 1) * W)
        # Window tests: against the first REFERENCE_WINDOWS windows, from the next window on.
        if i < REFERENCE_WINDOWS:
            self.first.append(numeric)
        else:
            if self.reference is None:
                merged = {k: np.concatenate([w[k] for w in self.first]) for k in numeric}
                self.reference = build_reference(_Sample(len(merged["f0"]), merged), 0, REFERENCE_WINDOWS * W)
            ref = self.reference
            current = ref.current_counts(numeric, {}, len(score))
            for r in drift_report(ref.counts, current, ref.kinds, DriftConfig(alpha=0.001)):
                rows.append(dict(feature=r.feature, detector=r.detector, statistic=float(r.statistic),
                                 threshold=float(r.threshold), drifted=bool(r.drifted), ts=end))  # fmt: skip
            if ref.multivariate is not None:
                X = np.column_stack([numeric[name] for name in ref.multivariate.names])
                j = ref.multivariate.test(X, names=ref.multivariate.names)
                rows.append(dict(feature="__multivariate__", detector=j.detector, statistic=float(j.statistic),
                                 threshold=float(j.threshold), drifted=bool(j.drifted), ts=end))  # fmt: skip
        # Per-event covariate shift (learns the features' mean and spread from its first 1,000 events).
        if self.shifts is None:
            self.shifts = build("covariate_shift")
        det = self.shifts
        det.update_many(x)
        first: dict[int, float] = {}
        for row, feature in det.alarms:
            first.setdefault(feature, float(t[row]))
        if det.statistic.size:
            for j in range(FEATURES):
                rows.append(dict(feature=f"f{j}", detector="mean_shift", statistic=float(det.statistic[j]),
                                 threshold=float(det.threshold), drifted=j in first, ts=first.get(j, end)))  # fmt: skip
            # The confirmation at the window's end, as the model stage writes it (``DriftStage._confirm_rows``):
            # the window test of the events after each alarm, not of the whole window.
            if first and self.reference is not None and i >= REFERENCE_WINDOWS:
                inputs = {f"f{j}": x[:, j] for j in range(FEATURES)}
                alarms = {f"f{j}": at for j, at in first.items()}
                confirms = confirm_after_alarm(self.reference, np.round(t * 1000), inputs, alarms,
                                               DriftConfig(alpha=0.001))  # fmt: skip
                for f, r in sorted(confirms.items()):
                    rows.append(dict(feature=f, detector=AFTER_ALARM, statistic=float(r.statistic),
                                     threshold=float(r.threshold), drifted=bool(r.drifted), ts=end))  # fmt: skip
            # An alarm with fewer than 150 events after it in its window is carried into the next windows and
            # judged on the events after it across the boundary (``windows/carry.py``, the model stage's code).
            if i >= REFERENCE_WINDOWS:
                for r in self.carry.rows(WindowKey("m", "v1", i * W), np.round(t * 1000).astype(np.int64),
                                         {f"f{j}": x[:, j] for j in range(FEATURES)}, rows, NOW):  # fmt: skip
                    rows.append(dict(feature=r["feature"], detector=r["detector"], statistic=r["statistic"],
                                     threshold=r["threshold"], drifted=bool(r["drifted"]),
                                     ts=r["ts"].timestamp()))  # fmt: skip
        # The error stream, one labelled event at a time in event-time order.
        fired: float | None = None
        for err, ts in zip(~right, t_lab, strict=True):
            self.errors.update(float(err))
            if self.errors.drift_detected and fired is None:
                fired = float(ts)
        rows.append(dict(feature="__error__", detector="watchkeeper_default", statistic=float(fired is not None),
                         threshold=1.0, drifted=fired is not None, ts=fired if fired is not None else end))  # fmt: skip
        return rows


class _Sample:
    """The shape ``build_reference`` reads (numeric features only)."""

    def __init__(self, n: int, numeric: dict[str, np.ndarray]) -> None:
        self.n, self.numeric, self.categorical = n, numeric, {}


def path_of(kind: str, ev: dict[str, Any]) -> str:
    """Which path of a rule fired, from a firing decision's evidence (e.g. ``fast:mean_shift+ks``)."""
    if kind == "drift":
        feats = ev.get("features", [])
        if any(f["persistent"] for f in feats):
            return "slow:" + "+".join(sorted({d for f in feats if f["persistent"] for d in f["detectors"]}))
        if ev.get("alarm"):
            return "fast:" + "+".join(sorted({d for f in feats for d in f["detectors"]}))
        return "strong:" + "+".join(f["feature"] for f in feats)
    if kind == "retrain":
        if ev.get("fast_path"):
            return f"fast:{ev['fast_path']}"
        return "slow:" + "+".join(ev.get("reasons", []))
    return kind


def run_model(seed: int, windows: int, **kw: Any) -> list[tuple[str, str, str, int, str]]:
    """Feed one simulated model's windows to the evaluator a day at a time; its decisions."""
    from watchkeeper.alerts.evaluator import ModelEvaluator
    from watchkeeper.alerts.policy import AlertPolicy
    from watchkeeper.detectors.reference import pooled_baseline

    model = SimulatedModel(seed, **kw)
    evaluator = ModelEvaluator(f"sim-{seed}", AlertPolicy(), window_seconds=W)
    refs: dict[str, Any] = {}
    out = []
    day = 24 * 3600 // W
    for d0 in range(0, windows, day):
        batch = [model.window(i) for i in range(d0, min(windows, d0 + day))]
        if "v1" not in refs:
            pts = [(w.start, w.metrics["accuracy"]) for w in batch[:REFERENCE_WINDOWS]]
            if (ref := pooled_baseline(pts, REFERENCE_WINDOWS)) is not None:
                refs["v1"] = ref
        for dec in evaluator.feed(batch, references=refs, fleet_watermark=batch[-1].end):
            path = path_of(dec.kind, dec.evidence) if dec.state == "firing" else ""
            out.append((dec.kind, dec.subject, dec.state, int(dec.ts), path))
    return out


def _stable(args: tuple[int, int]) -> list[tuple[str, str, str, int, str]]:
    return run_model(*args)


def poisson_upper(k: int, exposure: float, level: float = 0.95) -> float:
    """One-sided upper bound of a Poisson rate with ``k`` events in ``exposure`` (exact, chi-square)."""
    from scipy.stats import chi2

    return float(chi2.ppf(level, 2 * (k + 1)) / 2 / exposure)


def false_alarms(models: int, months: float, workers: int) -> dict[str, Any]:
    windows = int(months * WINDOWS_PER_MONTH)
    with ProcessPoolExecutor(workers) as pool:
        decisions = list(pool.map(_stable, [(1000 + s, windows) for s in range(models)]))
    exposure = models * windows / WINDOWS_PER_MONTH
    fired = Counter(kind for ds in decisions for kind, _, state, _, _ in ds if state == "firing")
    paths = Counter(f"{kind} {path}" for ds in decisions for kind, _, state, _, path in ds if state == "firing")
    kinds = ("drift", "retrain", "performance", "fairness", "sunset", "no_data", "challenger", "ops")
    return {
        "models": models,
        "model_months": round(exposure, 2),
        "fired": {k: fired.get(k, 0) for k in kinds},
        "upper_95_per_month": {k: round(poisson_upper(fired.get(k, 0), exposure), 4) for k in kinds},
        "paths": dict(sorted(paths.items())),
    }


def _fairness_run(seed: int) -> float | None:
    out = run_model(seed, 12, tpr_gap=0.3)
    fired = [ts for kind, _, state, ts, _ in out if kind == "fairness" and state == "firing"]
    return fired[0] / 60 if fired else None


def _shift_run(seed: int) -> float | None:
    onset = 12  # after an hour of stable traffic
    out = run_model(seed, onset + 12, shift_at=onset, shift=0.5)
    fired = [ts for kind, _, state, ts, _ in out if kind == "drift" and state == "firing"]
    return (fired[0] - onset * W) / 60 if fired else None


def power(runs: int, workers: int) -> dict[str, Any]:
    with ProcessPoolExecutor(workers) as pool:
        fair = list(pool.map(_fairness_run, range(runs)))
        shift = list(pool.map(_shift_run, range(runs)))
    return {
        "fairness_gap_0.3_4_groups_300_events": {
            "runs": runs,
            "within_30_min": sum(m is not None and m <= 30 for m in fair),
            "within_40_min": sum(m is not None and m <= 40 for m in fair),
            "missed_in_60_min": sum(m is None for m in fair),
        },
        "mean_shift_0.5_sigma_one_feature": {
            "runs": runs,
            "median_minutes_after_onset": float(np.median([m for m in shift if m is not None])) if any(
                m is not None for m in shift) else None,  # fmt: skip
            "missed_in_60_min": sum(m is None for m in shift),
        },
    }


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=int, default=10, help="independent stable models (default 10)")
    ap.add_argument("--months", type=float, default=1.0, help="simulated months per model (default 1)")
    ap.add_argument("--runs", type=int, default=100, help="runs per power scenario (default 100)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    result = {
        "commit": _commit(),
        "machine": f"{platform.machine()}, {platform.system()}, {__import__('os').cpu_count()} cores",
        "stable": false_alarms(args.models, args.months, args.workers),
        "power": power(args.runs, args.workers),
    }
    result["seconds"] = round(time.monotonic() - t0, 1)
    s = result["stable"]
    print(f"stable models: {s['model_months']} model-months ({s['models']} models)")
    print(f"{'kind':<12} {'fired':>6} {'95% upper / model-month':>24}")
    for kind, k in s["fired"].items():
        print(f"{kind:<12} {k:>6} {s['upper_95_per_month'][kind]:>24.4f}")
    for path, k in s["paths"].items():
        print(f"  {path}: {k}")
    print(json.dumps(result["power"], indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
