"""Dashboards as code: the generated Grafana JSON and provisioning files are valid and consistent.

No Grafana runs here: the files are parsed and checked for what Grafana needs
(unique uids and panel ids, a ClickHouse target on every panel, the one
datasource uid everywhere, rules whose condition exists), the committed files
must equal a fresh build, and the macro binding and ``push`` are exercised
against fakes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from watchkeeper.cli_dashboards import dashboards as dashboards_cli
from watchkeeper.dashboards import build as build_mod
from watchkeeper.dashboards.alerting import RULES
from watchkeeper.dashboards.macros import MacroError, TimeRange, bind
from watchkeeper.dashboards.panels import DASHBOARDS, DATASOURCE_TYPE, DATASOURCE_UID, PANELS
from watchkeeper.grafana_push import PushError, connect, push
from watchkeeper.settings import Settings

REPO = Path(__file__).resolve().parents[2]
TR = TimeRange(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("grafana")
    build_mod.build(out)
    return out


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _dashboards(root: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted((root / "json").glob("*.json"))}


def test_dashboard_json_is_valid_with_unique_uids_and_panel_ids(built: Path) -> None:
    boards = _dashboards(built)
    assert len(boards) == len(DASHBOARDS) == 4
    uids = [d["uid"] for d in boards.values()]
    assert len(set(uids)) == len(uids)
    assert all(name == f"{d['uid']}.json" for name, d in boards.items())
    for d in boards.values():
        assert d["id"] is None and d["title"] and d["time"]["from"].startswith("now-")
        ids = [p["id"] for p in d["panels"]]
        assert len(set(ids)) == len(ids), d["uid"]
        assert all(0 < p["gridPos"]["w"] <= 24 and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in d["panels"])


def test_every_panel_has_a_clickhouse_target_with_its_sql(built: Path) -> None:
    seen = set()
    for d in _dashboards(built).values():
        for p in d["panels"]:
            if p["type"] == "row":
                continue
            assert p["targets"], f"{d['uid']}: {p['title']} has no target"
            (target,) = p["targets"]
            assert target["refId"] == "A" and target["editorType"] == "sql"
            assert target["format"] == (0 if p["type"] in ("timeseries", "heatmap", "state-timeline") else 1)
            matches = [k for k, panel in PANELS.items() if panel.sql.strip() == target["rawSql"]]
            assert len(matches) == 1, p["title"]
            seen.add(matches[0])
    assert seen == set(PANELS)


def test_the_datasource_uid_is_watchkeeper_clickhouse_everywhere(built: Path) -> None:
    refs = [n for d in _dashboards(built).values() for n in _walk(d) if "datasource" in n]
    assert refs
    for node in refs:
        ds = node["datasource"]
        assert ds == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}, node
    rules = yaml.safe_load((built / "provisioning/alerting/rules.yaml").read_text())
    for rule in rules["groups"][0]["rules"]:
        for q in rule["data"]:
            assert q["datasourceUid"] in (DATASOURCE_UID, "__expr__")
            if q["datasourceUid"] == DATASOURCE_UID:
                assert q["model"]["datasource"] == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}


def test_model_dashboard_has_its_variables(built: Path) -> None:
    d = _dashboards(built)["watchkeeper-model.json"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert set(variables) == {"model", "version"}
    assert variables["version"]["multi"] and variables["version"]["includeAll"]
    assert all(v["refresh"] == 2 and v["datasource"]["uid"] == DATASOURCE_UID for v in variables.values())
    used = {v for p in PANELS.values() for v in ("model", "version") if "${" + v in p.sql}
    assert used == {"model", "version"}


def test_provisioning_files_parse_and_point_at_the_mounted_folders(built: Path) -> None:
    prov = built / "provisioning"
    provider = yaml.safe_load((prov / "dashboards/watchkeeper.yaml").read_text())
    (p,) = provider["providers"]
    assert p["type"] == "file" and p["options"]["path"] == build_mod.GRAFANA_DASHBOARDS_PATH
    ds = yaml.safe_load((prov / "datasources/clickhouse.yaml").read_text())
    (source,) = [s for s in ds["datasources"] if s["uid"] == DATASOURCE_UID]
    assert source["type"] == DATASOURCE_TYPE and source["jsonData"]["protocol"] == "http"
    assert source["secureJsonData"]["password"] == "${CLICKHOUSE_PASSWORD}"
    # One source of alerts: Grafana gets no contact point of ours (the engine delivers).
    assert sorted(p.name for p in (prov / "alerting").iterdir()) == ["rules.yaml"]


def test_alert_rules_are_complete(built: Path) -> None:
    doc = yaml.safe_load((built / "provisioning/alerting/rules.yaml").read_text())
    assert doc["apiVersion"] == 1
    (group,) = doc["groups"]
    assert group["folder"] and group["interval"] == "60s"
    rules = group["rules"]
    assert [r["uid"] for r in rules] == list(RULES)
    for r in rules:
        refs = {q["refId"] for q in r["data"]}
        assert r["condition"] in refs and r["title"] and r["for"]
        assert {q["model"]["type"] for q in r["data"] if q["datasourceUid"] == "__expr__"} == {"reduce", "threshold"}
        # Grafana interpolates $VAR in labels (not in query models): keep labels free of "$".
        assert not any("$" in v for v in r["labels"].values())
        assert not any("${" in v for v in r["annotations"].values())
        assert "notification_settings" not in r  # the organisation's notification policy routes it


def test_the_one_rule_mirrors_the_engines_alerts_table() -> None:
    """Grafana decides nothing itself: its only rule reads the engine's alerts (latest state per alert)."""
    (rule,) = RULES.values()
    assert "FROM alerts FINAL" in rule.sql and "argMax(state, ts)" in rule.sql
    assert (rule.comparison, rule.threshold) == ("gt", 0) and rule.severity is None
    for other in ("metrics", "drift", "dead_letters", "predictions"):
        assert f"FROM {other}" not in rule.sql


def test_committed_files_are_up_to_date(built: Path) -> None:
    """Run `watchkeeper dashboards build` after changing dashboards/*.py."""
    committed = REPO / "dashboards"
    for path in [*(built / "json").glob("*.json"), *(built / "provisioning").rglob("*.yaml")]:
        rel = path.relative_to(built)
        if rel.as_posix() == "provisioning/datasources/clickhouse.yaml":
            continue  # owned by the docker-compose setup when present
        assert (committed / rel).read_text() == path.read_text(), f"{rel} is stale: run watchkeeper dashboards build"
    ds = yaml.safe_load((committed / "provisioning/datasources/clickhouse.yaml").read_text())
    assert [s["type"] for s in ds["datasources"] if s["uid"] == DATASOURCE_UID] == [DATASOURCE_TYPE]


def test_an_existing_datasource_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "provisioning/datasources/clickhouse.yaml"
    path.parent.mkdir(parents=True)
    theirs = "# theirs\napiVersion: 1\ndatasources:\n  - name: CH\n    uid: watchkeeper-clickhouse\n" \
             "    type: grafana-clickhouse-datasource\n    jsonData: {host: clickhouse, port: 8123}\n"  # fmt: skip
    path.write_text(theirs)
    build_mod.build(tmp_path)
    assert path.read_text() == theirs
    other = {"apiVersion": 1, "datasources": [{"name": "Prometheus", "uid": "prom", "type": "prometheus"}]}
    merged, changed = build_mod.merge_datasources(other)
    assert changed and [d["uid"] for d in merged["datasources"]] == ["prom", DATASOURCE_UID]
    assert other["datasources"] == [{"name": "Prometheus", "uid": "prom", "type": "prometheus"}]


def test_cli_build_writes_the_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(dashboards_cli, ["build", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "json/watchkeeper-fleet.json").exists()
    assert "provisioning/alerting/rules.yaml" in result.output


# --------------------------------------------------------------------------- macros


@pytest.mark.parametrize("key", sorted(PANELS))
def test_every_panel_binds_to_parameters_only(key: str) -> None:
    q = bind(PANELS[key].sql, TR, model="m'; DROP TABLE x", versions=["v1"])
    assert "$" not in q.sql and "DROP" not in q.sql
    assert q.params["__from"] == TR.start


def test_bind_refuses_what_it_cannot_expand() -> None:
    with pytest.raises(MacroError, match="no model"):
        bind("SELECT 1 WHERE model = ${model:singlequote}", TR)
    with pytest.raises(MacroError, match="unsupported macro"):
        bind("SELECT 1 WHERE $__timeFilter_ms(ts)", TR)
    with pytest.raises(MacroError, match="template variable"):
        bind("SELECT 1 WHERE model = '$model'", TR, model="m")
    with pytest.raises(MacroError, match="argument"):
        bind("SELECT $__timeInterval() AS t", TR)


def test_bind_handles_nested_arguments_and_all_macros() -> None:
    q = bind(
        "SELECT $__timeInterval(toDateTime(ts)) AS t, $__interval_s AS s FROM x "
        "WHERE $__timeFilter(toDateTime(ts)) AND a < $__toTime AND b > $__fromTime",
        TR,
        interval_s=300,
    )
    assert q.sql == (
        "SELECT toStartOfInterval(toDateTime(toDateTime(ts)), toIntervalSecond({__interval_s:UInt32})) AS t, "
        "{__interval_s:UInt32} AS s FROM x WHERE (toDateTime(ts) >= {__from:DateTime('UTC')} AND "
        "toDateTime(ts) <= {__to:DateTime('UTC')}) AND a < {__to:DateTime('UTC')} AND b > {__from:DateTime('UTC')}"
    )
    assert q.params["__interval_s"] == 300


# --------------------------------------------------------------------------- push


class _Recorder:
    """Stands in for a GrafanaApi element: records calls, answers 404 for lookups."""

    def __init__(self, calls: list[tuple[str, tuple[Any, ...]]], prefix: str) -> None:
        self._calls, self._prefix = calls, prefix

    def __getattr__(self, name: str) -> Any:
        from grafana_client.client import GrafanaClientError

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append((f"{self._prefix}.{name}", args))
            if name.startswith("get_"):
                if name == "get_contactpoints":
                    return []
                raise GrafanaClientError(404, None, "not found")
            return {}

        return call


class FakeGrafana:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        for element in ("folder", "datasource", "dashboard", "alertingprovisioning"):
            setattr(self, element, _Recorder(self.calls, element))


def test_push_uploads_folder_datasource_dashboards_and_rules() -> None:
    api = FakeGrafana()
    settings = Settings(
        grafana_url="http://grafana:3000",
        clickhouse="http://writer:wpw@ch:8123/watchkeeper",
        store_readonly_user="analyst",
        store_readonly_password="pw",
    )
    done = push(settings, api)  # type: ignore[arg-type]
    names = [c[0] for c in api.calls]
    assert "folder.create_folder" in names and "datasource.create_datasource" in names
    uploads = [c[1][0] for c in api.calls if c[0] == "dashboard.update_dashboard"]
    assert sorted(u["dashboard"]["uid"] for u in uploads) == sorted(d.uid for d in DASHBOARDS)
    assert all(u["overwrite"] and u["folderUid"] == "watchkeeper" for u in uploads)
    ds = next(c[1][0] for c in api.calls if c[0] == "datasource.create_datasource")
    assert ds["uid"] == DATASOURCE_UID and ds["jsonData"]["host"] == "ch" and ds["secureJsonData"]["password"] == "pw"
    assert ds["jsonData"]["username"] == "analyst" and "wpw" not in json.dumps(ds)  # the read-only user, not the writer
    (group_call,) = [c for c in api.calls if c[0] == "alertingprovisioning.update_rule_group"]
    folder, group, body = group_call[1]
    assert (folder, group) == ("watchkeeper", "watchkeeper")
    assert [r["uid"] for r in body["rules"]] == list(RULES)
    # No webhook configured: no contact point, and the rules use the default policy.
    assert not any("contactpoint" in n for n in names)
    assert all("notification_settings" not in r for r in body["rules"])
    assert done[-1].startswith("alert rule group")


def test_push_with_a_webhook_pushes_no_contact_point() -> None:
    """WATCHKEEPER_WEBHOOK_URL receives the engine's payload only: Grafana is not given the URL."""
    api = FakeGrafana()
    push(Settings(grafana_url="http://g", grafana_token="t", webhook_url="https://hooks/x"), api)  # type: ignore[arg-type]
    assert not any("contactpoint" in name for name, _ in api.calls)
    assert "hooks/x" not in json.dumps([args for _, args in api.calls], default=str)

def test_push_refuses_to_give_grafana_the_writers_credentials() -> None:
    """A ClickHouse server and no read-only user: nothing is uploaded, the error says what to set."""
    api = FakeGrafana()
    settings = Settings(grafana_url="http://g", grafana_token="t", clickhouse="http://writer:wpw@ch:8123/watchkeeper")
    with pytest.raises(PushError, match="WATCHKEEPER_STORE_READONLY_USER"):
        push(settings, api)  # type: ignore[arg-type]
    assert [name for name, _ in api.calls] == ["datasource.get_datasource_by_uid"]
    # An embedded store with a writer password but no read-only user: refused as well.
    with pytest.raises(PushError, match="read-only"):
        push(Settings(grafana_url="http://g", store_user="w", store_password="wpw"), FakeGrafana())  # type: ignore[arg-type]


def test_push_gives_the_embedded_stores_read_only_user(caplog: pytest.LogCaptureFixture) -> None:
    api = FakeGrafana()
    settings = Settings(grafana_url="http://g", store_password="wpw", store_readonly_password="ro")
    push(settings, api)  # type: ignore[arg-type]
    ds = next(c[1][0] for c in api.calls if c[0] == "datasource.create_datasource")
    # Named like the embedded store names a read-only user given only a password.
    assert (ds["jsonData"]["username"], ds["secureJsonData"]["password"]) == ("readonly", "ro")
    assert (ds["jsonData"]["host"], ds["jsonData"]["port"]) == ("127.0.0.1", 8123)
    # An embedded store without any credentials: its open default user, with a warning.
    api = FakeGrafana()
    with caplog.at_level("WARNING"):
        push(Settings(grafana_url="http://g"), api)  # type: ignore[arg-type]
    ds = next(c[1][0] for c in api.calls if c[0] == "datasource.create_datasource")
    assert (ds["jsonData"]["username"], ds["secureJsonData"]["password"]) == ("default", "")
    assert "no read-only user" in caplog.text


def test_push_needs_a_grafana_url() -> None:
    with pytest.raises(PushError, match="WATCHKEEPER_GRAFANA_URL"):
        connect(Settings())
