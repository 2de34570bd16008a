"""watchkeeper alerts: the alert model, policies, the engine, notifiers and the CLI.

- ``model``: :class:`Alert` (one state change; a row of ``alerts``), stable ``alert_id``.
- ``policy``: :class:`AlertPolicy`, frozen configuration with working defaults.
- ``rules`` / ``hysteresis`` / ``evaluator``: pure decisions from windows.
- ``engine``: :class:`AlertEngine` reads ``metrics``/``drift``, writes ``alerts``.
- ``sunset``: :func:`sunset_candidates`.
- ``notifiers`` / ``dispatch``: webhook, Alertmanager, Slack, PagerDuty, retrain webhook,
  Grafana annotations; :class:`Dispatcher` delivers in the background.
- ``silences`` / ``schema``: silences and acknowledgements (``alert_silences``).
- ``cli``: ``alerts``, ``sunset-candidates``, ``silence``, ``ack``.
"""

from __future__ import annotations

from watchkeeper.alerts.dispatch import DeadLetter, Dispatcher, ReceiverConfig, Retry, Route
from watchkeeper.alerts.engine import AlertEngine, list_alerts
from watchkeeper.alerts.model import KINDS, SEVERITIES, STATES, Alert, alert_id_for
from watchkeeper.alerts.policy import AlertPolicy, policy_for
from watchkeeper.alerts.sunset import SunsetCandidate, sunset_candidates

__all__ = [
    "KINDS",
    "SEVERITIES",
    "STATES",
    "Alert",
    "AlertEngine",
    "AlertPolicy",
    "DeadLetter",
    "Dispatcher",
    "ReceiverConfig",
    "Retry",
    "Route",
    "SunsetCandidate",
    "alert_id_for",
    "list_alerts",
    "policy_for",
    "sunset_candidates",
]
