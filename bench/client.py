"""Events/s of the light client's ``prediction()`` on the caller's thread, broker up and broker down.

``python -m bench.client [--events N]``. A benchmark, not a test: it prints what
this machine does. "Broker up" is the embedded Tansu broker on a free port;
"broker down" is a closed localhost port. Each case times ``N`` calls in a
tight loop (the worst case for the buffer: a serving process never logs that
fast), then flushes and reports what the client counted. The numbers in
``clients/python/README.md`` come from here.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from watchkeeper_client import Publisher

from tests.stack import free_port
from watchkeeper.admin import ensure_topics
from watchkeeper.embedded import ensure_broker
from watchkeeper.settings import Settings


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def calls(pub: Publisher, n: int, numpy_values: bool) -> float:
    """Seconds for ``n`` prediction() calls with five features (Python floats or numpy values)."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(min(n, 10_000), 5))
    if numpy_values:
        feats: list[Any] = [row for row in rows]  # np.ndarray rows, named by feature_names
        preds: list[Any] = list(rows[:, 0])  # np.float64
    else:
        feats = [dict(zip("abcde", row.tolist(), strict=True)) for row in rows]
        preds = rows[:, 0].tolist()
    m = len(rows)
    t0 = time.perf_counter()
    for i in range(n):
        pub.prediction(model="bench", prediction=preds[i % m], prediction_id=f"b-{i}", features=feats[i % m])
    return time.perf_counter() - t0


def case(name: str, bootstrap: str, n: int, numpy_values: bool, capacity: int) -> dict[str, Any]:
    pub = Publisher(bootstrap, capacity=capacity, feature_names=list("abcde"))
    pub.prediction(model="bench", prediction=0.0, prediction_id="warm-up")  # starts the sender
    pub.flush(10)
    seconds = calls(pub, n, numpy_values)
    flushed = pub.flush(30 if "up" in name else 1)
    pub.close(5)
    s = pub.stats()
    row = {"case": name, "calls_per_s": n / seconds, "us_per_call": seconds / n * 1e6, "flushed": flushed, **s}
    print(
        f"{name:<44} {row['calls_per_s']:>10,.0f} calls/s  {row['us_per_call']:5.1f} µs/call  "
        f"sent {s['sent']:>7}  dropped {s['dropped']:>7}  failed {s['failed']}"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    n = args.events
    root = Path(tempfile.mkdtemp(prefix="wk-client-bench-"))
    settings = Settings(broker_port=free_port(), data_dir=root / "faust", partitions=3)
    proc = ensure_broker(settings)
    try:
        ensure_topics(settings)
        up = settings.kafka_bootstrap
        down = closed_port()
        print(f"{n:,} prediction() calls per case, 5 features each")
        case("broker up, Python floats, capacity 20,000", up, n, False, 20_000)
        case("broker up, numpy values, capacity 20,000", up, n, True, 20_000)
        case(f"broker up, Python floats, capacity {n:,}", up, n, False, n)
        case("broker down, Python floats, capacity 20,000", down, n, False, 20_000)
        case("broker down, numpy values, capacity 20,000", down, n, True, 20_000)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
