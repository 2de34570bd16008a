"""``bench.looks``: the simulation behind the drift looks' level and delay runs the product's path.

The ``--quick`` sizes, in this process: the result has every part, the looks are run on
chance alarms, and a 1 sigma shift in the middle of a window is decided by a look.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench import looks
from watchkeeper.windows.drift import SAMPLE
from watchkeeper.windows.partial import LOOK_EVENTS, LOOK_EVERY_SECONDS


@pytest.fixture(scope="module")
def quick() -> dict[str, Any]:
    return looks.run(quick=True, workers=1)


def test_the_quick_run_has_every_part_with_its_exposure(quick: dict[str, Any]) -> None:
    assert set(quick) == {"stable", "stressed", "power", "power_whole_window_so_far"}
    for row in quick["stable"] + quick["stressed"]:
        assert row["model_months"] > 0 and row["events"] > 0
        assert row["looks_run"] <= 3 * row["windows_with_alarm"]  # at most MAX_LOOKS a window
        assert row["confirmed_by_look"] <= row["windows_with_alarm"]
        assert row["confirmed_by_look_upper95_per_model_month"] > row["confirmed_by_look_per_model_month"]
    assert {(r["events_per_second"], r["features"]) for r in quick["stable"]} == {(1.0, 3), (10.0, 3)}
    assert set(looks.measures(quick)) == {t.measure for t in looks.TARGETS}


def test_chance_alarms_are_judged_by_looks(quick: dict[str, Any]) -> None:
    """With the ARL lowered, the stable streams alarm, and each alarmed window gets its looks."""
    assert sum(r["alarms"] for r in quick["stressed"]) > 0
    assert sum(r["looks_run"] for r in quick["stressed"]) >= sum(r["windows_with_alarm"] for r in quick["stressed"])


def test_an_injected_shift_is_decided_by_a_look_within_a_few_marks(quick: dict[str, Any]) -> None:
    (row,) = quick["power"]
    assert row["shift_sigma"] == 1.0 and row["runs"] == 3
    assert row["missed"] == 0 and row["decided_by_look"] == row["runs"]
    assert 0 < row["median_seconds"] <= 3 * LOOK_EVERY_SECONDS + LOOK_EVERY_SECONDS
    # All the events after the alarm, not only its last 45 s: a shift starts before its alarm, so as fast.
    (whole,) = quick["power_whole_window_so_far"]
    assert whole["missed"] == 0 and whole["median_seconds"] <= 3 * LOOK_EVERY_SECONDS + LOOK_EVERY_SECONDS


def test_the_memory_store_answers_the_looks_query_as_written_and_nothing_else() -> None:
    store = looks.MemoryStore(("f0",))
    t = np.array([1000, 2000, 3000, 4000], dtype=np.int64)
    store.events = looks.Events(t, np.arange(4.0)[:, None], np.full(4, 0.5))
    window = {"due": [("sim", "v1", 0)], "cap": 5000}
    table = store.query_arrow(LOOK_EVENTS, {**window, "lo": [2000], "hi": [4000]})
    assert table["t"].to_pylist() == [2000, 3000]  # in [lo, hi), in event order
    assert set(table["ws"].to_pylist()) == {0} and set(table["model"].to_pylist()) == {"sim"}
    assert store.query_arrow(LOOK_EVENTS, {**window, "lo": [0], "hi": [5000], "cap": 1})["t"].to_pylist() == [1000]
    with pytest.raises(AssertionError, match="unexpected query"):
        store.query_arrow(SAMPLE, {})
