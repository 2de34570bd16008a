"""Views for analysts: the long ``metrics`` and ``drift`` tables in the shapes people query.

``metrics`` is long (one row per window, segment and metric) so that any metric
can be added without a schema change; most questions want one row per window
with the main metrics side by side, for all traffic, deduplicated. The views
read the tables with ``FINAL`` (a late label rewrites its window's rows), so
they give the same numbers as the long table read the documented way.

- ``metrics_wide``: one row per (model, version, window) of all traffic: counts
  (``predictions``, ``labelled``), the main quality metrics (binary, multiclass
  and regression), label-free estimates, lift over the baseline, latency and
  operational health; NULL where a metric does not apply to the model (a binary
  classifier has no ``mae``) or was not computed for the window. ``provisional`` is 1
  while the window's label-based metrics are still from the labels so far (the label
  delay has not passed; ``label_coverage`` says how many have arrived), 0 once final.
- ``drift_flags``: one row per (model, version, window): how many features
  were tested and flagged (``features_*``: input features; ``drifted_features`` also lists
  ``__prediction__``, ``__error__`` and the other stream-level rows), and the worst statistic;
  ``provisional`` 1 while the window's label drift is from the labels so far.
- ``alerts_current``: each alert's latest state and evidence (the ``watchkeeper alerts`` view).

Every column of every view has a comment (``DESCRIBE metrics_wide``, ``system.columns``), as the
tables' columns do: the views declare their columns, with types and comments, before ``AS SELECT``.

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


# What each metrics_wide metric is (the column comments).
METRIC_COMMENTS: dict[str, str] = {
    "accuracy": "share of labelled predictions that were right (classifiers)",
    "error_rate": "1 - accuracy (classifiers)",
    "precision": "binary: TP / (TP + FP) at the model's threshold",
    "recall": "binary: TP / (TP + FN) at the model's threshold",
    "f1": "binary: harmonic mean of precision and recall",
    "fpr": "binary: FP / (FP + TN)",
    "positive_rate": "binary: share of predictions that are positive",
    "prevalence": "binary: share of labelled outcomes that are positive",
    "roc_auc": "binary: area under the ROC curve",
    "pr_auc": "binary: area under the precision-recall curve",
    "log_loss": "binary: mean log loss of the scores",
    "brier": "binary: mean squared error of the scores (Brier score)",
    "ece": "binary: expected calibration error of the scores",
    "expected_cost": "binary: mean cost per labelled prediction (the model's cost matrix)",
    "est_accuracy": "binary: accuracy estimated without labels (confidence-based, CBPE-style)",
    "est_roc_auc": "binary: ROC AUC estimated without labels (confidence-based, CBPE-style)",
    "lift_accuracy": "accuracy minus the baseline's (events with a baseline field)",
    "baseline_accuracy": "accuracy of the baseline's predictions (events with a baseline field)",
    "macro_f1": "multiclass: mean of the per-class F1 scores",
    "mae": "regression: mean absolute error",
    "rmse": "regression: root mean squared error",
    "r2": "regression: coefficient of determination",
    "bias": "regression: mean prediction minus outcome",
    "latency_p50": "median serving latency (ms; events with latency_ms)",
    "latency_p95": "95th percentile of serving latency (ms)",
    "latency_p99": "99th percentile of serving latency (ms)",
    "fallback_rate": "share of predictions where the service fell back to a default answer",
    "dead_letter_rate": "dead letters naming the model among its Kafka messages",
    "lag_seconds": "p95 seconds from the broker's receipt of an event to its row in the store",
}
_WHEN_NONE = "; NULL where it does not apply or was not computed"


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _columns(columns: list[tuple[str, str, str]]) -> str:
    """The view's column list: name, type and comment (the comments are this module's constants)."""
    return ",\n    ".join(f"{name} {type_} COMMENT {_quote(comment)}" for name, type_, comment in columns)


_KEY = [
    ("model", "LowCardinality(String)", "model name"),
    ("version", "LowCardinality(String)", "model version"),
    ("window_start", "DateTime('UTC')", "start of the event-time window (UTC)"),
    ("window_end", "DateTime('UTC')", "end of the event-time window (UTC, exclusive)"),
]
WIDE_COLUMNS = [
    *_KEY,
    ("predictions", "UInt64", "predictions in the window"),
    ("labelled", "UInt64", "predictions in the window whose outcome has arrived"),
    *((m, "Nullable(Float64)", METRIC_COMMENTS[m] + _WHEN_NONE) for m in WIDE_METRICS),
    ("computed_at", "DateTime64(3, 'UTC')", "when the window's rows were last computed"),
    (
        "provisional",
        "UInt8",
        "1 = the label-based metrics are from the labels so far (the label delay has not "
        "passed; a later version replaces them); 0 = final",
    ),
    (
        "label_coverage",
        "Float64",
        "labelled / predictions: the share of the window's labels behind its label-based metrics",
    ),
]
DRIFT_COLUMNS = [
    *_KEY,
    ("features_tested", "UInt64", "input features tested in the window"),
    ("features_drifted", "UInt64", "input features flagged as drifted"),
    ("drifted_features", "Array(String)", "every flagged row: input features, __prediction__, __error__, ..."),
    ("worst_statistic", "Float64", "the largest test statistic of the window"),
    ("decided_at", "DateTime64(3, 'UTC')", "event time of the latest decision (UTC)"),
    ("provisional", "UInt8", "1 = the window's label drift is from the labels so far (not final yet)"),
]
ALERT_COLUMNS = [
    ("alert_id", "String", "stable id of the alert (model, version, kind, subject)"),
    ("model", "String", "model name"),
    ("version", "String", "model version ('' = not version-specific)"),
    ("kind", "String", "alert kind (drift, performance, retrain, sunset, fairness, no_data, ops, ...)"),
    ("severity", "String", "info, warning or critical, at the latest change"),
    ("state", "String", "firing or resolved, at the latest change"),
    ("summary", "String", "one line for humans, at the latest change"),
    ("owner", "String", "team that owns the model and receives its alerts"),
    ("runbook_url", "String", "what to do: the runbook section of this kind"),
    ("evidence", "String", "the latest decision's evidence (JSON)"),
    ("changed_at", "DateTime64(3, 'UTC')", "decision time of the latest change (UTC)"),
]
VIEW_COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "metrics_wide": WIDE_COLUMNS,
    "drift_flags": DRIFT_COLUMNS,
    "alerts_current": ALERT_COLUMNS,
}


def _metrics_wide(db: str) -> str:
    # -OrNull: NULL, not 0, where no row of the metric matches (a binary classifier's mae).
    columns = ",\n    ".join(f"maxIfOrNull(value, metric = '{m}' AND n > 0) AS {m}" for m in WIDE_METRICS)
    # Metric names are this module's constants, never user input: formatting them in is safe.
    return f"""CREATE OR REPLACE VIEW {db}.metrics_wide (
    {_columns(WIDE_COLUMNS)}
) AS
SELECT
    model, version, window_start, window_end,
    toUInt64(sumIf(n, metric = 'predictions')) AS predictions,
    toUInt64(sumIf(value, metric = 'labelled')) AS labelled,
    {columns},
    max(computed_at) AS computed_at,
    max(provisional) AS provisional,
    if(predictions > 0, labelled / predictions, 0) AS label_coverage
FROM {db}.metrics FINAL
WHERE segment = '' AND version != '' AND position(version, ' vs ') = 0
GROUP BY model, version, window_start, window_end"""


def _drift_flags(db: str) -> str:
    return f"""CREATE OR REPLACE VIEW {db}.drift_flags (
    {_columns(DRIFT_COLUMNS)}
) AS
SELECT
    model, version, window_start, window_end,
    uniqExactIf(feature, NOT startsWith(feature, '__')) AS features_tested,
    uniqExactIf(feature, drifted = 1 AND NOT startsWith(feature, '__')) AS features_drifted,
    arraySort(groupUniqArrayIf(feature, drifted = 1)) AS drifted_features,
    max(statistic) AS worst_statistic,
    max(ts) AS decided_at,
    max(provisional) AS provisional
FROM {db}.drift FINAL
GROUP BY model, version, window_start, window_end"""


def _alerts_current(db: str) -> str:
    return f"""CREATE OR REPLACE VIEW {db}.alerts_current (
    {_columns(ALERT_COLUMNS)}
) AS
SELECT
    alert_id,
    argMax(model, ts) AS model, argMax(version, ts) AS version, argMax(kind, ts) AS kind,
    argMax(severity, ts) AS severity, argMax(state, ts) AS state, argMax(summary, ts) AS summary,
    argMax(owner, ts) AS owner, argMax(runbook_url, ts) AS runbook_url, argMax(evidence, ts) AS evidence,
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
