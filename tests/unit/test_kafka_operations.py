"""Managed Kafka: the settings reach the config of every client that creates topics or connects.

Replication factor and min.insync.replicas go to the admin client's topics and to Faust (its internal
topics included); SASL PLAIN, SCRAM-SHA-256/512 and OAUTHBEARER go to kafka-python (CLI, admin, publisher),
Faust and, through it, aiokafka.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka.abc import AbstractTokenProvider as AioTokenProvider
from aiokafka.conn import AIOKafkaConnection
from faust.transport.drivers import aiokafka as faust_aiokafka
from kafka.net.sasl.oauth import AbstractTokenProvider as KafkaTokenProvider
from kafka.net.sasl.oauth import SaslMechanismOAuth
from watchkeeper_client import Publisher, TokenProvider

from watchkeeper.admin import new_topics
from watchkeeper.settings import Settings
from watchkeeper.streams.app import _Transport, build_app


def test_replication_settings_reach_the_admin_client_and_faust(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHKEEPER_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("WATCHKEEPER_MIN_INSYNC_REPLICAS", "2")
    s = Settings()
    topics = new_topics(s, ["predictions", "outcomes"])
    assert [(t.name, t.num_partitions, t.replication_factor) for t in topics] == [
        ("predictions", 4, 3),
        ("outcomes", 4, 3),
    ]
    assert all(t.topic_configs == {"min.insync.replicas": "2"} for t in topics)
    app = build_app(s)
    # Faust's own topics (changelogs, repartition, the __assignor leader topic) take this factor.
    assert app.conf.topic_replication_factor == 3


def test_every_topic_faust_creates_carries_the_topic_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[tuple[str, int, dict[str, Any]]] = []

    async def create(self: Any, owner: Any, client: Any, topic: str, partitions: int, replication: int,
                     **kwargs: Any) -> None:  # fmt: skip
        created.append((topic, replication, kwargs["config"]))

    monkeypatch.setattr(faust_aiokafka.Transport, "_create_topic", create)
    app = build_app(Settings(replication_factor=3, min_insync_replicas=2))
    transport = _Transport(app.conf.broker_consumer, app)
    # A changelog asks for its own configs: both are kept.
    asyncio.run(transport._create_topic(None, None, "wk-t-changelog", 4, 3, config={"cleanup.policy": "compact"}))
    asyncio.run(transport._create_topic(None, None, "watchkeeper-__assignor-__leader", 1, 3))
    assert created == [
        ("wk-t-changelog", 3, {"min.insync.replicas": "2", "cleanup.policy": "compact"}),
        ("watchkeeper-__assignor-__leader", 3, {"min.insync.replicas": "2"}),
    ]


def test_min_insync_replicas_above_the_replication_factor_is_refused() -> None:
    with pytest.raises(ValueError, match="must not exceed replication_factor"):
        Settings(replication_factor=2, min_insync_replicas=3)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_passwords_reach_kafka_python_faust_and_aiokafka(mechanism: str) -> None:
    s = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="svc",
        kafka_sasl_password="kafka-s3cret",
    )
    assert s.kafka_python_config() == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "svc",
        "sasl_plain_password": "kafka-s3cret",
    }
    auth = faust_aiokafka.credentials_to_aiokafka_auth(s.faust_credentials())
    assert (auth["security_protocol"], auth["sasl_mechanism"], auth["sasl_plain_username"]) == (
        "SASL_SSL",
        mechanism,
        "svc",
    )
    assert auth["sasl_plain_password"] == "kafka-s3cret" and auth["ssl_context"] is not None


def _oauth_settings(**token: Any) -> Settings:
    return Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="OAUTHBEARER", **token)


def test_an_oauthbearer_token_from_a_file_reaches_every_client(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("token-one\n")
    s = _oauth_settings(kafka_oauth_token_file=path, kafka_oauth_refresh_seconds=0.001)
    cfg = s.kafka_python_config()
    provider = cfg["sasl_oauth_token_provider"]
    assert cfg["sasl_mechanism"] == "OAUTHBEARER" and isinstance(provider, KafkaTokenProvider)
    SaslMechanismOAuth(**cfg)  # kafka-python accepts it (it checks the provider's class)
    assert provider.token() == "token-one"
    path.write_text("token-two\n")  # renewed by a sidecar: read again once older than the refresh
    asyncio.run(asyncio.sleep(0.01))
    assert provider.token() == "token-two" and "token-two" not in repr(provider)

    creds = s.faust_credentials()
    assert isinstance(creds, faust.OAuthCredentials)
    auth = faust_aiokafka.credentials_to_aiokafka_auth(creds)
    assert auth["sasl_mechanism"] == "OAUTHBEARER" and isinstance(auth["sasl_oauth_token_provider"], AioTokenProvider)

    async def aiokafka_side() -> str:
        AIOKafkaConnection("127.0.0.1", 1, **auth)  # aiokafka accepts it (it checks the provider's class)
        return str(await auth["sasl_oauth_token_provider"].token())

    assert asyncio.run(aiokafka_side()) == "token-two"

    # The light client passes security options to its producer as they are.
    pub = Publisher("127.0.0.1:1", **cfg)
    try:
        assert pub._producer_config["sasl_oauth_token_provider"] is provider
    finally:
        pub.close(timeout=0)


def test_an_oauthbearer_token_from_a_command(tmp_path: Path) -> None:
    provider = _oauth_settings(kafka_oauth_token_command="echo from-the-command").oauth_token_provider()
    assert provider.token() == "from-the-command"
    failing = TokenProvider(command="sh -c 'echo no credentials >&2; exit 3'")
    with pytest.raises(RuntimeError, match="exited with 3: no credentials"):
        failing.token()


def test_oauthbearer_needs_exactly_one_token_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one of kafka_oauth_token_command or kafka_oauth_token_file"):
        _oauth_settings()
    with pytest.raises(ValueError, match="one of kafka_oauth_token_command or kafka_oauth_token_file"):
        _oauth_settings(kafka_oauth_token_command="echo x", kafka_oauth_token_file=tmp_path / "t")
