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

CONFUSION = """
SELECT version, toUnixTimestamp(window_start) AS ws,
       sumIf(value, metric = 'tp') AS tp, sumIf(value, metric = 'fp') AS fp,
       sumIf(value, metric = 'tn') AS tn, sumIf(value, metric = 'fn') AS fn
FROM metrics FINAL
WHERE model = {m:String} AND segment = '' AND metric IN ('tp', 'fp', 'tn', 'fn') AND position(version, ' vs ') = 0
GROUP BY version, ws
ORDER BY ws, version
"""
DECISION = {"worse": 1.0, "better": -1.0}


def pair_version(challenger: str, champion: str) -> str:
    return f"{challenger} vs {champion}"


def ab_rows(store: Store, config: WindowConfig, model: str, keys: Sequence[WindowKey]) -> list[dict[str, Any]]:
    """A/B rows for the windows in ``keys`` where two or more versions served (binary models)."""
    windows = {k.start for k in keys if k.version}
    if not windows:
        return []
    counts: dict[int, dict[str, tuple[int, int, int, int]]] = defaultdict(dict)
    first_seen: dict[str, int] = {}
    for r in store.query(CONFUSION, {"m": model}):
        ws = int(r["ws"])
        counts[ws][r["version"]] = (int(r["tp"]), int(r["fp"]), int(r["tn"]), int(r["fn"]))
        first_seen.setdefault(r["version"], ws)
    if len(first_seen) < 2:
        return []
    champion = min(first_seen, key=lambda v: (first_seen[v], v))
    cost = config.model(model).cost
    w = config.window_seconds
    config = ABTestConfig()
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
            err = msprt(ArmStats.from_errors(*a_err), ArmStats.from_errors(*b_err), config, names=names)
            cst = msprt(
                ArmStats.from_confusion(*acc[champion], cost),
                ArmStats.from_confusion(*acc[challenger], cost),
                config,
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
