"""Windowed drift tests: bucketing, statistics against scipy, false-alarm control on streams."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from watchkeeper.detectors import (
    BinarySummary,
    CategoricalBinning,
    DriftConfig,
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
)


def test_numeric_binning_has_open_ends_and_a_missing_bucket() -> None:
    b = NumericBinning.from_reference(np.arange(1000.0), n_bins=10)
    assert b.n_buckets == b.edges.size + 2
    idx = b.bucket([-1e9, 1e9, np.nan, 500.0])
    assert idx[0] == 0 and idx[1] == b.edges.size and idx[2] == b.n_buckets - 1
    counts = b.counts(np.arange(1000.0))
    assert counts.sum() == 1000 and counts[-1] == 0 and counts[:-1].min() > 0


def test_numeric_binning_of_discrete_reference_drops_duplicate_edges() -> None:
    b = NumericBinning.from_reference(np.repeat([1.0, 2.0, 3.0], 100), n_bins=100)
    assert b.edges.tolist() == [2.0, 3.0]
    assert b.counts([1.0, 2.0, 3.0, 4.0]).tolist() == [1, 1, 2, 0]


def test_categorical_binning_buckets_unseen_and_missing() -> None:
    b = CategoricalBinning.from_reference(["a", "b", "b", None, "c"])
    assert b.categories == ("a", "b", "c")
    assert b.counts(np.array(["a", "zzz", None, float("nan"), "c", "c"], dtype=object)).tolist() == [1, 0, 2, 1, 2]
    assert b.counts_from_mapping({"b": 3, "new": 2, None: 1}).tolist() == [0, 3, 0, 2, 1]
    top = CategoricalBinning.from_reference(["x"] * 5 + ["y"] * 3 + ["z"], max_categories=2)
    assert top.categories == ("x", "y")


def test_statistics_agree_with_scipy() -> None:
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(size=3000), rng.normal(0.2, 1.1, 2000)
    b = NumericBinning.from_reference(ref, n_bins=20)
    rc, cc = b.counts(ref), b.counts(cur)
    p, q = rc[:-1] / rc.sum(), cc[:-1] / cc.sum()
    assert psi(rc, cc) == pytest.approx(np.sum((q - p) * np.log(q / p)))
    assert js_distance(rc, cc) == pytest.approx(distance.jensenshannon(p, q, base=2))
    table = np.vstack([rc[:-1], cc[:-1]])
    chi = stats.chi2_contingency(table, correction=False)
    assert chi2_test(rc, cc) == pytest.approx((chi.statistic, chi.pvalue))
    d_exact, p_exact = ks_samples(ref, cur)
    d_bin, p_bin = ks_binned(b.counts(ref), b.counts(cur))
    assert d_bin <= d_exact + 1e-12 and d_bin == pytest.approx(d_exact, abs=0.03)
    fine = NumericBinning.from_reference(ref, n_bins=1000)
    assert ks_binned(fine.counts(ref), fine.counts(cur))[0] == pytest.approx(d_exact, abs=0.005)
    assert p_exact < 0.01 and p_bin < 0.01


def test_ks_binned_equals_scipy_on_quantised_data() -> None:
    rng = np.random.default_rng(1)
    ref, cur = rng.integers(0, 20, 400).astype(float), rng.integers(0, 22, 300).astype(float)
    b = NumericBinning(np.arange(1.0, 22.0))
    res = stats.ks_2samp(ref, cur, method="asymp")
    d, p = ks_binned(b.counts(ref), b.counts(cur))
    assert d == pytest.approx(res.statistic)
    assert p == pytest.approx(res.pvalue, rel=0.01)  # p ~ 0.1: see test_kolmogorov_sf_agrees_with_scipy


@pytest.mark.parametrize(("ns", "abs_tol", "rel_tol"), [((5, 140), 0.023, 0.032), ((141, 100_000), 0.011, 0.005)])
def test_kolmogorov_sf_agrees_with_scipy(ns: tuple[int, int], abs_tol: float, rel_tol: float) -> None:
    """Within the documented bounds everywhere; the same value as scipy where both use 2 * smirnov."""
    for n in np.unique(np.geomspace(*ns, 12).astype(int)):
        for d in np.linspace(0.0005, 0.999, 250):
            exact, ours = float(stats.kstwo.sf(d, n)), kolmogorov_sf(float(d), int(n))
            assert ours == pytest.approx(exact, abs=abs_tol), (n, d)
            if 1e-300 < exact < 0.05:
                assert ours == pytest.approx(exact, rel=rel_tol), (n, d)
            if n * d * d >= (2.2 if n > 140 else 4.0) and d < 0.5 and n * d < n - 1:
                assert ours == pytest.approx(exact, rel=1e-9, abs=1e-300), (n, d)


def test_multiple_testing_corrections() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5])
    assert benjamini_hochberg(p) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    q = np.random.default_rng(0).random(50) ** 3
    assert benjamini_hochberg(q) == pytest.approx(stats.false_discovery_control(q))
    assert bonferroni(p) == pytest.approx([0.04, 0.16, 0.12, 1.0])


def _windows(shift_after: int | None, n_windows: int = 200, size: int = 500, seed: int = 0):
    """Bucket counts of 5 features (3 numeric, 2 categorical) per window, and the reference's."""
    rng = np.random.default_rng(seed)
    cats = np.array(["a", "b", "c", "d"])
    probs = np.array([0.4, 0.3, 0.2, 0.1])

    def sample(n: int, shifted: bool) -> dict[str, np.ndarray]:
        return {
            "x0": rng.normal(0.5 if shifted else 0.0, 1, n),
            "x1": rng.exponential(1, n),
            "x2": np.where(rng.random(n) < 0.05, np.nan, rng.normal(3, 2, n)),
            "c0": rng.choice(cats, n, p=[0.25, 0.25, 0.25, 0.25] if shifted else probs),
            "c1": rng.choice(cats, n, p=probs),
        }

    ref = sample(20_000, False)
    binnings = {
        f: NumericBinning.from_reference(v) if f.startswith("x") else CategoricalBinning.from_reference(v)
        for f, v in ref.items()
    }
    ref_counts = {f: binnings[f].counts(v) for f, v in ref.items()}
    out = []
    for w in range(n_windows):
        cur = sample(size, shift_after is not None and w >= shift_after)
        out.append({f: binnings[f].counts(v) for f, v in cur.items()})
    return ref_counts, out


KINDS = {"x0": "numeric", "x1": "numeric", "x2": "numeric", "c0": "categorical", "c1": "categorical"}


def test_stable_stream_false_flag_rate_under_one_percent() -> None:
    ref, windows = _windows(None)
    flags = [r.drifted for w in windows for r in drift_report(ref, w, KINDS)]
    assert len(flags) == 1000
    assert np.mean(flags) < 0.01


def test_shift_is_flagged_after_it_happens_and_only_where_it_happens() -> None:
    ref, windows = _windows(shift_after=100)
    reports = [{r.feature: r for r in drift_report(ref, w, KINDS)} for w in windows]
    before = [r["x0"].drifted or r["c0"].drifted for r in reports[:100]]
    after_x0 = [r["x0"].drifted for r in reports[100:]]
    after_c0 = [r["c0"].drifted for r in reports[100:]]
    others_after = [r[f].drifted for r in reports[100:] for f in ("x1", "x2", "c1")]
    assert np.mean(before) < 0.02
    assert np.mean(after_x0) > 0.95 and np.mean(after_c0) > 0.95
    assert np.mean(others_after) < 0.01
    assert reports[150]["x0"].detector == "ks" and reports[150]["c0"].detector == "chi2"


def test_small_windows_are_not_flagged_and_effect_size_gates_large_ones() -> None:
    rng = np.random.default_rng(2)
    b = NumericBinning.from_reference(rng.normal(size=10_000))
    ref = b.counts(rng.normal(size=200_000))
    tiny = b.counts(rng.normal(3, 1, 10))
    huge_small_shift = b.counts(rng.normal(0.05, 1, 200_000))
    res = drift_report({"a": ref, "b": ref}, {"a": tiny, "b": huge_small_shift}, {"a": "numeric", "b": "numeric"})
    assert not res[0].drifted  # under min_count
    assert res[1].p_adjusted < 0.01 and not res[1].drifted  # significant but trivial (PSI < 0.1)
    strict = drift_report({"b": ref}, {"b": huge_small_shift}, {"b": "numeric"}, DriftConfig(min_effect=0.0))
    assert strict[0].drifted


def test_threshold_calibrated_on_reference_windows() -> None:
    ref, windows = _windows(None, n_windows=60)
    stable = [w["x1"] for w in windows[:40]]
    thr = calibrate_threshold(stable, "psi", quantile=0.99)
    later = [psi(coarsen(np.sum(stable, axis=0), 10), coarsen(w["x1"], 10)) for w in windows[40:]]
    assert np.mean(np.array(later) > thr) <= 0.1
    assert 0 < thr < 0.1


def test_prediction_and_label_drift_use_the_same_tests() -> None:
    rng = np.random.default_rng(3)
    ref = BinarySummary.from_arrays(rng.beta(2, 5, 5000), rng.binomial(1, 0.3, 5000))
    cur = BinarySummary.from_arrays(rng.beta(3, 4, 1000), rng.binomial(1, 0.45, 1000))
    # Score histogram (100 fixed bins, plus an empty missing bucket) and label counts.
    pred = drift_report({"prediction": np.r_[ref.hist, 0]}, {"prediction": np.r_[cur.hist, 0]}, {})
    labels = drift_report(
        {"label": np.array([ref.tp + ref.fn, ref.fp + ref.tn])},
        {"label": np.array([cur.tp + cur.fn, cur.fp + cur.tn])},
        {"label": "categorical"},
        DriftConfig(min_effect=0.05),
    )
    assert pred[0].drifted and labels[0].drifted
