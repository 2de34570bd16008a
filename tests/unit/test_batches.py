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


def _mixed_messages() -> list[SourceMessage]:
    """Envelopes where every third event is past the raw retention and every seventh has no time (and the
    message none either), beside a single expired event: what a replayed old backlog looks like."""
    old = NOW - 40 * 86400  # past raw_ttl_days (30 by default)
    out = []
    for m in range(4):
        events = []
        for i in range(m * 50, m * 50 + 50):
            e: dict[str, object] = {"prediction_id": f"p{i}", "model": f"m{i % 3}", "prediction": 0.5}
            if i % 7 != 0:
                e["ts"] = old if i % 3 == 0 else NOW - 60
            events.append(e)
        out.append(SourceMessage("predictions", 0, m, orjson.dumps({"events": events}), None))
    single = orjson.dumps({"prediction_id": "lone", "model": "m0", "prediction": 0.1, "ts": old})
    return [*out, SourceMessage("predictions", 0, 4, single, NOW)]


def test_expired_and_timeless_events_are_refused_on_the_fast_path_as_the_reference_refuses_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    messages = _mixed_messages()
    reference = Batch(fast=False)
    for msg in messages:
        reference.add(msg, Prediction, 1 << 20, min_ts=NOW - 30 * 86400)
    expected_rows = reference.tables()["predictions"].to_pylist()

    def per_event(*args: object) -> None:
        raise AssertionError("the fast path fell back to validating event by event")

    monkeypatch.setattr("watchkeeper.streams.ingest.validate_event", per_event)
    fast = Batch()
    for msg in messages:
        fast.add(msg, Prediction, 1 << 20, min_ts=NOW - 30 * 86400)
    rows = fast.tables()["predictions"].to_pylist()
    assert [r["prediction_id"] for r in rows] == [r["prediction_id"] for r in expected_rows]
    assert len(rows) == sum(1 for i in range(200) if i % 7 != 0 and i % 3 != 0)
    # The same dead letters: each expired or timeless event alone, with its index, model and own bytes.
    for column in ("offset", "event_index", "model", "error", "payload"):
        assert fast.dead_letters[column] == reference.dead_letters[column], column
    assert len(fast.dead_letters["error"]) == 200 - len(rows) + 1
    assert fast.dead_letters["event_index"][-1] == -1  # the single event is refused whole
