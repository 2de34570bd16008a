"""Champion/challenger through the store: a worse challenger is called worse, an equal one never is."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest

from watchkeeper.streams.events import Outcome, Prediction
from watchkeeper.streams.ingest import SourceMessage
from watchkeeper.streams.service import Worker
from watchkeeper.windows.closer import WindowCloser

pytestmark = pytest.mark.integration
W = 300
WINDOWS = 12
PER_WINDOW = 400


# The settings of the ``worker`` fixture (tests/integration/conftest.py).
WORKER_SETTINGS = dict(window_seconds=W, label_delay_seconds=0, idle_flush=3600)


def serve(worker: Worker, model: str, error_v1: float, error_v2: float, seed: int) -> int:
    """v1 (champion, seen first) and v2 split the traffic of every window."""
    rng = np.random.default_rng(seed)
    start = int(time.time() - 2 * 86400) // W * W
    preds, outs = [], []
    for i in range(WINDOWS * PER_WINDOW):
        ts = start + 0.1 + i * (W / PER_WINDOW)
        version = "v1" if i % 2 == 0 or i < 10 else "v2"
        y = int(rng.uniform() < 0.5)
        wrong = rng.uniform() < (error_v1 if version == "v1" else error_v2)
        score = 0.9 if (y == 1) != wrong else 0.1
        preds.append(
            {"prediction_id": f"{model}{i}", "model": model, "version": version, "ts": ts, "prediction": score}
        )
        outs.append({"prediction_id": f"{model}{i}", "model": model, "outcome": y, "ts": ts + 30})
    for off in range(0, len(preds), 2000):
        for kind, evs, base in ((Prediction, preds, 70_000_000), (Outcome, outs, 80_000_000)):
            msg = SourceMessage(
                "t", 0, base + seed * 100_000 + off, orjson.dumps({"events": evs[off : off + 2000]}), None
            )
            worker.write_batch(worker.build_batch([msg], kind))
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)
    return start


def ab(worker: Worker, model: str) -> list[tuple]:
    return worker.store.query_rows(
        "SELECT toUnixTimestamp(window_start) AS ws, version, "
        "anyIf(value, metric = 'ab_error_decision'), anyIf(value, metric = 'ab_error_ci_low'), "
        "anyIf(value, metric = 'ab_error_ci_high') FROM metrics FINAL "
        "WHERE model = {m:String} AND startsWith(metric, 'ab_') GROUP BY ws, version ORDER BY ws",
        {"m": model},
    )


def test_worse_challenger_is_called_worse_and_the_interval_narrows(worker: Worker) -> None:
    serve(worker, "abworse", error_v1=0.10, error_v2=0.20, seed=1)
    rows = ab(worker, "abworse")
    assert len(rows) == WINDOWS and {r[1] for r in rows} == {"v2 vs v1"}
    assert rows[-1][2] == 1.0  # v2 worse than v1 at 95% by the end
    widths = [hi - lo for _, _, _, lo, hi in rows]
    assert widths[-1] < widths[0] / 2
    assert rows[-1][3] > 0  # the whole interval of (v2 - v1) error is above zero


def test_equal_versions_are_never_called_different(worker: Worker) -> None:
    serve(worker, "abequal", error_v1=0.15, error_v2=0.15, seed=2)
    rows = ab(worker, "abequal")
    assert len(rows) == WINDOWS
    assert all(r[2] == 0.0 for r in rows)
