"""Grafana-managed alert rules over ClickHouse and the contact point they notify.

Built with grafana-foundation-sdk's ``builders.alerting`` (rules, rule group,
contact point) and ``builders.expr`` (reduce, threshold). Each rule is one
ClickHouse query (refId ``A``, table format: a ``model`` string column and one
number, so every model is its own alert instance), a ``last`` reduction (``B``)
and a threshold (``C``, the condition).

Two shapes come out of the same builders:

- ``rule_group_api()``: the HTTP provisioning API's shape (what ``push`` sends);
- ``rules_file()`` / ``contact_points_file()``: Grafana's file-provisioning shape
  (``provisioning/alerting/*.yaml``). Grafana interpolates ``$VAR`` in those
  files, but not inside a query ``model``, so the SQL's ``$__timeFilter`` is safe.

>>> sorted(RULES)
['wk-accuracy-drop', 'wk-critical-alerts', 'wk-dead-letter-spike', 'wk-no-predictions']
>>> rules_file()["groups"][0]["folder"]
'watchkeeper'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

try:
    from grafana_foundation_sdk.builders import alerting, expr
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import alerting as alerting_models
    from grafana_foundation_sdk.models import dashboard as dash_models
except ModuleNotFoundError as exc:  # optional extra [grafana]; the built files are in the repository
    raise ModuleNotFoundError(
        "building the Grafana dashboards needs `pip install 'watchkeeper[grafana]'`", name="grafana_foundation_sdk"
    ) from exc

from watchkeeper.dashboards.grafana import ClickHouseQueryBuilder
from watchkeeper.dashboards.panels import DATASOURCE_UID, FLEET, PIPELINE

FOLDER_UID = "watchkeeper"
FOLDER_TITLE = "watchkeeper"
GROUP = "watchkeeper"
GROUP_INTERVAL_S = 60
CONTACT_POINT = "watchkeeper-webhook"
WEBHOOK_ENV = "WATCHKEEPER_WEBHOOK_URL"
EXPR = dash_models.DataSourceRef(type_val="__expr__", uid="__expr__")

Comparison = Literal["gt", "lt"]


@dataclass(frozen=True)
class RuleSpec:
    """One alert rule: a ClickHouse query, when it fires, what it says."""

    uid: str
    title: str
    sql: str
    comparison: Comparison
    threshold: float
    window_s: int  # the query's time range, ending now
    summary: str
    severity: str
    pending: str = "5m"
    no_data: Literal["OK", "NoData", "Alerting"] = "OK"
    dashboard_uid: str = FLEET.uid


RULES: dict[str, RuleSpec] = {
    r.uid: r
    for r in (
        RuleSpec(
            "wk-accuracy-drop",
            "Model accuracy dropped",
            """
SELECT model,
       sumIf(value * n, window_start >= $__toTime - INTERVAL 1 HOUR)
           / sumIf(n, window_start >= $__toTime - INTERVAL 1 HOUR)
       - sumIf(value * n, window_start < $__toTime - INTERVAL 1 HOUR)
           / sumIf(n, window_start < $__toTime - INTERVAL 1 HOUR) AS accuracy_change
FROM metrics FINAL
WHERE metric = 'accuracy' AND segment = '' AND version != '' AND $__timeFilter(window_start)
GROUP BY model
HAVING sumIf(n, window_start >= $__toTime - INTERVAL 1 HOUR) > 0
   AND sumIf(n, window_start < $__toTime - INTERVAL 1 HOUR) > 0
""",
            "lt",
            -0.10,
            7 * 86400,
            "Accuracy of {{ $labels.model }} in the last hour differs by {{ humanizePercentage $values.B.Value }} "
            "from its previous week.",
            "warning",
            pending="10m",
        ),
        RuleSpec(
            "wk-dead-letter-spike",
            "Dead-letter spike",
            "SELECT count() AS dead_letters FROM dead_letters FINAL WHERE $__timeFilter(ts)",
            "gt",
            100,
            600,
            "{{ $values.B.Value }} messages were dead-lettered in the last 10 minutes.",
            "warning",
            pending="0s",
            dashboard_uid=PIPELINE.uid,
        ),
        RuleSpec(
            "wk-no-predictions",
            "No predictions",
            """
SELECT model, sumIf(n, window_start >= $__toTime - INTERVAL 45 MINUTE) AS recent_predictions
FROM metrics FINAL
WHERE metric = 'predictions' AND segment = '' AND version != '' AND $__timeFilter(window_start)
GROUP BY model
""",
            "lt",
            1,
            86400,
            "{{ $labels.model }} served predictions in the last day but none in the last 45 minutes.",
            "critical",
            pending="5m",
            no_data="Alerting",
            dashboard_uid=PIPELINE.uid,
        ),
        RuleSpec(
            "wk-critical-alerts",
            "Critical watchkeeper alert firing",
            """
SELECT model, countIf(last_state = 'firing') AS critical_firing
FROM (
    SELECT model, alert_id, argMax(state, ts) AS last_state, argMax(severity, ts) AS last_severity
    FROM alerts FINAL
    WHERE ts <= $__toTime
    GROUP BY model, alert_id
)
WHERE last_severity = 'critical'
GROUP BY model
""",
            "gt",
            0,
            86400,
            "{{ $labels.model }} has {{ $values.B.Value }} critical watchkeeper alert(s) firing.",
            "critical",
            pending="0s",
        ),
    )
}


def _rule(spec: RuleSpec) -> alerting.Rule:
    query = (
        alerting.Query("A")
        .datasource_uid(DATASOURCE_UID)
        .relative_time_range(alerting_models.RelativeTimeRange(from_val=spec.window_s, to=0))
        .model(ClickHouseQueryBuilder.sql(spec.sql, fmt=1, ref_id="A", interval_ms=60_000))
    )
    reduce = (
        alerting.Query("B")
        .datasource_uid("__expr__")
        .model(expr.TypeReduce().ref_id("B").datasource(EXPR).expression("A").reducer("last"))
    )
    threshold = (
        alerting.Query("C")
        .datasource_uid("__expr__")
        .model(
            expr.TypeThreshold()
            .ref_id("C")
            .datasource(EXPR)
            .expression("B")
            .conditions(
                [
                    expr.ExprTypeThresholdConditions().evaluator(
                        expr.ExprTypeThresholdConditionsEvaluator().type(spec.comparison).params([spec.threshold])
                    )
                ]
            )
        )
    )
    return (
        alerting.Rule(spec.title)
        .uid(spec.uid)
        .folder_uid(FOLDER_UID)
        .rule_group(GROUP)
        .org_id(1)
        .condition("C")
        .queries([query, reduce, threshold])
        .for_val(spec.pending)
        .no_data_state(spec.no_data)
        .exec_err_state("Error")
        .labels({"service": "watchkeeper", "severity": spec.severity})
        .annotations(
            {
                "summary": spec.summary,
                "__dashboardUid__": spec.dashboard_uid,
            }
        )
    )


def _to_plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, cls=JSONEncoder))


def _notification_settings() -> dict[str, Any]:
    # Simplified routing (Grafana >= 10.4): the rule names its contact point, so
    # provisioning does not replace the organisation's notification policy tree.
    return {"receiver": CONTACT_POINT}


def rule_group_api() -> dict[str, Any]:
    """The rule group as the HTTP provisioning API takes it (PUT .../rule-groups/{group})."""
    group = (
        alerting.RuleGroup(GROUP)
        .folder_uid(FOLDER_UID)
        .interval(GROUP_INTERVAL_S)
        .rules([_rule(spec) for spec in RULES.values()])
    )
    out: dict[str, Any] = _to_plain(group.build())
    for rule in out["rules"]:
        rule["notification_settings"] = _notification_settings()
    return out


def rules_file() -> dict[str, Any]:
    """``provisioning/alerting/rules.yaml``: the same rules in Grafana's file-provisioning shape."""
    api = rule_group_api()
    rules = []
    for rule in api["rules"]:
        file_rule = {k: v for k, v in rule.items() if k not in ("folderUID", "ruleGroup", "orgID")}
        rules.append(file_rule)
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": GROUP,
                "folder": FOLDER_TITLE,
                "interval": f"{GROUP_INTERVAL_S}s",
                "rules": rules,
            }
        ],
    }


def contact_point() -> dict[str, Any]:
    """The webhook contact point (API shape); its URL comes from the environment when provisioned."""
    cp = (
        alerting.ContactPoint()
        .uid(CONTACT_POINT)
        .name(CONTACT_POINT)
        .type("webhook")
        .settings({"url": f"${{{WEBHOOK_ENV}}}", "httpMethod": "POST"})
        .disable_resolve_message(False)
    )
    out: dict[str, Any] = _to_plain(cp.build())
    return out


def contact_points_file() -> dict[str, Any]:
    """``provisioning/alerting/contact-points.yaml``."""
    cp = contact_point()
    receiver = {
        "uid": cp["uid"],
        "type": cp["type"],
        "settings": cp["settings"],
        "disableResolveMessage": cp.get("disableResolveMessage", False),
    }
    return {
        "apiVersion": 1,
        "contactPoints": [{"orgId": 1, "name": cp["name"], "receivers": [receiver]}],
    }
