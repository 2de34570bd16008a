"""Fairness gaps equal a hand computation and group counts merge by name."""

from __future__ import annotations

import numpy as np
import pytest

from watchkeeper.detectors import GroupCounts, fairness_metrics

# group, score, outcome (NaN: unlabelled)
ROWS = [
    ("f", 0.9, 1), ("f", 0.8, 0), ("f", 0.2, 1), ("f", 0.1, 0), ("f", 0.7, np.nan),
    ("m", 0.9, 1), ("m", 0.6, 1), ("m", 0.4, 0), ("m", 0.3, 0), ("m", 0.2, 0), ("m", 0.95, 0),
]  # fmt: skip


def _counts() -> GroupCounts:
    g, s, y = zip(*ROWS, strict=True)
    return GroupCounts.from_arrays(list(g), np.array(s), np.array(y, dtype=float))


def test_fairness_matches_hand_computation() -> None:
    c = _counts()
    m = fairness_metrics(c, min_count=1)
    # f: 5 events, predicted positive 0.9, 0.8, 0.7 -> 3/5; labelled: tp=1 (0.9), fn=1 (0.2), fp=1 (0.8), tn=1
    # m: 6 events, predicted positive 0.9, 0.6, 0.95 -> 3/6; tp=2, fn=0, fp=1 (0.95), tn=3 (0.4, 0.3, 0.2)
    assert m["count"] == {"f": 5, "m": 6}
    assert m["positive_rate"] == pytest.approx({"f": 0.6, "m": 0.5})
    assert m["tpr"] == pytest.approx({"f": 0.5, "m": 1.0})
    assert m["fpr"] == pytest.approx({"f": 0.5, "m": 0.25})
    assert m["demographic_parity_difference"] == pytest.approx(0.1)
    assert m["equal_opportunity_difference"] == pytest.approx(0.5)
    assert m["fpr_difference"] == pytest.approx(0.25)
    assert m["equalized_odds_difference"] == pytest.approx(0.5)
    assert m["disparate_impact_ratio"] == pytest.approx(0.5 / 0.6)


def test_small_groups_are_left_out_of_gaps() -> None:
    m = fairness_metrics(_counts(), min_count=6)
    assert np.isnan(m["demographic_parity_difference"])
    assert m["positive_rate"]["f"] == pytest.approx(0.6)  # still reported


def test_merge_unites_groups() -> None:
    c = _counts()
    other = GroupCounts.from_arrays(["x", "f"], [0.9, 0.1], [1, 0])
    merged = c + other
    assert merged.groups == ("f", "m", "x")
    assert merged.n.tolist() == [6, 6, 1] and merged.tn.tolist() == [2, 3, 0]
    assert GroupCounts.from_dict(merged.to_dict()) == merged


def test_the_gap_vocabulary_is_what_is_computed_and_what_policies_bound() -> None:
    """One list of gap names: every gap computed is in it, and every name a policy, the alert rules or the
    dashboards use is one of them (a misspelt bound would otherwise be ignored silently)."""
    from watchkeeper.alerts.fairness_rules import GAP_RATES as RULE_RATES
    from watchkeeper.alerts.policy import FairnessRule
    from watchkeeper.dashboards.panels.sql import GAP_METRICS as CHARTED
    from watchkeeper.detectors.fairness import GAP_ALIASES, GAP_METRICS, GAP_NAMES

    g = GroupCounts.from_arrays(["a"] * 40 + ["b"] * 40, [1, 0] * 40, [1, 1, 0, 0] * 20)
    computed = {k for k, v in fairness_metrics(g).items() if isinstance(v, float)}
    assert computed == set(GAP_METRICS)
    assert set(GAP_ALIASES.values()) <= set(GAP_METRICS)
    rule = FairnessRule()
    assert set(rule.max_gap) | set(rule.min_ratio) <= set(GAP_NAMES)
    assert set(RULE_RATES) | {"disparate_impact_ratio"} == set(GAP_NAMES)
    assert set(CHARTED) == set(GAP_NAMES)
