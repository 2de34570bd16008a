"""The Kafka topics of watchkeeper (names from the settings)."""

from __future__ import annotations

from watchkeeper.streams.app import app, settings

# Raw bytes in and out: decoding is ours, so that bad input becomes a dead letter
# instead of a serializer exception inside Faust.
predictions = app.topic(
    settings.topic_predictions, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw"
)
outcomes = app.topic(
    settings.topic_outcomes, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw"
)
alerts = app.topic(settings.topic_alerts, value_serializer="raw", key_serializer="raw")
dead_letters = app.topic(settings.topic_dead_letters, value_serializer="raw", key_serializer="raw")
