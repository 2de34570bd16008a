"""Set-based carry (windows/carry.py): the statements of a pass do not grow with the carried alarms.

Its own module, so its own store: the passes compared write only the windows of their own models."""

from __future__ import annotations

import pytest

from tests.integration.test_carry import WARM, WORKER_SETTINGS, events, first_carried, publish
from watchkeeper.streams.service import Worker
from watchkeeper.windows.closer import WindowCloser

pytestmark = pytest.mark.integration

__all__ = ["WORKER_SETTINGS"]  # the worker fixture's settings (tests/integration/conftest.py)


def test_the_statements_of_a_pass_do_not_grow_with_the_carried_alarms(worker: Worker) -> None:
    """Set-based: a pass that writes the windows of one model with carried alarms and a pass that writes four
    such models cost the same statements."""
    counts = []
    for names in (["one"], ["two", "three", "four", "five"]):
        for i, m in enumerate(names):
            publish(worker, events(m, 2 + i % 2, 0.5, WARM + 900))
        closer = WindowCloser(worker.store, worker.settings.window_config())
        closer.tick(force=True)
        assert all(first_carried(worker, m)["drifted"] for m in names)
        counts.append(closer.last_pass_statements)
    assert counts[0] == counts[1], counts
