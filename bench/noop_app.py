"""A Faust app whose agent does nothing: the per-message ceiling on the same broker.

It counts messages: at the first (a primer) it creates ``BENCH_OUT.ready``;
when it has seen ``BENCH_EXPECT`` of them it writes the wall time to ``BENCH_OUT``.
The benchmark pauses it in between to publish the backlog, and times it from its
resumption, exactly as it times the worker.
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
OUT = Path(os.environ["BENCH_OUT"])
state: dict[str, Any] = {"n": 0}


@app.agent(topic)
async def noop(stream: Any) -> None:
    async for _ in stream:
        state["n"] += 1
        if state["n"] == 1:
            OUT.with_suffix(".ready").touch()
        if state["n"] == EXPECT:
            OUT.write_text(repr(time.time()))
