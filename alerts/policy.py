"""Alert policies: frozen configuration, one ``AlertPolicy`` per model, defaults that need no config.

Configuration is separate from computation (the rules live in
``alerts/rules.py``). Every rule has its own hysteresis: fire after
``fire_after`` bad windows in a row, resolve after ``resolve_after`` good ones,
and do not fire again within ``cooldown_seconds`` (event time) of a resolution.
Windows without enough evidence (too few labels, no drift rows) neither count
nor break a run.

In YAML, per model (once ``ModelConfig`` has an ``alerting`` field)::

    models:
      fraud:
        alerting:
          retrain: {metric: recall, min_drop: 0.03, min_labels: 200}
          drift: {windows: 6}
          sunset: {idle_days: 14}

>>> p = AlertPolicy()
>>> p.retrain.metric, p.retrain.hysteresis.fire_after, p.drift.windows
('accuracy', 3, 3)
>>> AlertPolicy.model_validate({"retrain": {"min_drop": 0.1}}).retrain.min_drop
0.1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from watchkeeper.alerts.model import Severity

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Hysteresis(BaseModel):
    """When a run of bad windows fires an alert and a run of good ones resolves it."""

    model_config = _FROZEN

    fire_after: Annotated[int, Field(ge=1)] = 3
    resolve_after: Annotated[int, Field(ge=1)] = 3
    cooldown_seconds: Annotated[int, Field(ge=0)] = 3600


class RetrainRule(BaseModel):
    """A sustained performance drop against the version's reference, or sustained concept drift.

    The reference is the pooled metric of the version's first ``reference_windows``
    windows with at least ``min_labels`` labels, or ``baseline`` when configured.
    A window is bad when its drop is both material (more than ``min_drop``) and
    significant (the one-sided ``confidence`` lower bound of the drop, Newcombe's
    interval for proportions, is above zero); good when the drop is at most
    ``min_drop``. Concept drift: detectors on the error stream (feature in
    ``concept_features`` or detector name ending in ``concept_detector_suffix``)
    fired in ``concept_min_windows`` of the last ``concept_windows`` windows.
    """

    model_config = _FROZEN

    enabled: bool = True
    metric: str = "accuracy"
    higher_is_better: bool = True
    baseline: float | None = None
    reference_windows: Annotated[int, Field(ge=1)] = 3
    min_labels: Annotated[int, Field(ge=1)] = 100
    min_drop: Annotated[float, Field(ge=0)] = 0.05
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    severity: Severity = "critical"
    concept_features: tuple[str, ...] = ("__error__",)
    concept_detector_suffix: str = "_error"
    concept_windows: Annotated[int, Field(ge=1)] = 3
    concept_min_windows: Annotated[int, Field(ge=1)] = 2
    hysteresis: Hysteresis = Hysteresis()
    # Before labels arrive: a warning (kind ``performance``) when the label-free estimate drops.
    estimate_metric: str = "est_accuracy"
    estimate_max_label_rate: Annotated[float, Field(ge=0, le=1)] = 0.5
    estimate_severity: Severity = "warning"


class DriftRule(BaseModel):
    """Input drift: features flagged (``drift.drifted = 1``) in each of the last ``windows`` windows.

    One alert per model version lists the persistent features, ranked by statistic.
    """

    model_config = _FROZEN

    enabled: bool = True
    windows: Annotated[int, Field(ge=1)] = 3
    min_features: Annotated[int, Field(ge=1)] = 1
    max_features_listed: Annotated[int, Field(ge=1)] = 20
    severity: Severity = "warning"
    # The persistence is in ``windows``: one such window fires.
    hysteresis: Hysteresis = Hysteresis(fire_after=1, resolve_after=3)


class SunsetRule(BaseModel):
    """Candidates for retirement.

    ``idle``: the model had no traffic for ``idle_days`` of event time (fleet watermark);
    ``superseded``: a newer version carried all traffic for ``superseded_days``;
    ``below_baseline``: ``lift_metric`` (model minus baseline) below ``-lift_margin``
    (for a loss, above ``lift_margin``) in windows with at least ``min_labels`` labels.
    """

    model_config = _FROZEN

    enabled: bool = True
    idle_days: Annotated[float, Field(gt=0)] = 7.0
    superseded_days: Annotated[float, Field(gt=0)] = 7.0
    lift_metric: str = "lift_accuracy"
    lift_higher_is_better: bool = True
    lift_margin: Annotated[float, Field(ge=0)] = 0.0
    min_labels: Annotated[int, Field(ge=1)] = 100
    severity: Severity = "info"
    hysteresis: Hysteresis = Hysteresis(fire_after=6, resolve_after=6, cooldown_seconds=86_400)


class NoDataRule(BaseModel):
    """Traffic stopped: no window of the model for ``after_minutes`` of event time behind the fleet."""

    model_config = _FROZEN

    enabled: bool = True
    after_minutes: Annotated[float, Field(gt=0)] = 60.0
    severity: Severity = "warning"


class OpsRule(BaseModel):
    """Pipeline health of one model, from its metric rows.

    ``orphaned_outcomes`` (value = orphaned, n = outcomes), ``late_labels`` (value =
    late, n = labelled), ``dead_letter_rate`` (value = rate, n = messages) and
    ``lag_seconds``, when the model stage writes them.
    """

    model_config = _FROZEN

    enabled: bool = True
    max_orphan_rate: Annotated[float, Field(ge=0)] = 0.05
    max_late_label_rate: Annotated[float, Field(ge=0)] = 0.2
    max_dead_letter_rate: Annotated[float, Field(ge=0)] = 0.01
    max_lag_seconds: Annotated[float, Field(ge=0)] = 900.0
    min_events: Annotated[int, Field(ge=1)] = 100
    severity: Severity = "warning"
    hysteresis: Hysteresis = Hysteresis()


class FairnessRule(BaseModel):
    """Group gaps beyond their bounds, per protected attribute (the metric row's segment).

    ``max_gap``: metrics whose absolute value must stay at most the bound;
    ``min_ratio``: metrics that must stay at least the bound (the four-fifths rule).
    """

    model_config = _FROZEN

    enabled: bool = True
    max_gap: Mapping[str, float] = {
        "demographic_parity_difference": 0.1,
        "demographic_parity_diff": 0.1,
        "equal_opportunity_difference": 0.1,
        "equalized_odds_difference": 0.1,
        "fpr_difference": 0.1,
    }
    min_ratio: Mapping[str, float] = {"disparate_impact_ratio": 0.8}
    # Support of the weakest group behind a gap (the row's n): below it a gap of 0.1 is noise.
    min_n: Annotated[int, Field(ge=1)] = 200
    severity: Severity = "warning"
    hysteresis: Hysteresis = Hysteresis()


class AlertPolicy(BaseModel):
    """Every alert rule of one model. ``AlertPolicy()`` is the default for unconfigured models."""

    model_config = _FROZEN

    retrain: RetrainRule = RetrainRule()
    drift: DriftRule = DriftRule()
    sunset: SunsetRule = SunsetRule()
    no_data: NoDataRule = NoDataRule()
    ops: OpsRule = OpsRule()
    fairness: FairnessRule = FairnessRule()
    # A firing alert with no evidence either way for this long (event time) resolves itself.
    auto_resolve_hours: Annotated[float, Field(gt=0)] = 24.0


DEFAULT_POLICY = AlertPolicy()
