"""The missing-rate test: Fisher's exact test against scipy, the effect-size floor, its place in drift_report."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from watchkeeper.detectors import DriftConfig, drift_report
from watchkeeper.detectors.missing import MIN_EFFECT, MISSING_RATE, cohens_h, missing_rise_pvalue
from watchkeeper.detectors.reference import BinnedReference


@pytest.mark.parametrize(
    "ref_missing, ref_n, cur_missing, cur_n",
    [
        (20, 1000, 60, 300),  # 2 % -> 20 %
        (20, 1000, 6, 300),  # the same rate
        (20, 1000, 0, 300),  # none missing now
        (0, 1000, 3, 300),  # a reference without missing values
        (5, 40, 9, 30),  # small counts
        (0, 50, 1, 30),
        (30, 30, 30, 30),  # all missing on both sides
        (1, 20000, 25, 5000),  # large and rare
        (9000, 20000, 2600, 5000),  # large and common
    ],
)
def test_pvalue_is_scipys_one_sided_fisher_exact(ref_missing: int, ref_n: int, cur_missing: int, cur_n: int) -> None:
    table = [[cur_missing, cur_n - cur_missing], [ref_missing, ref_n - ref_missing]]
    expected = stats.fisher_exact(table, alternative="greater").pvalue
    assert missing_rise_pvalue(ref_missing, ref_n, cur_missing, cur_n) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_pvalue_is_one_sided_a_drop_is_not_significant() -> None:
    assert missing_rise_pvalue(200, 1000, 6, 300) > 0.99
    assert missing_rise_pvalue(20, 1000, 60, 300) < 1e-20


def test_pvalue_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError):
        missing_rise_pvalue(5, 4, 1, 10)
    with pytest.raises(ValueError):
        missing_rise_pvalue(0, 0, 1, 10)


def test_cohens_h_on_known_values() -> None:
    assert cohens_h(0.02, 0.2) == pytest.approx(2 * (np.arcsin(np.sqrt(0.2)) - np.arcsin(np.sqrt(0.02))))
    assert cohens_h(0.2, 0.02) == pytest.approx(-cohens_h(0.02, 0.2))
    assert cohens_h(0.0, 0.01) >= MIN_EFFECT > cohens_h(0.0, 0.009)


def _counts(missing: int, n: int) -> np.ndarray:
    """A feature's bucket counts: values spread over two buckets, then the missing bucket."""
    present = n - missing
    return np.array([present // 2, present - present // 2, missing])


def _missing_rows(ref: tuple[int, int], cur: tuple[int, int], **kw: object) -> list[object]:
    report = drift_report({"f": _counts(*ref)}, {"f": _counts(*cur)}, {}, DriftConfig(alpha=0.001),
                          missing_rate={"f"}, **kw)  # type: ignore[arg-type]  # fmt: skip
    return [r for r in report if r.detector == MISSING_RATE]


def test_a_rise_from_2_to_20_percent_is_flagged_with_both_rates() -> None:
    (r,) = _missing_rows((20, 1000), (60, 300))
    assert r.drifted and r.statistic == pytest.approx(0.2) and r.threshold == pytest.approx(0.02)


def test_a_stable_rate_and_a_drop_are_not_flagged() -> None:
    (stable,) = _missing_rows((20, 1000), (7, 300))
    (drop,) = _missing_rows((200, 1000), (6, 300))
    assert not stable.drifted and not drop.drifted


def test_a_tiny_rise_on_a_huge_window_is_significant_but_below_the_effect_floor() -> None:
    """0.1 % -> 0.3 % over a million predictions: p far below alpha, Cohen's h 0.05, so no flag."""
    (r,) = _missing_rows((1_000, 1_000_000), (3_000, 1_000_000))
    assert r.p_value < 1e-100 and r.effect < MIN_EFFECT and not r.drifted


def test_a_reference_without_missing_values_flags_only_beyond_the_floor() -> None:
    (few,) = _missing_rows((0, 1000), (2, 300))  # 0.7 %: significant at no level worth a page
    (many,) = _missing_rows((0, 1000), (15, 300))  # 5 %
    assert not few.drifted and many.drifted and many.threshold == 0.0


def test_no_row_when_neither_side_has_a_missing_value_and_none_unless_asked() -> None:
    assert _missing_rows((0, 1000), (0, 300)) == []
    report = drift_report({"f": _counts(20, 1000)}, {"f": _counts(60, 300)}, {}, DriftConfig(alpha=0.001))
    assert [r.detector for r in report] == ["ks"]


def test_small_windows_are_reported_never_flagged() -> None:
    (r,) = _missing_rows((20, 1000), (20, 25))  # 80 % missing, but 25 predictions (< min_count 30)
    assert not r.drifted


def test_missing_rate_tests_share_the_benjamini_hochberg_family() -> None:
    """A p-value that passes alpha alone is not flagged when the window's other tests are all null."""
    ref = {f"x{i}": _counts(20, 1000) for i in range(20)}
    cur = {f"x{i}": _counts(6, 300) for i in range(20)}
    ref["f"], cur["f"] = _counts(0, 1000), _counts(6, 300)  # p about 0.00015, h 0.28: flagged alone
    p = missing_rise_pvalue(0, 1000, 6, 300)
    assert p < 0.001 and cohens_h(0.0, 6 / 300) >= MIN_EFFECT
    assert [r.drifted for r in _missing_rows((0, 1000), (6, 300))] == [True]  # among 2 tests (KS and this)
    report = drift_report(ref, cur, {}, DriftConfig(alpha=0.001), missing_rate=set(ref))
    (r,) = [r for r in report if r.feature == "f" and r.detector == MISSING_RATE]
    n_tests = len(report)
    assert r.p_adjusted == pytest.approx(min(1.0, p * n_tests)) and not r.drifted


def test_binned_reference_counts_absent_and_null_alike() -> None:
    """A feature absent from some rows of the window counts as missing there, as a null does."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=1000)
    x[:20] = np.nan
    ref = BinnedReference.build({"x": x}, {"c": np.array(["a", None] * 500, dtype=object)}, 0, 0)
    cur = ref.current_counts({}, {"c": np.array(["a"] * 300, dtype=object)}, 300)  # x absent everywhere
    report = drift_report(ref.counts, cur, ref.kinds, DriftConfig(alpha=0.001), missing_rate=set(ref.counts))
    rates = {r.feature: (r.statistic, r.threshold) for r in report if r.detector == MISSING_RATE}
    assert rates == {"x": (1.0, pytest.approx(0.02)), "c": (0.0, 0.5)}


def test_false_flag_level_on_a_stable_2_percent_rate_is_below_alpha() -> None:
    """Exact level, before BH (which only lowers it): reference of 1,000 and windows of 300 predictions,
    both 2 % missing. The README quotes these figures (per window, and 3 windows in a row)."""
    from scipy import stats as st

    alpha, p, n_ref, n = 0.001, 0.02, 1000, 300
    refs = np.arange(0, 61)
    per_window = np.zeros(refs.size)
    for i, a in enumerate(refs):
        flagged = [
            b
            for b in range(1, 61)
            if cohens_h(a / n_ref, b / n) >= MIN_EFFECT and missing_rise_pvalue(a, n_ref, b, n) < alpha
        ]
        per_window[i] = st.binom.sf(flagged[0] - 1, n, p) if flagged else 0.0
    weights = st.binom.pmf(refs, n_ref, p)
    level, in_a_row = float(weights @ per_window), float(weights @ per_window**3)
    assert 4e-4 < level < alpha  # conservative, as an exact test is, and not vacuous
    assert in_a_row < 5e-7
