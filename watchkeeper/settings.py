"""Settings: one pydantic-settings class, every value from the environment.

Values come from ``WATCHKEEPER_*`` environment variables, then from an optional
YAML file named by ``WATCHKEEPER_CONFIG``, then from the defaults below. With no
settings at all everything runs embedded.

Example:
    >>> s = Settings(broker="kafka://kafka:9092", clickhouse="embedded")
    >>> s.kafka_bootstrap
    'kafka:9092'
    >>> Settings(clickhouse="http://u:secret@ch:8123/wk").clickhouse_database
    'wk'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from watchkeeper.alerts.dispatch import ReceiverConfig, Route
from watchkeeper.alerts.policy import DEFAULT_POLICY, AlertPolicy
from watchkeeper.detectors.config import CostMatrix

if TYPE_CHECKING:
    from watchkeeper.alerts.config import AlertConfig
    from watchkeeper.alerts.notifiers import DeliveryConfig
    from watchkeeper.sinks.schema import Retention
    from watchkeeper.windows.config import WindowConfig

MODEL_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"

__all__ = ["ConfigFileError", "CostMatrix", "ModelConfig", "Settings", "load_settings", "mask_url", "policy_for"]


class ModelConfig(BaseModel):
    """Per-model configuration (YAML ``models:`` mapping, keyed by model name).

    Unknown keys are refused: a misspelt ``treshold`` silently ignored would leave the model at 0.5.
    """

    model_config = {"frozen": True, "extra": "forbid"}

    owner: str = "unowned"
    task: Literal["auto", "binary", "multiclass", "regression"] = "auto"
    # Binary scores are probabilities in [0, 1] (README, "Task type"): a threshold outside it decides nothing.
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    positive_label: str = "1"
    cost: CostMatrix = CostMatrix()
    # Segment keys sliced for per-group metrics and fairness: by default every key with at
    # most 50 values in a window; naming protected attributes watches exactly those.
    protected_attributes: tuple[str, ...] = ()
    excluded_segments: tuple[str, ...] = ()
    runbook_url: str | None = None
    alerting: AlertPolicy | None = None  # replaces the fleet's policy for this model
    # What a window's features are compared with: "auto" = the file loaded with
    # `watchkeeper reference` if any, else the version's first predictions (``reference_predictions``;
    # "first_predictions", formerly "first_windows", always); "previous_window"
    # follows slow trends; the seasonal ones ignore daily and weekly cycles.
    drift_reference: Literal[
        "auto", "first_predictions", "first_windows", "previous_window", "same_hour_yesterday",
        "same_hour_last_week",
    ] = "auto"


class ConfigFileError(ValueError):
    """The file named by ``WATCHKEEPER_CONFIG`` is missing, unreadable or not a YAML mapping."""


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by ``WATCHKEEPER_CONFIG``; a missing or malformed file is an error."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("WATCHKEEPER_CONFIG")
        if not path:
            return {}
        p = Path(path)
        if p.is_dir():
            raise ConfigFileError(f"WATCHKEEPER_CONFIG={path!r}: a directory, not a YAML file")
        if not p.is_file():
            raise ConfigFileError(f"WATCHKEEPER_CONFIG={path!r}: no such file")
        try:
            with open(p, encoding="utf-8") as fh:  # a file object: the parser's errors name the file
                data = yaml.safe_load(fh) or {}
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigFileError(f"WATCHKEEPER_CONFIG={path!r}: cannot read it ({exc})") from None
        except yaml.YAMLError as exc:
            # The parser's own message names the line and column; keep it on one line.
            detail = " ".join(str(exc).split())
            raise ConfigFileError(f"WATCHKEEPER_CONFIG={path!r}: not valid YAML: {detail}") from None
        if not isinstance(data, dict):
            raise ConfigFileError(f"WATCHKEEPER_CONFIG={path!r}: expected a mapping at the top level")
        return data


class Settings(BaseSettings):
    """All of watchkeeper's configuration. Bad values fail at start-up with a clear message."""

    model_config = SettingsConfigDict(env_prefix="WATCHKEEPER_", extra="forbid", validate_default=True)

    # Where things run.
    broker: str = "embedded"
    broker_port: int = Field(9092, ge=1, le=65535)
    clickhouse: str = "embedded"
    # A ClickHouse cluster's name (remote_servers): tables ON CLUSTER, replicated, Distributed in front
    # (sinks/cluster.py). Unset: one server (or the embedded store).
    clickhouse_cluster: str | None = Field(None, pattern=r"^(?:[A-Za-z0-9_-]+|\{[A-Za-z0-9_]+\})$")
    # The replicated tables' Keeper path template in cluster mode (macros such as {shard}, {database},
    # {table} are the server's); unset: the server's default_replica_path (sinks/cluster.py).
    clickhouse_keeper_path: str | None = Field(None, pattern=r"^/[A-Za-z0-9_{}/.-]+$")
    store_path: Path = Path("./data/clickhouse")
    store_port: int = Field(8123, ge=1, le=65535)
    store_host: str = "127.0.0.1"
    # Credentials of the embedded store (read by the store itself too); none means user
    # ``default`` without password. The read-only user is for analysts.
    store_user: str | None = None
    store_password: SecretStr = SecretStr("")
    store_readonly_user: str | None = None
    store_readonly_password: SecretStr = SecretStr("")
    data_dir: Path = Path("./data/faust")
    web_port: int = Field(6066, ge=1, le=65535)
    web_host: str = "127.0.0.1"
    # Faust's own Prometheus sensor on /metrics (per-event counters: ~20% of the per-message
    # throughput, measured); watchkeeper's counters and consumer lag are served either way.
    faust_sensor: bool = False
    # How long the broker may hold a fetch waiting for data (Faust's fixed 1500 ms otherwise):
    # the floor of the event-to-store latency on a quiet stream.
    fetch_max_wait_ms: int = Field(100, ge=1, le=10_000)

    # Kafka security (passed to Faust/aiokafka and kafka-python alike).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    # Operators: the deploy job, managed Kafka.
    # false: workers and commands never issue DDL; they check the store's schema version and refuse to start
    # when it is behind. `watchkeeper migrate` (a deploy job) migrates, under a lock in the store.
    migrate: bool = True
    # A migration lock older than this is taken as left by a crashed job, and broken.
    migrate_lock_seconds: int = Field(900, ge=10)
    # How long `watchkeeper migrate` (or a migrating worker) waits for another job's lock.
    migrate_wait_seconds: int = Field(1800, ge=0)
    # Replicas of every topic watchkeeper creates, Faust's internal ones included (changelogs,
    # repartition topics, the group's __assignor leader topic); managed Kafka usually wants 3.
    replication_factor: int = Field(1, ge=1, le=32)
    # min.insync.replicas of those topics (unset: the broker's default).
    min_insync_replicas: int | None = Field(None, ge=1, le=32)
    # OAUTHBEARER (kafka_sasl_mechanism): the token is the output of a command, or a file's content,
    # read again after kafka_oauth_refresh_seconds.
    kafka_oauth_token_command: str | None = None
    kafka_oauth_token_file: Path | None = None
    kafka_oauth_refresh_seconds: float = Field(60.0, gt=0)
    # ClickHouse TLS (an https:// URL turns TLS on).
    clickhouse_verify: bool = True
    clickhouse_ca_cert: Path | None = None
    clickhouse_client_cert: Path | None = None
    clickhouse_client_key: Path | None = None

    # Topics.
    topic_predictions: str = "predictions"
    topic_outcomes: str = "outcomes"
    topic_alerts: str = "alerts"
    topic_dead_letters: str = "dead-letters"
    partitions: int = Field(4, ge=1, le=1024)
    # How soon the group notices a dead worker and moves its partitions.
    session_timeout: float = Field(10.0, ge=3.0, le=300.0)
    app_id: str = "watchkeeper"

    # Windows and the join.
    window_seconds: int = Field(300, ge=1)
    label_delay_seconds: int = Field(600, ge=0)
    idle_flush: float = Field(30.0, gt=0)
    # Rows inserted less than this long ago do not move a model's watermark yet: concurrent batches
    # commit in any order, and windows must close in event-time order (windows/closer.py).
    settle_seconds: float = Field(5.0, ge=0)
    flush_interval: float = Field(1.0, gt=0)
    flush_rows: int = Field(20_000, ge=1)
    orphan_after_seconds: int = Field(3600, ge=0)
    # Two clocks per window: its label-free results are final (and judged) this long after its end.
    window_grace_seconds: float = Field(10.0, ge=0, le=3600)
    # References from a sample size: a version's drift reference is its first N predictions, its
    # performance reference its first M labels (unless a reference is loaded or a baseline configured).
    reference_predictions: int = Field(1000, ge=50, le=100_000)
    reference_labels: int = Field(300, ge=30, le=100_000)
    max_message_bytes: int = Field(8 * 1024 * 1024, ge=1024)

    # Retention (days).
    raw_ttl_days: int = Field(30, ge=1)
    aggregate_ttl_days: int = Field(400, ge=1)

    # Alert delivery. URLs that embed tokens are secrets: never logged.
    webhook_url: SecretStr | None = None
    retrain_webhook_url: SecretStr | None = None
    slack_webhook_url: SecretStr | None = None
    pagerduty_routing_key: SecretStr | None = None
    alertmanager_url: str | None = None
    # Alerts link <base>#<kind>; the default is the repository's own doc (a relative path): set it to where
    # your copy is served, e.g. your Git host's URL of docs/runbooks.md.
    runbook_base_url: str = "docs/runbooks.md"

    # Grafana (dashboards push, annotations).
    grafana_url: str | None = None
    # Grafana as on-call opens it (alert payloads link the model dashboard there); default: grafana_url.
    grafana_link_url: str | None = None
    grafana_token: SecretStr | None = None
    grafana_user: str | None = None
    grafana_password: SecretStr | None = None

    # Alert policies (fleet-wide; per model under models.<name>.alerting) and routing.
    alerting: AlertPolicy = AlertPolicy()
    alert_routes: tuple[Route, ...] = ()
    alert_receivers: dict[str, ReceiverConfig] = {}

    # Models.
    default_threshold: float = Field(0.5, ge=0.0, le=1.0)
    models: dict[str, ModelConfig] = {}

    @field_validator(
        "webhook_url",
        "retrain_webhook_url",
        "slack_webhook_url",
        "pagerduty_routing_key",
        "grafana_token",
        "grafana_password",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, v: Any) -> Any:
        # A blank variable (compose's ${X:-}) means "not configured", not an empty URL.
        return None if v == "" else v

    @model_validator(mode="after")
    def _cluster_layout(self) -> Settings:
        """The cluster's name carries how its tables replicate (the Keeper path) to the schema's DDL."""
        from watchkeeper.sinks.cluster import Cluster

        if self.clickhouse_cluster:
            self.clickhouse_cluster = Cluster(self.clickhouse_cluster, keeper_path=self.clickhouse_keeper_path)
        return self

    @model_validator(mode="after")
    def _check_kafka_operations(self) -> Settings:
        if self.min_insync_replicas is not None and self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"min_insync_replicas ({self.min_insync_replicas}) must not exceed replication_factor "
                f"({self.replication_factor}): no write could be acknowledged"
            )
        if self.kafka_sasl_mechanism == "OAUTHBEARER" and self.kafka_security_protocol.startswith("SASL"):
            if (self.kafka_oauth_token_command is None) == (self.kafka_oauth_token_file is None):
                raise ValueError("OAUTHBEARER needs one of kafka_oauth_token_command or kafka_oauth_token_file")
        return self

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, v: str) -> str:
        if v != "embedded" and not v.startswith("kafka://"):
            raise ValueError("must be 'embedded' or kafka://host:port[,host:port]")
        return v

    @field_validator("clickhouse")
    @classmethod
    def _check_clickhouse(cls, v: str) -> str:
        if v == "embedded":
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be 'embedded' or http(s)://user:password@host:port/database")
        return v

    @field_validator("models")
    @classmethod
    def _check_models(cls, v: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        # A field validator, so the error names `models` (a model validator's has no location).
        import re

        for name in v:
            if not re.match(MODEL_NAME_PATTERN, name):
                raise ValueError(f"{name!r} is not a valid model name")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls), file_secret_settings)

    # Derived values.
    @property
    def embedded_broker(self) -> bool:
        return self.broker == "embedded"

    @property
    def embedded_store(self) -> bool:
        return self.clickhouse == "embedded"

    @property
    def kafka_bootstrap(self) -> str:
        if self.embedded_broker:
            return f"127.0.0.1:{self.broker_port}"
        return self.broker.removeprefix("kafka://")

    @property
    def clickhouse_database(self) -> str:
        if self.embedded_store:
            return "watchkeeper"
        return urlsplit(self.clickhouse).path.strip("/") or "watchkeeper"

    def clickhouse_params(self) -> dict[str, Any]:
        """Keyword arguments for ``clickhouse_connect.get_client`` (the password never logged)."""
        if self.embedded_store:
            return {
                "host": "127.0.0.1" if self.store_host in ("0.0.0.0", "::") else self.store_host,
                "port": self.store_port,
                "username": self.store_user or "default",
                "password": self.store_password.get_secret_value(),
            }
        parts = urlsplit(self.clickhouse)
        params: dict[str, Any] = {
            "host": parts.hostname,
            "port": parts.port or (8443 if parts.scheme == "https" else 8123),
            "username": unquote(parts.username or "default"),
            "password": unquote(parts.password or ""),
            "secure": parts.scheme == "https",
        }
        if parts.scheme == "https":
            params["verify"] = self.clickhouse_verify
            for key, value in (
                ("ca_cert", self.clickhouse_ca_cert),
                ("client_cert", self.clickhouse_client_cert),
                ("client_cert_key", self.clickhouse_client_key),
            ):
                if value is not None:
                    params[key] = str(value)
        return params

    def kafka_python_config(self) -> dict[str, Any]:
        """Security options for kafka-python clients (publisher, admin)."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return {}
        cfg: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.startswith("SASL"):
            cfg["sasl_mechanism"] = self.kafka_sasl_mechanism or "PLAIN"
            if cfg["sasl_mechanism"] == "OAUTHBEARER":
                cfg["sasl_oauth_token_provider"] = self.oauth_token_provider()
            else:
                cfg["sasl_plain_username"] = self.kafka_sasl_username
                if self.kafka_sasl_password is not None:
                    cfg["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        for key, value in (
            ("ssl_cafile", self.kafka_ssl_cafile),
            ("ssl_certfile", self.kafka_ssl_certfile),
            ("ssl_keyfile", self.kafka_ssl_keyfile),
        ):
            if value is not None:
                cfg[key] = str(value)
        return cfg

    def faust_credentials(self) -> Any:
        """``broker_credentials`` for Faust (None for PLAINTEXT)."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return None
        import ssl

        import faust

        context = None
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None)
            if self.kafka_ssl_certfile:
                context.load_cert_chain(
                    str(self.kafka_ssl_certfile), str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None
                )
        if self.kafka_security_protocol == "SSL":
            return faust.SSLCredentials(context)
        mechanism = self.kafka_sasl_mechanism or "PLAIN"
        if mechanism == "OAUTHBEARER":
            from watchkeeper.kafka_auth import AsyncTokenProvider

            return faust.OAuthCredentials(oauth_cb=AsyncTokenProvider(self.oauth_token_provider()), ssl_context=context)
        password = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else ""
        return faust.SASLCredentials(
            username=self.kafka_sasl_username, password=password, ssl_context=context, mechanism=mechanism
        )

    def oauth_token_provider(self) -> Any:
        """The OAUTHBEARER token provider of kafka-python (``watchkeeper_client.TokenProvider``)."""
        from watchkeeper_client import TokenProvider

        return TokenProvider(
            command=self.kafka_oauth_token_command,
            file=self.kafka_oauth_token_file,
            refresh=self.kafka_oauth_refresh_seconds,
        )

    def topic_configs(self) -> dict[str, str]:
        """Configs of every topic watchkeeper (and Faust) creates: ``min.insync.replicas`` when set."""
        if self.min_insync_replicas is None:
            return {}
        return {"min.insync.replicas": str(self.min_insync_replicas)}

    def model(self, name: str) -> ModelConfig:
        """The configuration of one model (defaults when it is not configured)."""
        cfg = self.models.get(name)
        if cfg is None:
            return ModelConfig(threshold=self.default_threshold)
        return cfg

    # Typed configuration of the components: they get values, never this object.
    def retention(self) -> Retention:
        """How long the store keeps raw rows and aggregates (``sinks``: the tables' TTLs)."""
        from watchkeeper.sinks.schema import Retention

        return Retention(self.raw_ttl_days, self.aggregate_ttl_days)

    def window_config(self) -> WindowConfig:
        """What the model stage (``windows``) needs: window length, label delay, idle flush, the models."""
        from watchkeeper.windows.config import ModelStageConfig, WindowConfig

        def stage(cfg: ModelConfig) -> ModelStageConfig:
            return ModelStageConfig(
                task=cfg.task, threshold=cfg.threshold, cost=cfg.cost, protected_attributes=cfg.protected_attributes,
                excluded_segments=cfg.excluded_segments, drift_reference=cfg.drift_reference,
            )  # fmt: skip

        return WindowConfig(
            window_seconds=self.window_seconds,
            label_delay_seconds=self.label_delay_seconds,
            grace_seconds=self.window_grace_seconds,
            orphan_after_seconds=self.orphan_after_seconds,
            idle_flush=self.idle_flush,
            settle_seconds=self.settle_seconds,
            reference_predictions=self.reference_predictions,
            topic_predictions=self.topic_predictions,
            models={name: stage(cfg) for name, cfg in self.models.items()},
            default_model=stage(ModelConfig(threshold=self.default_threshold)),  # an unconfigured model
        )

    def alert_config(
        self, policies: Mapping[str, AlertPolicy] | None = None, default_policy: AlertPolicy | None = None
    ) -> AlertConfig:
        """What the alert engine needs. ``policies`` (by model) replace the configured ones; models without
        either get ``default_policy``, else the fleet's ``alerting``."""
        from watchkeeper.alerts.config import AlertConfig

        default = default_policy or self.alerting
        names = sorted(set(self.models) | set(policies or {}))
        return AlertConfig(
            window_seconds=self.window_seconds,
            runbook_base_url=self.runbook_base_url,
            policies={name: policy_for(name, self, policies, default) for name in names},
            default_policy=default,
            owners={name: cfg.owner for name, cfg in self.models.items()},
            runbooks={name: cfg.runbook_url for name, cfg in self.models.items() if cfg.runbook_url},
            late_seconds=self.label_delay_seconds + self.orphan_after_seconds,
            label_delay_seconds=self.label_delay_seconds,
            grace_seconds=self.window_grace_seconds,
            orphan_after_seconds=self.orphan_after_seconds,
            reference_labels=self.reference_labels,
            reference_predictions=self.reference_predictions,
        )

    def delivery_config(self) -> DeliveryConfig:
        """Where alerts are delivered: the receivers' URLs and keys (secrets), named receivers, routes."""
        from watchkeeper.alerts.notifiers import DeliveryConfig

        return DeliveryConfig(
            webhook_url=self.webhook_url,
            retrain_webhook_url=self.retrain_webhook_url,
            slack_webhook_url=self.slack_webhook_url,
            pagerduty_routing_key=self.pagerduty_routing_key,
            alertmanager_url=self.alertmanager_url,
            grafana_url=self.grafana_url,
            grafana_link_url=self.grafana_link_url,
            grafana_token=self.grafana_token,
            grafana_user=self.grafana_user,
            grafana_password=self.grafana_password,
            receivers=dict(self.alert_receivers),
            routes=tuple(self.alert_routes),
        )

    def redacted(self) -> dict[str, Any]:
        """Settings as a dict safe to log: passwords in every URL masked (SecretStr fields already are)."""
        return {k: mask_url(v) if isinstance(v, str) else v for k, v in self.model_dump(mode="json").items()}

    def __repr_args__(self) -> Any:
        # repr()/str() must not show the password of the ClickHouse URL (or any other URL).
        for key, value in super().__repr_args__():
            yield key, mask_url(value) if isinstance(value, str) else value

    def store_env(self) -> dict[str, str]:
        """The embedded store's credentials as the environment its process reads."""
        env: dict[str, str] = {}
        if self.store_user:
            env["WATCHKEEPER_STORE_USER"] = self.store_user
        if self.store_password.get_secret_value():
            env["WATCHKEEPER_STORE_PASSWORD"] = self.store_password.get_secret_value()
        if self.store_readonly_user:
            env["WATCHKEEPER_STORE_READONLY_USER"] = self.store_readonly_user
        if self.store_readonly_password.get_secret_value():
            env["WATCHKEEPER_STORE_READONLY_PASSWORD"] = self.store_readonly_password.get_secret_value()
        return env


def mask_url(value: str) -> str:
    """``scheme://user:***@host/...`` for a URL with a password; anything else unchanged.

    >>> mask_url("http://w:s3cret@ch:8123/db")
    'http://w:***@ch:8123/db'
    """
    if "://" not in value:
        return value
    try:
        password = urlsplit(value).password
    except ValueError:
        return value
    return value.replace(f":{password}@", ":***@") if password else value


def policy_for(
    model: str,
    settings: Any = None,
    policies: Mapping[str, AlertPolicy] | None = None,
    default: AlertPolicy = DEFAULT_POLICY,
) -> AlertPolicy:
    """The policy of ``model``: ``policies[model]``, else ``settings.models[model].alerting``, else ``default``.

    ``settings`` is a :class:`Settings` or anything with a ``models`` mapping of objects with ``alerting``
    (a policy or its mapping).
    """
    if policies and model in policies:
        return policies[model]
    cfg = getattr(settings, "models", {}).get(model) if settings is not None else None
    configured = getattr(cfg, "alerting", None)
    if isinstance(configured, AlertPolicy):
        return configured
    if isinstance(configured, Mapping):
        return AlertPolicy.model_validate(configured)
    return default


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning a validation error into one readable message."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ConfigFileError as exc:
        raise SystemExit(f"watchkeeper: bad configuration:\n  {exc}") from None
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc']) or '?'}: {e['msg']}" for e in exc.errors()]
        raise SystemExit("watchkeeper: bad configuration:\n" + "\n".join(lines)) from None
