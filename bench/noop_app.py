"""A Faust app whose agent does nothing: the per-message ceiling on the same broker.

It counts messages and, when it has seen ``BENCH_EXPECT`` of them, writes the
elapsed time between the first and the last to ``BENCH_OUT`` and stops.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import faust

app = faust.App(
    "watchkeeper-bench-noop",
    broker=f"kafka://127.0.0.1:{os.environ['BENCH_BROKER_PORT']}",
    broker_rebalance_timeout=3.0,
    store="memory://",
    web_enabled=False,
    datadir=os.environ.get("BENCH_DATADIR", "/tmp/wk-bench-noop"),
    consumer_auto_offset_reset="earliest",
)
topic = app.topic(os.environ.get("BENCH_TOPIC", "bench-noop"), value_serializer="raw", key_serializer="raw")
EXPECT = int(os.environ.get("BENCH_EXPECT", "20000"))
state: dict[str, Any] = {"n": 0, "t0": None}


@app.agent(topic)
async def noop(stream: Any) -> None:
    async for _ in stream:
        if state["t0"] is None:
            state["t0"] = time.perf_counter()
        state["n"] += 1
        if state["n"] == EXPECT:
            Path(os.environ["BENCH_OUT"]).write_text(str(time.perf_counter() - state["t0"]))
