"""Views for analysts: the long ``metrics`` and ``drift`` tables in the shapes people query.

``metrics`` is long (one row per window, segment and metric) so that any metric
can be added without a schema change; most questions want one row per window
with the main metrics side by side, for all traffic, deduplicated. The views
read the tables with ``FINAL`` (a late label rewrites its window's rows), so
they give the same numbers as the long table read the documented way.

- ``metrics_wide``: one row per (model, version, window) of all traffic: counts
  (``predictions``, ``labelled``), the main quality metrics (binary, multiclass
  and regression; NULL where a model has none), label-free estimates, lift over
  the baseline, latency and operational health.
- ``drift_flags``: one row per (model, version, window): how many features
  were tested and flagged (``features_*``: input features; ``drifted_features`` also lists
  ``__prediction__``, ``__error__`` and the other stream-level rows), and the worst statistic.
- ``alerts_current``: each alert's latest state (the ``watchkeeper alerts`` view).

>>> "metrics_wide" in [name for name, _ in view_statements("watchkeeper")]
True
"""

from __future__ import annotations

# Columns of metrics_wide: metric name -> column (the same name). Counts are summed ``n``/``value``.
WIDE_METRICS: tuple[str, ...] = (
    "accuracy", "error_rate", "precision", "recall", "f1", "fpr", "positive_rate", "prevalence",
    "roc_auc", "pr_auc", "log_loss", "brier", "ece", "expected_cost",
    "est_accuracy", "est_roc_auc", "lift_accuracy", "baseline_accuracy",
    "macro_f1", "mae", "rmse", "r2", "bias",
    "latency_p50", "latency_p95", "latency_p99", "fallback_rate", "dead_letter_rate", "lag_seconds",
)  # fmt: skip


def _metrics_wide(db: str) -> str:
    columns = ",\n    ".join(f"maxIf(value, metric = '{m}' AND n > 0) AS {m}" for m in WIDE_METRICS)
    # Metric names are this module's constants, never user input: formatting them in is safe.
    return f"""CREATE OR REPLACE VIEW {db}.metrics_wide AS
SELECT
    model, version, window_start, window_end,
    toUInt64(sumIf(n, metric = 'predictions')) AS predictions,
    toUInt64(sumIf(value, metric = 'labelled')) AS labelled,
    {columns},
    max(computed_at) AS computed_at
FROM {db}.metrics FINAL
WHERE segment = '' AND version != '' AND position(version, ' vs ') = 0
GROUP BY model, version, window_start, window_end"""


def _drift_flags(db: str) -> str:
    return f"""CREATE OR REPLACE VIEW {db}.drift_flags AS
SELECT
    model, version, window_start, window_end,
    uniqExactIf(feature, NOT startsWith(feature, '__')) AS features_tested,
    uniqExactIf(feature, drifted = 1 AND NOT startsWith(feature, '__')) AS features_drifted,
    arraySort(groupUniqArrayIf(feature, drifted = 1)) AS drifted_features,
    max(statistic) AS worst_statistic,
    max(ts) AS decided_at
FROM {db}.drift FINAL
GROUP BY model, version, window_start, window_end"""


def _alerts_current(db: str) -> str:
    return f"""CREATE OR REPLACE VIEW {db}.alerts_current AS
SELECT
    alert_id,
    argMax(model, ts) AS model, argMax(version, ts) AS version, argMax(kind, ts) AS kind,
    argMax(severity, ts) AS severity, argMax(state, ts) AS state, argMax(summary, ts) AS summary,
    argMax(owner, ts) AS owner, argMax(runbook_url, ts) AS runbook_url,
    max(ts) AS changed_at
FROM {db}.alerts FINAL
GROUP BY alert_id"""


def view_statements(database: str) -> list[tuple[str, str]]:
    """(name, CREATE OR REPLACE VIEW statement) for each view, in ``database``."""
    return [
        ("metrics_wide", _metrics_wide(database)),
        ("drift_flags", _drift_flags(database)),
        ("alerts_current", _alerts_current(database)),
    ]
