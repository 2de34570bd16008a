"""Kafka administration: topics with the configured partitions, consumer lag, the worker group."""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import NewTopic, OffsetSpec
from kafka.errors import KafkaError, TopicAlreadyExistsError

from watchkeeper.settings import Settings


def topic_names(settings: Settings) -> list[str]:
    return [
        settings.topic_predictions,
        settings.topic_outcomes,
        settings.topic_alerts,
        settings.topic_dead_letters,
    ]


def new_topics(settings: Settings, names: list[str]) -> list[NewTopic]:
    """The topics to create: the configured partitions, replication factor and ``min.insync.replicas``."""
    return [
        NewTopic(
            name,
            num_partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            topic_configs=settings.topic_configs(),
        )
        for name in names
    ]


def ensure_topics(settings: Settings, timeout: float = 30.0) -> None:
    """Create watchkeeper's topics (if missing) with the configured partitions and replication
    (``WATCHKEEPER_REPLICATION_FACTOR``, ``WATCHKEEPER_MIN_INSYNC_REPLICAS``)."""
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
        new = new_topics(settings, [name for name in topic_names(settings) if name not in existing])
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def input_topics(settings: Settings) -> list[str]:
    return [settings.topic_predictions, settings.topic_outcomes]


def admin_client(settings: Settings, timeout_ms: int = 5000) -> KafkaAdminClient:
    """An admin client that gives up after ``timeout_ms`` (for commands that report, not wait)."""
    return KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="watchkeeper-admin",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
        **settings.kafka_python_config(),
    )


def lag_by_topic(
    settings: Settings, topics: list[str] | None = None, admin: KafkaAdminClient | None = None
) -> dict[str, int]:
    """Messages on each topic not yet committed by the worker group (topics that do not exist are left out).

    A partition the group never committed counts from its first offset still in the log.
    """
    topics = topics or input_topics(settings)
    own = admin is None
    admin = admin or admin_client(settings)
    try:
        described = admin.describe_topics(topics)
        tps = [
            TopicPartition(t["name"], p["partition_index"])
            for t in described
            if not t.get("error_code")
            for p in t["partitions"]
        ]
        lag = {t["name"]: 0 for t in described if not t.get("error_code")}
        if not tps:
            return lag
        ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
        starts = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps})
        committed = admin.list_group_offsets({settings.app_id: tps}).get(settings.app_id, {})
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else starts[tp].offset
            lag[tp.topic] += max(0, ends[tp].offset - done)
        return lag
    finally:
        if own:
            admin.close()


def consumer_lag(settings: Settings, topics: list[str] | None = None) -> int | None:
    """Messages not yet committed by the worker group on the input topics (None if no topic exists)."""
    lag = lag_by_topic(settings, topics)
    return sum(lag.values()) if lag else None


def group_members(settings: Settings, admin: KafkaAdminClient) -> dict[str, Any] | None:
    """The worker group's state and members as the broker describes them (None if its answer cannot be read)."""
    try:
        group = admin.describe_groups([settings.app_id]).get(settings.app_id) or {}
    except (KafkaError, ValueError):  # kafka-python cannot decode every broker's answer (Tansu's, for one)
        return None
    members = [
        {"client_id": m.get("client_id", ""), "host": m.get("client_host", "")} for m in group.get("members") or []
    ]
    return {"state": group.get("group_state") or "", "members": members}
