"""What the model stage works on and with: the window key and the stage's configuration (typed values).

The shell builds a :class:`WindowConfig` from the settings
(``watchkeeper.settings.Settings.window_config``); the stage never sees the
settings object.

>>> cfg = WindowConfig(window_seconds=60, models={"fraud": ModelStageConfig(threshold=0.7)},
...                    default_model=ModelStageConfig(threshold=0.4))
>>> cfg.model("fraud").threshold, cfg.model("spam").threshold
(0.7, 0.4)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from watchkeeper.detectors.config import CostMatrix

__all__ = ["DriftReference", "ModelStageConfig", "WindowConfig", "WindowKey"]

# What a window's features are compared with (see ``windows/drift.py``).
# ``first_predictions``: the version's first ``reference_predictions`` predictions (``first_windows`` is its
# former name, kept as an alias).
DriftReference = Literal[
    "auto", "first_predictions", "first_windows", "previous_window", "same_hour_yesterday", "same_hour_last_week"
]


@dataclass(frozen=True, order=True, slots=True)
class WindowKey:
    """One window of one model version. ``version == ''`` is the model's outcome-side window."""

    model: str
    version: str
    start: int  # epoch seconds


@dataclass(frozen=True)
class ModelStageConfig:
    """What the stage needs to know of one model."""

    task: Literal["auto", "binary", "multiclass", "regression"] = "auto"
    threshold: float = 0.5
    cost: CostMatrix = field(default_factory=CostMatrix)
    # Segment keys sliced for per-group metrics and fairness (empty: every key with few values).
    protected_attributes: tuple[str, ...] = ()
    excluded_segments: tuple[str, ...] = ()
    drift_reference: DriftReference = "auto"


@dataclass(frozen=True)
class WindowConfig:
    """The stage's configuration: window length, how long to wait for labels, the models.

    Two clocks per window: its label-free results are written, final, once the watermark passes its end
    plus ``grace_seconds``; its label-based ones are written with them from the labels so far
    (provisional), again whenever new labels for it arrive, and final once the watermark passes its end
    plus ``label_delay_seconds``.
    ``idle_flush``: seconds without new rows after which open windows are written anyway (final);
    ``settle_seconds``: rows inserted more recently than this do not move the watermark yet;
    ``topic_predictions``: the topic whose dead letters count against a window.
    ``reference_predictions``: a version's drift reference is its first that many predictions
    (when no reference is loaded): its windows are tested once they have arrived.
    Models not in ``models`` get ``default_model``.
    """

    window_seconds: int = 300
    label_delay_seconds: int = 600
    grace_seconds: float = 10.0
    orphan_after_seconds: int = 3600
    idle_flush: float = 30.0
    settle_seconds: float = 5.0
    topic_predictions: str = "predictions"
    reference_predictions: int = 1000
    models: Mapping[str, ModelStageConfig] = field(default_factory=dict)
    default_model: ModelStageConfig = field(default_factory=ModelStageConfig)

    def model(self, name: str) -> ModelStageConfig:
        """The configuration of one model (the default when it is not configured)."""
        return self.models.get(name, self.default_model)
