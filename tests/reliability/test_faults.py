"""Faults on the real embedded stack: nothing lost, nothing double counted.

Each test states its invariant and checks it exactly against counts computed
from the input file.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODELS = ("m1", "m2", "m3")
COUNTS_SQL = (
    "SELECT model, toUInt64(sumIf(n, metric = 'predictions')), toUInt64(sumIf(value, metric = 'labelled')), "
    "toUInt64(sumIf(value, metric IN ('tp', 'tn'))) FROM metrics FINAL WHERE segment = '' GROUP BY model ORDER BY model"
)


def write_file(path: Path, n: int, seed: int, prefix: str = "") -> list[tuple[str, int, int, int]]:
    """JSONL of predictions and outcomes; returns the expected (model, predictions, labelled, correct)."""
    rng = np.random.default_rng(seed)
    start = (time.time() - 3 * 3600) // 300 * 300
    expected = []
    recs = []
    for model in MODELS:
        score = np.round(rng.uniform(size=n), 3)
        y = (rng.uniform(size=n) < score).astype(int)
        labelled = rng.uniform(size=n) < 0.8
        ts = start + np.arange(n) * 0.5
        for i in range(n):
            pid = f"{prefix}{model}-{i}"
            recs.append(
                {
                    "type": "prediction",
                    "prediction_id": pid,
                    "model": model,
                    "ts": float(ts[i]),
                    "prediction": float(score[i]),
                }
            )
            if labelled[i]:
                recs.append(
                    {
                        "type": "outcome",
                        "prediction_id": pid,
                        "model": model,
                        "ts": float(ts[i] + 90),
                        "outcome": int(y[i]),
                    }
                )
        correct = int((((score >= 0.5).astype(int) == y) & labelled).sum())
        expected.append((model, n, int(labelled.sum()), correct))
    recs.sort(key=lambda r: r["ts"])
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in recs) + b"\n")
    return expected


def assigned_predictions(log: Path) -> set[int] | None:
    """The partitions of `predictions` in the worker's latest assignment, from its log."""
    text = log.read_text(errors="replace") if log.exists() else ""
    tables = text.split("Setting newly assigned partitions")
    if len(tables) < 2:
        return None
    m = re.search(r"\|\s*predictions\s*\|\s*\{([\d, ]*)\}", tables[-1].split("for group")[0])
    return {int(x) for x in m.group(1).split(",")} if m else set()


def publish_slowly(stack: Stack, path: Path, chunks: int = 10) -> None:
    """Publish in chunks so that the stream is still flowing while faults happen."""
    lines = path.read_bytes().splitlines()
    size = len(lines) // chunks + 1
    for i in range(chunks):
        part = path.with_suffix(f".part{i}")
        part.write_bytes(b"\n".join(lines[i * size : (i + 1) * size]) + b"\n")
        stack.cli("publish", "--quiet", str(part))


def kill_mid_stream(stack: Stack, worker: subprocess.Popen[bytes], path: Path) -> None:
    """SIGKILL ``worker`` once it has committed part of the file and while the rest is still being
    published; assert the kill landed mid-stream (committed offsets < the file's messages)."""
    failed: list[BaseException] = []

    def publish() -> None:
        try:
            publish_slowly(stack, path, 20)
        except BaseException as exc:  # re-raised in the test's thread
            failed.append(exc)

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and publisher.is_alive():
            if stack.offsets("predictions")[0] > 0:
                break
            time.sleep(0.2)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        at_kill, _ = stack.offsets("predictions")
    finally:
        publisher.join()
    if failed:
        raise failed[0]
    _, published = stack.offsets("predictions")
    assert 0 < at_kill < published, (at_kill, published)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, partitions="4")
    s.start_services()
    yield s
    s.stop()


def test_kill_9_mid_stream_then_restart_gives_exact_totals(stack: Stack, tmp_path: Path) -> None:
    """Invariant: after kill -9 and a restart, every model's predictions, labels and correct
    answers equal the file's — at-least-once redelivery is absorbed by idempotent writes."""
    expected = write_file(tmp_path / "a.jsonl", 4000, seed=1)
    worker = stack.start_worker()
    kill_mid_stream(stack, worker, tmp_path / "a.jsonl")
    stack.start_worker()
    seen = stack.wait_for(COUNTS_SQL, expected, timeout=240)
    assert seen == expected


def test_two_workers_one_killed_partitions_move_totals_exact(stack: Stack, tmp_path: Path) -> None:
    """Invariant: two workers share the partitions; killing one moves its partitions to the
    other, and the totals stay exact."""
    expected = write_file(tmp_path / "b.jsonl", 3000, seed=2)
    a = stack.start_worker()
    stack.start_worker()
    deadline = time.monotonic() + 60
    split: list[set[int] | None] = [None, None]
    while time.monotonic() < deadline:  # both join the group and split the 4 partitions
        split = [assigned_predictions(stack.root / f"worker-{i}.log") for i in (0, 1)]
        if all(split) and split[0] | split[1] == {0, 1, 2, 3}:  # type: ignore[operator]
            break
        time.sleep(0.5)
    assert split[0] and split[1] and not split[0] & split[1], split
    assert split[0] | split[1] == {0, 1, 2, 3}
    kill_mid_stream(stack, a, tmp_path / "b.jsonl")
    seen = stack.wait_for(COUNTS_SQL, expected, timeout=240)
    assert seen == expected


def test_store_down_for_a_while_then_drains(stack: Stack, tmp_path: Path) -> None:
    """Invariant: with the store stopped the worker retries without committing offsets past
    unwritten rows; once it is back, the totals are exact."""
    expected = write_file(tmp_path / "c.jsonl", 3000, seed=3)
    stack.start_worker()
    store_proc = next(p for p in stack.procs if "watchkeeper.sinks.embedded.server" in " ".join(map(str, p.args)))
    time.sleep(6)
    store_proc.send_signal(signal.SIGTERM)
    store_proc.wait(30)
    publish_slowly(stack, tmp_path / "c.jsonl", chunks=3)
    time.sleep(5)  # the worker is now retrying
    s = stack.settings
    restarted = subprocess.Popen(
        [sys.executable, "-m", "watchkeeper.sinks.embedded.server"]
        + ["--path", str(s.store_path), "--port", str(s.store_port)],
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack.procs.append(restarted)
    seen = stack.wait_for(COUNTS_SQL, expected, timeout=240)
    assert seen == expected


def test_broker_restart_worker_resumes_without_manual_action(stack: Stack, tmp_path: Path) -> None:
    """Invariant: after the broker restarts (the embedded one forgets everything), the same worker
    reconnects by itself and counts what is published afterwards, exactly, on top of what it had."""
    from watchkeeper.admin import ensure_topics
    from watchkeeper.embedded import ensure_broker

    first = write_file(tmp_path / "d1.jsonl", 1000, seed=4, prefix="before-")
    worker = stack.start_worker()
    stack.cli("publish", "--quiet", str(tmp_path / "d1.jsonl"))
    assert stack.wait_for(COUNTS_SQL, first, timeout=180) == first
    broker = next(p for p in stack.procs if "tansu" in " ".join(map(str, p.args)))
    broker.terminate()
    broker.wait(20)
    time.sleep(3)
    restarted = ensure_broker(stack.settings)
    assert restarted is not None
    stack.procs.append(restarted)
    ensure_topics(stack.settings)
    second = write_file(tmp_path / "d2.jsonl", 1000, seed=5, prefix="after-")
    stack.cli("publish", "--quiet", str(tmp_path / "d2.jsonl"))
    expected = [(m, a[1] + b[1], a[2] + b[2], a[3] + b[3]) for a, b in zip(first, second, strict=True) for m in [a[0]]]
    assert stack.wait_for(COUNTS_SQL, expected, timeout=240) == expected
    assert worker.poll() is None  # the same worker, never restarted by hand
