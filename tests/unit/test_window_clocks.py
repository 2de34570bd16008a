"""The two clocks of a window (windows/closer.py): when a window is written, and whether finally."""

from __future__ import annotations

from typing import Any

from watchkeeper.sinks.schema import label_free, label_free_drift
from watchkeeper.windows.closer import REWRITE_EVERY_SECONDS, WindowCloser
from watchkeeper.windows.config import WindowConfig, WindowKey

W, GRACE, DELAY, ORPHANS = 300, 10, 600, 3600


class NoStore:
    def query_rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return []


def closer() -> WindowCloser:
    cfg = WindowConfig(window_seconds=W, grace_seconds=GRACE, label_delay_seconds=DELAY, orphan_after_seconds=ORPHANS)
    return WindowCloser(NoStore(), cfg)  # type: ignore[arg-type]


def test_a_pending_window_is_written_provisional_at_its_end_plus_the_grace_and_final_after_the_delay() -> None:
    c = closer()
    key = WindowKey("m", "v1", 0)
    c.pending[key], c.pending_since[key] = 1.0, 0.0
    c.watermark["m"] = W + GRACE - 1
    assert c.closed(idle=False) == {}
    c.watermark["m"] = W + GRACE
    assert c.closed(idle=False) == {key: False}
    assert c.closed(idle=True) == {key: True}  # an idle stream flushes its windows final
    c.watermark["m"] = W + DELAY
    assert c.closed(idle=False) == {key: True}


def test_a_provisional_window_is_rewritten_only_for_new_rows_until_its_final_write() -> None:
    c = closer()
    key = WindowKey("m", "v1", 0)
    c.provisional.add(key)  # written before, no new labels since
    c.watermark["m"] = W + GRACE + 60
    assert c.closed(idle=False) == {}
    c.pending[key], c.pending_since[key] = 2.0, 1.0  # new labels for it
    assert c.closed(idle=False) == {key: False}
    # Labels trickle in on every pass: a provisional window is written again at most every few seconds.
    c.written_at[key] = 100.0
    assert c.closed(idle=False, now=100.0 + REWRITE_EVERY_SECONDS / 2) == {}
    assert c.closed(idle=False, now=100.0 + REWRITE_EVERY_SECONDS) == {key: False}
    del c.pending[key], c.pending_since[key]
    c.watermark["m"] = W + DELAY
    assert c.closed(idle=False) == {key: True}  # its final write, with or without new rows


def test_outcome_windows_keep_the_orphan_horizon() -> None:
    c = closer()
    key = WindowKey("m", "", 0)
    c.pending[key], c.pending_since[key] = 1.0, 0.0
    c.watermark["m"] = W + DELAY
    assert c.closed(idle=False) == {}
    c.watermark["m"] = W + ORPHANS
    assert c.closed(idle=False) == {key: True}


def test_which_results_need_labels() -> None:
    free = ["predictions", "fallback_rate", "latency_p95", "latency_bucket", "est_accuracy", "dead_letter_rate"]
    based = ["accuracy", "labelled", "label_rate", "late_labels", "ece", "expected_cost", "lift_accuracy",
             "equal_opportunity_difference", "tpr", "ab_error_decision", "score_hist_pos"]  # fmt: skip
    assert all(label_free(m) for m in free) and not any(label_free(m) for m in based)
    assert label_free_drift("amount") and label_free_drift("__multivariate__")
    assert not label_free_drift("__label__") and not label_free_drift("__error__")


def test_a_row_is_early_when_its_own_window_is_and_an_ab_row_when_either_versions_is() -> None:
    from datetime import UTC, datetime

    from watchkeeper.windows.closer import _early

    start = datetime(2026, 1, 1, tzinfo=UTC)
    early = {WindowKey("m", "v2", int(start.timestamp()))}
    assert _early({"model": "m", "version": "v2", "window_start": start}, early)
    assert not _early({"model": "m", "version": "v1", "window_start": start}, early)
    assert _early({"model": "m", "version": "v2 vs v1", "window_start": start}, early)
