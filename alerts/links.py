"""Deep links: from an alert to the model dashboard, with the model, version and time range set.

Every notifier puts the same link in its payload (``dashboard_url`` in the webhook
and retrain JSON, a button in Slack, ``links``/``client_url`` in PagerDuty,
``generatorURL`` in Alertmanager), built from ``WATCHKEEPER_GRAFANA_LINK_URL`` (Grafana as
people open it; default ``WATCHKEEPER_GRAFANA_URL``). The
range shows the evidence: from ``LOOKBACK`` before the decision (or from the
firing start, for a resolution) to ``AFTER`` past it.

>>> from datetime import UTC, datetime
>>> from watchkeeper.alerts.model import Alert
>>> t = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
>>> a = Alert(alert_id="retrain-1", model="fraud v2", version="v3", kind="retrain", severity="critical",
...           state="firing", summary="s", evidence={"subject": ""}, ts=t, fired_at=t)
>>> dashboard_url(a, "https://grafana.example/")
'https://grafana.example/d/watchkeeper-model?orgId=1&var-model=fraud+v2&var-version=v3&from=1772431200000&to=1772456400000'
>>> dashboard_url(a, None) is None
True
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

from watchkeeper.alerts.model import Alert

# The model dashboard's uid (dashboards/panels; a test checks that the two agree) and its variables.
MODEL_DASHBOARD_UID = "watchkeeper-model"
LOOKBACK = timedelta(hours=6)
AFTER = timedelta(hours=1)


def time_range(alert: Alert) -> tuple[datetime, datetime]:
    """The range a link opens: the evidence before the decision, and a little after it."""
    start = alert.ts - LOOKBACK
    since = alert.evidence.get("firing_since") if not alert.firing else None
    if isinstance(since, str):
        try:
            start = min(start, datetime.fromisoformat(since.replace("Z", "+00:00")) - LOOKBACK)
        except ValueError:
            pass  # not a time: keep the default range
    return start, alert.ts + AFTER


def dashboard_url(alert: Alert, grafana_url: str | None) -> str | None:
    """The model dashboard at the alert's model, version and time range; None without a Grafana URL."""
    if not grafana_url:
        return None
    start, end = time_range(alert)
    params: dict[str, str | int] = {"orgId": 1, "var-model": alert.model}
    if alert.version:
        params["var-version"] = alert.version
    params["from"] = int(start.timestamp() * 1000)
    params["to"] = int(end.timestamp() * 1000)
    return f"{grafana_url.rstrip('/')}/d/{MODEL_DASHBOARD_UID}?{urlencode(params)}"
