"""Sequential (per-event) drift detectors behind one interface: ``update(x) -> self``, ``drift_detected``."""

from __future__ import annotations

from . import _river_import  # noqa: F401  (first: keeps river's example datasets unloaded)
from ._alibi import alibi_available, clear_cache
from .adwin import ADWIN
from .cusum import CUSUM
from .cvm_online import CVMOnline
from .ddm import DDM
from .eddm import EDDM
from .ensemble import Ensemble
from .fet_online import FETOnline
from .hddm_a import HDDM_A
from .hddm_w import HDDM_W
from .kswin import KSWIN
from .mean_shift import MeanShift, cusum_threshold
from .page_hinkley import PageHinkley

__all__ = [
    "ADWIN",
    "CUSUM",
    "CVMOnline",
    "DDM",
    "EDDM",
    "Ensemble",
    "FETOnline",
    "HDDM_A",
    "HDDM_W",
    "KSWIN",
    "MeanShift",
    "PageHinkley",
    "alibi_available",
    "clear_cache",
    "cusum_threshold",
]
