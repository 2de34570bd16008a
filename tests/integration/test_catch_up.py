"""A backlog is ingested before its windows are closed (``CATCHING_UP_REST_S`` in streams/agents/model_stage.py).

A worker is paused while 300k events of 4 models (600 envelopes, ten 5-minute windows per model, two
hours old) are published; resumed, it catches up on them with the store to itself: its log says the model stage
waits (``unit/test_model_stage.py`` holds the rule itself), no window of the backlog is written before 90 %
of it is in the store, and then every window of it is closed.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import orjson
import pytest

from bench.run import make_events, produce
from tests.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 300_000  # 0.01 s apart: 3,000 s, ten 300 s windows per model (a drain of seconds)
WINDOWS = 10
MODELS = 4


def test_a_backlog_is_ingested_before_its_windows_are_closed(tmp_path: Path) -> None:
    stack = Stack(tmp_path, window_seconds="300")
    stack.start_services()
    try:
        worker = stack.start_worker()
        primer = orjson.dumps({"prediction_id": "primer", "model": "primer", "prediction": 0.5})
        produce(stack.settings.broker_port, "predictions", [primer])
        assert stack.wait_for("SELECT count() FROM predictions", [(1,)], timeout=120) == [(1,)], "nothing consumed"
        primer_window = "SELECT count() > 0 FROM metrics WHERE model = 'primer'"
        assert stack.wait_for(primer_window, [(True,)], timeout=120) == [(True,)]
        time.sleep(2)  # the stage is idle, as a running worker's is between bursts

        start = (time.time() - 2 * 3600) // 300 * 300
        worker.send_signal(signal.SIGSTOP)
        try:
            produce(stack.settings.broker_port, "predictions", make_events(EVENTS, MODELS, 10, start=start), 500)
        finally:
            worker.send_signal(signal.SIGCONT)
        store, early = stack.store(), []
        deadline = time.monotonic() + 180
        while (n := int(store.query_rows("SELECT count() FROM predictions")[0][0])) < EVENTS + 1:
            assert time.monotonic() < deadline, f"{n} rows of {EVENTS + 1} after 180 s"
            written = int(store.query_rows("SELECT count() FROM metrics WHERE model LIKE 'bench%'")[0][0])
            if written and n < 0.9 * EVENTS:
                early.append((n, written))
            time.sleep(0.2)
        assert not early, f"windows of the backlog written while it was being ingested (rows, metric rows): {early}"

        windows = "SELECT count() FROM (SELECT DISTINCT model, window_start FROM metrics WHERE model LIKE 'bench%')"
        assert stack.wait_for(windows, [(MODELS * WINDOWS,)], timeout=180) == [(MODELS * WINDOWS,)], (
            "a window of the backlog was never closed"
        )
        log = (tmp_path / "worker-0.log").read_text()
        assert "the ingest is catching up on a backlog" in log
    finally:
        stack.stop()
