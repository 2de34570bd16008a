"""Reference selection: the policies pick the right past windows; a daily cycle is not drift."""

from __future__ import annotations

import numpy as np
import pytest

from watchkeeper.detectors import (
    BinarySummary,
    NumericBinning,
    ReferencePolicy,
    drift_report,
    merge_reference,
    select_reference,
)

HOUR, DAY = 3_600, 86_400


def test_policies() -> None:
    t = 10 * DAY + 5 * HOUR
    assert select_reference(t, HOUR, ReferencePolicy.fixed(0, DAY)).ranges == ((0, DAY),)
    assert select_reference(t, HOUR, ReferencePolicy.rolling(2)).ranges == ((t - 2 * HOUR, t),)
    assert select_reference(t, HOUR, ReferencePolicy.seasonal(DAY)).ranges == ((t - DAY, t - DAY + HOUR),)
    week = select_reference(t, HOUR, ReferencePolicy.seasonal(7 * DAY, n_periods=2)).ranges
    assert week == ((t - 7 * DAY, t - 7 * DAY + HOUR), (t - 14 * DAY, t - 14 * DAY + HOUR))


def test_first_n_events() -> None:
    history = {0: 300, HOUR: 300, 2 * HOUR: 300, 3 * HOUR: 300}
    pol = ReferencePolicy.first_n(700)
    sel = select_reference(4 * HOUR, HOUR, pol, history=history)
    assert sel.ranges == ((0, 3 * HOUR),) and sel.complete
    early = select_reference(HOUR, HOUR, pol, history=history)  # only the first window is in the past
    assert early.ranges == ((0, HOUR),) and not early.complete
    assert not select_reference(0, HOUR, pol, history=history).ranges


def test_fixed_policy_needs_a_range() -> None:
    with pytest.raises(ValueError):
        ReferencePolicy(kind="fixed")


def test_merge_reference_merges_selected_window_summaries() -> None:
    rng = np.random.default_rng(0)
    by_start = {h * HOUR: BinarySummary.from_arrays(rng.random(50), rng.binomial(1, 0.5, 50)) for h in range(6)}
    sel = select_reference(5 * HOUR, HOUR, ReferencePolicy.rolling(2))
    merged = merge_reference(by_start, sel)
    assert merged == by_start[3 * HOUR] + by_start[4 * HOUR]
    counts = {0: np.array([1, 2]), HOUR: np.array([3, 4])}
    assert merge_reference(counts, select_reference(2 * HOUR, HOUR, ReferencePolicy.rolling(2))).tolist() == [4, 6]
    assert merge_reference(by_start, select_reference(100 * DAY, HOUR, ReferencePolicy.seasonal())) is None


def test_daily_cycle_not_drift_with_seasonal_reference_but_drift_with_fixed() -> None:
    rng = np.random.default_rng(42)
    per_hour = 400

    def hour_sample(h: int) -> np.ndarray:
        return rng.normal(2.0 * np.sin(2 * np.pi * (h % 24) / 24), 1.0, per_hour)

    # Bucketing from training data spanning whole days; counts kept per hourly window.
    binning = NumericBinning.from_reference(np.concatenate([hour_sample(h) for h in range(48)]))
    counts = {h * HOUR: binning.counts(hour_sample(h)) for h in range(3 * 24)}
    seasonal, fixed = ReferencePolicy.seasonal(DAY), ReferencePolicy.fixed(0, 6 * HOUR)
    flags = {"seasonal": [], "fixed": []}
    for h in range(2 * 24, 3 * 24):  # the third day
        start = h * HOUR
        for name, pol in (("seasonal", seasonal), ("fixed", fixed)):
            ref = merge_reference(counts, select_reference(start, HOUR, pol))
            flags[name].append(drift_report({"x": ref}, {"x": counts[start]}, {"x": "numeric"})[0].drifted)
    assert sum(flags["seasonal"]) == 0
    assert np.mean(flags["fixed"]) > 0.6
