"""The Kafka topics of watchkeeper (names from the settings), declared on the worker's App."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TopicT


@dataclass(frozen=True)
class Topics:
    """The four topics: events in (predictions, outcomes), alerts and dead letters out."""

    predictions: TopicT
    outcomes: TopicT
    alerts: TopicT
    dead_letters: TopicT


def declare(app: faust.App, *, predictions: str, outcomes: str, alerts: str, dead_letters: str) -> Topics:
    """Declare the topics on ``app``. Raw bytes in and out: decoding is ours, so that bad input
    becomes a dead letter instead of a serializer exception inside Faust."""
    return Topics(
        predictions=app.topic(
            predictions, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw"
        ),
        outcomes=app.topic(outcomes, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw"),
        alerts=app.topic(alerts, value_serializer="raw", key_serializer="raw"),
        dead_letters=app.topic(dead_letters, value_serializer="raw", key_serializer="raw"),
    )
