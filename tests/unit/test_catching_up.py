"""What tells the model stage that the ingest is catching up on a backlog (streams/agents/ingest.py ``waiting``,
``Worker.note_backlog`` and ``Worker.catching_up``), on a stand-in of Faust's consumer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from faust.types import TP

from watchkeeper.streams.agents.ingest import waiting
from watchkeeper.streams.service import Worker


def _app(read: dict[TP, int], committed: dict[TP, int], high: dict[TP, int | None]) -> SimpleNamespace:
    consumer = SimpleNamespace(
        assignment=lambda: set(high), _read_offset=read, _committed_offset=committed, highwater=high.__getitem__
    )
    return SimpleNamespace(consumer=consumer)


def test_waiting_counts_what_the_broker_holds_beyond_what_was_fetched_or_committed_of_the_topic() -> None:
    p0, p1, p2, o0 = TP("predictions", 0), TP("predictions", 1), TP("predictions", 2), TP("outcomes", 0)
    app = _app(
        read={p0: 599, p1: 10},  # the last offsets fetched into the worker's streams
        committed={p1: 40, p2: 5},  # p1 committed past its read offset (a restart): the commit counts
        high={p0: 1000, p1: 100, p2: None, o0: 500},  # p2's high watermark not known yet
    )
    assert waiting(app, "predictions") == 400 + 60
    assert waiting(app, "outcomes") == 500  # nothing fetched nor committed: all of it waits
    assert waiting(SimpleNamespace(), "predictions") == 0  # no consumer yet
    assert waiting(None, "predictions") == 0


def test_an_agent_is_catching_up_while_more_than_a_take_waits_and_only_as_its_last_take_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = Worker.__new__(Worker)  # the backlog record alone: no settings needed
    worker._backlog = {}
    assert not worker.catching_up()
    worker.note_backlog("predictions", 570, 30)
    worker.note_backlog("outcomes", 0, 12)
    assert worker.catching_up()  # either agent
    worker.note_backlog("predictions", 30, 30)  # one more take's worth: the tail of a backlog, or keeping up
    assert not worker.catching_up()
    worker.note_backlog("predictions", 570, 30)
    clock = worker._backlog["predictions"][1]
    monkeypatch.setattr("watchkeeper.streams.service.time.monotonic", lambda: clock + 6)
    assert not worker.catching_up(), "an agent that stopped taking (the store down, say) is not catching up"
