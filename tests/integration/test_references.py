"""Drift references: a daily cycle is not drift against the seasonal reference; a loaded training file is used."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from watchkeeper.settings import ModelConfig, Settings
from watchkeeper.streams.events import Prediction
from watchkeeper.streams.ingest import SourceMessage
from watchkeeper.streams.service import Worker
from watchkeeper.windows.closer import WindowCloser

pytestmark = pytest.mark.integration
W = 3600


def make_worker(port: int, **models: ModelConfig) -> Worker:
    w = Worker(Settings(store_port=port, window_seconds=W, label_delay_seconds=0, idle_flush=3600, models=models))
    w.ensure_schema()
    return w


def daily_cycle(worker: Worker, model: str, days: int = 3, per_hour: int = 200, seed: int = 0) -> int:
    """A feature that follows the hour of the day (plus noise), with no change in its daily pattern."""
    rng = np.random.default_rng(seed)
    start = int(time.time() - 5 * 86400) // 86400 * 86400
    events = []
    for h in range(days * 24):
        for j in range(per_hour):
            ts = start + h * W + j * (W / per_hour)
            x = 3 * np.sin(2 * np.pi * (h % 24) / 24) + rng.normal()
            events.append(
                {
                    "prediction_id": f"{model}-{h}-{j}",
                    "model": model,
                    "version": "v1",
                    "ts": ts,
                    "prediction": 0.5,
                    "features": {"load": float(x)},
                }
            )
    for off in range(0, len(events), 2000):
        msg = SourceMessage(
            "t", 0, hash(model) % 1_000_000 + off, orjson.dumps({"events": events[off : off + 2000]}), None
        )
        worker.write_batch(worker.build_batch([msg], Prediction))
    return start


def flagged(worker: Worker, model: str) -> tuple[int, int]:
    rows = worker.store.query_rows(
        "SELECT countIf(drifted = 1), count() FROM drift FINAL WHERE model = {m:String} AND feature = 'load' "
        # the windowed test against the reference (not the per-event alarms nor their confirmations)
        "AND detector NOT IN ('mean_shift', 'after_alarm', 'carried_alarm')",
        {"m": model},
    )
    return int(rows[0][0]), int(rows[0][1])


@pytest.fixture
def port(store: tuple[str, int]) -> Iterator[int]:
    yield store[1]


def test_daily_cycle_is_not_drift_with_the_seasonal_reference(port: int) -> None:
    seasonal = make_worker(port, cyc_seasonal=ModelConfig(drift_reference="same_hour_yesterday"))
    daily_cycle(seasonal, "cyc_seasonal")
    WindowCloser(seasonal.store, seasonal.settings.window_config()).tick(force=True)
    hits, tested = flagged(seasonal, "cyc_seasonal")
    assert tested >= 40  # days 2 and 3 are compared with the day before
    assert hits == 0

    fixed = make_worker(port)  # default: the first windows, which only saw the small hours
    daily_cycle(fixed, "cyc_fixed")
    WindowCloser(fixed.store, fixed.settings.window_config()).tick(force=True)
    hits, tested = flagged(fixed, "cyc_fixed")
    assert hits > tested / 2  # the cycle reads as drift against a fixed reference


def test_loaded_training_file_is_the_reference(port: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    train = pd.DataFrame(
        {
            "load": rng.normal(10, 1, 5000),
            "channel": rng.choice(["web", "app"], 5000),
            "label": rng.integers(0, 2, 5000),
        }
    )
    path = tmp_path / "train.parquet"
    train.to_parquet(path)
    env = {"WATCHKEEPER_STORE_PORT": str(port), "PATH": "/usr/bin:/bin"}
    res = subprocess.run(
        [sys.executable, "-m", "watchkeeper.cli", "reference", "loaded_ref", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "loaded 5000 reference rows" in res.stdout
    worker = make_worker(port)
    # Live traffic centred on 0, the training data on 10: every window drifts, from the first one on.
    daily_cycle(worker, "loaded_ref", days=1, per_hour=100, seed=2)
    WindowCloser(worker.store, worker.settings.window_config()).tick(force=True)
    hits, tested = flagged(worker, "loaded_ref")
    assert tested == 24 and hits == 24


def test_a_bad_reference_file_never_replaces_a_good_one(port: int, tmp_path: Path) -> None:
    """A semicolon-separated file, read as one column `amount;n`, replaced a good reference."""
    worker = make_worker(port)
    model = "ref_guard"
    features = [{"amount": float(i), "n": i % 3, "channel": "web"} for i in range(100)]
    events = [{"prediction_id": f"g{i}", "model": model, "version": "v1", "ts": time.time() - 3600 + i,
               "prediction": 0.5, "features": f} for i, f in enumerate(features)]  # fmt: skip
    worker.write_batch(worker.build_batch([SourceMessage("t", 0, 7, orjson.dumps({"events": events}), None)],
                                          Prediction))  # fmt: skip
    env = {"WATCHKEEPER_STORE_PORT": str(port), "PATH": "/usr/bin:/bin"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "watchkeeper.cli", "reference", model, *args],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)  # fmt: skip

    def reference() -> list[tuple[int, list[str]]]:
        return worker.store.query_rows(
            "SELECT count(), arraySort(groupUniqArrayArray(mapKeys(features))) FROM reference "
            "WHERE model = {m:String}", {"m": model})  # fmt: skip

    good = tmp_path / "good.csv"
    pd.DataFrame({"amount": np.arange(200.0), "n": np.arange(200) % 3}).to_csv(good, index=False)
    res = cli(str(good))
    assert res.returncode == 0 and "loaded 200 reference rows for ref_guard (2 features)" in res.stdout
    assert "1 of the 3 features in ref_guard's recent predictions are not in the reference" in res.stderr
    assert "channel" in res.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text("amount;n\n" + "".join(f"{i}.5;{i % 3}\n" for i in range(200)))
    res = cli(str(bad))
    assert res.returncode == 1 and "shares no feature with the recent predictions of ref_guard" in res.stderr
    assert "the predictions have amount, channel, n, all missing from the file" in res.stderr
    assert "separated by semicolons" in res.stderr
    assert reference() == [(200, ["amount", "n"])]  # the good reference is still there

    few = tmp_path / "few.csv"
    few.write_text("amount,n\n1,2\n3,4\n")
    res = cli(str(few))
    assert res.returncode == 1 and "2 rows; the drift tests need at least" in res.stderr
    assert reference() == [(200, ["amount", "n"])]

    res = cli(str(bad), "--force")
    assert res.returncode == 0 and "loaded 200 reference rows" in res.stdout
    assert worker.store.query_rows("SELECT count() FROM reference WHERE model = {m:String}", {"m": model}) == [(200,)]
    worker.store.close()
