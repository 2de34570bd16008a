"""``watchkeeper status``: broker, store and workers — up or down, consumer lag, the last window written."""

from __future__ import annotations

from typing import Any

from watchkeeper import __version__
from watchkeeper.settings import Settings


def _broker_up(settings: Settings, timeout: float = 1.0) -> bool:
    from watchkeeper.embedded import is_listening

    for address in settings.kafka_bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        if port.isdigit() and is_listening(host.strip("[]") or "127.0.0.1", int(port), timeout=timeout):
            return True
    return False


def _started_pid(settings: Settings, service: str) -> int | None:
    from watchkeeper.embedded import started

    entry = started(settings, service)
    return entry.pid if entry is not None and entry.running() else None


def _worker_health(url: str, timeout: float = 3.0) -> dict[str, Any]:
    """GET /live and /ready of one worker: its state and the checks' details."""
    import json
    import urllib.error
    import urllib.request

    found: dict[str, Any] = {"url": url, "state": "down", "live": None, "ready": None, "checks": {}}
    for endpoint in ("live", "ready"):
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/{endpoint}", timeout=timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 503: answered, and says which check failed
            try:
                body = json.loads(exc.read())
            except ValueError:
                body = {"status": f"HTTP {exc.code}", "checks": {}}
        except (OSError, ValueError):  # no answer (or not a watchkeeper worker)
            if endpoint == "live":
                return found
            body = {"status": "no answer", "checks": {}}
        found[endpoint] = body.get("status") == "ok"
        found["checks"].update(body.get("checks") or {})
    found["state"] = "ready" if found["ready"] else ("live" if found["live"] else "stuck")
    return found


def report_for(settings: Settings, workers: list[str]) -> dict[str, Any]:
    """What ``watchkeeper status`` shows, as one JSON-ready dict."""
    from watchkeeper.streams.health import store_address, store_reachable

    report: dict[str, Any] = {"version": __version__}
    broker_up = _broker_up(settings)
    report["broker"] = {
        "up": broker_up,
        "address": settings.kafka_bootstrap,
        "embedded": settings.embedded_broker,
        "pid": _started_pid(settings, "broker") if settings.embedded_broker else None,
    }
    store_up = store_reachable(settings)
    report["store"] = {
        "up": store_up,
        "address": store_address(settings),
        "embedded": settings.embedded_store,
        "pid": _started_pid(settings, "store") if settings.embedded_store else None,
    }
    host = "127.0.0.1" if settings.web_host in ("0.0.0.0", "::", "") else settings.web_host
    urls = workers or [f"http://{host}:{settings.web_port}"]
    report["workers"] = [_worker_health(url) for url in urls]
    report["group"] = {"id": settings.app_id, "state": None, "members": None}
    report["lag"], report["lag_error"] = None, None
    if broker_up:
        from watchkeeper.admin import admin_client, group_members, lag_by_topic

        try:
            admin = admin_client(settings)
            try:
                report["lag"] = lag_by_topic(settings, admin=admin)
                group = group_members(settings, admin)
                if group is not None:
                    report["group"].update(state=group["state"], members=len(group["members"]))
            finally:
                admin.close()
        except Exception as exc:  # the broker listens but does not answer as Kafka: say so, keep the rest
            report["lag_error"] = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    report["last_window_end"], report["store_error"] = None, None
    if store_up:
        report["last_window_end"], report["store_error"] = _last_window(settings)
    return report


def _last_window(settings: Settings) -> tuple[str | None, str | None]:
    """The latest window_end in ``metrics`` (ISO 8601, UTC), or why it could not be read."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from watchkeeper.sinks.writer import Store, StoreUnavailable

    store = Store.from_settings(settings)
    try:
        rows = store.query_rows("SELECT toUnixTimestamp(max(window_end)), count() FROM metrics FINAL")
    except (ClickHouseError, StoreUnavailable) as exc:
        text = str(exc)
        if any(code in text for code in ("UNKNOWN_TABLE", "UNKNOWN_DATABASE")):
            return None, None  # nothing written yet
        return None, text.strip().splitlines()[0][:300]
    finally:
        store.close()
    if not rows or not rows[0][1]:
        return None, None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(rows[0][0], UTC).isoformat(), None


def render(report: dict[str, Any]) -> str:
    def where(part: dict[str, Any]) -> str:
        kind = "embedded" if part["embedded"] else "server"
        return f"{kind}, started by watchkeeper (pid {part['pid']})" if part["pid"] else kind

    rows = [
        ("broker", "up" if report["broker"]["up"] else "DOWN", report["broker"]["address"], where(report["broker"])),
        ("store", "up" if report["store"]["up"] else "DOWN", report["store"]["address"], where(report["store"])),
    ]
    for w in report["workers"]:
        failed = [f"{name}: {c['detail']}" for name, c in w["checks"].items() if not c["ok"]]
        partitions = (w["checks"].get("partitions") or {}).get("detail", "")
        detail = "; ".join(failed) or partitions or ("no answer" if w["state"] == "down" else "")
        rows.append(("worker", w["state"], w["url"], detail))
    group = report["group"]
    if group["members"] is not None:
        rows.append(("group", group["state"] or "?", group["id"], f"{group['members']} members"))
    widths = [max(len(str(r[i])) for r in [("SERVICE", "STATE", "ADDRESS", "DETAIL"), *rows]) for i in range(3)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in [("SERVICE", "STATE", "ADDRESS", "DETAIL"), *rows]
    ]
    lines.append("")
    if report["lag"] is not None:
        width = max([len("TOPIC"), *(len(t) for t in report["lag"])])
        lines.append(f"{'TOPIC'.ljust(width)}  LAG (messages not yet committed by group {group['id']})")
        lines += [f"{topic.ljust(width)}  {lag}" for topic, lag in report["lag"].items()]
    else:
        lines.append(f"lag: unknown ({report['lag_error'] or 'the broker is down'})")
    if report["last_window_end"]:
        lines.append(f"last window written: {report['last_window_end']}")
    elif report["store_error"]:
        lines.append(f"last window written: unknown ({report['store_error']})")
    else:
        lines.append("last window written: none" if report["store"]["up"] else "last window written: unknown")
    return "\n".join(lines)
