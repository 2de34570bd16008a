"""The columnar fast path and the pydantic models accept and refuse exactly the same events.

The pydantic models in ``streams/events.py`` are the contract. The hot path
checks runs of events column by column (``fast_columns``) and falls back to the
models event by event for whatever it cannot vouch for. Here both paths decode
the same messages — good events, bad events and everything in between, drawn by
hypothesis — and must give the same rows and the same dead letters (reasons,
indices, payloads).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchkeeper.streams.decode import fast_columns, model_columns
from watchkeeper.streams.events import MAX_FEATURES, Outcome, Prediction
from watchkeeper.streams.ingest import Batch, SourceMessage, epoch_millis

NOW = time.time()
RECENT = NOW - 3600  # inside the raw retention
MIN_TS = NOW - 30 * 86400  # the retention the worker would use (30 days)

GOOD = {
    "prediction_id": "p1",
    "model": "fraud",
    "version": "v3",
    "ts": RECENT,
    "prediction": 0.7,
    "features": {"amount": 12.5, "country": "fr", "new": True, "age": None, "n": 3},
    "segments": {"region": "eu"},
    "scores": {"a": 0.25, "b": 0.75},
    "latency_ms": 8,
    "fallback": False,
    "baseline": "a",
    "event_id": "e1",
}
GOOD_OUTCOME = {"prediction_id": "p1", "model": "fraud", "outcome": 1, "ts": RECENT}


def _texts(*sizes: int) -> st.SearchStrategy[str]:
    return st.sampled_from(["", "a", "é", "x y", "1.5", "NaN"]) | st.sampled_from(["z" * n for n in sizes])


numbers = st.sampled_from([0, 1, -1, 0.5, -0.0, 1e308, -1e-300, 2**53 + 1, 2**63 + 5, 2**64 - 1, -(2**63)])
scalars = (
    st.none()
    | st.booleans()
    | numbers
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(2**63), 2**64 - 1)
    | _texts(256, 257, 1024, 1025)
)
junk: st.SearchStrategy[Any] = st.one_of(st.just([]), st.just([1]), st.just({}), st.just({"a": [1]}), st.just([[1.0]]))
values = scalars | junk
names = st.sampled_from(["fraud", "m.v-1_x", "a" * 128, "a" * 129, "bad name", "x\n", "", "é"])
idents = st.sampled_from(["p", "p" * 256, "p" * 257, ""]) | st.text(max_size=5)
timestamps = st.sampled_from(
    [
        RECENT,
        int(RECENT),
        NOW + 3600,  # within a day ahead: fine
        NOW + 3 * 86400,  # too far ahead
        946684799,  # before 2000
        NOW - 60 * 86400,  # older than the retention: a dead letter of its own kind
        "2026-01-02T03:04:05Z",
        "2026-01-02T03:04:05",
        "2026-01-02T03:04:05.250+01:00",
        "yesterday",
        "",
        None,
        True,
        1e20,
    ]
)
feature_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**64 - 1),
    st.booleans(),
    st.none(),
    _texts(1024, 1025),
    junk,
)
features = st.one_of(
    st.dictionaries(st.sampled_from(["a", "b", "x" * 256, "x" * 257, ""]), feature_values, max_size=4),
    st.dictionaries(st.text(min_size=1, max_size=3), st.floats(allow_nan=False, allow_infinity=False), max_size=6),
    st.none(),
    st.just([1.0]),
    st.just({f"f{i}": 1.0 for i in range(MAX_FEATURES + 1)}),
)
segments = st.one_of(
    st.dictionaries(
        st.sampled_from(["region", "", "k" * 257]),
        _texts(256, 257) | st.integers(-(2**63), 2**63 - 1) | st.none(),
        max_size=3,
    ),
    st.none(),
    st.just({f"s{i}": "x" for i in range(65)}),
)
scores: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.just({}),
    st.dictionaries(
        st.sampled_from(["a", "b", ""]), st.sampled_from([0, 1, 0.5, 1.5, -0.1, True, "0.5", None]), max_size=3
    ),
)

PREDICTION_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "prediction_id": idents | values,
    "model": names | values,
    "version": st.sampled_from(["v1", "", "v" * 128, "v" * 129]) | values,
    "ts": timestamps | values,
    "prediction": values,
    "features": features,
    "segments": segments,
    "scores": scores,
    "latency_ms": st.sampled_from([0, 5, 5.5, -1, -0.0, "5", True, None]),
    "fallback": st.sampled_from([True, False, 0, 1, "true", None]),
    "baseline": values,
    "event_id": idents | st.none() | st.integers(-(2**63), 2**63 - 1),
    "extra": values,
}
OUTCOME_FIELDS = {k: PREDICTION_FIELDS[k] for k in ("prediction_id", "model", "ts", "event_id", "extra")}
OUTCOME_FIELDS["outcome"] = values


@st.composite
def events(draw: st.DrawFn, kind: type[Prediction] | type[Outcome]) -> Any:
    """Mostly a good event with a few fields changed or dropped; now and then not an object at all."""
    if draw(st.integers(0, 30)) == 0:
        return draw(values)
    event = dict(GOOD if kind is Prediction else GOOD_OUTCOME)
    fields = PREDICTION_FIELDS if kind is Prediction else OUTCOME_FIELDS
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        if draw(st.booleans()) and name in event:
            del event[name]
        else:
            event[name] = draw(fields[name])
    return event


def _plain(value: Any) -> Any:
    """Rows compared as data: NaN equal to NaN."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _decode(messages: list[bytes | None], kind: type[Prediction] | type[Outcome], fast: bool) -> Batch:
    batch = Batch(fast=fast)
    for offset, value in enumerate(messages):
        broker_ts = None if offset % 3 == 2 else RECENT + offset
        batch.add(SourceMessage("t", 1, offset, value, broker_ts), kind, 1 << 20, MIN_TS)
    batch.finish()
    return batch


def assert_same_answers(messages: list[bytes | None], kind: type[Prediction] | type[Outcome]) -> None:
    fast, reference = _decode(messages, kind, True), _decode(messages, kind, False)
    got, want = fast.tables(), reference.tables()
    assert got.keys() == want.keys()
    for table in want:
        assert _plain(got[table].to_pylist()) == _plain(want[table].to_pylist())
    columns = ("topic", "partition", "offset", "event_index", "model", "error", "payload")
    assert [fast.dead_letters[c] for c in columns] == [reference.dead_letters[c] for c in columns]
    assert fast.dead_letter_messages == reference.dead_letter_messages


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events(Prediction), min_size=1, max_size=40))
def test_envelopes_of_predictions_decode_alike(batch: list[Any]) -> None:
    assert_same_answers([orjson.dumps({"events": batch})], Prediction)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events(Outcome), min_size=1, max_size=40))
def test_envelopes_of_outcomes_decode_alike(batch: list[Any]) -> None:
    assert_same_answers([orjson.dumps({"events": batch})], Outcome)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        events(Prediction).map(orjson.dumps)
        | st.sampled_from([b"{bad", b"[1, 2]", b'{"events": 3}', b"", None, b'{"events": []}']),
        min_size=1,
        max_size=30,
    )
)
def test_runs_of_single_event_messages_decode_alike(messages: list[bytes | None]) -> None:
    """Events of many messages are checked together: reasons, indices and offsets stay per message."""
    assert_same_answers(messages, Prediction)


@settings(max_examples=300, deadline=None)
@given(st.lists(events(Prediction), min_size=1, max_size=8))
def test_what_the_fast_path_accepts_the_models_accept_with_the_same_values(raw: list[Any]) -> None:
    """Straight from Python objects too (NaN, infinities and bytes never come out of JSON, but may come in here)."""
    cols = fast_columns(raw, Prediction)
    if cols is None:
        return
    models = [Prediction.model_validate(r) for r in raw]  # raises if the fast path accepted a bad event
    want = model_columns(models, Prediction)
    assert cols.keys() == want.keys()
    for name, column in want.items():
        if name == "ts":
            np.testing.assert_array_equal(cols[name], column)
        else:
            assert _plain(cols[name].to_pylist()) == _plain(column.to_pylist()), name


@pytest.mark.parametrize(
    "patch",
    [
        {"prediction": math.nan},
        {"prediction": math.inf},
        {"features": {"a": -math.inf}},
        {"latency_ms": math.nan},
        {"scores": {"a": math.nan}},
        {"ts": math.inf},
        {"baseline": math.nan},
        {"model": b"fraud"},
        {"prediction_id": b"p"},
        {"features": {1: 1.0}},
        {"segments": {"a": b"x"}},
    ],
)
def test_values_json_cannot_carry_are_left_to_the_models(patch: dict[str, Any]) -> None:
    assert fast_columns([{**GOOD, **patch}], Prediction) is None


def test_ordinary_events_take_the_fast_path() -> None:
    """Numbers, categories, nulls, class predictions, RFC 3339 times: no model built per event."""
    ordinary = [
        GOOD,
        {"prediction_id": "p2", "model": "fraud", "prediction": 1},
        {"prediction_id": "p3", "model": "churn", "prediction": "cat", "ts": "2026-01-02T03:04:05Z", "baseline": 0.5},
        {
            "prediction_id": "p4",
            "model": "churn",
            "prediction": 0.1,
            "features": {"x": 1, "y": None},
            "latency_ms": None,
        },
    ]
    assert fast_columns(ordinary, Prediction) is not None
    assert fast_columns([GOOD_OUTCOME, {**GOOD_OUTCOME, "outcome": "cat", "event_id": "o2"}], Outcome) is not None


def test_an_event_without_event_id_takes_its_prediction_id_on_both_paths() -> None:
    """A run where no event has an event_id, one where some have, and one where all have."""
    bare = [{k: v for k, v in GOOD.items() if k != "event_id"} | {"prediction_id": f"p{i}"} for i in range(3)]
    for run in (
        bare,
        [*bare[:2], {**bare[2], "event_id": "own"}],
        [{**e, "event_id": f"e{i}"} for i, e in enumerate(bare)],
    ):
        fast = fast_columns(run, Prediction)
        assert fast is not None
        expected = [Prediction.model_validate(e).event_id for e in run]
        assert (
            fast["event_id"].to_pylist()
            == model_columns([Prediction.model_validate(e) for e in run], Prediction)["event_id"].to_pylist()
            == expected
        )
    assert expected == ["e0", "e1", "e2"]


def test_times_are_stored_as_a_datetime_would_store_them() -> None:
    """Milliseconds as the row path gave them: ``datetime.fromtimestamp`` (microseconds, half to even),
    then clickhouse-connect's DateTime64(3) conversion (whole seconds, plus the microseconds' milliseconds)."""
    from datetime import UTC, datetime

    rng = np.random.default_rng(1)
    ts = np.concatenate([RECENT + rng.uniform(0, 86400, 20000), np.round(RECENT) + np.arange(2000) * 0.0005])
    want = []
    for t in ts.tolist():
        dt = datetime.fromtimestamp(t, UTC)
        want.append((math.floor(dt.timestamp()) * 1_000_000 + dt.microsecond) * 1000 // 1_000_000)
    assert epoch_millis(ts).tolist() == want


def test_one_bad_event_does_not_slow_its_envelope_down_to_the_models() -> None:
    """A refused run is halved until the bad event is alone: its neighbours keep the fast path."""
    calls = []
    import watchkeeper.streams.ingest as ingest

    original = ingest.validate_event

    def counting(*args: Any) -> Any:
        calls.append(args[2])
        return original(*args)

    events = [{**GOOD, "prediction_id": f"p{i}", "event_id": f"e{i}"} for i in range(500)]
    events[137]["model"] = "bad name"
    ingest.validate_event = counting  # type: ignore[assignment]
    try:
        batch = _decode([orjson.dumps({"events": events})], Prediction, True)
    finally:
        ingest.validate_event = original  # type: ignore[assignment]
    assert batch.count("predictions") == 499 and batch.dead_letters["event_index"] == [137]
    assert len(calls) <= ingest.SMALL_RUN and 137 in calls
