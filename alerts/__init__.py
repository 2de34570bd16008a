"""watchkeeper alerts: the alert model, policies, the engine, notifiers and the CLI.

Owns: deciding from the ``metrics``/``drift`` rows the model stage wrote when a
model needs attention, recording each state change in ``alerts``, and
delivering it. Components take typed values (:class:`AlertConfig`,
:class:`~watchkeeper.alerts.notifiers.DeliveryConfig`), never the settings object.

- ``model``: :class:`Alert` (one state change; a row of ``alerts``), stable ``alert_id``.
- ``policy`` / ``config``: :class:`AlertPolicy`, frozen rules with working defaults;
  :class:`AlertConfig`, what the engine knows of the fleet.
- ``window`` / ``rules`` / ``hysteresis`` / ``evaluator``: pure decisions from windows.
- ``engine``: :class:`AlertEngine` reads ``metrics``/``drift``, writes ``alerts``.
- ``sunset``: :func:`sunset_candidates`.
- ``transport`` / ``notifiers`` / ``dispatch``: webhook, Alertmanager, Slack, PagerDuty,
  retrain webhook, Grafana annotations; :class:`Dispatcher` delivers in the background.
- ``silences`` / ``schema``: silences and acknowledgements (``alert_silences``).
- ``cli``: ``alerts``, ``sunset-candidates``, ``silence``, ``ack``.

May import: ``detectors`` (statistics, baselines, the time helper) and ``sinks``.
Never Faust, ``streams`` or ``windows``; only ``cli`` (a command of the shell) imports the shell.
"""

from __future__ import annotations

from watchkeeper.alerts.config import AlertConfig
from watchkeeper.alerts.dispatch import DeadLetter, Dispatcher, ReceiverConfig, Retry, Route
from watchkeeper.alerts.engine import AlertEngine, list_alerts
from watchkeeper.alerts.model import KINDS, SEVERITIES, STATES, Alert, alert_id_for
from watchkeeper.alerts.notifiers import DeliveryConfig
from watchkeeper.alerts.policy import AlertPolicy
from watchkeeper.alerts.sunset import SunsetCandidate, sunset_candidates

__all__ = [
    "KINDS",
    "SEVERITIES",
    "STATES",
    "Alert",
    "AlertConfig",
    "AlertEngine",
    "AlertPolicy",
    "DeadLetter",
    "DeliveryConfig",
    "Dispatcher",
    "ReceiverConfig",
    "Retry",
    "Route",
    "SunsetCandidate",
    "alert_id_for",
    "list_alerts",
    "sunset_candidates",
]
