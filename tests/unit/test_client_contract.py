"""The light client refuses at the call what the worker would dead-letter, with the service's own limits.

Each bad input below used to be enqueued, sent and flushed with ``rejected 0``
(strict mode too), to be found only later in ``dead_letters``. Now the call
refuses it: counted per reason in the default mode (never raised), raised as
``InvalidEvent`` in strict mode; and the service's decoder refuses the very same
event, so the two keep to one contract.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from watchkeeper_client import InvalidEvent, Publisher, _contract

from tests.unit.test_client_light import FakeProducer, closed_port, with_fake
from watchkeeper.settings import MODEL_NAME_PATTERN, Settings
from watchkeeper.streams import events
from watchkeeper.streams.decode import decode_message
from watchkeeper.streams.events import Outcome, Prediction

NOW = time.time()
DAY = 86_400.0
GOOD: dict[str, Any] = {"model": "fraud", "prediction": 0.5, "prediction_id": "r1"}

# The list (and inf in a feature): what changes in a good prediction, and the reason counted.
BAD_PREDICTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("NaN prediction", {"prediction": math.nan}, "prediction"),
    ("None prediction", {"prediction": None}, "prediction"),
    ("numpy NaN prediction", {"prediction": np.float64("nan")}, "prediction"),
    ("model=123", {"model": 123}, "model"),
    ("model 'bad name!'", {"model": "bad name!"}, "model"),
    ("5,000 features", {"features": {f"f{i}": 1.0 for i in range(5000)}}, "features"),
    ("300-character prediction_id", {"prediction_id": "p" * 300}, "prediction_id"),
    ("ts in 1990", {"ts": 631152000.0}, "ts"),
    ("ts in 1990 as text", {"ts": "1990-01-01T00:00:00Z"}, "ts"),
    ("a list as prediction", {"prediction": [0.1, 0.9]}, "prediction"),
    ("latency_ms=-5", {"latency_ms": -5}, "latency_ms"),
    ("10 MB string feature", {"features": {"text": "x" * 10_000_000}}, "features"),
    ("inf in a feature", {"features": {"amount": math.inf}}, "features"),
    ("-inf in a numpy feature", {"features": {"amount": np.float32("-inf")}}, "features"),
    ("NaN in a feature array", {"features": np.array([1.0, np.nan])}, "features"),
    ("a list as a feature", {"features": {"x": [1, 2]}}, "features"),
    ("an empty feature name", {"features": {"": 1.0}}, "features"),
    ("ts older than the raw retention", {"ts": NOW - 31 * DAY}, "ts"),
    ("ts two days ahead", {"ts": NOW + 2 * DAY}, "ts"),
    ("ts not RFC 3339", {"ts": "yesterday"}, "ts"),
    ("a 2,000-character text prediction", {"prediction": "c" * 2000}, "prediction"),
    ("version=3", {"version": 3}, "version"),
    ("score above 1", {"scores": {"a": 1.5}}, "scores"),
    ("NaN score", {"scores": {"a": math.nan}}, "scores"),
    ("NaN latency", {"latency_ms": math.nan}, "latency_ms"),
    ("a number as a segment value", {"segments": {"region": 3}}, "segments"),
    ("65 segments", {"segments": {f"s{i}": "v" for i in range(65)}}, "segments"),
    ("NaN baseline", {"baseline": math.nan}, "baseline"),
    ("event_id of 300 characters", {"event_id": "e" * 300}, "event_id"),
]

# At the limits, and the values models and data frames hand out: accepted by both sides.
GOOD_PREDICTIONS: list[tuple[str, dict[str, Any]]] = [
    ("1,000 features", {"features": {f"f{i}": float(i) for i in range(1000)}}),
    ("256-character prediction_id", {"prediction_id": "p" * 256}),
    ("128-character model name", {"model": "m" * 128}),
    ("1,024-character text feature", {"features": {"t": "x" * 1024}}),
    ("null, bool, int and text features", {"features": {"a": None, "b": True, "c": 3, "d": "NO"}}),
    ("numpy features", {"features": {"a": np.float32(1.5), "b": np.int64(2), "c": np.bool_(True)}}),
    ("pandas NA feature", {"features": pd.Series({"a": 1.0, "b": pd.NA})}),
    ("huge finite floats", {"features": {"a": 1e308, "b": 1e308}}),
    ("ts 29 days ago", {"ts": NOW - 29 * DAY}),
    ("ts as datetime text", {"ts": pd.Timestamp(NOW - 3600, unit="s", tz="UTC").isoformat()}),
    ("ts as pandas Timestamp", {"ts": pd.Timestamp(NOW - 3600, unit="s")}),
    ("ts as numpy datetime64", {"ts": np.datetime64(int(NOW) - 3600, "s")}),
    ("latency 0", {"latency_ms": 0}),
    ("text prediction", {"prediction": "spam"}),
    ("bool prediction", {"prediction": np.bool_(False)}),
    ("scores", {"scores": {"a": 0.25, "b": np.float64(0.75)}}),
    ("segments", {"segments": {"region": "eu"}}),
    ("baseline", {"baseline": "ham"}),
]


def service_refuses(value: bytes, kind: type[Prediction] | type[Outcome], raw_ttl_days: int = 30) -> bool:
    """Whether the worker dead-letters this message (its decoder, and its retention rule for ``ts``)."""
    good, bad = decode_message(value, kind)
    min_ts = time.time() - raw_ttl_days * DAY
    return bool(bad) or any(e.ts is not None and e.ts < min_ts for e in good)


def old_payload(event: dict[str, Any]) -> bytes:
    """The event as the client used to send it (encoded without any check)."""
    from watchkeeper_client._encode import encode, features_dict, label

    e = dict(event)
    e["prediction"] = label(e["prediction"])
    e.setdefault("ts", time.time())
    if "features" in e:
        e["features"] = features_dict(e["features"], ["a", "b"])
    if "baseline" in e:
        e["baseline"] = label(e["baseline"])
    return encode(e)


@pytest.mark.parametrize(("case", "change", "reason"), BAD_PREDICTIONS, ids=[c for c, _, _ in BAD_PREDICTIONS])
def test_a_prediction_the_service_would_dead_letter_is_refused_and_counted(
    case: str, change: dict[str, Any], reason: str
) -> None:
    fake = FakeProducer()
    pub = with_fake(Publisher("unused:9092", feature_names=["a", "b"]), fake)
    pub.prediction(**{**GOOD, **change})  # never raises in the default mode
    assert pub.flush(5)
    s = pub.stats()
    assert (s["enqueued"], s["sent"], s["rejected"]) == (0, 0, 1), case
    assert s["rejected_reasons"] == {reason: 1}
    assert s["last_error"].startswith(f"InvalidEvent: {reason}: ")
    assert fake.sent == []
    pub.close(1)

    strict = with_fake(Publisher("unused:9092", strict=True, feature_names=["a", "b"]), FakeProducer())
    with pytest.raises(InvalidEvent) as err:
        strict.prediction(**{**GOOD, **change})
    assert err.value.reason == reason and isinstance(err.value, ValueError)
    assert strict.stats()["rejected_reasons"] == {reason: 1}
    strict.close(1)


# NaN and infinity become null on the wire (JSON has neither), which these fields accept as "missing":
# only the client can tell them apart, so only the client can refuse them (see the two tests at the end).
LOST_ON_THE_WIRE = {"inf in a feature", "-inf in a numpy feature", "NaN in a feature array", "NaN latency",
                    "NaN baseline"}  # fmt: skip


@pytest.mark.parametrize(("case", "change", "reason"), BAD_PREDICTIONS, ids=[c for c, _, _ in BAD_PREDICTIONS])
def test_the_service_refuses_what_the_client_refuses(case: str, change: dict[str, Any], reason: str) -> None:
    payload = old_payload({**GOOD, **change})
    assert service_refuses(payload, Prediction) is (case not in LOST_ON_THE_WIRE), case


@pytest.mark.parametrize(("case", "change"), GOOD_PREDICTIONS, ids=[c for c, _ in GOOD_PREDICTIONS])
def test_what_the_service_accepts_is_sent(case: str, change: dict[str, Any]) -> None:
    fake = FakeProducer()
    pub = with_fake(Publisher("unused:9092", strict=True), fake)
    pub.prediction(**{**GOOD, **change})
    assert pub.flush(5)
    pub.close(1)
    assert (pub.stats()["sent"], pub.stats()["rejected"]) == (1, 0), case
    assert not service_refuses(fake.sent[0]["value"], Prediction), case


def test_outcomes_are_checked_too() -> None:
    pub = with_fake(Publisher("unused:9092"), FakeProducer())
    pub.outcome(model="fraud", prediction_id="r1", outcome=math.nan)
    pub.outcome(model="bad name!", prediction_id="r1", outcome=1)
    pub.outcome(model="fraud", prediction_id="", outcome=1)
    pub.outcome(model="fraud", prediction_id="r1", outcome=None)
    pub.outcome(model="fraud", prediction_id="r1", outcome=1, ts=631152000)
    pub.outcome(model="fraud", prediction_id="r1", outcome=[1])
    pub.outcome(model="fraud", prediction_id="r1", outcome=1)  # the one good outcome
    assert pub.flush(5)
    s = pub.stats()
    assert (s["sent"], s["rejected"]) == (1, 6)
    assert s["rejected_reasons"] == {"outcome": 3, "model": 1, "prediction_id": 1, "ts": 1}
    pub.close(1)


def test_send_checks_an_already_built_event() -> None:
    fake = FakeProducer()
    pub = with_fake(Publisher("unused:9092"), fake)
    pub.send("prediction", {"prediction_id": "a", "model": "m", "prediction": 0.5, "fallback": 1})
    pub.send("prediction", {"prediction_id": "b", "model": "m"})
    pub.send("outcome", {"prediction_id": "c", "model": "m", "outcome": 1, "ts": 10**12})
    pub.send("prediction", {"prediction_id": "d", "model": "m", "prediction": 0.5, "fallback": True})
    assert pub.flush(5)
    assert pub.stats()["rejected_reasons"] == {"fallback": 1, "prediction": 1, "ts": 1}
    assert [e["prediction_id"] for e in fake.events()] == ["d"]
    pub.close(1)


def test_the_service_limits_that_are_settings_are_options() -> None:
    """Retention and message size are the service's settings: the client's defaults are its defaults."""
    fake = FakeProducer()
    pub = with_fake(Publisher("unused:9092", raw_ttl_days=90, max_message_bytes=4096), fake)
    pub.prediction(**GOOD, ts=NOW - 60 * DAY)  # kept 90 days by this service: accepted
    pub.prediction(**GOOD, ts=NOW - 100 * DAY)
    pub.prediction(**GOOD, features={f"f{i}": "x" * 100 for i in range(40)})  # ~4.6 kB: too large here
    assert pub.flush(5)
    s = pub.stats()
    assert (s["sent"], s["rejected_reasons"]) == (1, {"ts": 1, "size": 1})
    assert "4,096" in s["last_error"]
    pub.close(1)
    # Envelopes stay within the worker's limit too: a larger one would be refused whole.
    fake = FakeProducer(partitions=1)
    pub = with_fake(Publisher("unused:9092", max_message_bytes=4096, linger=0.05), fake)
    for i in range(40):
        pub.prediction(**{**GOOD, "prediction_id": f"r{i}"}, features={f"f{j}": "x" * 20 for j in range(10)})
    assert pub.flush(5)
    pub.close(1)
    assert pub.stats()["sent"] == 40 and len(fake.sent) > 1
    for message in fake.sent:
        good, bad = decode_message(message["value"], Prediction, max_bytes=4096)
        assert bad == [] and len(message["value"]) <= 4096
    # The defaults: 30 days and 8 MiB, as the service's.
    default = Publisher(closed_port())
    assert (default.contract.raw_ttl_days, default.contract.max_message_bytes) == (
        Settings().raw_ttl_days,
        Settings().max_message_bytes,
    )
    default.close(0)


def test_the_client_limits_are_the_services() -> None:
    assert _contract.MAX_FEATURES == events.MAX_FEATURES
    assert _contract.MAX_SEGMENTS == events.MAX_SEGMENTS
    assert _contract.MAX_NAME == events.MAX_NAME
    assert _contract.MAX_TEXT == events.MAX_TEXT
    assert _contract.MIN_TS == events.MIN_TS
    assert _contract.MAX_FUTURE_SECONDS == events.MAX_FUTURE_SECONDS
    assert _contract.MAX_VERSION == Prediction.model_json_schema()["properties"]["version"]["maxLength"]
    assert f"^{_contract.MODEL_NAME_PATTERN}$" == MODEL_NAME_PATTERN
    assert _contract.RAW_TTL_DAYS == Settings.model_fields["raw_ttl_days"].default
    assert _contract.MAX_MESSAGE_BYTES == Settings.model_fields["max_message_bytes"].default


def test_the_default_mode_never_raises_whatever_it_is_given() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    pub = Publisher(closed_port())
    assert pub.prediction(model=["unhashable"], prediction=0.5) != ""  # type: ignore[arg-type]
    assert pub.prediction(model="m", prediction=0.5, prediction_id=Unprintable()) == ""
    pub.prediction(model="m", prediction=0.5, features=object())
    pub.prediction(model="m", prediction=0.5, features={"x": {"nested": 1}}, segments="eu")  # type: ignore[arg-type]
    pub.prediction(model="m", prediction=0.5, ts=object())  # type: ignore[arg-type]
    pub.prediction(model="m", prediction=0.5, scores=[0.5])  # type: ignore[arg-type]
    pub.outcome(model="m", prediction_id=Unprintable(), outcome=1)
    s = pub.stats()
    assert (s["enqueued"], s["rejected"]) == (0, 7)
    assert set(s["rejected_reasons"]) == {"model", "encoding", "features", "ts", "scores"}
    pub.close(0)


def test_a_sent_inf_used_to_arrive_as_null() -> None:
    """Why the client must refuse inf itself: JSON has no infinity, and orjson writes it as null, which
    the worker stores as a missing value (NaN) instead of refusing it."""
    assert orjson.dumps({"x": math.inf}) == b'{"x":null}'
    good, bad = decode_message(old_payload({**GOOD, "features": {"x": math.inf}}), Prediction)
    assert bad == [] and good[0].features == {"x": None}


def test_an_envelope_event_with_infinity_is_dead_lettered_alone() -> None:
    """Other encoders (Python's json, Jackson) write Infinity and NaN: the worker refuses the event that
    carries one, with the field in the reason and the value as it came, and keeps its neighbours."""
    base = {"model": "m", "prediction": 0.5, "ts": NOW}
    envelope = {
        "events": [
            {**base, "prediction_id": "ok"},
            {**base, "prediction_id": "inf", "features": {"x": math.inf}},
            {**base, "prediction_id": "nan", "latency_ms": math.nan},
        ]
    }
    good, bad = decode_message(json.dumps(envelope).encode(), Prediction)
    assert [e.prediction_id for e in good] == ["ok"]
    assert [(r.index, r.model) for r in bad] == [(1, "m"), (2, "m")]
    assert re.search(r"features.*feature 'x': NaN and infinity are not allowed", bad[0].reason)
    assert b'"x": Infinity' in bad[0].payload and b"NaN" in bad[1].payload
    # A single event: refused with the same reason, its bytes kept as they came.
    single = json.dumps({**base, "prediction_id": "one", "features": {"x": -math.inf}}).encode()
    good, bad = decode_message(single, Prediction)
    assert good == [] and "feature 'x'" in bad[0].reason and bad[0].payload == single
    # Still bad JSON: a truncated message, or a lone surrogate orjson cannot carry.
    for value in (single[:-1], b'{"prediction_id": "s", "model": "m", "prediction": "\\ud800", "x": NaN}'):
        _, bad = decode_message(value, Prediction)
        assert bad[0].reason.startswith("bad JSON")
