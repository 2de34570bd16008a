"""The sharded model stage on the real embedded stack: every window written once, by its model's owner.

Two or three workers share a 6-partition topic. A backlog of 30 models goes
through them; each model's windows must be written by exactly one worker (the
holder of partition ``CRC32(model) % 6``) and the per-model counts must be
exact. Then one worker is killed (SIGKILL) and more is published, part of it
into windows the dead worker had written: the survivors take its models and
the counts stay exact.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.stack import Stack
from watchkeeper.detectors.timeutil import utc
from watchkeeper.windows.ownership import owner_partition

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 6
MODELS = tuple(f"sharded-{i:02d}" for i in range(30))
PER_MODEL = 40  # predictions per model and batch, 30 s apart: 4 windows of 300 s per batch
STEP = 30.0
# Per model: predictions and labels counted in its windows (every segment-'' metrics row, no FINAL:
# a window written twice without its older rows deleted would count twice).
COUNTS_SQL = (
    "SELECT model, toUInt64(sumIf(n, metric = 'predictions')), toUInt64(sumIf(value, metric = 'labelled')) "
    "FROM metrics FINAL WHERE segment = '' GROUP BY model ORDER BY model"
)
# Windows whose current rows were computed by more than one worker, or by none.
SHARED_WINDOWS_SQL = (
    "SELECT model, version, window_start, groupUniqArray(computed_by) FROM metrics FINAL "
    "GROUP BY model, version, window_start HAVING uniqExact(computed_by) != 1 OR has(groupUniqArray(computed_by), '')"
)
WRITERS_SQL = "SELECT model, groupUniqArray(computed_by) FROM metrics FINAL GROUP BY model ORDER BY model"


def write_batch(path: Path, start: float, seed: int, prefix: str) -> dict[str, tuple[int, int]]:
    """JSONL of PER_MODEL predictions per model (80 % labelled); returns model -> (predictions, labelled)."""
    rng = np.random.default_rng(seed)
    recs, expected = [], {}
    for model in MODELS:
        labelled = rng.uniform(size=PER_MODEL) < 0.8
        for i in range(PER_MODEL):
            pid = f"{prefix}-{model}-{i}"
            ts = start + i * STEP
            score = float(np.round(rng.uniform(), 3))
            recs.append({"type": "prediction", "prediction_id": pid, "model": model, "ts": ts, "prediction": score})
            if labelled[i]:
                y = int(rng.uniform() < score)
                recs.append({"type": "outcome", "prediction_id": pid, "model": model, "ts": ts + 20, "outcome": y})
        expected[model] = (PER_MODEL, int(labelled.sum()))
    recs.sort(key=lambda r: r["ts"])
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in recs) + b"\n")
    return expected


def owned_partitions(log: Path) -> set[int] | None:
    """The partitions the worker's model stage last said it owns (None before it said anything)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    found = re.findall(r"model stage: owns partitions \[([\d, ]*)\] of (\d+)", text)
    if not found:
        return None
    parts, n = found[-1]
    assert int(n) == PARTITIONS
    return {int(x) for x in parts.split(",") if x.strip()}


def wait_for_split(stack: Stack, workers: list[int], timeout: float = 120) -> list[set[int]]:
    """Wait until the live workers' model stages own disjoint partition sets covering the topic."""
    deadline = time.monotonic() + timeout
    split: list[set[int] | None] = []
    while time.monotonic() < deadline:
        split = [owned_partitions(stack.root / f"worker-{i}.log") for i in workers]
        if all(s is not None and s for s in split):
            owned = [s for s in split if s is not None]
            if sum(len(s) for s in owned) == PARTITIONS and set().union(*owned) == set(range(PARTITIONS)):
                return owned
        time.sleep(0.5)
    raise AssertionError(f"the workers did not split the partitions: {split}")


def add(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]]) -> list[tuple[str, int, int]]:
    return [(m, a[m][0] + b[m][0], a[m][1] + b[m][1]) for m in sorted(a)]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, partitions=str(PARTITIONS))
    s.start_services()
    yield s
    s.stop()


def test_every_partition_has_models() -> None:
    assert {owner_partition(m, PARTITIONS) for m in MODELS} == set(range(PARTITIONS))


@pytest.mark.parametrize("n_workers", [2, 3])
def test_each_window_is_written_once_by_its_owner_and_survivors_take_a_killed_workers_models(
    stack: Stack, tmp_path: Path, n_workers: int
) -> None:
    start = (time.time() - 6 * 3600) // 300 * 300
    first = write_batch(tmp_path / "first.jsonl", start, seed=n_workers, prefix="a")
    procs = [stack.start_worker() for _ in range(n_workers)]
    split = wait_for_split(stack, list(range(n_workers)))
    owner_of = {p: f":{proc.pid}" for proc, parts in zip(procs, split, strict=True) for p in parts}

    stack.cli("publish", "--quiet", str(tmp_path / "first.jsonl"))
    expected = [(m, *first[m]) for m in sorted(first)]
    assert stack.wait_for(COUNTS_SQL, expected, timeout=300) == expected
    store = stack.store()
    assert store.query_rows(SHARED_WINDOWS_SQL) == []
    writers = dict(store.query_rows(WRITERS_SQL))
    for model in MODELS:  # one writer per model: the worker holding its partition
        (who,) = writers[model]
        assert who.endswith(owner_of[owner_partition(model, PARTITIONS)]), (model, who)
    assert len({w for ws in writers.values() for w in ws}) == n_workers  # every worker did its share

    # Kill one worker; the next batch starts inside the last window of the first (rewritten elsewhere).
    victim = procs[0]
    victim_models = [m for m in MODELS if owner_partition(m, PARTITIONS) in split[0]]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    second = write_batch(tmp_path / "second.jsonl", start + PER_MODEL * STEP - 150, seed=10 + n_workers, prefix="b")
    stack.cli("publish", "--quiet", str(tmp_path / "second.jsonl"))
    expected = add(first, second)
    assert stack.wait_for(COUNTS_SQL, expected, timeout=300) == expected
    survivors = wait_for_split(stack, list(range(1, n_workers)))
    assert set().union(*survivors) == set(range(PARTITIONS))
    assert store.query_rows(SHARED_WINDOWS_SQL) == []
    # The dead worker's models: their windows of the second batch were written by a survivor.
    late = store.query_rows(
        "SELECT DISTINCT computed_by FROM metrics FINAL WHERE model IN {ms:Array(String)} "
        "AND window_start >= {t:DateTime('UTC')}",
        {"ms": victim_models, "t": utc(start + PER_MODEL * STEP)},
    )
    assert late and all(not who.endswith(f":{victim.pid}") for (who,) in late), late
    store.close()
