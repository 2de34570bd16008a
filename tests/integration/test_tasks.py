"""Multiclass and regression models through the store: metrics equal scikit-learn's."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error, r2_score

from watchkeeper.settings import Settings
from watchkeeper.streams.events import Outcome, Prediction
from watchkeeper.streams.ingest import SourceMessage
from watchkeeper.streams.service import Worker
from watchkeeper.windows.closer import WindowCloser

pytestmark = pytest.mark.integration
N = 600


# One long window so that a single row per metric holds the whole sample.
# The settings of the ``worker`` fixture (tests/integration/conftest.py).
WORKER_SETTINGS = dict(window_seconds=86400, label_delay_seconds=0, idle_flush=3600)


def send(worker: Worker, kind: type, events: list[dict], offset: int) -> None:
    msg = SourceMessage("t", 0, offset, orjson.dumps({"events": events}), None)
    worker.write_batch(worker.build_batch([msg], kind))


def metrics(worker: Worker, model: str) -> dict[str, float]:
    rows = worker.store.query_rows(
        "SELECT metric, value FROM metrics FINAL WHERE model = {m:String} AND segment = ''", {"m": model}
    )
    return dict(rows)


def test_multiclass_from_scores_and_class_predictions(worker: Worker) -> None:
    rng = np.random.default_rng(3)
    classes = ["cat", "dog", "eel"]
    y = rng.choice(classes, N)
    probs = rng.dirichlet([1, 1, 1], N)
    pred = np.array(classes)[probs.argmax(axis=1)]
    ts = int(time.time() - 2 * 86400) // 86400 * 86400 + 10
    preds = [
        {
            "prediction_id": f"mc{i}",
            "model": "animals",
            "version": "v1",
            "ts": ts + i,
            "prediction": str(pred[i]),
            "scores": dict(zip(classes, probs[i].tolist(), strict=True)),
        }
        for i in range(N)
    ]
    outs = [{"prediction_id": f"mc{i}", "model": "animals", "outcome": str(y[i]), "ts": ts + i + 5} for i in range(N)]
    send(worker, Prediction, preds, 1_000_001)
    send(worker, Outcome, outs, 1_000_002)
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)
    m = metrics(worker, "animals")
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-9)
    assert m["recall_dog"] == pytest.approx(np.mean(pred[y == "dog"] == "dog"), abs=1e-12)
    expected_ll = -np.mean(np.log([probs[i, classes.index(y[i])] for i in range(N)]))
    assert m["log_loss"] == pytest.approx(expected_ll, rel=1e-9)


def test_regression(worker: Worker) -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(50, 10, N)
    p = y + rng.normal(1.0, 3.0, N)
    ts = int(time.time() - 2 * 86400) // 86400 * 86400 + 10
    send(
        worker,
        Prediction,
        [
            {"prediction_id": f"r{i}", "model": "price", "version": "v1", "ts": ts + i, "prediction": float(p[i])}
            for i in range(N)
        ],
        2_000_001,
    )
    send(
        worker,
        Outcome,
        [{"prediction_id": f"r{i}", "model": "price", "outcome": float(y[i]), "ts": ts + i + 5} for i in range(N)],
        2_000_002,
    )
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)
    m = metrics(worker, "price")
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-9)
    assert m["rmse"] == pytest.approx(mean_squared_error(y, p) ** 0.5, rel=1e-9)
    assert m["r2"] == pytest.approx(r2_score(y, p), rel=1e-6)
    assert m["bias"] == pytest.approx(np.mean(p - y), rel=1e-9)
    assert "accuracy" not in m


def test_protected_attributes_choose_the_sliced_segments(store: tuple[str, int]) -> None:
    from watchkeeper.settings import ModelConfig

    w = Worker(
        Settings(
            store_port=store[1],
            window_seconds=86400,
            label_delay_seconds=0,
            idle_flush=3600,
            models={"sliced": ModelConfig(protected_attributes=("gender",))},
        )
    )
    w.ensure_schema()
    ts = int(time.time() - 2 * 86400) // 86400 * 86400 + 10
    send(
        w,
        Prediction,
        [
            {
                "prediction_id": f"s{i}",
                "model": "sliced",
                "ts": ts + i,
                "prediction": 0.7,
                "segments": {"gender": "fm"[i % 2], "region": "abc"[i % 3]},
            }
            for i in range(300)
        ],
        3_000_001,
    )
    send(
        w,
        Outcome,
        [{"prediction_id": f"s{i}", "model": "sliced", "outcome": i % 2, "ts": ts + i} for i in range(300)],
        3_000_002,
    )
    WindowCloser(w.store, w.settings.window_config()).tick(force=True)
    segments = {r[0] for r in w.store.query_rows("SELECT DISTINCT segment FROM metrics WHERE model = 'sliced'")}
    assert {s for s in segments if not s.startswith("bin=")} == {"", "gender=f", "gender=m", "gender"}
    m = metrics(w, "sliced")
    assert m["est_accuracy_error"] == pytest.approx(m["est_accuracy"] - m["accuracy"], abs=0.05)
    w.store.close()
