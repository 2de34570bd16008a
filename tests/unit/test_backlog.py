"""While the ingest agents drain a backlog, the model stage's passes wait (bounded)."""

from __future__ import annotations

import socket

import pytest

from watchkeeper.settings import Settings
from watchkeeper.sinks.writer import StoreUnavailable
from watchkeeper.streams import service
from watchkeeper.streams.service import Worker


def _worker() -> Worker:
    """A worker whose store does not answer: a pass that runs raises, a pass that waits returns 0."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    return Worker(Settings(store_port=port))


def test_a_pass_waits_while_an_agent_is_behind_and_runs_once_it_caught_up() -> None:
    worker = _worker()
    with pytest.raises(StoreUnavailable):
        worker.close_windows()  # no backlog: the pass runs
    worker.note_take("Prediction", behind=True)
    worker.note_take("Outcome", behind=False)
    assert worker.model_stage_waits()
    assert worker.close_windows() == 0  # the store is not even asked
    with pytest.raises(StoreUnavailable):
        worker.close_windows(force=True)  # a forced pass never waits
    worker.note_take("Prediction", behind=False)  # the backlog's tail
    assert not worker.model_stage_waits()
    with pytest.raises(StoreUnavailable):
        worker.close_windows()


def test_a_pass_waits_at_most_the_bound_after_the_last_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = _worker()
    with pytest.raises(StoreUnavailable):
        worker.close_windows()
    worker.note_take("Prediction", behind=True)
    assert worker.close_windows() == 0
    monkeypatch.setattr(service, "MODEL_STAGE_WAIT_S", 0.0)  # the bound has passed since the last pass
    with pytest.raises(StoreUnavailable):
        worker.close_windows()


def test_a_stale_report_of_a_backlog_does_not_hold_the_model_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent that took a full batch and then nothing more (the backlog ended on a full batch)."""
    worker = _worker()
    with pytest.raises(StoreUnavailable):
        worker.close_windows()
    worker.note_take("Prediction", behind=True)
    monkeypatch.setattr(service, "BEHIND_FRESH_S", 0.0)
    assert not worker.model_stage_waits()
