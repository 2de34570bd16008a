"""Command-line interface of the alerts: ``alerts``, ``sunset-candidates``, ``silence``, ``ack``.

The commands are click objects for ``streams/cli.py`` to register
(``register(main)`` adds them all). Each gets the settings and a store the way
the other commands do (the embedded store is started if needed); tests may
pass ``obj={"settings": ..., "store": ...}`` instead.

::

    watchkeeper alerts [--model M] [--state firing] [--kind K] [--history] [--format table|json]
    watchkeeper sunset-candidates [--model M] [--format table|json]
    watchkeeper silence add (--model M | --kind K | --version V | --alert ID)... --for 2h [--comment TEXT] [--force]
    watchkeeper silence list [--all]      watchkeeper silence expire SILENCE_ID
    watchkeeper ack ALERT_ID [--comment TEXT]
"""

from __future__ import annotations

import getpass
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from watchkeeper.alerts.model import KINDS, STATES, Alert, iso

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1w`` or a combination (``1h30m``).

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhdw])", text.strip().lower())
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([smhdw])", "", text.strip().lower()).strip():
        raise click.BadParameter(f"{text!r} is not a duration like 30m, 2h or 1d")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def os_user() -> str:
    """Who runs the command: the login name (``LOGNAME``, ``USER``, ... then the password database), else
    ``uid-<n>`` (a container's arbitrary uid has no name).

    >>> os_user() != ""
    True
    """
    try:
        name = getpass.getuser()
    except Exception:  # no variable and no password entry (KeyError before Python 3.13, OSError since)
        name = ""
    if name:
        return name
    getuid = getattr(os, "getuid", None)
    return f"uid-{getuid()}" if getuid is not None else "unknown"


def _context(ctx: click.Context) -> tuple[Any, Any]:
    """(settings, store): from ``ctx.obj`` when given (tests), else from the environment."""
    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    if "store" in obj and "settings" in obj:
        return obj["settings"], obj["store"]
    from watchkeeper.embedded import announce, ensure_store
    from watchkeeper.settings import load_settings
    from watchkeeper.sinks.schema import Retention
    from watchkeeper.sinks.writer import Store

    settings = load_settings()
    # A store that does not answer is reported in one line by the command group (cli._unreachable).
    announce(ensure_store(settings), "store", settings)
    store = Store.from_settings(settings)
    store.migrate(Retention(settings.raw_ttl_days, settings.aggregate_ttl_days))
    if isinstance(ctx.obj, dict):
        ctx.obj.update(settings=settings, store=store)
    return settings, store


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _short(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _notes(alert: Alert, silences: Sequence[Any], now: datetime) -> str:
    notes = []
    for s in silences:
        if s.silences(alert, now):
            notes.append(f"silenced until {_short(s.ends_at)} ({s.silence_id})")
        elif s.acknowledges(alert) and alert.firing:
            notes.append(f"acked by {s.author or '?'}")
    return "; ".join(notes)


@click.command("alerts")
@click.option("--model", help="Only this model.")
@click.option("--state", type=click.Choice(STATES), help="Only alerts in this state now.")
@click.option("--kind", type=click.Choice(KINDS), help="Only this kind.")
@click.option("--history", is_flag=True, help="Every state change, not only each alert's latest.")
@click.option("--limit", default=200, show_default=True, help="At most this many rows.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def alerts_command(
    ctx: click.Context, model: str | None, state: str | None, kind: str | None, history: bool, limit: int, fmt: str
) -> None:
    """List alerts (each alert's current state, newest first)."""
    from watchkeeper.alerts.engine import list_alerts
    from watchkeeper.alerts.silences import list_silences

    _, store = _context(ctx)
    rows = list_alerts(store, model=model, state=state, kind=kind, history=history, limit=limit)
    now = datetime.now(UTC)
    silences = list_silences(store, now=now)
    if fmt == "json":
        out = []
        for a in rows:
            d = a.to_json()
            d["silenced"] = any(s.silences(a, now) for s in silences)
            d["acknowledged"] = a.firing and any(s.acknowledges(a) for s in silences)
            out.append(d)
        click.echo(json.dumps(out, indent=2, sort_keys=True))
        return
    if not rows:
        click.echo("no alerts")
        return
    table = [
        [_short(a.ts), _short(a.evidence_ts or a.ts), a.state, a.severity, a.kind, a.model, a.version or "-",
         a.alert_id, _notes(a, silences, now), a.summary]
        for a in rows
    ]  # fmt: skip
    headers = ["TS", "EVIDENCE_TS", "STATE", "SEVERITY", "KIND", "MODEL", "VERSION", "ALERT_ID", "NOTE", "SUMMARY"]
    click.echo(_table(headers, table))


@click.command("sunset-candidates")
@click.option("--model", "models", multiple=True, help="Only these models (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def sunset_candidates_command(ctx: click.Context, models: tuple[str, ...], fmt: str) -> None:
    """List models and versions to consider retiring, with the evidence."""
    from watchkeeper.alerts.sunset import sunset_candidates

    settings, store = _context(ctx)
    found = sunset_candidates(store, settings.alert_config(), models=list(models) or None)
    if fmt == "json":
        click.echo(json.dumps([c.to_json() for c in found], indent=2, sort_keys=True))
        return
    if not found:
        click.echo("no sunset candidates")
        return
    rows = [[c.model, c.version or "(all)", ",".join(c.reasons), _short(c.since), c.owner, " ".join(c.summaries)]
            for c in found]  # fmt: skip
    click.echo(_table(["MODEL", "VERSION", "REASONS", "SINCE", "OWNER", "SUMMARY"], rows))


@click.group("silence")
def silence_group() -> None:
    """Silence notifications of matching alerts for a while (decisions are still recorded)."""


@silence_group.command("add")
@click.option("--force", is_flag=True, help="Silence a model that has not been seen yet.")
@click.option("--model", default="", help="Match this model.")
@click.option("--version", default="", help="Match this model version.")
@click.option("--kind", default="", type=click.Choice(["", *KINDS]), help="Match this kind.")
@click.option("--alert", "alert_id", default="", help="Match this alert id.")
@click.option("--for", "duration", default="2h", show_default=True, help="How long: 30m, 2h, 1d...")
@click.option("--comment", default="", help="Why.")
@click.option("--author", default=os_user, help="Who (default: the OS user running the command).")
@click.pass_context
def silence_add(
    ctx: click.Context, model: str, version: str, kind: str, alert_id: str, duration: str, comment: str, author: str,
    force: bool,
) -> None:  # fmt: skip
    """Add a silence; prints its id."""
    from watchkeeper.alerts.silences import add_silence, unknown_model

    if not (model or version or kind or alert_id):
        raise click.UsageError("give at least one of --model, --version, --kind, --alert")
    settings, store = _context(ctx)
    if not force and (why := unknown_model(store, model, settings.models)):
        raise click.ClickException(why)
    s = add_silence(store, duration=parse_duration(duration), model=model, version=version, kind=kind,
                    alert_id=alert_id, author=author, comment=comment)  # fmt: skip
    click.echo(f"silence {s.silence_id} until {iso(s.ends_at)}")


@silence_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def silence_list(ctx: click.Context, show_all: bool, fmt: str) -> None:
    """List silences and acknowledgements in force (or all with --all)."""
    from watchkeeper.alerts.silences import list_silences

    _, store = _context(ctx)
    items = list_silences(store, include_expired=show_all)
    if fmt == "json":
        click.echo(json.dumps([s.model_dump(mode="json") for s in items], indent=2, sort_keys=True))
        return
    if not items:
        click.echo("no silences")
        return
    rows = [[s.silence_id, s.action, s.model or "*", s.version or "*", s.kind or "*", s.alert_id or "*",
             _short(s.starts_at), "-" if s.ends_at.year >= 2100 else _short(s.ends_at), s.author, s.comment]
            for s in items]  # fmt: skip
    headers = ["ID", "ACTION", "MODEL", "VERSION", "KIND", "ALERT", "FROM", "UNTIL", "AUTHOR", "COMMENT"]
    click.echo(_table(headers, rows))


@silence_group.command("expire")
@click.argument("silence_id")
@click.pass_context
def silence_expire(ctx: click.Context, silence_id: str) -> None:
    """End a silence now."""
    from watchkeeper.alerts.silences import expire

    _, store = _context(ctx)
    if expire(store, silence_id) is None:
        raise click.ClickException(f"no silence {silence_id} in force")
    click.echo(f"silence {silence_id} expired")


@click.command("ack")
@click.argument("alert_id")
@click.option("--comment", default="", help="Note for the others on call.")
@click.option("--author", default=os_user, help="Who (default: the OS user running the command).")
@click.pass_context
def ack_command(ctx: click.Context, alert_id: str, comment: str, author: str) -> None:
    """Acknowledge a firing alert (and its PagerDuty incident, when PagerDuty is configured)."""
    from watchkeeper.alerts.engine import list_alerts
    from watchkeeper.alerts.notifiers import DeliveryError, notifiers_from_config
    from watchkeeper.alerts.silences import acknowledge

    settings, store = _context(ctx)
    current = [a for a in list_alerts(store, limit=100_000) if a.alert_id == alert_id]
    if not current:
        raise click.ClickException(f"no alert {alert_id}")
    if not current[0].firing:
        raise click.ClickException(f"alert {alert_id} is not firing")
    ack = acknowledge(store, current[0], author=author, comment=comment)
    click.echo(f"acknowledged {alert_id} (firing since {iso(ack.episode_ts)})")
    for n in notifiers_from_config(settings.delivery_config()):
        if hasattr(n, "acknowledge"):
            try:
                n.acknowledge(current[0])
                click.echo(f"{n.name}: acknowledged")
            except DeliveryError as exc:
                click.echo(f"warning: {exc}", err=True)


COMMANDS: tuple[click.Command, ...] = (alerts_command, sunset_candidates_command, silence_group, ack_command)


def register(group: click.Group) -> None:
    """Add the alert commands to the ``watchkeeper`` group."""
    for cmd in COMMANDS:
        group.add_command(cmd)


if __name__ == "__main__":  # pragma: no cover - `python -m watchkeeper.cli_alerts alerts ...`
    cli = click.Group("watchkeeper-alerts")
    register(cli)
    sys.exit(cli())
