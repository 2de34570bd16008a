"""Alert policies: frozen configuration, one ``AlertPolicy`` per model, defaults that need no config.

Configuration is separate from computation (the rules live in
``alerts/rules.py``). Every rule has its own hysteresis: fire after
``fire_after`` bad windows in a row, resolve after ``resolve_after`` good ones,
and do not fire again within ``cooldown_seconds`` (event time) of a resolution.
Windows without enough evidence (too few labels, no drift rows) neither count
nor break a run. Strong evidence fires at once (``retrain.fast_path``,
``drift.fast_path``), evidence pooled over a horizon fires on a significant
difference (``sunset.method = "paired"``, ``fairness.horizon_events``); resolution
keeps its hysteresis. ``AlertPolicy.previous()`` is the policy before these
(three windows in a row, a run of negative lift, per-window fairness).

In YAML, per model (once ``ModelConfig`` has an ``alerting`` field)::

    models:
      fraud:
        alerting:
          retrain: {metric: recall, min_drop: 0.03, min_labels: 200}
          drift: {windows: 6}
          sunset: {idle_days: 14, horizon_windows: 24}

False-alarm budget
------------------
False alerts per model per month (30 days of 5-minute windows, 8,640 windows)
on a stable model at 1 event/s (300 predictions per window, 270 labelled, 5
numeric features, 4 groups per protected attribute, a baseline exactly as
good), simulated through the product's detectors and this policy's evaluator
(``make bench-false-alarms``; ``bench/results/false_alarms.json``, commit
cf764e0: 10 model-months; 0a53efa with the carry of late alarms, ``windows/carry.py``:
the same 0), with the derivations that still hold. The two legs
of a confirmation are never multiplied as independent: the chance excursion
that trips a per-event detector also moves the window it is confirmed by.
Before this (commit 9850241) the same simulation saw 6 drift and 15 retrain
alerts in 10 model-months, 20 to 75 times the figures then claimed here (0.03
and 0.002 + 0.02): all 6 drift alerts by the fast path (``mean_shift`` +
``ks``), 12 retrain alerts by the concept fast path and 3 by the performance
slow path.

- ``drift``: simulated 0 in 10 model-months (95 % upper bound 0.30 a month;
  1, by the fast path, before its confirmation read only the events after the alarm);
  derived, about 0.12 (0.03 + 0.09 below). Fast path: a ``mean_shift`` alarm
  confirmed by the window test (alpha 0.001, Benjamini–Hochberg) of the same
  window's events after the alarm (``after_alarm`` rows), or, for an alarm with
  fewer than 150 events after it in its window, of the events after it across the
  boundary into the next windows (at most 3; ``carried_alarm`` rows,
  ``windows/carry.py``): one more chance per alarm, at the same level. The alarms are
  measured, not taken from the nominal ARL: the CUSUMs standardise with a reference learnt from
  1,000 events, which shortens their run length (4.7e-6 alarms per
  feature-event at the former nominal 2e-6, about 60 a month over 5 features;
  about 1 in 100 was confirmed). At the ``covariate_shift`` default ARL of 2e7:
  2e-7 measured (32 alarms in 12 model-months of 5 features), about 2.7 alarms
  a month, so about 0.03 confirmed; the bound without the confirmation is the
  alarm rate. The price: a 0.5 sigma shift of one feature is found a median 1.6
  min after its onset (100 simulated runs, none missed; 1.2 min at the former
  ARL). Looks at the window before its end (``windows/partial.py``: after an
  alarm, at most 3 window tests at alpha 0.001/3 each on the events after the
  alarm) keep the confirmation's level at 0.001 per alarm by the union bound:
  ``bench/looks.py`` measured 0 false look decisions in 40 stable model-months,
  and 0 confirmations at the window's end on the events after the alarm (the
  test of the whole window, which reads the alarm's excursion and confirmed
  before, measured 0.5 a month at 1 event/s with 20 features). The strict
  window test alone (``__multivariate__``, alpha 1e-5 a window against an
  upper confidence bound of the reference's error): at most 0.09. Slow path
  (the same feature flagged in each of 3 windows): none simulated.
- ``retrain``: simulated 0 in 10 model-months (95 % upper bound 0.30 a month);
  derived, at most about 0.1 (the concept path's bound). Fast path,
  performance: the 99.9 % bound of the drop (Newcombe's two-sample interval:
  the reference's own 810 labels count) clears ``min_drop`` (0.05): a drop of
  0.137 at 270 labels, 4.9 standard errors, 5e-7 a window, 0.005 a month. Fast
  path, concept: an error-stream alarm (``watchkeeper_default``, measured 19 a
  month at 270 labels a window) confirmed by a drop significant at
  ``concept_confidence`` (99.999 %) on its own: at most 1e-5 a window, 0.09 a
  month, without counting on the alarm. Simulated on the error stream alone (4
  model-months, 76 alarms): the windows with an alarm had a mean drop of 0.045
  and at most 0.098; the bound needs about 0.12, so none was confirmed, against
  5 at the former 99.9 %. Slow path: a drop above ``min_drop`` significant at
  ``confidence`` (99.9 %) in 3 windows without a good window between. The
  windows of a run share the reference, and a reference 1.5 points high (one of
  its standard errors) makes a material drop a 7 % event per window: at the
  former 95 % the same 4 model-months had 3 runs, at 99.9 % none (19 bad
  windows, never 3 in a row); averaged over the reference's error, about 0.003
  a month. Concept slow path (alarms in 2 of 3 windows, 3 windows running): no
  two consecutive windows had alarms.
- ``sunset`` (below baseline, ``paired``): some span of the last 2, 4, 8 or 12
  windows has an exact (McNemar) upper bound of the accuracy difference below
  ``-min_effect`` (0.02), at 99.9 % split over the 4 spans. A model exactly as
  good as its baseline, a quarter of its 270 pairs a window discordant: the
  2-window span needs a difference of -0.10 (4.4 standard errors), about 5e-6
  per evaluation, 0.02 per month; simulated, 0 in 10 model-months (95 % upper
  bound 0.30 a month). Then a day of cooldown.
- ``fairness`` (``horizon_events``): a gap's bound (Newcombe, 95 % with a
  Bonferroni split over the pairs of groups and the rates checked: 6 pairs x 4)
  exceeds the tolerance (0.1), or a disparate-impact ratio's bound (Katz) is
  below 0.8, on counts pooled over the last 3,000 events. Once the horizon is
  full (about 225 labelled positives per group) a TPR gap must reach 0.22 to
  breach: about 1e-6 per evaluation, 0.01 per month. While a new version's pool
  fills (its first 6 windows, 20 to 130 positives per group) about 1e-3 per
  evaluation, so about 0.005 per new version. The price of that start-up: a 0.3
  equal-opportunity gap at 300 events a window over 4 groups fires within 30
  minutes in 90 of 100 simulated runs, within 40 in 96
  (``bench/false_alarms.py``); stable and fair models: 0 in 10 model-months
  (95 % upper bound 0.30 a month).
- ``challenger``: the always-valid mSPRT decides at 5 %, once per pair over its
  whole life (however often it is looked at): at most 0.05 per challenger.
- ``no_data``/``sunset`` (idle, superseded): deterministic, no false alarms.

>>> p = AlertPolicy()
>>> p.retrain.metric, p.retrain.hysteresis.fire_after, p.drift.windows, p.retrain.fast_path
('accuracy', 3, 3, True)
>>> AlertPolicy.model_validate({"retrain": {"min_drop": 0.1}}).retrain.min_drop
0.1
>>> old = AlertPolicy.previous()
>>> old.retrain.fast_path, old.drift.fast_path, old.sunset.method, old.fairness.horizon_events
(False, False, 'run', None)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from watchkeeper.alerts.model import Severity
from watchkeeper.detectors.fairness import GAP_RATES, RATIO_RATES

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Hysteresis(BaseModel):
    """When a run of bad windows fires an alert and a run of good ones resolves it."""

    model_config = _FROZEN

    fire_after: Annotated[int, Field(ge=1)] = 3
    resolve_after: Annotated[int, Field(ge=1)] = 3
    cooldown_seconds: Annotated[int, Field(ge=0)] = 3600


class RetrainRule(BaseModel):
    """A sustained performance drop against the version's reference, or sustained concept drift.

    The reference is the pooled metric of the version's first windows that hold
    ``WATCHKEEPER_REFERENCE_LABELS`` labels (300 by default; a sample size, not a
    window count), or ``baseline`` when configured.
    A window is bad when its drop is both material (more than ``min_drop``) and
    significant (the one-sided ``confidence`` lower bound of the drop, Newcombe's
    interval for proportions, is above zero); good when the drop is at most
    ``min_drop``. Concept drift: detectors on the error stream (feature in
    ``concept_features`` or detector name ending in ``concept_detector_suffix``)
    fired in ``concept_min_windows`` of the last ``concept_windows`` windows.

    Fast path (``fast_path``): one window fires at once when its evidence is strong: the
    drop's one-sided ``fast_confidence`` lower bound clears ``min_drop``; or an error-stream
    detector fired and the window's drop is significant at ``concept_confidence`` on its own (lower
    bound above zero). The alert's evidence time (``evidence_ts``) is then the detector's alarm
    (the row's event time) or the window's end; its ``ts`` is when it was decided. Resolution keeps
    the hysteresis.
    """

    model_config = _FROZEN

    enabled: bool = True
    metric: str = "accuracy"
    higher_is_better: bool = True
    baseline: float | None = None
    # Ignored since references come from a sample size (``WATCHKEEPER_REFERENCE_LABELS``); kept so that
    # existing configurations still load.
    reference_windows: Annotated[int, Field(ge=1)] = 3
    min_labels: Annotated[int, Field(ge=1)] = 100
    min_drop: Annotated[float, Field(ge=0)] = 0.05
    # 99.9 %, not 95 %: the windows of a run share the reference, whose own error (810 labels) makes
    # three windows in a row far likelier than the cube of one window's level (see "False-alarm budget").
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.999
    severity: Severity = "critical"
    concept_features: tuple[str, ...] = ("__error__",)
    concept_detector_suffix: str = "_error"
    concept_windows: Annotated[int, Field(ge=1)] = 3
    concept_min_windows: Annotated[int, Field(ge=1)] = 2
    fast_path: bool = True
    fast_confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.999
    # The drop that confirms an error-stream alarm must be significant at this level on its own: the alarm
    # and the window's accuracy see the same errors, so the alarm does not make a weak drop rarer.
    concept_confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.99999
    hysteresis: Hysteresis = Hysteresis()
    # Before labels arrive: a warning (kind ``performance``) when the label-free estimate drops.
    estimate_metric: str = "est_accuracy"
    estimate_max_label_rate: Annotated[float, Field(ge=0, le=1)] = 0.5
    estimate_severity: Severity = "warning"


class DriftRule(BaseModel):
    """Input drift: features flagged (``drift.drifted = 1``) in each of the last ``windows`` windows.

    One alert per model version lists the persistent features, ranked by statistic.

    Fast path (``fast_path``): a feature flagged in one window both by a sequential
    detector (``sequential_detectors``: per event, false-alarm rate fixed by its ARL)
    and by the window test of the window's events after that alarm (the drift row of
    ``confirming_detector``, ``after_alarm``: a look's, or the window end's) fires at
    once; the alert is decided when that test is (a look's mark, or the window's end). An
    alarm late in a window, with fewer than 150 events after it there, is carried into the
    next windows (at most 3) and confirmed by the test of the events after it across the
    window boundary (``carried_detector``, ``carried_alarm``: a look's of the later window,
    or its end's). A test of the whole window does not confirm an alarm (it reads the chance
    excursion that tripped it); it counts toward the slow path like any window test.
    """

    model_config = _FROZEN

    enabled: bool = True
    windows: Annotated[int, Field(ge=1)] = 3
    min_features: Annotated[int, Field(ge=1)] = 1
    max_features_listed: Annotated[int, Field(ge=1)] = 20
    severity: Severity = "warning"
    fast_path: bool = True
    sequential_detectors: tuple[str, ...] = ("mean_shift",)
    # The drift rows that confirm an alarm (windows.partial.AFTER_ALARM).
    confirming_detector: str = "after_alarm"
    # The drift rows of an alarm carried into a later window and judged there on the events after it across
    # the window boundary (windows.partial.CARRIED, windows/carry.py): one row holds both legs, its ``ts``
    # the alarm's event time.
    carried_detector: str = "carried_alarm"
    # Window tests strict enough to count at once on their own (fast path): the joint test of the numeric
    # features runs at alpha 1e-5 per window (~0.09 false flags per version a month, windows/sample.py).
    strong_features: tuple[str, ...] = ("__multivariate__",)
    # The persistence is in ``windows``: one such window fires.
    hysteresis: Hysteresis = Hysteresis(fire_after=1, resolve_after=3)

    @property
    def alarm_detectors(self) -> tuple[str, ...]:
        """The detectors whose drift rows carry a per-event alarm's event time (theirs, or a carried one's)."""
        return (*self.sequential_detectors, self.carried_detector)


class SunsetRule(BaseModel):
    """Candidates for retirement.

    ``idle``: the model had no traffic for ``idle_days`` of event time (fleet watermark);
    ``superseded``: a newer version carried all traffic for ``superseded_days``;
    ``below_baseline``, by ``method``:

    - ``"paired"`` (default): a paired test on the same predictions. The discordant
      pairs the model stage writes (``baseline_discordant_model_right``: model right and
      baseline wrong; ``baseline_discordant_baseline_right``: the reverse; ``n`` = pairs
      judged) are pooled over the last ``min_windows``, twice as many, ... up to
      ``horizon_windows`` windows; over each span the accuracy difference (model minus
      baseline) gets exact one-sided bounds (McNemar's exact binomial test on the
      discordant pairs) at ``confidence`` split over the spans. Fires when some span's
      upper bound is below ``-min_effect`` (significantly worse, by at least
      ``min_effect``: never while the interval contains zero; the short spans see a
      change that the longer history would dilute); resolves when no span fires and the
      longest span's lower bound is above ``-min_effect`` (significantly not worse by
      that much); in between, no evidence. A span needs ``min_labels`` pairs.
    - ``"run"`` (the previous rule): ``lift_metric`` (model minus baseline) below
      ``-lift_margin`` (for a loss, above ``lift_margin``) in windows with at least
      ``min_labels`` labels, ``hysteresis.fire_after`` windows in a row.
    """

    model_config = _FROZEN

    enabled: bool = True
    idle_days: Annotated[float, Field(gt=0)] = 7.0
    superseded_days: Annotated[float, Field(gt=0)] = 7.0
    lift_metric: str = "lift_accuracy"
    lift_higher_is_better: bool = True
    lift_margin: Annotated[float, Field(ge=0)] = 0.0
    min_labels: Annotated[int, Field(ge=1)] = 100
    method: Literal["paired", "run"] = "paired"
    horizon_windows: Annotated[int, Field(ge=1)] = 12
    min_windows: Annotated[int, Field(ge=1)] = 2
    min_effect: Annotated[float, Field(ge=0, lt=1)] = 0.02
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.999
    severity: Severity = "info"
    # The paired test pools its horizon: one window decides; a day of cooldown after a resolution.
    hysteresis: Hysteresis = Hysteresis(fire_after=1, resolve_after=1, cooldown_seconds=86_400)


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

    With ``horizon_events`` (default) the decision rests on each group's counts (the
    per-group ``positive_rate``, ``tp``, ``fp``, ``tn``, ``fn`` rows of segment
    ``attr=value``) pooled over the most recent windows until the attribute has
    ``horizon_events`` predictions: a difference breaches when the one-sided lower
    bound of some pair's gap (Newcombe) exceeds its tolerance, a ratio when the upper
    bound of some pair's ratio of positive rates (Katz) is below its bound, both at
    ``confidence`` split (Bonferroni) over the pairs and the metrics checked. Groups
    with fewer than ``min_group_n`` events in a rate's denominator are left out. A
    window is good when every pooled point estimate is within its bound. With
    ``horizon_events`` None, the previous rule: the metric rows of each window, when
    the weakest group has ``min_n`` events.
    """

    model_config = _FROZEN

    enabled: bool = True
    # Every gap at 0.1; the selection-rate gap is also bounded under its short name, which sorts first,
    # so a breach of it is reported as ``demographic_parity_diff`` (docs/runbooks.md).
    max_gap: Mapping[str, float] = {name: 0.1 for name in (*GAP_RATES, "demographic_parity_diff")}
    min_ratio: Mapping[str, float] = dict.fromkeys(RATIO_RATES, 0.8)
    # Support of the weakest group behind a gap (the row's n): below it a gap of 0.1 is noise.
    min_n: Annotated[int, Field(ge=1)] = 200
    horizon_events: Annotated[int, Field(ge=1)] | None = 3000
    max_horizon_windows: Annotated[int, Field(ge=1)] = 288
    min_group_n: Annotated[int, Field(ge=1)] = 30
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    severity: Severity = "warning"
    hysteresis: Hysteresis = Hysteresis(fire_after=1, resolve_after=3)


class ChallengerRule(BaseModel):
    """The always-valid A/B test decided (``ab_error_decision`` / ``ab_cost_decision`` rows of the
    ``'<challenger> vs <champion>'`` pair): the challenger is worse (``severity_worse``) or
    better (``severity_better``) than the champion. One alert per challenger and metric
    (subject ``error_rate`` or ``cost``); the decision is final, so it stays firing while
    the pair is compared and resolves itself a day after the comparison stops."""

    model_config = _FROZEN

    enabled: bool = True
    metrics: tuple[Literal["error", "cost"], ...] = ("error", "cost")
    severity_worse: Severity = "warning"
    severity_better: Severity = "info"
    hysteresis: Hysteresis = Hysteresis(fire_after=1, resolve_after=1, cooldown_seconds=0)


class AlertPolicy(BaseModel):
    """Every alert rule of one model. ``AlertPolicy()`` is the default for unconfigured models."""

    model_config = _FROZEN

    retrain: RetrainRule = RetrainRule()
    drift: DriftRule = DriftRule()
    sunset: SunsetRule = SunsetRule()
    no_data: NoDataRule = NoDataRule()
    ops: OpsRule = OpsRule()
    fairness: FairnessRule = FairnessRule()
    challenger: ChallengerRule = ChallengerRule()
    # A firing alert with no evidence either way for this long (event time) resolves itself.
    auto_resolve_hours: Annotated[float, Field(gt=0)] = 24.0


    @classmethod
    def previous(cls) -> AlertPolicy:
        """The policy before strong evidence could fire at once: three windows in a row for
        retrain and drift, six negative-lift windows for sunset, per-window fairness with
        ``min_n`` events in the weakest group, three windows; no challenger alerts."""
        return cls(
            retrain=RetrainRule(fast_path=False),
            drift=DriftRule(fast_path=False),
            sunset=SunsetRule(method="run", hysteresis=Hysteresis(fire_after=6, resolve_after=6,
                                                                   cooldown_seconds=86_400)),
            fairness=FairnessRule(horizon_events=None, hysteresis=Hysteresis()),
            challenger=ChallengerRule(enabled=False),
        )  # fmt: skip


DEFAULT_POLICY = AlertPolicy()
