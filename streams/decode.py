"""The decoder: Kafka bytes → events (or :class:`Rejected` values) → the columns of the raw tables.

Anything that is not a valid event becomes a :class:`Rejected` value carrying
the reason — errors are values here, they never escape into the stream (in
Faust an exception would ack and lose the message).

Example:
    >>> good, bad = decode_message(b'{"events": [{"prediction_id": "a", "model": "m", "prediction": 0.9},'
    ...                            b' {"prediction_id": "b", "model": "m"}]}', Prediction)
    >>> [e.prediction_id for e in good], bad[0].index, bad[0].reason.split(":")[0]
    (['a'], 1, 'prediction')

The pydantic models (:mod:`watchkeeper.streams.events`) are the contract. The
hot path checks a run of orjson-parsed events column by column against the same
rules (:func:`fast_columns`) and produces columns without building a model per
event; whatever it cannot vouch for goes through the models one event at a time
(:func:`validate_event`), which also gives a refused event its reason. A test
(``tests/unit/test_fast_decode.py``) holds the two paths to the same answers.
The columns are those of the raw tables (``watchkeeper.sinks.schema``) less the
ones the ingest stage takes from the message itself (broker time, source offset).

One module though over 400 lines: the two paths must agree rule for rule, and
reading them side by side is how a change to one is carried to the other.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from itertools import chain, compress, repeat
from typing import Annotated, Any

import numpy as np
import orjson
import pyarrow as pa
from pydantic import TypeAdapter, ValidationError

from watchkeeper.streams.events import (
    MAX_FEATURES,
    MAX_FUTURE_SECONDS,
    MAX_NAME,
    MAX_SEGMENTS,
    MAX_TEXT,
    MIN_TS,
    Outcome,
    Prediction,
    text_seconds,
)


@dataclass(frozen=True, slots=True)
class Rejected:
    """An event (or a whole message when ``index`` is -1) that could not be accepted."""

    reason: str
    payload: bytes
    index: int = -1
    model: str = ""


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _model_of(raw: Any) -> str:
    model = raw.get("model") if isinstance(raw, dict) else None
    return model[:128] if isinstance(model, str) else ""


def parse_message(value: bytes | None, max_bytes: int = 8 * 1024 * 1024) -> tuple[list[Any], bool, Rejected | None]:
    """One Kafka message → (its raw events, whether it was an envelope, or the rejection of the whole message)."""
    if value is None:
        return [], False, Rejected("empty message", b"")
    if len(value) > max_bytes:
        return [], False, Rejected(f"message of {len(value)} bytes exceeds the {max_bytes}-byte limit", value[:4096])
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        doc = _nonfinite_json(value, exc)
        if doc is None:
            return [], False, Rejected(f"bad JSON: {exc}", value)
    if isinstance(doc, dict) and "events" in doc and "prediction_id" not in doc:
        items = doc["events"]
        if not isinstance(items, list):
            return [], True, Rejected("envelope: 'events' must be a list", value)
        return items, True, None
    if isinstance(doc, dict):
        return [doc], False, None
    return [], False, Rejected('expected a JSON object or an envelope {"events": [...]}', value)


def _nonfinite_json(value: bytes, exc: orjson.JSONDecodeError) -> Any:
    """JSON with NaN or Infinity, as other encoders write them (orjson refuses them), parsed: the events
    that carry them are then refused one by one and their envelope neighbours kept. None if not that."""
    if b"NaN" not in value and b"Infinity" not in value and "infinity" not in str(exc):
        return None
    try:
        doc = json.loads(value.decode())
        orjson.dumps(doc)  # what orjson cannot write (lone surrogates, deep nesting) stays bad JSON
    except (ValueError, TypeError, RecursionError):
        return None
    return doc


def validate_event(
    raw: Any, kind: type[Prediction] | type[Outcome], index: int, envelope: bool, value: bytes
) -> Prediction | Outcome | Rejected:
    """The pydantic path for one raw event: the model, or its rejection with the reason."""
    try:
        return kind.model_validate(raw)
    except ValidationError as exc:
        reason = _reason(exc)
        if envelope:  # the event alone; NaN and infinity as they came (orjson would write null)
            payload = json.dumps(raw).encode() if "NaN and infinity" in reason else orjson.dumps(raw)
        else:
            payload = value
        return Rejected(reason, payload, index if envelope else -1, _model_of(raw))
    except (RecursionError, ValueError, TypeError) as exc:  # pathological nesting
        return Rejected(f"invalid event: {exc}", value[:4096], index, _model_of(raw))


def decode_message(
    value: bytes | None, kind: type[Prediction] | type[Outcome], max_bytes: int = 8 * 1024 * 1024
) -> tuple[list[Any], list[Rejected]]:
    """Decode one Kafka message (an event or an envelope) into good events (models) and rejections."""
    items, envelope, rejected = parse_message(value, max_bytes)
    if rejected is not None:
        return [], [rejected]
    assert value is not None
    good: list[Any] = []
    bad: list[Rejected] = []
    for i, raw in enumerate(items):
        result = validate_event(raw, kind, i, envelope, value)
        if isinstance(result, Rejected):
            bad.append(result)
        else:
            good.append(result)
    return good, bad


# Columns of validated events ---------------------------------------------------
#
# Both functions below give the same columns for the events they accept: a dict
# of pyarrow arrays (maps as MapArrays) plus "ts" as float64 epoch seconds, NaN
# where the event has none (the caller supplies broker time).

_NONE = type(None)
_NUMBER_TYPES = frozenset({float, int})  # type() is exact: bool is excluded
_FEATURE_TYPES = frozenset({float, int, bool, _NONE, str})
_EMPTY: dict[str, Any] = {}
_MISSING = object()
_MAX_CACHE = 4096
_known: dict[tuple[TypeAdapter[Any], str], bool] = {}


def _adapter(field: str) -> TypeAdapter[Any]:
    """A validator for one field of Prediction, exactly as the model declares it."""
    info = Prediction.model_fields[field]
    declared: Any = Annotated[(info.annotation, *info.metadata)]  # type: ignore[valid-type]
    return TypeAdapter(declared)


_model_name = _adapter("model")
_version = _adapter("version")


def _valid_by(adapter: TypeAdapter[Any], value: Any) -> bool:
    """Whether a strict-str adapter accepts a value; answers are cached (there are few distinct names)."""
    if type(value) is not str:
        return False
    key = (adapter, value)
    ok = _known.get(key)
    if ok is None:
        try:
            adapter.validate_python(value)
            ok = True
        except ValidationError:
            ok = False
        if len(_known) >= _MAX_CACHE:
            _known.clear()
        _known[key] = ok
    return ok


def _field(items: list[dict[str, Any]], name: str, default: Any = None) -> list[Any]:
    # dict.get through map: no Python frame per event (a non-dict item raises TypeError).
    return list(map(dict.get, items, repeat(name), repeat(default)))


def _texts(col: list[Any], lo: int, hi: int) -> bool:
    """Every value a str of lo..hi characters."""
    if set(map(type, col)) != {str}:
        return False
    lengths = list(map(len, col))
    return min(lengths) >= lo and max(lengths) <= hi


def _finite(a: np.ndarray) -> bool:
    return bool(np.isfinite(a).all())


def _numbers(col: list[Any]) -> np.ndarray | None:
    """Finite numbers (not bools) as float64, else None."""
    if not set(map(type, col)) <= _NUMBER_TYPES:
        return None
    a = np.array(col, dtype=np.float64)
    return a if _finite(a) else None


def _number_or_text_columns(col: list[Any], optional: bool) -> tuple[pa.Array, pa.Array] | None:
    """A NumberOrText field → (numbers, nullable; classes, '' for numbers)."""
    types = set(map(type, col))
    n = len(col)
    if optional and types == {_NONE}:
        return pa.nulls(n, pa.float64()), pa.array([""] * n, pa.string())
    if types <= _NUMBER_TYPES:
        a = np.array(col, dtype=np.float64)
        return (pa.array(a), pa.array([""] * n, pa.string())) if _finite(a) else None
    if not types <= ({float, int, str, _NONE} if optional else {float, int, str}):
        return None
    texts = [v if type(v) is str else "" for v in col]
    if max(map(len, texts)) > MAX_TEXT:
        return None
    null = np.fromiter((v is None or type(v) is str for v in col), dtype=bool, count=n)
    a = np.array([None if type(v) is str else v for v in col], dtype=np.float64)
    if not _finite(a[~null]):
        return None
    return pa.array(a, mask=null), pa.array(texts, pa.string())


def _offsets(lengths: list[int]) -> np.ndarray:
    off = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=off[1:])
    return off


def _empty_maps(n: int, value_type: pa.DataType) -> pa.MapArray:
    return pa.MapArray.from_arrays(np.zeros(n + 1, np.int32), pa.array([], pa.string()), pa.array([], value_type))


def _named_items(col: list[Any], max_items: int) -> tuple[list[int], list[Any], list[Any]] | None:
    """A column of objects with valid names → (lengths, keys, values), flattened; None if any is not."""
    if set(map(type, col)) != {dict}:
        return None
    lengths = list(map(len, col))
    if max(lengths) > max_items:
        return None
    keys = list(chain.from_iterable(col))
    if not all(type(k) is str and 0 < len(k) <= MAX_NAME for k in set(keys)):
        return None
    return lengths, keys, list(chain.from_iterable(map(dict.values, col)))


def _feature_columns(col: list[Any]) -> tuple[pa.MapArray, pa.MapArray] | None:
    """features → (numeric map, None as NaN and bools as 0/1; categorical map)."""
    items = _named_items(col, MAX_FEATURES)
    if items is None:
        return None
    lengths, keys, values = items
    off = _offsets(lengths)
    # The common case, all numbers (bools count as 0/1 here), without a type() per value: numpy
    # infers a numeric kind only from bools, ints and floats (None, text or objects give another kind).
    a = np.array(values) if values else np.zeros(0)
    if a.dtype.kind in "biuf" and a.shape == (len(values),):
        a = a.astype(np.float64, copy=False)
        if not _finite(a):
            return None
        return pa.MapArray.from_arrays(off, pa.array(keys, pa.string()), pa.array(a)), _empty_maps(
            len(col), pa.string()
        )
    if not set(map(type, values)) <= _FEATURE_TYPES:
        return None
    is_text = np.fromiter((type(v) is str for v in values), dtype=bool, count=len(values))
    texts = list(compress(values, is_text))
    if texts and max(map(len, texts)) > MAX_TEXT:
        return None
    numbers = list(compress(values, ~is_text))
    a = np.array(numbers, dtype=np.float64)  # None → NaN, bool → 0/1
    if np.isnan(a).sum() != numbers.count(None) or np.isinf(a).any():
        return None
    text_before = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(is_text, out=text_before[1:])
    text_off = text_before[off].astype(np.int32)
    numeric_keys = pa.array(list(compress(keys, ~is_text)), pa.string())
    text_keys = pa.array(list(compress(keys, is_text)), pa.string())
    return (
        pa.MapArray.from_arrays(off - text_off, numeric_keys, pa.array(a)),
        pa.MapArray.from_arrays(text_off, text_keys, pa.array(texts, pa.string())),
    )


def _segment_column(col: list[Any]) -> pa.MapArray | None:
    items = _named_items(col, MAX_SEGMENTS)
    if items is None:
        return None
    lengths, keys, values = items
    if values and (set(map(type, values)) != {str} or max(map(len, set(values))) > MAX_NAME):
        return None
    return pa.MapArray.from_arrays(_offsets(lengths), pa.array(keys, pa.string()), pa.array(values, pa.string()))


def _score_column(col: list[Any]) -> pa.MapArray | None:
    types = set(map(type, col))
    if types == {_NONE}:
        return _empty_maps(len(col), pa.float64())
    if not types <= {dict, _NONE}:
        return None
    dicts = [_EMPTY if d is None else d for d in col]
    lengths = list(map(len, dicts))
    if max(lengths) > MAX_FEATURES or any(not n for n, d in zip(lengths, col, strict=True) if d is not None):
        return None
    keys = list(chain.from_iterable(dicts))
    if not all(type(k) is str for k in set(keys)):
        return None
    a = _numbers(list(chain.from_iterable(map(dict.values, dicts))))
    if a is None or (len(a) and not (a.min() >= 0.0 and a.max() <= 1.0)):
        return None
    return pa.MapArray.from_arrays(_offsets(lengths), pa.array(keys, pa.string()), pa.array(a))


def _ts_column(col: list[Any], max_ts: float) -> np.ndarray | None:
    """ts → epoch seconds, NaN where absent (null or missing)."""
    types = set(map(type, col))
    if not types <= {float, int, _NONE, str}:
        return None
    if str in types:
        col = [text_seconds(v) if type(v) is str else v for v in col]  # ValueError → the model's path
    a = np.array(col, dtype=np.float64)
    absent = np.isnan(a)
    if absent.sum() != col.count(None):
        return None
    present = a[~absent]
    if len(present) and not (present.min() >= MIN_TS and present.max() <= max_ts):
        return None
    return a


def _ident_column(col: list[Any]) -> pa.Array | None:
    return pa.array(col, pa.string()) if _texts(col, 1, MAX_NAME) else None


def _names(col: list[Any], adapter: TypeAdapter[Any]) -> pa.Array | None:
    return pa.array(col, pa.string()) if all(_valid_by(adapter, v) for v in set(col)) else None


def fast_columns(
    items: list[Any], kind: type[Prediction] | type[Outcome], max_ts: float | None = None
) -> dict[str, Any] | None:
    """Columns of a run of raw events if every one of them is valid, else None (use the models).

    The same rules as the pydantic models, checked a column at a time; ``None``
    means "not vouched for", never "invalid": the caller then validates the events
    one by one with :func:`validate_event`, which decides and gives the reason.
    ``max_ts`` is the latest event time accepted (default: now plus a day).

    >>> cols = fast_columns([{"prediction_id": "a", "model": "m", "prediction": 1, "features": {"x": True}}],
    ...                     Prediction)
    >>> cols["event_id"].to_pylist(), cols["prediction"].to_pylist(), cols["features"].to_pylist()
    (['a'], [1.0], [[('x', 1.0)]])
    >>> fast_columns([{"prediction_id": "a", "model": "no spaces", "prediction": 1}], Prediction) is None
    True
    """
    if not items:
        return None
    if max_ts is None:
        max_ts = time.time() + MAX_FUTURE_SECONDS
    try:
        if kind is Prediction:
            return _prediction_columns(items, max_ts)
        return _outcome_columns(items, max_ts)
    except (TypeError, ValueError, OverflowError, AttributeError, RecursionError):
        return None  # something unusual: the models decide


def _common_columns(items: list[Any], max_ts: float) -> dict[str, Any] | None:
    if set(map(type, items)) != {dict}:
        return None
    ids = _field(items, "prediction_id")
    prediction_id = _ident_column(ids)
    model = _names(_field(items, "model"), _model_name)
    ts = _ts_column(_field(items, "ts"), max_ts)
    event_ids = _field(items, "event_id")
    if event_ids.count(None) == len(event_ids):  # the usual case: every event_id is its prediction_id
        event_id = prediction_id
    else:
        if None in event_ids:
            event_ids = [p if e is None else e for e, p in zip(event_ids, ids, strict=True)]
        event_id = _ident_column(event_ids)
    if prediction_id is None or model is None or ts is None or event_id is None:
        return None
    return {"ts": ts, "model": model, "prediction_id": prediction_id, "event_id": event_id}


def _prediction_columns(items: list[Any], max_ts: float) -> dict[str, Any] | None:
    cols = _common_columns(items, max_ts)
    if cols is None:
        return None
    version = _names(_field(items, "version", "unknown"), _version)
    prediction = _number_or_text_columns(_field(items, "prediction", _MISSING), optional=False)
    baseline = _number_or_text_columns(_field(items, "baseline"), optional=True)
    features = _feature_columns(_field(items, "features", _EMPTY))
    segments = _segment_column(_field(items, "segments", _EMPTY))
    scores = _score_column(_field(items, "scores"))
    latency = _field(items, "latency_ms")
    fallback = _field(items, "fallback", False)
    if version is None or prediction is None or baseline is None or features is None or segments is None:
        return None
    if scores is None or not set(map(type, fallback)) <= {bool} or not set(map(type, latency)) <= {float, int, _NONE}:
        return None
    lat = np.array(latency, dtype=np.float64)
    absent = np.isnan(lat)
    if absent.sum() != latency.count(None):
        return None
    present = lat[~absent]
    if len(present) and not (present.min() >= 0.0 and _finite(present)):
        return None
    cols.update(
        version=version,
        prediction=prediction[0],
        prediction_class=prediction[1],
        scores=scores,
        features=features[0],
        features_cat=features[1],
        segments=segments,
        latency_ms=pa.array(lat, mask=absent),
        fallback=pa.array(np.array(fallback, dtype=np.uint8)),
        baseline=baseline[0],
        baseline_class=baseline[1],
    )
    return cols


def _outcome_columns(items: list[Any], max_ts: float) -> dict[str, Any] | None:
    cols = _common_columns(items, max_ts)
    if cols is None:
        return None
    outcome = _number_or_text_columns(_field(items, "outcome", _MISSING), optional=False)
    if outcome is None:
        return None
    cols.update(outcome=outcome[0], outcome_class=outcome[1])
    return cols


def _text_split(values: list[Any]) -> tuple[list[float | None], list[str]]:
    """NumberOrText values → (numbers with None for text and absent; text with '' for numbers)."""
    return [None if isinstance(v, str) else v for v in values], [v if isinstance(v, str) else "" for v in values]


def _map_array(dicts: list[dict[str, Any]], value_type: pa.DataType) -> pa.MapArray:
    keys = [k for d in dicts for k in d]
    values = [v for d in dicts for v in d.values()]
    return pa.MapArray.from_arrays(
        _offsets([len(d) for d in dicts]), pa.array(keys, pa.string()), pa.array(values, value_type)
    )


def model_columns(events: list[Any], kind: type[Prediction] | type[Outcome]) -> dict[str, Any]:
    """The columns of validated events (models): what :func:`fast_columns` gives for the same events.

    They are the raw table's insert columns, less those the ingest stage takes from the message:

    >>> from watchkeeper.sinks.schema import PREDICTIONS
    >>> cols = model_columns([Prediction(prediction_id="a", model="m", prediction=0.5)], Prediction)
    >>> sorted(set(PREDICTIONS.column_names(insert=True)) - set(cols))
    ['published_at', 'src_offset', 'src_partition']
    >>> set(cols) <= set(PREDICTIONS.column_names(insert=True))
    True
    """
    cols: dict[str, Any] = {
        "ts": np.array([e.ts for e in events], dtype=np.float64),
        "model": pa.array([e.model for e in events], pa.string()),
        "prediction_id": pa.array([e.prediction_id for e in events], pa.string()),
        "event_id": pa.array([e.event_id for e in events], pa.string()),
    }
    if kind is Outcome:
        numbers, texts = _text_split([e.outcome for e in events])
        cols.update(outcome=pa.array(numbers, pa.float64()), outcome_class=pa.array(texts, pa.string()))
        return cols
    numeric: list[dict[str, Any]] = []
    text: list[dict[str, Any]] = []
    for e in events:
        numeric.append({k: math.nan if v is None else v for k, v in e.features.items() if not isinstance(v, str)})
        text.append({k: v for k, v in e.features.items() if isinstance(v, str)})
    numbers, texts = _text_split([e.prediction for e in events])
    base_numbers, base_texts = _text_split([e.baseline for e in events])
    cols.update(
        version=pa.array([e.version for e in events], pa.string()),
        prediction=pa.array(numbers, pa.float64()),
        prediction_class=pa.array(texts, pa.string()),
        scores=_map_array([e.scores or {} for e in events], pa.float64()),
        features=_map_array(numeric, pa.float64()),
        features_cat=_map_array(text, pa.string()),
        segments=_map_array([e.segments for e in events], pa.string()),
        latency_ms=pa.array([e.latency_ms for e in events], pa.float64()),
        fallback=pa.array([1 if e.fallback else 0 for e in events], pa.uint8()),
        baseline=pa.array(base_numbers, pa.float64()),
        baseline_class=pa.array(base_texts, pa.string()),
    )
    return cols
