"""Event schema: every field rule, envelopes with good and bad events, the committed JSON Schema."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.streams.decode import decode_message
from watchkeeper.streams.events import Outcome, Prediction, json_schemas

GOOD = {"prediction_id": "p1", "model": "fraud-v_2.x", "prediction": 0.7}


def decode_one(doc: object, kind: type = Prediction):
    return decode_message(orjson.dumps(doc), kind)


def test_minimal_prediction_gets_defaults() -> None:
    good, bad = decode_one(GOOD)
    assert not bad
    e = good[0]
    assert (e.version, e.ts, e.features, e.segments, e.fallback, e.event_id) == (
        "unknown",
        None,
        {},
        {},
        False,
        "p1",
    )


@pytest.mark.parametrize(
    "ts, expected",
    [
        ("2026-01-02T03:04:05Z", 1767323045.0),
        ("2026-01-02T03:04:05+01:00", 1767319445.0),
        ("2026-01-02T03:04:05.250Z", 1767323045.25),
        (1767323045, 1767323045.0),
        (1767323045.5, 1767323045.5),
    ],
)
def test_ts_accepts_rfc3339_and_epoch_seconds(ts: object, expected: float) -> None:
    good, bad = decode_one({**GOOD, "ts": ts})
    assert not bad and good[0].ts == expected


@pytest.mark.parametrize(
    "patch, reason",
    [
        ({"prediction_id": None}, "prediction_id"),
        ({"prediction_id": ""}, "prediction_id"),
        ({"prediction_id": 12}, "prediction_id"),
        ({"model": "has space"}, "model"),
        ({"model": "x" * 129}, "model"),
        ({"model": "quote'"}, "model"),
        ({"prediction": None}, "prediction"),
        ({"prediction": [1]}, "prediction"),
        ({"prediction": True}, "prediction"),
        ({"ts": "yesterday"}, "ts"),
        ({"ts": 1767323045000}, "ts"),  # milliseconds: far future
        ({"ts": 5}, "ts"),  # 1970
        ({"ts": True}, "ts"),
        ({"features": {"a": [1, 2]}}, "feature"),
        ({"features": {"a": {"b": 1}}}, "feature"),
        ({"features": [1, 2]}, "features"),
        ({"features": {f"f{i}": 1 for i in range(1001)}}, "features"),
        ({"scores": {"a": 1.5}}, "scores"),
        ({"scores": {}}, "scores"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": "fast"}, "latency_ms"),
        ({"fallback": "yes"}, "fallback"),
        ({"segments": {"region": 3}}, "segment"),
        ({"baseline": {"x": 1}}, "baseline"),
        ({"version": ""}, "version"),
        ({"event_id": ""}, "event_id"),
    ],
)
def test_invalid_prediction_fields_are_rejected_with_the_field_named(patch: dict, reason: str) -> None:
    doc = {**GOOD}
    for k, v in patch.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    good, bad = decode_one(doc)
    assert not good
    assert len(bad) == 1 and reason in bad[0].reason


def test_features_accept_number_string_bool_null() -> None:
    good, _ = decode_one({**GOOD, "features": {"a": 1, "b": "x", "c": True, "d": None}})
    assert good[0].features == {"a": 1.0, "b": "x", "c": 1.0, "d": None}


def test_nan_and_infinity_are_rejected() -> None:
    # JSON has no NaN, but other encoders write it: the event is refused for it, naming the field.
    _, bad = decode_message(b'{"prediction_id": "a", "model": "m", "prediction": NaN}', Prediction)
    assert len(bad) == 1 and bad[0].reason.startswith("prediction") and "NaN and infinity" in bad[0].reason
    with pytest.raises(ValueError):
        Prediction.model_validate({**GOOD, "prediction": float("inf")})
    with pytest.raises(ValueError):
        Prediction.model_validate({**GOOD, "features": {"a": float("nan")}})


def test_outcome_rules() -> None:
    good, bad = decode_one({"prediction_id": "p", "model": "m", "outcome": 1}, Outcome)
    assert good[0].outcome == 1.0 and good[0].event_id == "p"
    good, bad = decode_one({"prediction_id": "p", "model": "m", "outcome": "cat", "event_id": "e"}, Outcome)
    assert good[0].outcome == "cat" and good[0].event_id == "e"
    _, bad = decode_one({"prediction_id": "p", "model": "m"}, Outcome)
    assert "outcome" in bad[0].reason


def test_envelope_keeps_good_neighbours_of_a_bad_event() -> None:
    events = [
        GOOD,
        {**GOOD, "prediction_id": "p2", "prediction": "NaN-ish", "model": "bad name"},
        {**GOOD, "prediction_id": "p3"},
    ]
    good, bad = decode_message(orjson.dumps({"events": events}), Prediction)
    assert [e.prediction_id for e in good] == ["p1", "p3"]
    assert len(bad) == 1 and bad[0].index == 1 and b"p2" in bad[0].payload


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"{not json", "bad JSON"),
        (b"\xff\xfe\x00", "bad JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"events": 3}', "must be a list"),
        (None, "empty"),
    ],
)
def test_bad_messages(raw: bytes | None, reason: str) -> None:
    good, bad = decode_message(raw, Prediction)
    assert not good and reason in bad[0].reason and bad[0].index == -1


def test_oversized_message_is_rejected_without_parsing() -> None:
    big = orjson.dumps({"events": [GOOD] * 1000})
    good, bad = decode_message(big, Prediction, max_bytes=1024)
    assert not good and "exceeds" in bad[0].reason


def test_future_timestamp_within_a_day_is_accepted() -> None:
    good, _ = decode_one({**GOOD, "ts": time.time() + 3600})
    assert good


def test_committed_json_schema_matches_the_models() -> None:
    folder = Path(__file__).resolve().parents[2] / "streams" / "schemas"
    for name, schema in json_schemas().items():
        committed = json.loads((folder / f"{name}.schema.json").read_text())
        assert committed == json.loads(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)), (
            f"{name}.schema.json is stale: regenerate it (see README, 'Event schema')"
        )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decoder_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    good, bad = decode_message(raw, Prediction)
    if not good and not bad:  # nothing to accept or refuse: only an envelope of no events
        assert orjson.loads(raw) == {"events": []} or orjson.loads(raw).get("events") == []
    else:
        assert all(r.reason for r in bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


def _required_fields_hold(doc: dict) -> bool:
    """The contract's required fields, checked independently of the models (an oracle for the decoder)."""
    pid, model, pred = doc.get("prediction_id"), doc.get("model"), doc.get("prediction")
    number = type(pred) in (int, float) and math.isfinite(pred)
    return (
        type(pid) is str
        and 1 <= len(pid) <= 256
        and type(model) is str
        and re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", model) is not None
        and (number or (type(pred) is str and len(pred) <= 1024))
    )


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(list(Prediction.model_fields) + ["x"]), json_values, max_size=12),
    st.booleans(),
)
def test_every_object_is_accepted_with_its_values_or_rejected_with_a_reason(doc: dict, valid_core: bool) -> None:
    """The partition: each event of an envelope is either accepted, carrying the values it was sent with,
    or rejected with a reason, its index and its own bytes — never dropped, never altered."""
    if valid_core:  # half the examples get a valid core, so both sides of the partition are exercised
        doc = {**doc, **GOOD, "prediction_id": "q1"}
    good, bad = decode_message(orjson.dumps({"events": [doc, GOOD]}), Prediction)
    assert [e.prediction_id for e in good][-1] == "p1"
    assert len(good) + len(bad) == 2
    if len(good) == 2:
        e = good[0]
        assert _required_fields_hold(doc)
        assert (e.prediction_id, e.model) == (doc["prediction_id"], doc["model"])
        sent = doc["prediction"]
        assert e.prediction == (sent if isinstance(sent, str) else float(sent))
        assert e.event_id == doc.get("event_id") or (doc.get("event_id") is None and e.event_id == e.prediction_id)
    else:
        (r,) = bad
        assert r.index == 0 and r.reason and r.payload == orjson.dumps(doc)
        field = r.reason.split(":")[0].split(".")[0]
        assert field in Prediction.model_fields or field == "event", r.reason
        if not _required_fields_hold(doc):
            return
        assert field not in ("prediction_id", "model", "prediction"), (r.reason, doc)
