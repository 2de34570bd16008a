"""Per-model gauges for Prometheus: the latest state of each model this worker owns.

Read from the store in three statements whatever the number of models — the
latest window's headline metrics, the latest window's drift flags, the firing
alerts — once per alert evaluation of the model stage (in its thread), and
served from that snapshot at each scrape (a scrape never waits on the store).

Exported (``streams/metrics_export.py``), for the models the worker owns, so
that each model's series come from one worker:

- ``watchkeeper_model_metric{model, version, metric}``: the latest window's
  accuracy, estimated accuracy (CBPE, without labels), MAE, RMSE, macro F1 —
  whichever the model has;
- ``watchkeeper_model_label_coverage{model, version}``: the share of the latest
  window's predictions that have their label;
- ``watchkeeper_model_last_window_end_seconds{model}``: the end of the latest
  window written (Unix seconds);
- ``watchkeeper_model_drifted{model, feature}``: 1 if a test flagged the
  feature (``__prediction__`` for the score) in the model's latest window;
- ``watchkeeper_alerts_firing{model, kind, severity}``: alerts firing now.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from watchkeeper.alerts.engine import list_alerts
from watchkeeper.sinks.protocols import StoreReader

# The headline metrics of a model's latest window (those it has: a regression has no accuracy).
HEADLINE = ("accuracy", "est_accuracy", "mae", "rmse", "macro_f1")
COVERAGE = "label_rate"
# How far before the fleet's newest window to look for a model's latest one.
LOOKBACK_DAYS = 7

LATEST_METRICS = """
SELECT model, argMax(version, window_end) AS latest_version, metric, argMax(value, window_end) AS latest,
       toUnixTimestamp(max(window_end)) AS last_end
FROM metrics FINAL
WHERE segment = '' AND version != '' AND position(version, ' vs ') = 0
  AND metric IN {metrics:Array(String)}
  AND window_end > (SELECT max(window_end) FROM metrics) - toIntervalDay({days:UInt32})
GROUP BY model, metric
"""

LATEST_DRIFT = """
SELECT model, feature, max(drifted) AS drifted
FROM drift FINAL
WHERE (model, window_end) IN (
    SELECT model, max(window_end) FROM drift FINAL
    WHERE window_end > (SELECT max(window_end) FROM drift) - toIntervalDay({days:UInt32})
    GROUP BY model
)
GROUP BY model, feature
"""


@dataclass(frozen=True)
class ModelGauges:
    """One snapshot of the owned models' gauges (see the module doc)."""

    metrics: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (model, version, metric)
    coverage: dict[tuple[str, str], float] = field(default_factory=dict)  # (model, version)
    last_window_end: dict[str, float] = field(default_factory=dict)
    drifted: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, feature)
    firing: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (model, kind, severity)


def read_model_gauges(store: StoreReader, owns: Callable[[str], bool]) -> ModelGauges:
    """The owned models' gauges, in three statements."""
    gauges = ModelGauges()
    metrics = [*HEADLINE, COVERAGE, "predictions"]
    for r in store.query(LATEST_METRICS, {"metrics": metrics, "days": LOOKBACK_DAYS}):
        model = str(r["model"])
        if not owns(model):
            continue
        end = float(r["last_end"])
        gauges.last_window_end[model] = max(gauges.last_window_end.get(model, 0.0), end)
        if r["metric"] == COVERAGE:
            gauges.coverage[(model, str(r["latest_version"]))] = float(r["latest"])
        elif r["metric"] in HEADLINE:
            gauges.metrics[(model, str(r["latest_version"]), str(r["metric"]))] = float(r["latest"])
    for r in store.query(LATEST_DRIFT, {"days": LOOKBACK_DAYS}):
        if owns(str(r["model"])):
            gauges.drifted[(str(r["model"]), str(r["feature"]))] = int(r["drifted"])
    for a in list_alerts(store, state="firing", limit=1_000_000):
        if owns(a.model):
            gauges.firing[(a.model, a.kind, a.severity)] += 1
    return gauges
