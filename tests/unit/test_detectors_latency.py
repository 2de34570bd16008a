"""The latency sketch keeps 1% relative error, merges, pickles and reads SQL key counts."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from watchkeeper.detectors import LatencySketch, OpsSummary, merge_all


@pytest.mark.parametrize("dist", ["lognormal", "exponential", "pareto_with_zeros"])
def test_quantiles_within_relative_accuracy(dist: str) -> None:
    rng = np.random.default_rng(1)
    x = {
        "lognormal": rng.lognormal(3, 1.5, 100_000),
        "exponential": rng.exponential(50, 100_000),
        "pareto_with_zeros": np.r_[np.zeros(100), rng.pareto(1.5, 100_000) * 10],
    }[dist]
    sk = LatencySketch.from_arrays(x)
    for q in (0.01, 0.5, 0.9, 0.95, 0.99, 0.999):
        exact = np.quantile(x, q, method="lower")
        got = sk.quantile(q)
        assert abs(got - exact) <= 0.01 * exact + 1e-12, (q, got, exact)


def test_merge_equals_one_pass_and_pickles() -> None:
    x = np.random.default_rng(2).lognormal(2, 1, 30_000)
    parts = merge_all(LatencySketch.from_arrays(p) for p in np.array_split(x, 5))
    assert parts == LatencySketch.from_arrays(x)
    assert pickle.loads(pickle.dumps(parts)) == parts
    assert LatencySketch.from_dict(parts.to_dict()) == parts


def test_from_key_counts_matches_sketch() -> None:
    x = np.random.default_rng(3).lognormal(2, 1, 10_000)
    sk = LatencySketch.from_arrays(x)
    keys = sk.keys(x)  # the SQL formula, evaluated in numpy
    uniq, cnt = np.unique(keys, return_counts=True)
    again = LatencySketch.from_key_counts(uniq, cnt, total=float(x.sum()))
    assert again == sk


def test_ops_metrics() -> None:
    rng = np.random.default_rng(4)
    lat = rng.lognormal(3, 1, 3000)
    ops = OpsSummary.from_arrays(lat, rng.random(3000) < 0.05)
    m = (ops + ops).metrics(window_seconds=60)
    assert m["traffic"] == pytest.approx(100.0)
    assert m["fallback_rate"] == pytest.approx(ops.n_fallback / 3000)
    both = np.r_[lat, lat]
    assert m["latency_mean"] == pytest.approx(both.mean())
    for q in (50, 95, 99):  # each named quantile is that quantile, not a neighbour
        exact = np.quantile(both, q / 100, method="lower")
        assert abs(m[f"latency_p{q}"] - exact) <= 0.01 * exact, q
    assert OpsSummary.from_dict(ops.to_dict()) == ops
