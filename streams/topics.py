"""The Kafka topics of watchkeeper (names from the settings), declared on the worker's App."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust


@dataclass(frozen=True)
class Topics:
    """The four topics: events in (predictions, outcomes), alerts and dead letters out."""

    predictions: Any  # faust.TopicT (Faust's types are not generic over the app)
    outcomes: Any
    alerts: Any
    dead_letters: Any


def declare(app: faust.App, *, predictions: str, outcomes: str, alerts: str, dead_letters: str) -> Topics:
    """Declare the topics on ``app``. Raw bytes in and out: decoding is ours, so that bad input
    becomes a dead letter instead of a serializer exception inside Faust."""
    raw = {"value_serializer": "raw", "key_serializer": "raw"}
    return Topics(
        predictions=app.topic(predictions, key_type=bytes, value_type=bytes, **raw),
        outcomes=app.topic(outcomes, key_type=bytes, value_type=bytes, **raw),
        alerts=app.topic(alerts, **raw),
        dead_letters=app.topic(dead_letters, **raw),
    )
