"""The always-valid A/B test keeps its false-positive rate under peeking and finds real differences."""

from __future__ import annotations

import pickle

import numpy as np

from watchkeeper.detectors import ABTestConfig, ArmStats, CostMatrix, SequentialABTest, msprt


def _simulate(p_a: float, p_b: float, reps: int, n: int, peek: int, seed: int) -> tuple[float, list[int]]:
    rng = np.random.default_rng(seed)
    err_a = np.cumsum(rng.random((reps, n)) < p_a, axis=1)
    err_b = np.cumsum(rng.random((reps, n)) < p_b, axis=1)
    rejected, when = 0, []
    for r in range(reps):
        test = SequentialABTest(ABTestConfig(alpha=0.05), names=("v1", "v2"))
        for k in range(peek, n + 1, peek):  # look after every window
            res = test.update(ArmStats.from_errors(k, err_a[r, k - 1]), ArmStats.from_errors(k, err_b[r, k - 1]))
            if res.decision != "inconclusive":
                rejected += 1
                when.append(k)
                break
    return rejected / reps, when


def test_aa_false_positive_rate_under_repeated_peeking() -> None:
    rate, _ = _simulate(0.1, 0.1, reps=200, n=10_000, peek=100, seed=11)  # 100 looks each
    assert rate <= 0.05


def test_detects_a_real_difference() -> None:
    rate, when = _simulate(0.10, 0.13, reps=50, n=10_000, peek=100, seed=12)
    assert rate >= 0.95
    assert np.median(when) < 5_000


def test_decision_text_and_interval() -> None:
    r = msprt(ArmStats.from_errors(20_000, 2_000), ArmStats.from_errors(20_000, 2_300), names=("v1", "v2"))
    assert r.summary == "v2 worse than v1 at 95%"
    assert r.ci_low > 0 and r.ci_low < 0.015 < r.ci_high
    better = msprt(ArmStats.from_errors(20_000, 2_300), ArmStats.from_errors(20_000, 2_000), names=("v1", "v2"))
    assert better.decision == "better"
    same = msprt(ArmStats.from_errors(5_000, 500), ArmStats.from_errors(5_000, 510))
    assert same.decision == "inconclusive" and same.ci_low < 0 < same.ci_high


def test_expected_cost_comparison_from_confusion_counts() -> None:
    cost = CostMatrix(fp=1, fn=5)
    a = ArmStats.from_confusion(tp=900, fp=300, tn=8_500, fn=300, cost=cost)
    b = ArmStats.from_confusion(tp=800, fp=300, tn=8_500, fn=400, cost=cost)
    assert a.mean == (300 + 1500) / 10_000
    assert msprt(a, b).decision == "worse"


def test_state_pickles_and_decisions_stick() -> None:
    t = SequentialABTest()
    t.update(ArmStats.from_errors(20_000, 2_000), ArmStats.from_errors(20_000, 2_400))
    t2 = pickle.loads(pickle.dumps(t))
    # A later look that alone would be inconclusive does not undo the decision.
    res = t2.update(ArmStats.from_errors(20_100, 2_010), ArmStats.from_errors(20_100, 2_030))
    assert res.decision == "worse"
