"""The per-message ceiling: the worker's own Faust app and batching, with an agent that does nothing.

The app is the worker's (``watchkeeper.streams.app.build_app``: same App class and
configuration — the fetch wait of ``WATCHKEEPER_FETCH_MAX_WAIT_MS``, 1 MiB fetches,
the stream buffer, the web server, no Monitor sensor unless
``WATCHKEEPER_FAUST_SENSOR``), taken in the worker's batches (``streams/take.py``:
``TAKE_MESSAGES`` messages or ``BATCH_BYTES``, the flush interval) and acked one
message at a time as the worker acks them. What it leaves out is the worker's
own work: decoding, writing to the store, the model stage and its timers. Its process is set up as
the worker's is (``watchkeeper/lean.py``: malloc arenas, Arrow's allocator).

The benchmark runs it with ``WATCHKEEPER_APP_ID`` set to a group of its own and
``BENCH_TOPIC`` a topic of its own. It counts messages: at the first (a primer)
it creates ``BENCH_OUT.ready``; when it has acked ``BENCH_EXPECT`` of them it
writes the wall time to ``BENCH_OUT``. The benchmark pauses it in between to
publish the backlog, and times it from its resumption, as it times the worker.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from watchkeeper.lean import arrow_system_allocator, cap_malloc_arenas

cap_malloc_arenas()  # the worker's process set-up (watchkeeper worker), before Faust's threads
arrow_system_allocator()

from watchkeeper.settings import load_settings  # noqa: E402 (after the allocators, as in the worker)
from watchkeeper.streams.app import build_app  # noqa: E402
from watchkeeper.streams.ingest import BATCH_BYTES  # noqa: E402
from watchkeeper.streams.take import take  # noqa: E402

settings = load_settings()
app = build_app(settings)  # the worker's App and configuration; ``faust -A bench.noop_app`` finds it here

# The worker's batch size in messages (``streams/agents/ingest.py``, not imported: importing it
# registers the worker's agents; a unit test checks the two are equal).
TAKE_MESSAGES = 2000

topic = app.topic(
    os.environ.get("BENCH_TOPIC", "bench-noop"), key_type=bytes, value_type=bytes,
    value_serializer="raw", key_serializer="raw",
)  # fmt: skip
EXPECT = int(os.environ.get("BENCH_EXPECT", "20000"))
OUT = Path(os.environ.get("BENCH_OUT", "noop.txt"))
state: dict[str, Any] = {"n": 0}


@app.agent(topic)
async def noop(stream: Any) -> None:
    async for events in take(stream, TAKE_MESSAGES, BATCH_BYTES, settings.flush_interval):
        for event in events:
            await stream.ack(event)
        before = state["n"]
        state["n"] += len(events)
        if before == 0:
            OUT.with_suffix(".ready").touch()
        if before < EXPECT <= state["n"]:
            OUT.write_text(repr(time.time()))
