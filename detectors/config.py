"""Configuration of detectors and tests: frozen pydantic models, kept apart from computation.

A configuration names a detector by its registry name, so YAML like
``{name: adwin, params: {delta: 0.01}}`` builds a detector without importing it.

>>> DetectorConfig(name="page_hinkley", params={"threshold": 20}).build()
PageHinkley(min_instances=30, delta=0.005, threshold=20, alpha=0.9999, mode='both')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from .base import DriftDetector

__all__ = ["CostMatrix", "DetectorConfig", "DriftConfig", "ReferencePolicy", "ABTestConfig"]


class CostMatrix(BaseModel):
    """Cost of each kind of answer of a binary model (wrong ones usually cost more).

    Only ``tp``, ``fp``, ``tn`` and ``fn``: another key (``FN``, ``false_negative``) is refused, not ignored.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tp: float = 0.0
    fp: float = 1.0
    tn: float = 0.0
    fn: float = 1.0


class DetectorConfig(BaseModel):
    """A detector by registry name, with constructor parameters."""

    model_config = ConfigDict(frozen=True)

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    def build(self) -> DriftDetector:
        """A new detector (state empty)."""
        from . import registry

        return registry.create(self.name, **self.params)


class DriftConfig(BaseModel):
    """How windowed drift is decided for a set of features (see ``drift.drift_report``).

    A feature drifts when its adjusted p-value is below ``alpha`` *and* its effect
    size (PSI on coarse bins by default) reaches ``min_effect``: the p-value guards
    against noise in small windows, the effect size against flagging trivial
    shifts in huge ones.
    """

    model_config = ConfigDict(frozen=True)

    numeric_test: Literal["ks", "chi2", "psi"] = "ks"
    categorical_test: Literal["chi2", "psi"] = "chi2"
    effect: Literal["psi", "js", "none"] = "psi"
    alpha: float = Field(default=0.01, gt=0, lt=1)
    correction: Literal["bh", "bonferroni", "none"] = "bh"
    min_effect: float = Field(default=0.1, ge=0)
    coarse_bins: int = Field(default=10, ge=2)
    min_count: int = Field(default=30, ge=1)


class ReferencePolicy(BaseModel):
    """How a window's reference is chosen (see ``reference.select_reference``)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["fixed", "first_n", "first_windows", "rolling", "seasonal"] = "rolling"
    start: int | None = None
    end: int | None = None
    n_events: int = Field(default=10_000, ge=1)
    n_windows: int = Field(default=1, ge=1)
    period: int = Field(default=86_400, ge=1)
    n_periods: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> ReferencePolicy:
        if self.kind == "fixed" and (self.start is None or self.end is None or self.end <= self.start):
            raise ValueError("a fixed reference needs start < end")
        return self

    @classmethod
    def fixed(cls, start: int, end: int) -> ReferencePolicy:
        return cls(kind="fixed", start=start, end=end)

    @classmethod
    def first_n(cls, n_events: int) -> ReferencePolicy:
        return cls(kind="first_n", n_events=n_events)

    @classmethod
    def first_windows(cls, n_windows: int) -> ReferencePolicy:
        return cls(kind="first_windows", n_windows=n_windows)

    @classmethod
    def rolling(cls, n_windows: int = 1) -> ReferencePolicy:
        return cls(kind="rolling", n_windows=n_windows)

    @classmethod
    def seasonal(cls, period: int = 86_400, n_periods: int = 1) -> ReferencePolicy:
        return cls(kind="seasonal", period=period, n_periods=n_periods)


class ABTestConfig(BaseModel):
    """Always-valid comparison of two versions (see ``abtest``).

    ``tau`` is the standard deviation of the normal mixing prior over the
    difference, in units of the per-event standard deviation: the test has most
    power for differences of about that size. ``min_n`` events per arm are needed
    before any decision.
    """

    model_config = ConfigDict(frozen=True)

    alpha: float = Field(default=0.05, gt=0, lt=1)
    tau: float = Field(default=0.1, gt=0)
    min_n: int = Field(default=100, ge=1)
