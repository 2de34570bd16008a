"""The two-shard router's split of an insert (tests/shard_router.py): every row on its model's shard."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from tests.shard_router import MODEL_KEY, SHARDS, Router, arrow_stream

MODELS = ("demo.churn", "demo.credit", "demo.fraud", "demo.spam")


@pytest.fixture(scope="module")
def router() -> Iterator[Router]:
    server = Router(0, [("127.0.0.1", 1), ("127.0.0.1", 2)])  # nothing is forwarded here
    try:
        yield server
    finally:
        server.server_close()


def outcome_batches(batches: int, rows: int, seed: int) -> pa.Table:
    """An outcome insert as the worker sends it: many small record batches, the models interleaved."""
    rng = np.random.default_rng(seed)
    parts = [
        pa.record_batch({"model": pa.array(rng.choice(MODELS, rows)), "prediction_id": pa.array(rng.random(rows))})
        for _ in range(batches)
    ]
    return pa.Table.from_batches(parts)


def test_an_arrow_insert_of_many_record_batches_puts_every_row_on_its_models_shard(router: Router) -> None:
    # The engine reads such a stream's batches in parallel: their rows' shards came back in another order
    # in about half of these splits before each row carried its place, and rows landed on the wrong shard.
    shard_of = {m: router.hash_rows(m.encode() + b"\n", "LineAsString", "cityHash64(line)")[0] for m in MODELS}
    assert set(shard_of.values()) == set(range(SHARDS)), shard_of  # both shards get rows: the split is tested
    for seed in range(10):
        table = outcome_batches(200, 20, seed)
        parts = router.split(arrow_stream(table), "ArrowStream", MODEL_KEY)
        got = {k: pa.ipc.open_stream(p).read_all() for k, p in enumerate(parts) if p is not None}
        assert sum(t.num_rows for t in got.values()) == table.num_rows
        for k, part in got.items():
            assert {shard_of[m] for m in part.column("model").to_pylist()} == {k}, f"seed {seed}: shard {k}"
        # Each shard's rows keep the order they came in.
        for k, part in got.items():
            mine = table.filter(pa.array([shard_of[m] == k for m in table.column("model").to_pylist()]))
            assert part.column("prediction_id").equals(mine.column("prediction_id"))
