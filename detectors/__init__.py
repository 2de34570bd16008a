"""watchkeeper detectors: drift detectors, performance metrics, fairness, statistics, references (pure computation).

Owns: everything that is computation on numbers and no I/O. Summaries
(``BinarySummary``, ``MulticlassSummary``, ``RegressionSummary``,
``LatencySketch``, ``GroupCounts``, bucket counts) are mergeable sufficient
statistics that the stream builds per (model, version, window, segment);
metric functions and drift tests read them. Sequential detectors share river's
interface and are looked up by stable names in ``registry``. Also here, because
every other package may import this one: the reference types and their
selection (``reference``), interval statistics (``stats``), detector and cost
configuration (``config``) and the UTC time helper (``timeutil``).

May import: nothing of the project (numpy, scipy, river, pydantic only).

Names load on first use (PEP 562): importing one submodule, e.g. ``detectors.stats``
from ``alerts``, does not import river and scipy with every other detector.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> the submodule that defines it.
_WHERE: dict[str, str] = {
    "ABResult": "abtest",
    "ABTestConfig": "config",
    "ADWIN": "sequential",
    "ArmStats": "abtest",
    "BinarySummary": "binary",
    "BinnedReference": "reference",
    "CUSUM": "sequential",
    "CVMOnline": "sequential",
    "CategoricalBinning": "drift",
    "CostMatrix": "config",
    "DDM": "sequential",
    "DetectorConfig": "config",
    "DriftConfig": "config",
    "DriftDetector": "base",
    "DriftResult": "drift",
    "EDDM": "sequential",
    "Ensemble": "sequential",
    "FETOnline": "sequential",
    "GroupCounts": "fairness",
    "HDDM_A": "sequential",
    "HDDM_W": "sequential",
    "KSWIN": "sequential",
    "LatencySketch": "latency",
    "MeanShift": "sequential",
    "MetricBaseline": "reference",
    "MulticlassSummary": "multiclass",
    "MultivariateReference": "multivariate",
    "MultivariateResult": "multivariate",
    "NumericBinning": "drift",
    "OpsSummary": "latency",
    "PRESETS": "presets",
    "PageHinkley": "sequential",
    "ReferencePolicy": "config",
    "ReferenceSelection": "reference",
    "RegressionSummary": "regression",
    "SequentialABTest": "abtest",
    "Summary": "summary",
    "alibi_available": "sequential",
    "average_precision_from_hist": "binary",
    "benjamini_hochberg": "drift",
    "bonferroni": "drift",
    "build": "presets",
    "calibrate_threshold": "drift",
    "calibration_map": "cbpe",
    "cbpe_error": "cbpe",
    "cbpe_estimate": "cbpe",
    "chi2_test": "drift",
    "coarsen": "drift",
    "covariate_shift": "presets",
    "drift_report": "drift",
    "fairness_metrics": "fairness",
    "js_distance": "drift",
    "kolmogorov_sf": "drift",
    "ks_binned": "drift",
    "ks_samples": "drift",
    "lift": "binary",
    "merge_all": "summary",
    "merge_reference": "reference",
    "msprt": "abtest",
    "pooled_baseline": "reference",
    "psi": "drift",
    "psi_pvalue": "drift",
    "roc_auc_from_hist": "binary",
    "score_bins": "binary",
    "select_reference": "reference",
    "watchkeeper_default": "presets",
}
_SUBMODULES = frozenset(["registry"])

__all__ = [
    "ABResult",
    "ABTestConfig",
    "ADWIN",
    "ArmStats",
    "BinarySummary",
    "BinnedReference",
    "CategoricalBinning",
    "CostMatrix",
    "CUSUM",
    "CVMOnline",
    "DDM",
    "DetectorConfig",
    "DriftConfig",
    "DriftDetector",
    "DriftResult",
    "EDDM",
    "Ensemble",
    "FETOnline",
    "GroupCounts",
    "HDDM_A",
    "HDDM_W",
    "KSWIN",
    "LatencySketch",
    "MeanShift",
    "MetricBaseline",
    "MulticlassSummary",
    "MultivariateReference",
    "MultivariateResult",
    "NumericBinning",
    "OpsSummary",
    "PRESETS",
    "PageHinkley",
    "ReferencePolicy",
    "ReferenceSelection",
    "RegressionSummary",
    "SequentialABTest",
    "Summary",
    "alibi_available",
    "average_precision_from_hist",
    "benjamini_hochberg",
    "bonferroni",
    "build",
    "calibrate_threshold",
    "calibration_map",
    "cbpe_error",
    "cbpe_estimate",
    "chi2_test",
    "coarsen",
    "covariate_shift",
    "drift_report",
    "fairness_metrics",
    "js_distance",
    "kolmogorov_sf",
    "ks_binned",
    "ks_samples",
    "lift",
    "merge_all",
    "merge_reference",
    "msprt",
    "pooled_baseline",
    "psi",
    "psi_pvalue",
    "registry",
    "roc_auc_from_hist",
    "score_bins",
    "select_reference",
    "watchkeeper_default",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from . import registry
    from .abtest import ABResult, ArmStats, SequentialABTest, msprt
    from .base import DriftDetector
    from .binary import BinarySummary, average_precision_from_hist, lift, roc_auc_from_hist, score_bins
    from .cbpe import calibration_map, cbpe_error, cbpe_estimate
    from .config import ABTestConfig, CostMatrix, DetectorConfig, DriftConfig, ReferencePolicy
    from .drift import (
        CategoricalBinning,
        DriftResult,
        NumericBinning,
        benjamini_hochberg,
        bonferroni,
        calibrate_threshold,
        chi2_test,
        coarsen,
        drift_report,
        js_distance,
        kolmogorov_sf,
        ks_binned,
        ks_samples,
        psi,
        psi_pvalue,
    )
    from .fairness import GroupCounts, fairness_metrics
    from .latency import LatencySketch, OpsSummary
    from .multiclass import MulticlassSummary
    from .multivariate import MultivariateReference, MultivariateResult
    from .presets import PRESETS, build, covariate_shift, watchkeeper_default
    from .reference import (
        BinnedReference,
        MetricBaseline,
        ReferenceSelection,
        merge_reference,
        pooled_baseline,
        select_reference,
    )
    from .regression import RegressionSummary
    from .sequential import (
        ADWIN,
        CUSUM,
        DDM,
        EDDM,
        HDDM_A,
        HDDM_W,
        KSWIN,
        CVMOnline,
        Ensemble,
        FETOnline,
        MeanShift,
        PageHinkley,
        alibi_available,
    )
    from .summary import Summary, merge_all
