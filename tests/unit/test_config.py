"""Settings: environment, YAML file, defaults, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.settings import Settings, load_settings


def test_defaults_run_everything_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(__import__("os").environ):
        if k.startswith("WATCHKEEPER_"):
            monkeypatch.delenv(k)
    s = Settings()
    assert (s.embedded_broker, s.embedded_store) == (True, True)
    assert (s.broker_port, s.store_port, s.window_seconds, s.idle_flush) == (9092, 8123, 300, 30.0)
    assert s.store_path == Path("./data/clickhouse")
    assert (s.raw_ttl_days, s.aggregate_ttl_days) == (30, 400)


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHKEEPER_BROKER", "kafka://k1:9092,k2:9092")
    monkeypatch.setenv("WATCHKEEPER_CLICKHOUSE", "https://writer:s3cr%40t@ch.example:8443/wk")
    monkeypatch.setenv("WATCHKEEPER_WINDOW_SECONDS", "60")
    s = Settings()
    assert s.kafka_bootstrap == "k1:9092,k2:9092"
    params = s.clickhouse_params()
    assert params == {
        "host": "ch.example",
        "port": 8443,
        "username": "writer",
        "password": "s3cr@t",
        "secure": True,
        "verify": True,
    }
    assert s.clickhouse_database == "wk" and s.window_seconds == 60
    assert "s3cr" not in str(s.redacted())


def test_yaml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "wk.yaml"
    cfg.write_text(
        "window_seconds: 120\nmodels:\n  fraud:\n    owner: payments\n    threshold: 0.3\n    cost: {fp: 1, fn: 5}\n"
    )
    monkeypatch.setenv("WATCHKEEPER_CONFIG", str(cfg))
    monkeypatch.setenv("WATCHKEEPER_LABEL_DELAY_SECONDS", "30")  # environment wins over the file
    s = Settings()
    assert s.window_seconds == 120 and s.label_delay_seconds == 30
    assert s.model("fraud").owner == "payments" and s.model("fraud").cost.fn == 5
    assert s.model("other").threshold == 0.5


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"WATCHKEEPER_BROKER": "localhost:9092"}, "broker"),
        ({"WATCHKEEPER_CLICKHOUSE": "tcp://x"}, "clickhouse"),
        ({"WATCHKEEPER_STORE_PORT": "99999"}, "store_port"),
        ({"WATCHKEEPER_WINDOW_SECONDS": "0"}, "window_seconds"),
        ({"WATCHKEEPER_NOPE": "1"}, None),  # unknown env vars are not ours to judge
        ({"WATCHKEEPER_CONFIG": "/nonexistent.yaml"}, "no such file"),
    ],
)
def test_bad_configuration_fails_clearly(monkeypatch: pytest.MonkeyPatch, env: dict, fragment: str | None) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if fragment is None:
        load_settings()
        return
    with pytest.raises(SystemExit) as exc:  # a message, never a traceback
        load_settings()
    assert fragment in str(exc.value)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("models: [\n", "not valid YAML"),  # the parser's line and column follow
        ("- a\n- b\n", "expected a mapping at the top level"),
        (b"a: 1\n\xff\n", "cannot read it"),
        ("models:\n  fraud:\n    treshold: 0.3\n", "models.fraud.treshold: Extra inputs are not permitted"),
        ("models:\n  fraud:\n    threshold: 2\n", "models.fraud.threshold"),
        ("models:\n  fraud:\n    cost: {fp: 1, FN: 5}\n", "models.fraud.cost.FN: Extra inputs are not permitted"),
        ("models:\n  fraud:\n    cost: {fp: 1, fn: x}\n", "models.fraud.cost.fn"),
        ("models:\n  fraud:\n    task: bogus\n", "models.fraud.task"),
        ("models:\n  'bad name!':\n    task: binary\n", "models: Value error, 'bad name!' is not a valid model name"),
    ],
)
def test_a_bad_config_file_fails_with_one_message_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str | bytes, fragment: str
) -> None:
    cfg = tmp_path / "wk.yaml"
    cfg.write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.setenv("WATCHKEEPER_CONFIG", str(cfg))
    with pytest.raises(SystemExit) as exc:
        load_settings()
    message = str(exc.value)
    assert message.startswith("watchkeeper: bad configuration:") and fragment in message
    assert "Traceback" not in message


def test_a_directory_as_config_file_fails_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WATCHKEEPER_CONFIG", str(tmp_path))
    with pytest.raises(SystemExit, match="a directory, not a YAML file"):
        load_settings()


def test_the_readme_model_settings_example_is_valid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("Per-model settings live in the YAML file:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    cfg = tmp_path / "wk.yaml"
    cfg.write_text(block)
    monkeypatch.setenv("WATCHKEEPER_CONFIG", str(cfg))
    fraud = load_settings().model("fraud")
    assert (fraud.task, fraud.threshold, fraud.cost.fn) == ("binary", 0.3, 5)


def test_kafka_and_clickhouse_security_settings_reach_the_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    import faust

    monkeypatch.setenv("WATCHKEEPER_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("WATCHKEEPER_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("WATCHKEEPER_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("WATCHKEEPER_KAFKA_SASL_PASSWORD", "kafka-s3cret")
    monkeypatch.setenv("WATCHKEEPER_CLICKHOUSE", "https://w:p@ch:8443/wk")
    monkeypatch.setenv("WATCHKEEPER_CLICKHOUSE_VERIFY", "false")
    s = Settings()
    assert s.kafka_python_config() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "kafka-s3cret",
    }
    creds = s.faust_credentials()
    assert isinstance(creds, faust.SASLCredentials) and creds.username == "svc"
    assert s.clickhouse_params()["verify"] is False and s.clickhouse_params()["secure"] is True
    assert "kafka-s3cret" not in str(s.redacted()) and "kafka-s3cret" not in repr(s)


def test_plaintext_kafka_needs_no_credentials() -> None:
    s = Settings()
    assert s.kafka_python_config() == {} and s.faust_credentials() is None


def test_reference_sample_sizes_reach_the_model_stage_and_the_alert_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHKEEPER_REFERENCE_PREDICTIONS", "2000")
    monkeypatch.setenv("WATCHKEEPER_REFERENCE_LABELS", "500")
    monkeypatch.setenv("WATCHKEEPER_LABEL_DELAY_SECONDS", "60")
    s = Settings()
    assert s.window_config().reference_predictions == 2000
    cfg = s.alert_config()
    assert (cfg.reference_labels, cfg.reference_predictions, cfg.label_delay_seconds) == (500, 2000, 60)
    monkeypatch.setenv("WATCHKEEPER_REFERENCE_LABELS", "5")
    with pytest.raises(ValueError, match="reference_labels"):
        Settings()
