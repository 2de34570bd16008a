"""Event building and JSON encoding, numpy and pandas values included, without importing either.

Models return numpy scalars and arrays; pandas hands out ``Timestamp``, ``NA`` and
``Series``. orjson's ``OPT_SERIALIZE_NUMPY`` writes numpy scalars and contiguous
arrays natively; everything else goes through :func:`_default`, which works by
duck typing (``.item()``, ``.tolist()``, ``.isoformat()``) so this module never
imports numpy or pandas itself.

Examples:
    >>> encode({"x": 1.5, "when": None})
    b'{"x":1.5,"when":null}'
    >>> features_dict([1.0, 2.0], ["age", "income"])
    {'age': 1.0, 'income': 2.0}
    >>> features_dict((3, 4), None)
    {'x0': 3, 'x1': 4}
    >>> label(True), label("spam"), label(0.5)
    (1, 'spam', 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

from watchkeeper_client._contract import InvalidEvent

OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_NAIVE_UTC

_PLAIN = (str, float, int)
_MISSING = {"NAType", "NaTType"}  # pandas.NA, pandas.NaT


def _default(obj: Any) -> Any:
    """orjson's fallback for what it cannot write natively (called only for those)."""
    name = type(obj).__name__
    if name in _MISSING:
        return None
    if hasattr(obj, "isoformat"):  # pandas.Timestamp and other datetime-likes
        return obj.isoformat()
    ndim = getattr(obj, "ndim", None)
    if ndim == 0 and hasattr(obj, "item"):  # numpy scalars of exotic dtypes, 0-d arrays
        return obj.item()
    if hasattr(obj, "tolist"):  # non-contiguous arrays, pandas arrays and Series values
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Decimal):
        return float(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"cannot encode a value of type {type(obj).__module__}.{name}")


def encode(event: Mapping[str, Any]) -> bytes:
    """One event → its JSON bytes."""
    return orjson.dumps(event, default=_default, option=OPTIONS)


def label(value: Any) -> Any:
    """A prediction, outcome or baseline value: a number or a string.

    Booleans (Python or numpy) become 0/1 because the contract has no boolean
    labels; numpy and pandas scalars become Python ones.
    """
    t = type(value)
    if t is float or t is str or t is int:
        return value
    if t.__name__ == "float64":  # numpy.float64, what models return most (a float subclass: exact here)
        return float(value)
    if t is bool or t.__name__ in ("bool_", "bool"):  # numpy.bool_ (numpy 1) is numpy.bool in numpy 2
        return int(value)
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return value.item()
    return value


def features_dict(features: Any, names: Sequence[str] | None) -> dict[Any, Any] | None:
    """Features as a name → value mapping.

    Accepts a mapping, a pandas Series (its index names the values), or a 1-D
    sequence or numpy array paired with ``names`` (``x0, x1, ...`` without names,
    scikit-learn's convention). A one-row 2-D array is taken as its row.
    """
    if features is None:
        return None
    if isinstance(features, dict):
        return features
    if type(features).__name__ != "ndarray" and isinstance(features, Mapping):  # (an ABC check: slow)
        return dict(features)
    if hasattr(features, "index") and hasattr(features, "to_dict"):  # pandas.Series
        return dict(features.to_dict())
    shape = getattr(features, "shape", None)
    if shape is not None and len(shape) == 2 and shape[0] == 1:
        features = features[0]
    try:
        values = features.tolist() if hasattr(features, "tolist") else list(features)
    except TypeError:
        raise InvalidEvent(
            "features", f"expected a mapping, a pandas Series or a sequence, got {type(features).__name__}"
        ) from None
    if names is None:
        return {f"x{i}": v for i, v in enumerate(values)}
    if len(names) != len(values):
        raise InvalidEvent("features", f"{len(values)} feature values but {len(names)} feature names")
    return dict(zip(names, values, strict=True))


def header_pairs(headers: Mapping[str, Any] | Sequence[tuple[str, Any]] | None) -> tuple[tuple[str, bytes], ...]:
    """Kafka headers as a hashable tuple of ``(str, bytes)`` (equal header sets share envelopes).

    >>> header_pairs({"traceparent": "00-ab-cd-01", "tenant": b"t1"})
    (('traceparent', b'00-ab-cd-01'), ('tenant', b't1'))
    """
    if not headers:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for k, v in items:
        if isinstance(v, bytes):
            out.append((str(k), v))
        elif isinstance(v, bytearray | memoryview):
            out.append((str(k), bytes(v)))
        else:
            out.append((str(k), str(v).encode()))
    return tuple(out)
