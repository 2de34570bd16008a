"""Click commands: ``watchkeeper dashboards build|push`` and ``watchkeeper report``.

Registered by ``streams/cli.py`` as ``main.add_command(dashboards)`` and
``main.add_command(report)``.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def dashboards() -> None:
    """Grafana dashboards, alert rules and provisioning files (built from dashboards/panels/)."""


@dashboards.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dashboards"),
    show_default=True,
    help="Directory to write json/ and provisioning/ into, relative to the current directory "
    "(docker-compose.yml mounts ./dashboards/json and ./dashboards/provisioning).",
)
def build(out: Path) -> None:
    """Write dashboard JSON and Grafana provisioning files (under ./dashboards unless --out)."""
    from watchkeeper.dashboards.build import build as build_files

    for path in build_files(out):
        click.echo(f"wrote {path}")


@dashboards.command()
def push() -> None:
    """Upload dashboards and alert rules to the Grafana at WATCHKEEPER_GRAFANA_URL."""
    from watchkeeper.grafana_push import PushError
    from watchkeeper.grafana_push import push as push_all
    from watchkeeper.settings import load_settings

    try:
        for line in push_all(load_settings()):
            click.echo(line)
    except PushError as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Directory for index.html and the model pages.",
)
def report(out: Path) -> None:
    """Render the static HTML report (the dashboards' panels) from the store."""
    from watchkeeper.dashboards.report import render_report
    from watchkeeper.embedded import announce, ensure_store
    from watchkeeper.settings import load_settings
    from watchkeeper.sinks.schema import Retention
    from watchkeeper.sinks.writer import Store

    settings = load_settings()
    announce(ensure_store(settings), "store", settings)
    store = Store.from_settings(settings)
    store.migrate(Retention(settings.raw_ttl_days, settings.aggregate_ttl_days))
    try:
        pages = render_report(store, out)
    finally:
        store.close()
    click.echo(f"report written to {pages[0]} ({len(pages) - 1} model pages)")
