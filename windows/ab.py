"""Champion/challenger: versions of a model that serve in the same windows, compared continuously.

The champion is the model's oldest version; every other version serving in a
window is a challenger. From the first window both served, their labelled
errors (and costs) are accumulated and compared with an always-valid sequential
test (mSPRT, ``watchkeeper.detectors.msprt``), valid however often it is looked at. Each
window gets rows with ``version = '<challenger> vs <champion>'``: the difference
in error rate and its confidence interval (narrowing as labels accumulate), the
always-valid p-value, and the decision (+1 worse, -1 better, 0 not yet).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from watchkeeper.detectors import ABTestConfig, ArmStats, msprt
from watchkeeper.detectors.timeutil import utc

if TYPE_CHECKING:
    from watchkeeper.sinks.writer import Store
    from watchkeeper.windows.config import WindowConfig, WindowKey

# The stored confusion counts of the pass's models that have served two versions or more: those with
# two in the pass (``multi``), and those with a stored version the pass does not have (``pairs``).
CONFUSION = """
SELECT model, version, toUnixTimestamp(window_start) AS ws,
       sumIf(value, metric = 'tp') AS tp, sumIf(value, metric = 'fp') AS fp,
       sumIf(value, metric = 'tn') AS tn, sumIf(value, metric = 'fn') AS fn
FROM metrics FINAL
WHERE (model IN {multi:Array(String)} OR model IN (
        SELECT model FROM metrics
        WHERE model IN {models:Array(String)} AND segment = '' AND metric = 'tp' AND position(version, ' vs ') = 0
          AND (model, version) NOT IN {pairs:Array(Tuple(String, String))}))
  AND segment = '' AND metric IN ('tp', 'fp', 'tn', 'fn') AND position(version, ' vs ') = 0
GROUP BY model, version, ws
"""
DECISION = {"worse": 1.0, "better": -1.0}
_CONFUSION = {"tp": 0, "fp": 1, "tn": 2, "fn": 3}


def pair_version(challenger: str, champion: str) -> str:
    return f"{challenger} vs {champion}"


def ab_rows(
    store: Store, config: WindowConfig, keys: Sequence[WindowKey], rows: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A/B rows for the windows in ``keys`` where two or more versions served (binary models), of every model.

    ``rows``: the metric rows the pass is writing for ``keys`` (their confusion counts replace the stored ones).
    """
    windows: dict[str, set[int]] = defaultdict(set)
    for k in keys:
        if k.version:
            windows[k.model].add(k.start)
    if not windows:
        return []
    counts: dict[str, dict[int, dict[str, list[int]]]] = defaultdict(lambda: defaultdict(dict))
    fresh: dict[tuple[str, str, int], list[int]] = {}
    for r in rows:
        i = _CONFUSION.get(r["metric"]) if r["segment"] == "" else None
        if i is not None:
            c = fresh.setdefault((r["model"], r["version"], int(r["window_start"].timestamp())), [0, 0, 0, 0])
            c[i] = int(r["value"])
    # Models with one version in the pass may have had another before: the store knows (one query).
    versions: dict[str, set[str]] = defaultdict(set)
    for k in keys:
        if k.version:
            versions[k.model].add(k.version)
    params = {
        "models": sorted(windows),
        "multi": sorted(m for m, vs in versions.items() if len(vs) > 1),
        "pairs": sorted((m, v) for m, vs in versions.items() for v in vs),
    }
    for model, version, ws, tp, fp, tn, fn in store.query_rows(CONFUSION, params):
        if (model, version, int(ws)) not in fresh:
            counts[model][int(ws)][version] = [int(tp), int(fp), int(tn), int(fn)]
    for (model, version, ws), c in fresh.items():
        counts[model][ws][version] = c
    out: list[dict[str, Any]] = []
    for model in sorted(windows):
        out += _model_rows(config, model, windows[model], counts.get(model, {}))
    return out


def _model_rows(
    config: WindowConfig, model: str, windows: set[int], counts: dict[int, dict[str, list[int]]]
) -> list[dict[str, Any]]:
    first_seen: dict[str, int] = {}
    for ws in sorted(counts):
        for version in sorted(counts[ws]):
            first_seen.setdefault(version, ws)
    if len(first_seen) < 2:
        return []
    champion = min(first_seen, key=lambda v: (first_seen[v], v))
    cost = config.model(model).cost
    w = config.window_seconds
    test = ABTestConfig()
    out: list[dict[str, Any]] = []
    for challenger in sorted(v for v in first_seen if v != champion):
        since = max(first_seen[champion], first_seen[challenger])
        acc = {champion: [0, 0, 0, 0], challenger: [0, 0, 0, 0]}
        for ws in sorted(t for t in counts if t >= since):
            for v in (champion, challenger):
                for i, x in enumerate(counts[ws].get(v, (0, 0, 0, 0))):
                    acc[v][i] += x
            if ws not in windows or challenger not in counts[ws]:
                continue
            a_err = _errors(acc[champion])
            b_err = _errors(acc[challenger])
            names = (champion, challenger)
            err = msprt(ArmStats.from_errors(*a_err), ArmStats.from_errors(*b_err), test, names=names)
            cst = msprt(
                ArmStats.from_confusion(*acc[champion], cost),
                ArmStats.from_confusion(*acc[challenger], cost),
                test,
                names=names,
            )
            n = err.n_a + err.n_b
            base = {
                "window_start": utc(ws),
                "window_end": utc(ws + w),
                "model": model,
                "version": pair_version(challenger, champion),
                "segment": "",
            }
            for metric, value in (
                ("ab_error_diff", err.difference),
                ("ab_error_ci_low", err.ci_low),
                ("ab_error_ci_high", err.ci_high),
                ("ab_error_p_value", err.p_value),
                ("ab_error_decision", DECISION.get(err.decision, 0.0)),
                ("ab_cost_diff", cst.difference),
                ("ab_cost_decision", DECISION.get(cst.decision, 0.0)),
            ):
                if value == value and abs(value) != float("inf"):
                    out.append({**base, "metric": metric, "value": float(value), "n": n})
    return out


def _errors(c: list[int]) -> tuple[int, int]:
    tp, fp, tn, fn = c
    return tp + fp + tn + fn, fp + fn
