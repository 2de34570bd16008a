"""Event schemas: the public contract of what services send (pydantic models, and the JSON Schema from them).

A prediction or outcome is one JSON object; an envelope ``{"events": [...]}``
carries many in one Kafka message. The models here are the contract and the
source of the committed JSON Schemas (``streams/schemas/``); the decoder that
turns Kafka bytes into events and columns is :mod:`watchkeeper.streams.decode`.

Example:
    >>> Prediction.model_validate({"prediction_id": "a", "model": "m", "prediction": 0.9}).event_id
    'a'
    >>> sorted(Outcome.model_json_schema()["required"])
    ['model', 'outcome', 'prediction_id']
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    model_validator,
)
from pydantic.functional_validators import BeforeValidator
from pydantic.json_schema import WithJsonSchema

from watchkeeper.settings import MODEL_NAME_PATTERN

# Event times outside these bounds are refused: ancient values are usually a unit
# mistake (ms sent as s), far-future ones a clock bug; both would poison windows.
MIN_TS = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
MAX_FUTURE_SECONDS = 24 * 3600
MAX_FEATURES = 1000
MAX_SEGMENTS = 64
MAX_NAME = 256
MAX_TEXT = 1024


def _finite_number(v: Any) -> Any:
    # bool is an int in Python but not a number in this contract.
    if isinstance(v, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(v, int | float):
        if not math.isfinite(v):
            raise ValueError("NaN and infinity are not allowed")
        return float(v)
    return v


def _number_or_text(v: Any) -> Any:
    if isinstance(v, str):
        if len(v) > MAX_TEXT:
            raise ValueError(f"text longer than {MAX_TEXT} characters")
        return v
    if isinstance(v, int | float) and not isinstance(v, bool):
        return _finite_number(v)
    raise ValueError("expected a number or a string")


def _event_time(v: Any) -> float | None:
    """RFC 3339 string or epoch seconds → epoch seconds (float)."""
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError("ts: expected RFC 3339 text or epoch seconds")
    if isinstance(v, int | float):
        if not math.isfinite(v):
            raise ValueError("ts: NaN and infinity are not allowed")
        t = float(v)
    elif isinstance(v, str):
        t = text_seconds(v)
    else:
        raise ValueError("ts: expected RFC 3339 text or epoch seconds")
    if t < MIN_TS:
        raise ValueError("ts: before 2000-01-01 (seconds expected, not milliseconds?)")
    if t > time.time() + MAX_FUTURE_SECONDS:
        raise ValueError("ts: more than a day in the future")
    return t


def text_seconds(v: str) -> float:
    """RFC 3339 text → epoch seconds (no bounds checked); a naive time is UTC."""
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise ValueError("ts: not an RFC 3339 timestamp") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _features(v: Any) -> Any:
    if not isinstance(v, dict):
        raise ValueError("expected an object of name → number, string, bool or null")
    if len(v) > MAX_FEATURES:
        raise ValueError(f"more than {MAX_FEATURES} features")
    out: dict[str, float | str | None] = {}
    for k, x in v.items():
        if len(k) > MAX_NAME or not k:
            raise ValueError(f"feature name must be 1..{MAX_NAME} characters")
        if x is None or isinstance(x, str):
            if isinstance(x, str) and len(x) > MAX_TEXT:
                raise ValueError(f"feature {k!r}: text longer than {MAX_TEXT}")
            out[k] = x
        elif isinstance(x, bool):
            out[k] = float(x)
        elif isinstance(x, int | float):
            if not math.isfinite(x):
                raise ValueError(f"feature {k!r}: NaN and infinity are not allowed")
            out[k] = float(x)
        else:
            raise ValueError(f"feature {k!r}: expected a number, string, bool or null")
    return out


def _segments(v: Any) -> Any:
    if not isinstance(v, dict):
        raise ValueError("expected an object of name → string")
    if len(v) > MAX_SEGMENTS:
        raise ValueError(f"more than {MAX_SEGMENTS} segments")
    for k, x in v.items():
        if not isinstance(x, str) or len(x) > MAX_NAME or not k or len(k) > MAX_NAME:
            raise ValueError(f"segment {k!r}: expected a string of at most {MAX_NAME} characters")
    return v


def _scores(v: Any) -> Any:
    if not isinstance(v, dict) or not v:
        raise ValueError("expected a non-empty object of class → probability")
    if len(v) > MAX_FEATURES:
        raise ValueError(f"more than {MAX_FEATURES} classes")
    out = {}
    for k, x in v.items():
        x = _finite_number(x)
        if not isinstance(x, float) or not 0.0 <= x <= 1.0:
            raise ValueError(f"score of class {k!r} must be a probability in [0, 1]")
        out[k] = x
    return out


Number = Annotated[float, BeforeValidator(_finite_number)]
NumberOrText = Annotated[float | str, BeforeValidator(_number_or_text)]
EventTime = Annotated[
    float | None,
    BeforeValidator(_event_time),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}, {"type": "null"}],
            "description": "RFC 3339 timestamp or epoch seconds",
        }
    ),
]
ModelName = Annotated[StrictStr, Field(pattern=MODEL_NAME_PATTERN)]
Ident = Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME)]


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="after")
    def _default_event_id(self) -> Any:
        if self.event_id is None:  # type: ignore[attr-defined]
            object.__setattr__(self, "event_id", self.prediction_id)  # type: ignore[attr-defined]
        return self


class Prediction(_Event):
    """What a model predicted, with its inputs (one JSON object)."""

    prediction_id: Ident
    model: ModelName
    version: Annotated[StrictStr, Field(min_length=1, max_length=128)] = "unknown"
    ts: EventTime = Field(None, description="RFC 3339 string or epoch seconds; broker time when absent")
    features: Annotated[
        dict[str, float | str | None],
        BeforeValidator(_features),
        WithJsonSchema(
            {
                "type": "object",
                "maxProperties": MAX_FEATURES,
                "additionalProperties": {"type": ["number", "string", "boolean", "null"]},
            }
        ),
    ] = {}
    prediction: NumberOrText
    scores: Annotated[dict[str, float], BeforeValidator(_scores)] | None = None
    latency_ms: Annotated[Number, Field(ge=0)] | None = None
    fallback: StrictBool = False
    segments: Annotated[dict[str, str], BeforeValidator(_segments)] = {}
    baseline: NumberOrText | None = None
    event_id: Ident | None = None


class Outcome(_Event):
    """The true outcome of an earlier prediction."""

    prediction_id: Ident
    model: ModelName
    outcome: NumberOrText
    ts: EventTime = None
    event_id: Ident | None = None


class PredictionEnvelope(BaseModel):
    """Many predictions in one Kafka message (the fast path)."""

    events: list[Prediction]


class OutcomeEnvelope(BaseModel):
    """Many outcomes in one Kafka message."""

    events: list[Outcome]


class PublishRecord(BaseModel):
    """A line of a file for ``watchkeeper publish``: an event with its ``type``."""

    model_config = ConfigDict(extra="allow")
    type: Literal["prediction", "outcome"]


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas of the events and envelopes, for services in other languages."""
    return {
        "prediction": Prediction.model_json_schema(),
        "outcome": Outcome.model_json_schema(),
        "prediction-envelope": PredictionEnvelope.model_json_schema(),
        "outcome-envelope": OutcomeEnvelope.model_json_schema(),
    }
