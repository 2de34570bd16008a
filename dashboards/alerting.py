"""Grafana's alert rule: the engine's firing alerts, mirrored — one source of alerts.

watchkeeper's alert engine (``alerts/``) decides every alert (with its evidence,
statistics and hysteresis) and delivers it (webhook, Slack, PagerDuty,
Alertmanager). Grafana must not decide on thresholds of its own, or the two
would disagree; so its one provisioned rule reads the engine's ``alerts`` table
(each alert's latest state) and has one alert instance per firing (model, kind,
severity): Grafana's alert list shows exactly what the engine decided, by
construction. No contact point is provisioned: Grafana routes the rule through
the organisation's own notification policy, and ``WATCHKEEPER_WEBHOOK_URL``
receives only the engine's JSON (one payload shape per URL).

Built with grafana-foundation-sdk's ``builders.alerting`` (rule, rule group) and
``builders.expr`` (reduce, threshold): the ClickHouse query (refId ``A``, table
format: string columns become labels), a ``last`` reduction (``B``) and a
threshold (``C``, the condition). Two shapes come out of the same builders:
``rule_group_api()`` (the HTTP provisioning API's, what ``push`` sends) and
``rules_file()`` (``provisioning/alerting/rules.yaml``).

>>> sorted(RULES)
['wk-engine-alerts']
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
from watchkeeper.dashboards.panels import ALERTS, DATASOURCE_UID

FOLDER_UID = "watchkeeper"
FOLDER_TITLE = "watchkeeper"
GROUP = "watchkeeper"
GROUP_INTERVAL_S = 60
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
    severity: str | None  # None: the query's ``severity`` column labels each instance
    pending: str = "5m"
    no_data: Literal["OK", "NoData", "Alerting"] = "OK"
    dashboard_uid: str = ALERTS.uid


# Each alert's latest state up to the evaluation time; one row (instance) per firing (model, kind, severity).
ENGINE_ALERTS_SQL = """
SELECT model, kind, severity, count() AS firing
FROM (
    SELECT alert_id, argMax(model, ts) AS model, argMax(kind, ts) AS kind,
           argMax(severity, ts) AS severity, argMax(state, ts) AS state
    FROM alerts FINAL
    WHERE ts <= $__toTime
    GROUP BY alert_id
)
WHERE state = 'firing'
GROUP BY model, kind, severity
"""

RULES: dict[str, RuleSpec] = {
    r.uid: r
    for r in (
        RuleSpec(
            "wk-engine-alerts",
            "watchkeeper alert firing",
            ENGINE_ALERTS_SQL,
            "gt",
            0,
            400 * 86400,  # as far back as the alerts table keeps (aggregate retention)
            "{{ $labels.model }}: {{ $values.B.Value }} {{ $labels.kind }} alert(s) firing, decided by watchkeeper "
            "(evidence and runbook: the alerts dashboard, or `watchkeeper alerts --model {{ $labels.model }}`).",
            None,
            pending="0s",
            dashboard_uid=ALERTS.uid,
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
        .labels({"service": "watchkeeper", **({"severity": spec.severity} if spec.severity else {})})
        .annotations(
            {
                "summary": spec.summary,
                "__dashboardUid__": spec.dashboard_uid,
            }
        )
    )


def _to_plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, cls=JSONEncoder))


def rule_group_api() -> dict[str, Any]:
    """The rule group as the HTTP provisioning API takes it (PUT .../rule-groups/{group})."""
    group = (
        alerting.RuleGroup(GROUP)
        .folder_uid(FOLDER_UID)
        .interval(GROUP_INTERVAL_S)
        .rules([_rule(spec) for spec in RULES.values()])
    )
    out: dict[str, Any] = _to_plain(group.build())
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
