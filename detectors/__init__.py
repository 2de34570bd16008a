"""watchkeeper detectors: drift detectors, performance metrics, fairness, baselines (pure computation).

Nothing here does I/O. Summaries (``BinarySummary``, ``MulticlassSummary``,
``RegressionSummary``, ``LatencySketch``, ``GroupCounts``, bucket counts) are
mergeable sufficient statistics that the stream builds per (model, version,
window, segment); metric functions and drift tests read them. Sequential
detectors share river's interface and are looked up by stable names in
``registry``.
"""

from __future__ import annotations

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
from .reference import ReferenceSelection, merge_reference, select_reference
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

__all__ = [
    "ABResult",
    "ABTestConfig",
    "ADWIN",
    "ArmStats",
    "BinarySummary",
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
    "psi",
    "psi_pvalue",
    "registry",
    "roc_auc_from_hist",
    "score_bins",
    "select_reference",
    "watchkeeper_default",
]
