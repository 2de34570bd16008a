"""Kafka administration: topics with the configured partitions, consumer lag."""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from watchkeeper.settings import Settings


def topic_names(settings: Settings) -> list[str]:
    return [
        settings.topic_predictions,
        settings.topic_outcomes,
        settings.topic_alerts,
        settings.topic_dead_letters,
    ]


def ensure_topics(settings: Settings, timeout: float = 30.0) -> None:
    """Create watchkeeper's topics (if missing) with the configured partition count."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=settings.kafka_bootstrap,
                client_id="watchkeeper-admin",
                **settings.kafka_python_config(),
            )
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(name, num_partitions=settings.partitions, replication_factor=1)
            for name in topic_names(settings)
            if name not in existing
        ]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def consumer_lag(settings: Settings, topics: list[str] | None = None) -> int | None:
    """Messages not yet committed by the worker group on the input topics (None if unknown)."""
    topics = topics or [settings.topic_predictions, settings.topic_outcomes]
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, client_id="watchkeeper-lag", **settings.kafka_python_config()
    )
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, client_id="watchkeeper-lag", **settings.kafka_python_config()
    )
    try:
        committed = admin.list_consumer_group_offsets(settings.app_id)
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or [])]
        if not tps:
            return None
        ends = consumer.end_offsets(tps)
        lag = 0
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag += max(0, ends[tp] - done)
        return lag
    finally:
        consumer.close()
        admin.close()
