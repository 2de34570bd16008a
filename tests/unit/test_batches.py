"""How the join stage cuts a run of Kafka messages into batches: one insert per table each, nothing lost."""

from __future__ import annotations

import time

import orjson
import pytest

from watchkeeper.settings import load_settings
from watchkeeper.streams.events import Prediction
from watchkeeper.streams.ingest import Batch, SourceMessage
from watchkeeper.streams.service import Worker

NOW = time.time()


def _envelope(start: int, n: int) -> bytes:
    events = [
        {"prediction_id": f"p{i}", "model": "m", "prediction": 0.5, "ts": NOW - 60} for i in range(start, start + n)
    ]
    return orjson.dumps({"events": events})


def _messages() -> list[SourceMessage]:
    values = [_envelope(i * 100, 100) for i in range(10)] + [b"{not json", _envelope(1000, 100)]
    return [SourceMessage("predictions", 0, offset, value, NOW) for offset, value in enumerate(values)]


def test_batches_hold_about_flush_rows_rows_and_cover_every_message_once_in_order() -> None:
    worker = Worker(load_settings(flush_rows=250))
    messages = _messages()
    batches = worker.build_batches(messages, Prediction)
    assert [m for part, _ in batches for m in part] == messages
    assert [b.count("predictions") for _, b in batches] == [300, 300, 300, 200]
    assert [len(b.dead_letters["ts"]) for _, b in batches] == [0, 0, 0, 1]
    tokens = {b.token("predictions") for _, b in batches}
    assert len(tokens) == len(batches)  # each batch is its own insert, deduplicated on its own


def test_one_batch_decodes_alike_however_the_run_is_cut() -> None:
    messages = _messages()
    whole = Worker(load_settings()).build_batch(messages, Prediction).tables()["predictions"]
    batches = Worker(load_settings(flush_rows=1)).build_batches(messages, Prediction)
    assert len(batches) == len(messages)
    parts = [b.tables()["predictions"] for _, b in batches if b.count("predictions")]
    assert sum(p.num_rows for p in parts) == whole.num_rows == 1100
    assert [r for p in parts for r in p.to_pylist()] == whole.to_pylist()


def test_a_decoder_bug_dead_letters_every_message_of_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Batch) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(Batch, "finish", broken)
    messages = _messages()
    [(part, batch)] = Worker(load_settings()).build_batches(messages, Prediction)
    assert part == messages
    assert batch.dead_letters["payload"] == [m.value for m in messages]
    assert set(batch.dead_letters["error"]) == {"internal error: RuntimeError"}
