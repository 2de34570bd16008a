"""The model stage folds binned_sql's per-bin rows into one summary per window and segment, columnar."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from watchkeeper.windows.config import WindowKey
from watchkeeper.windows.metrics import binary_summaries
from watchkeeper.windows.queries import N_BINS

COUNTS = ("n", "n_pred_pos", "pos", "neg", "tp", "fp", "tn", "fn")
SUMS = ("score_sum", "score_sum_labeled", "sum_log_loss", "sum_brier")


def _rows(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        row: dict[str, Any] = {
            "model": f"m{rng.integers(3)}", "version": f"v{rng.integers(2)}", "ws": int(rng.integers(3)) * 300,
            "seg": ("", "region=eu", "region=us")[rng.integers(3)], "bin": int(rng.integers(N_BINS)),
        }  # fmt: skip
        row.update({c: int(rng.integers(0, 50)) for c in COUNTS})
        row.update({c: float(rng.uniform(0, 10)) for c in SUMS})
        out.append(row)
    return out


def _as_store_gives(rows: list[dict[str, Any]]) -> pa.Table:
    """As ``Store.query_arrow`` gives binned_sql's result: counts UInt64, ws UInt32, bin UInt32."""
    types = {"model": pa.string(), "version": pa.string(), "seg": pa.string(), "ws": pa.uint32(), "bin": pa.uint32()}
    types.update({c: pa.uint64() for c in COUNTS} | {c: pa.float64() for c in SUMS})
    return pa.table({c: pa.array([r[c] for r in rows], t) for c, t in types.items()})


def test_each_window_and_segment_gets_the_sum_of_its_bins_rows() -> None:
    rows = _rows(np.random.default_rng(7), 2000)  # repeated (window, segment, bin) rows are added up too
    out = binary_summaries(_as_store_gives(rows), lambda model: {"m0": 0.3}.get(model, 0.5))
    expected: dict[tuple[WindowKey, str], dict[str, Any]] = {}
    for r in rows:
        key = (WindowKey(str(r["model"]), str(r["version"]), int(r["ws"])), str(r["seg"]))
        e = expected.setdefault(key, {"hist": np.zeros(N_BINS, np.int64), "hist_pos": np.zeros(N_BINS, np.int64),
                                      **{c: 0 for c in ("n", "n_pred_pos", "tp", "fp", "tn", "fn")},
                                      **{c: 0.0 for c in ("sum_log_loss", "sum_brier")}})  # fmt: skip
        e["hist"][r["bin"]] += r["n"]
        e["hist_pos"][r["bin"]] += r["pos"]
        for c in ("n", "n_pred_pos", "tp", "fp", "tn", "fn", "sum_log_loss", "sum_brier"):
            e[c] += r[c]
    assert sum(len(segs) for segs in out.values()) == len(expected)
    for (key, seg), e in expected.items():
        s = out[key][seg]
        assert s.threshold == (0.3 if key.model == "m0" else 0.5)
        assert np.array_equal(s.hist, e["hist"]) and np.array_equal(s.hist_pos, e["hist_pos"])
        assert (s.n, s.n_pred_pos, s.tp, s.fp, s.tn, s.fn) == tuple(
            e[c] for c in ("n", "n_pred_pos", "tp", "fp", "tn", "fn")
        )
        assert np.isclose(s.sum_log_loss, e["sum_log_loss"]) and np.isclose(s.sum_brier, e["sum_brier"])
        assert isinstance(s.n, int) and s.hist.dtype == np.int64


def test_no_rows_no_summaries() -> None:
    assert binary_summaries(_as_store_gives([]), lambda model: 0.5) == {}
