"""The event contract, checked at the call: what the worker would dead-letter is refused here instead.

The rules and limits are the service's (``watchkeeper.streams.events`` and the
worker's settings; a test in the service's suite holds the two to the same
numbers). Two of them are the service's settings, so they are the client's
options too: ``raw_ttl_days`` (events older than the raw retention are refused)
and ``max_message_bytes`` (the largest message the worker takes).

A refusal is an :class:`InvalidEvent`, a ``ValueError`` whose ``reason`` is the
field at fault (``"model"``, ``"features"``, ...): the client counts refusals
per reason in ``stats()["rejected_reasons"]``.

The checks are cheap on the common path (a set lookup for names seen before,
one pass over numeric feature values); only unusual values take the slow,
value-by-value path, which also finds the culprit for the message.

Examples:
    >>> c = Contract()
    >>> c.prediction({"prediction_id": "r1", "model": "fraud", "prediction": 0.9, "features": {"x": 1.5}})
    >>> c.prediction({"prediction_id": "r1", "model": "bad name!", "prediction": 0.9})
    Traceback (most recent call last):
    ...
    watchkeeper_client._contract.InvalidEvent: model: 'bad name!' is not a model name ([A-Za-z0-9_.-]{1,128})
    >>> c.prediction({"prediction_id": "r1", "model": "fraud", "prediction": 0.9, "features": {"x": float("inf")}})
    Traceback (most recent call last):
    ...
    watchkeeper_client._contract.InvalidEvent: features: feature 'x': NaN and infinity are not allowed
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

# The service's limits (watchkeeper.streams.events; tests/unit/test_client_contract.py compares them).
MODEL_NAME_PATTERN = r"[A-Za-z0-9_.-]{1,128}"
MAX_NAME = 256  # prediction_id, event_id, feature and segment names, segment values
MAX_VERSION = 128
MAX_TEXT = 1024  # text predictions, outcomes, baselines and feature values
MAX_FEATURES = 1000  # features of an event, and classes of its scores
MAX_SEGMENTS = 64
MIN_TS = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
MAX_FUTURE_SECONDS = 24 * 3600
# The service's settings' defaults (WATCHKEEPER_RAW_TTL_DAYS, WATCHKEEPER_MAX_MESSAGE_BYTES).
RAW_TTL_DAYS = 30
MAX_MESSAGE_BYTES = 8 * 1024 * 1024

_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
_MISSING = frozenset({"NoneType", "NAType", "NaTType"})  # None, pandas.NA, pandas.NaT
_MAX_CACHE = 20_000  # names remembered as valid (a few MB at most)
ENVELOPE_OVERHEAD = len(b'{"events":[]}')  # what the envelope adds to its events' bytes


class InvalidEvent(ValueError):
    """An event the service would dead-letter; ``reason`` names the field at fault.

    >>> InvalidEvent("ts", "before 2000-01-01").reason
    'ts'
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.detail = message

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.reason, self.detail)


def _scalar(v: Any) -> Any:
    """numpy and pandas scalars as Python ones (None for pandas' missing values), Decimal as float (as the
    client sends them); others unchanged."""
    if type(v).__name__ in _MISSING:
        return None
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        return v.item()
    if isinstance(v, Decimal):
        return float(v)
    return v


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else f"{text[:57]}..."


def number_or_text(field: str, v: Any) -> None:
    """A prediction, outcome or baseline: a finite number or a text of at most ``MAX_TEXT`` characters."""
    t = type(v)
    if t is float:
        if v - v == 0.0:  # false for NaN and infinities
            return
        raise InvalidEvent(field, "NaN and infinity are not allowed")
    if t is int or (t is str and len(v) <= MAX_TEXT):
        return
    if t is str:
        raise InvalidEvent(field, f"text longer than {MAX_TEXT} characters ({len(v):,})")
    plain = _scalar(v)
    if plain is None:
        raise InvalidEvent(field, "required: a number or a string, got None")
    if type(plain) in (float, int, str):
        number_or_text(field, plain)
        return
    if type(plain) is bool:
        return  # 0/1 (the client sends it as such)
    raise InvalidEvent(field, f"expected a number or a string, got {type(v).__name__}")


class Contract:
    """The checks of one client: the service's rules with its configurable limits.

    Parameters
    ----------
    raw_ttl_days
        The service's ``raw_ttl_days``: an event time older than this many days is refused.
    max_message_bytes
        The service's ``max_message_bytes``: an encoded event larger than this is refused.
    """

    def __init__(self, raw_ttl_days: float = RAW_TTL_DAYS, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        if raw_ttl_days <= 0 or max_message_bytes <= 0:
            raise ValueError("raw_ttl_days and max_message_bytes must be positive")
        self.raw_ttl_days = raw_ttl_days
        self.max_message_bytes = max_message_bytes
        self._models: set[Any] = set()
        self._versions: set[Any] = set()
        self._feature_names: set[Any] = set()

    # Events ------------------------------------------------------------------
    def prediction(self, event: Mapping[str, Any], ts_checked: bool = False) -> None:
        """Raise :class:`InvalidEvent` unless ``event`` is a prediction the service accepts.

        ``ts_checked``: the event time is the client's own clock (nothing to check).
        """
        self.common(event, ts_checked)
        if "prediction" not in event:
            raise InvalidEvent("prediction", "required: a number or a string")
        number_or_text("prediction", event["prediction"])
        get = event.get
        version = get("version")
        if version is not None and (type(version) is not str or version not in self._versions):
            self.version(version)
        features = get("features")
        if features is not None:
            self.features(features)
        scores = get("scores")
        if scores is not None:
            self.scores(scores)
        latency = get("latency_ms")
        if latency is not None:
            self.latency(latency)
        fallback = get("fallback")
        if fallback is not None and type(_scalar(fallback)) is not bool:
            raise InvalidEvent("fallback", f"expected a bool, got {type(fallback).__name__}")
        segments = get("segments")
        if segments is not None:
            self.segments(segments)
        baseline = get("baseline")
        if baseline is not None:
            number_or_text("baseline", baseline)

    def outcome(self, event: Mapping[str, Any], ts_checked: bool = False) -> None:
        """Raise :class:`InvalidEvent` unless ``event`` is an outcome the service accepts."""
        self.common(event, ts_checked)
        if "outcome" not in event:
            raise InvalidEvent("outcome", "required: a number or a string")
        number_or_text("outcome", event["outcome"])

    def common(self, event: Mapping[str, Any], ts_checked: bool) -> None:
        pid = event.get("prediction_id")
        if type(pid) is not str or not 0 < len(pid) <= MAX_NAME:
            self.ident("prediction_id", pid)
        model = event.get("model")
        if type(model) is not str or model not in self._models:
            self.model(model)
        event_id = event.get("event_id")
        if event_id is not None and (type(event_id) is not str or not 0 < len(event_id) <= MAX_NAME):
            self.ident("event_id", event_id)
        if not ts_checked:
            ts = event.get("ts")
            if ts is not None:
                self.ts(ts)

    def size(self, payload: bytes) -> None:
        """The encoded event fits, alone in an envelope, in one message the worker takes."""
        if len(payload) + ENVELOPE_OVERHEAD > self.max_message_bytes:
            raise InvalidEvent(
                "size", f"the event is {len(payload):,} bytes; the worker takes messages of at most "
                f"{self.max_message_bytes:,}"
            )

    # Fields --------------------------------------------------------------------
    @staticmethod
    def ident(field: str, v: Any) -> None:
        if type(v) is not str:
            raise InvalidEvent(field, f"expected a string, got {type(v).__name__}")
        if not 0 < len(v) <= MAX_NAME:
            raise InvalidEvent(field, f"must be 1 to {MAX_NAME} characters, got {len(v):,}")

    def model(self, v: Any) -> None:
        if type(v) is not str:
            raise InvalidEvent("model", f"expected a string, got {type(v).__name__} {_short(v)}")
        if not _MODEL_NAME.fullmatch(v):
            raise InvalidEvent("model", f"{_short(v)} is not a model name ({MODEL_NAME_PATTERN})")
        self._remember(self._models, v)

    def version(self, v: Any) -> None:
        if type(v) is not str:
            raise InvalidEvent("version", f"expected a string, got {type(v).__name__}")
        if not 0 < len(v) <= MAX_VERSION:
            raise InvalidEvent("version", f"must be 1 to {MAX_VERSION} characters, got {len(v):,}")
        self._remember(self._versions, v)

    def ts(self, v: Any) -> None:
        """RFC 3339 text, epoch seconds, a datetime (naive is UTC), or a numpy/pandas time; within the bounds."""
        t = type(v)
        if t is float or t is int:
            seconds = float(v)
        elif t.__name__ in _MISSING:
            return  # sent as null: the worker takes the broker's time
        elif isinstance(v, datetime):
            try:
                seconds = (v if v.tzinfo is not None else v.replace(tzinfo=UTC)).timestamp()
            except (ValueError, OverflowError, OSError) as exc:  # pandas.NaT, out-of-range times
                raise InvalidEvent("ts", f"not a time: {exc}") from None
        elif t is str:
            try:
                dt = datetime.fromisoformat(v)
                seconds = (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()
            except (ValueError, OverflowError, OSError):
                raise InvalidEvent("ts", f"{_short(v)} is not an RFC 3339 timestamp") from None
        elif t is bool:
            raise InvalidEvent("ts", "expected RFC 3339 text or epoch seconds, got bool")
        else:
            if str(getattr(v, "dtype", "")).startswith("datetime64"):  # numpy: checked as the text it is sent as
                try:
                    text = orjson.loads(orjson.dumps(v, option=orjson.OPT_SERIALIZE_NUMPY))
                except orjson.JSONEncodeError:
                    raise InvalidEvent("ts", f"{_short(v)} is not a time the client can send") from None
                if text is not None:
                    self.ts(text)
                return
            plain = _scalar(v)
            if plain is v:
                raise InvalidEvent("ts", f"expected RFC 3339 text or epoch seconds, got {type(v).__name__}")
            self.ts(plain)
            return
        if not seconds - seconds == 0.0:
            raise InvalidEvent("ts", "NaN and infinity are not allowed")
        now = time.time()
        if seconds < MIN_TS:
            raise InvalidEvent("ts", "before 2000-01-01 (seconds expected, not milliseconds?)")
        if seconds > now + MAX_FUTURE_SECONDS:
            raise InvalidEvent("ts", "more than a day in the future")
        if seconds < now - self.raw_ttl_days * 86400:
            raise InvalidEvent("ts", f"older than the raw-data retention ({self.raw_ttl_days:g} days)")

    def features(self, f: Any) -> None:
        if not isinstance(f, dict):
            if not isinstance(f, Mapping):
                raise InvalidEvent("features", f"expected an object of name → value, got {type(f).__name__}")
            f = dict(f)
        if len(f) > MAX_FEATURES:
            raise InvalidEvent("features", f"{len(f):,} features; at most {MAX_FEATURES:,}")
        if not self._feature_names.issuperset(f):
            for k in f:
                if k not in self._feature_names:
                    self.feature_name(k)
        # The common case in one C-level pass: numbers only (bools, ints, floats) sum to a float, finite
        # unless one of them is not (or the sum overflows); anything else (None, text, numpy scalars,
        # arrays, ...) fails the sum or gives another type, and is looked at value by value.
        try:
            total = sum(f.values(), 0.0)
        except Exception:
            total = None
        if type(total) is float and total - total == 0.0:
            return
        for k, v in f.items():
            self.feature_value(k, v)

    def feature_name(self, k: Any) -> None:
        name = k if type(k) is str else str(k)  # orjson writes int keys as text
        if not 0 < len(name) <= MAX_NAME or isinstance(k, bytes | tuple | frozenset):
            raise InvalidEvent("features", f"feature name {_short(k)}: must be 1 to {MAX_NAME} characters of text")
        self._remember(self._feature_names, k)

    @staticmethod
    def feature_value(k: Any, v: Any) -> None:
        t = type(v)
        if t is float or t is int or t is bool or v is None:
            if t is float and not v - v == 0.0:
                raise InvalidEvent("features", f"feature {_short(k)}: NaN and infinity are not allowed")
            return
        if t is str:
            if len(v) > MAX_TEXT:
                raise InvalidEvent("features", f"feature {_short(k)}: text longer than {MAX_TEXT} characters "
                                   f"({len(v):,})")  # fmt: skip
            return
        plain = _scalar(v)
        if plain is not v and (plain is None or type(plain) in (float, int, bool, str)):
            Contract.feature_value(k, plain)
            return
        if hasattr(v, "isoformat"):  # a time: sent as its RFC 3339 text
            return
        raise InvalidEvent("features", f"feature {_short(k)}: expected a number, string, bool or null, "
                           f"got {type(v).__name__}")  # fmt: skip

    @staticmethod
    def scores(s: Any) -> None:
        if not isinstance(s, Mapping) or not s:
            raise InvalidEvent("scores", "expected a non-empty object of class → probability")
        if len(s) > MAX_FEATURES:
            raise InvalidEvent("scores", f"{len(s):,} classes; at most {MAX_FEATURES:,}")
        for k, v in s.items():
            p = _scalar(v)
            if type(p) not in (float, int) or not 0.0 <= p <= 1.0:  # NaN fails the comparison
                raise InvalidEvent("scores", f"score of class {_short(k)} must be a probability in [0, 1], "
                                   f"got {_short(v)}")  # fmt: skip

    @staticmethod
    def latency(v: Any) -> None:
        x = _scalar(v)
        if type(x) not in (float, int):
            raise InvalidEvent("latency_ms", f"expected a number, got {type(v).__name__}")
        if not (x >= 0 and math.isfinite(x)):
            raise InvalidEvent("latency_ms", f"must be a finite number ≥ 0, got {_short(v)}")

    @staticmethod
    def segments(s: Any) -> None:
        if not isinstance(s, Mapping):
            raise InvalidEvent("segments", f"expected an object of name → text, got {type(s).__name__}")
        if len(s) > MAX_SEGMENTS:
            raise InvalidEvent("segments", f"{len(s):,} segments; at most {MAX_SEGMENTS}")
        for k, v in s.items():
            if not isinstance(k, str) or not 0 < len(k) <= MAX_NAME:
                raise InvalidEvent("segments", f"segment name {_short(k)}: must be 1 to {MAX_NAME} characters")
            if not isinstance(v, str) or len(v) > MAX_NAME:
                raise InvalidEvent("segments", f"segment {k!r}: expected a string of at most {MAX_NAME} "
                                   f"characters, got {_short(v)}")  # fmt: skip

    @staticmethod
    def _remember(names: set[Any], v: Any) -> None:
        if len(names) >= _MAX_CACHE:
            names.clear()
        names.add(v)
