"""What the alert engine needs to know of the fleet besides the store: typed values, no settings object.

The shell (``watchkeeper.settings.Settings.alert_config``) builds one from the
settings; tests and tools build one directly.

>>> from watchkeeper.alerts.policy import AlertPolicy, RetrainRule
>>> cfg = AlertConfig(window_seconds=60, runbook_base_url="https://rb.example/wk.md",
...                   policies={"fraud": AlertPolicy(retrain=RetrainRule(metric="recall"))},
...                   owners={"fraud": "payments-ml"}, runbooks={"spam": "https://rb.example/spam"})
>>> cfg.policy("fraud").retrain.metric, cfg.policy("spam") == AlertPolicy()
('recall', True)
>>> cfg.owner("fraud"), cfg.owner("spam")
('payments-ml', 'unowned')
>>> cfg.runbook_url("fraud", "drift"), cfg.runbook_url("spam", "drift")
('https://rb.example/wk.md#drift', 'https://rb.example/spam')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from watchkeeper.alerts.model import runbook_url_for
from watchkeeper.alerts.policy import DEFAULT_POLICY, AlertPolicy

# How late a window may still be written: the label delay plus the orphan horizon (their defaults).
DEFAULT_LATE_SECONDS = 600 + 3600


@dataclass(frozen=True)
class AlertConfig:
    """The engine's configuration.

    ``policies``: per-model policies; other models get ``default_policy``.
    ``owners``/``runbooks``: per-model owner and runbook URL (others: ``unowned``,
    ``{runbook_base_url}#{kind}``). ``late_seconds``: how long after its end a
    window may still be rewritten (label delay plus orphan horizon), which bounds
    how far back each evaluation looks for new windows. ``label_delay_seconds`` and
    ``orphan_after_seconds``: how long after its end a window is written, which dates
    the decisions taken from it (``alerts.ts``). ``reference_labels`` /
    ``reference_predictions``: the sample a version's performance reference (and its
    label-free estimate's) is pooled from, however many windows that takes.
    """

    window_seconds: int = 300
    runbook_base_url: str = ""
    policies: Mapping[str, AlertPolicy] = field(default_factory=dict)
    default_policy: AlertPolicy = DEFAULT_POLICY
    owners: Mapping[str, str] = field(default_factory=dict)
    runbooks: Mapping[str, str] = field(default_factory=dict)
    late_seconds: int = DEFAULT_LATE_SECONDS
    # When the model stage writes a window after its end (a version's; outcomes without a prediction):
    # the earliest event time at which an alert decided from it could have been decided.
    label_delay_seconds: int = 600
    orphan_after_seconds: int = 3600
    # When a window's label-free results are final (its end plus this): label-free alerts are decided then.
    grace_seconds: float = 10.0
    # References from a sample size: a version's metric reference pools its first windows until they hold
    # this many labels (the label-free estimate's: this many predictions).
    reference_labels: int = 300
    reference_predictions: int = 1000

    def policy(self, model: str) -> AlertPolicy:
        return self.policies.get(model, self.default_policy)

    def owner(self, model: str) -> str:
        return self.owners.get(model) or "unowned"

    def runbook_url(self, model: str, kind: str) -> str:
        return runbook_url_for(kind, self.runbook_base_url, self.runbooks.get(model))
