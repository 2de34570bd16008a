"""``watchkeeper dashboards push``: upload dashboards and alert rules to a running Grafana.

Uses grafana-client against ``grafana_url`` with ``grafana_token`` (a service
account token) or ``grafana_user`` / ``grafana_password`` from the settings.
Idempotent: the folder is created once, dashboards are overwritten by uid, the
alert rule group is replaced as a whole, and the ClickHouse datasource is
created only when Grafana has none with uid ``watchkeeper-clickhouse`` (then
at the address of ``WATCHKEEPER_CLICKHOUSE``; the embedded store listens on
127.0.0.1 only, so a remote Grafana needs a ClickHouse server). Grafana reads
as the read-only user (``WATCHKEEPER_STORE_READONLY_USER`` / ``_PASSWORD``),
never as the writer: see :func:`datasource_credentials`. The one alert rule mirrors
the engine's firing alerts and goes through Grafana's own notification policy: no
contact point is pushed, so ``WATCHKEEPER_WEBHOOK_URL`` receives only the engine's
payload (``dashboards/alerting.py``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

try:
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError
except ModuleNotFoundError as exc:  # an optional extra
    raise ModuleNotFoundError(
        "`watchkeeper dashboards push` needs `pip install 'watchkeeper[grafana]'`", name="grafana_client"
    ) from exc

from watchkeeper.dashboards.alerting import FOLDER_TITLE, FOLDER_UID, GROUP, rule_group_api
from watchkeeper.dashboards.build import DATASOURCE
from watchkeeper.dashboards.grafana import all_dashboards
from watchkeeper.dashboards.panels import DATASOURCE_UID
from watchkeeper.settings import Settings

log = logging.getLogger(__name__)


class PushError(RuntimeError):
    """Grafana is not configured or refused an upload."""


def connect(settings: Settings) -> GrafanaApi:
    """A GrafanaApi for the configured Grafana (token preferred over user/password)."""
    if not settings.grafana_url:
        raise PushError("set WATCHKEEPER_GRAFANA_URL (and a token or user/password) to push to Grafana")
    credential: str | tuple[str, str] | None = None
    if settings.grafana_token is not None:
        credential = settings.grafana_token.get_secret_value()
    elif settings.grafana_user and settings.grafana_password is not None:
        credential = (settings.grafana_user, settings.grafana_password.get_secret_value())
    return GrafanaApi.from_url(settings.grafana_url, credential=credential)


def _exists(call: Callable[[], Any]) -> bool:
    try:
        call()
        return True
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return False
        raise


def datasource_credentials(settings: Settings) -> tuple[str, str]:
    """The user and password Grafana's datasource reads the store with: the read-only user's.

    A dashboard user can type any SQL into a panel, so Grafana never gets the
    writer's password. Without a read-only user configured, pushing fails, with
    one exception: an embedded store that has no credentials at all (user
    ``default``, no password: nothing secret to hand over) is used as it is,
    with a warning.

    >>> datasource_credentials(Settings(store_readonly_user="analyst", store_readonly_password="ro"))
    ('analyst', 'ro')
    >>> datasource_credentials(Settings(clickhouse="http://writer:pw@ch:8123/watchkeeper"))
    ... # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    PushError: no read-only store user for Grafana's datasource
    """
    readonly_password = settings.store_readonly_password.get_secret_value()
    if settings.store_readonly_user or readonly_password:
        # The embedded store names a read-only user without a name "readonly" (sinks/embedded/server.py).
        return settings.store_readonly_user or "readonly", readonly_password
    params = settings.clickhouse_params()
    if settings.embedded_store and params["username"] == "default" and not params["password"]:
        log.warning(
            "the embedded store has no read-only user: Grafana reads it as user 'default', which can write; "
            "set WATCHKEEPER_STORE_READONLY_USER and WATCHKEEPER_STORE_READONLY_PASSWORD to give it a read-only one"
        )
        return "default", ""
    raise PushError(
        "no read-only store user for Grafana's datasource: set WATCHKEEPER_STORE_READONLY_USER and "
        "WATCHKEEPER_STORE_READONLY_PASSWORD (the full stack's: user 'analyst', CLICKHOUSE_ANALYST_PASSWORD); "
        "the writer's credentials are not given to Grafana"
    )


def datasource_from_settings(settings: Settings) -> dict[str, Any]:
    """The ClickHouse datasource with the store's real address and the read-only user (no env substitution)."""
    params = settings.clickhouse_params()
    username, password = datasource_credentials(settings)
    ds = copy.deepcopy(DATASOURCE)
    ds["jsonData"].update(
        host=params["host"],
        port=int(params["port"]),
        username=username,
        secure=bool(params.get("secure", False)),
        defaultDatabase=settings.clickhouse_database,
    )
    ds["secureJsonData"] = {"password": password}
    return ds


def push(settings: Settings, api: GrafanaApi | None = None) -> list[str]:
    """Upload everything; returns a line per thing done (for the CLI to print)."""
    api = api or connect(settings)
    done: list[str] = []
    try:
        datasource = None
        if not _exists(lambda: api.datasource.get_datasource_by_uid(DATASOURCE_UID)):
            datasource = datasource_from_settings(settings)  # before any upload: it may refuse
        if not _exists(lambda: api.folder.get_folder(FOLDER_UID)):
            api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
            done.append(f"folder {FOLDER_TITLE} created")
        if datasource is not None:
            api.datasource.create_datasource(datasource)
            done.append(f"datasource {DATASOURCE_UID} created (user {datasource['jsonData']['username']})")
        for uid, dashboard in all_dashboards().items():
            api.dashboard.update_dashboard(
                {
                    "dashboard": dashboard,
                    "folderUid": FOLDER_UID,
                    "overwrite": True,
                    "message": "watchkeeper dashboards push",
                }
            )
            done.append(f"dashboard {uid} uploaded")
        group = rule_group_api()
        api.alertingprovisioning.update_rule_group(FOLDER_UID, GROUP, group)
        done.append(f"alert rule group {GROUP} uploaded ({len(group['rules'])} rules)")
    except GrafanaClientError as exc:
        raise PushError(f"Grafana refused the upload ({exc.status_code}): {exc.message}") from None
    return done
