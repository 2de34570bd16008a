"""The ``watchkeeper`` command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click

from watchkeeper.settings import Settings, load_settings


def _settings() -> Settings:
    return load_settings()


def _store(settings: Settings):  # type: ignore[no-untyped-def]
    from clickhouse_connect.driver.exceptions import DatabaseError

    from watchkeeper.embedded import ensure_store
    from watchkeeper.sinks.writer import Store
    from watchkeeper.streams.service import migrate

    ensure_store(settings)
    store = Store.from_settings(settings)
    try:
        migrate(store, settings)
    except DatabaseError:
        pass  # a read-only analyst cannot create tables; reading still works
    return store


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """watchkeeper: streaming monitoring for machine-learning models in production."""


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("faust_args", nargs=-1, type=click.UNPROCESSED)
def worker(faust_args: tuple[str, ...]) -> None:
    """Run the Faust worker (Faust's own worker options apply, e.g. --web-port)."""
    from watchkeeper.lean import on_first_use, without_pandas

    without_pandas()  # before anything imports it: ~45 MB the worker never uses
    on_first_use("scipy.stats")  # river imports it; only its KSWIN uses it: ~45 MB
    from watchkeeper.admin import ensure_topics
    from watchkeeper.embedded import ensure_broker
    from watchkeeper.sinks.writer import StoreAuthFailed

    settings = _settings()
    ensure_broker(settings)
    try:
        _store(settings).close()
    except StoreAuthFailed as exc:  # an operator's fix away: the worker waits, its writes retry until then
        click.echo(f"warning: {exc}; starting anyway, writes are retried", err=True)
    ensure_topics(settings)
    from watchkeeper.streams.app import autodiscover

    app = autodiscover()
    sys.argv = ["watchkeeper", "worker", *faust_args]
    app.main()


@main.command()
def broker() -> None:
    """Run the embedded Kafka-protocol broker (Tansu) in the foreground."""
    from watchkeeper.embedded import broker_command

    settings = _settings()
    cmd = broker_command(settings.broker_port)
    click.echo(f"watchkeeper: embedded broker on 127.0.0.1:{settings.broker_port} (memory storage)")
    proc = subprocess.Popen(cmd)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        sys.exit(proc.wait())
    except KeyboardInterrupt:
        proc.terminate()
        sys.exit(proc.wait())


@main.command()
def store() -> None:
    """Run the embedded ClickHouse store (chdb over ClickHouse's HTTP interface) in the foreground."""
    import logging

    from watchkeeper.sinks.embedded.server import serve, users_from_env

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings()
    users = users_from_env({**os.environ, **settings.store_env()})
    serve(Path(settings.store_path), settings.store_host, settings.store_port, users=users)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def publish(files: tuple[Path, ...], quiet: bool) -> None:
    """Publish JSONL prediction/outcome events (records carry "type": "prediction" | "outcome")."""
    from watchkeeper.admin import ensure_topics
    from watchkeeper.client import Publisher
    from watchkeeper.embedded import ensure_broker
    from watchkeeper.publish import publish_files

    settings = _settings()
    ensure_broker(settings)
    ensure_topics(settings)
    with Publisher(
        settings.kafka_bootstrap,
        predictions_topic=settings.topic_predictions,
        outcomes_topic=settings.topic_outcomes,
        **settings.kafka_python_config(),
    ) as pub:
        counts = publish_files(pub, files, progress=not quiet)
    click.echo(
        f"published {counts['predictions']} predictions, {counts['outcomes']} outcomes, "
        f"{counts['unrecognised']} unrecognised lines (sent as-is for the worker to dead-letter) "
        f"in {pub.sent_messages} messages"
    )


@main.command()
@click.argument("query")
@click.option(
    "--format",
    "fmt",
    default="PrettyCompact",
    show_default=True,
    type=click.Choice(["JSONEachRow", "PrettyCompact", "CSV", "CSVWithNames", "TabSeparated", "JSON"]),
)
def sql(query: str, fmt: str) -> None:
    """Query the store (the embedded one is started if needed)."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    store = _store(_settings())
    try:
        out = store.raw(query, fmt=fmt)
    except ClickHouseError as exc:
        raise click.ClickException(str(exc).strip().splitlines()[0][:2000]) from None
    sys.stdout.buffer.write(out)
    if out and not out.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")


@main.command()
@click.option("--out", default="reports", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--minutes", default=120, show_default=True, help="Event-time length of the scenario.")
@click.option("--keep-worker", is_flag=True, help="Leave the worker running at the end.")
def demo(out: Path, minutes: int, keep_worker: bool) -> None:
    """Embedded end-to-end run: a fleet of models, drift, late labels, bad input; prints a summary."""
    from watchkeeper.demo import run_demo

    code = run_demo(_settings(), out=out, minutes=minutes, keep_worker=keep_worker)
    sys.exit(code)


@main.command()
@click.argument("model")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--version", default="", help="Only for this version (default: every version of the model).")
def reference(model: str, file: Path, version: str) -> None:
    """Load a model's training data (CSV, Parquet or JSONL) as its drift reference."""
    import re

    from watchkeeper.reference import load_reference
    from watchkeeper.settings import MODEL_NAME_PATTERN

    if not re.match(MODEL_NAME_PATTERN, model):
        raise click.BadParameter(f"{model!r} is not a valid model name", param_hint="MODEL")
    try:
        n = load_reference(_store(_settings()), model, file, version)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"loaded {n} reference rows for {model}{' ' + version if version else ''}")


@main.command()
def schema() -> None:
    """Print the JSON Schema of the events and envelopes."""
    import orjson

    from watchkeeper.streams.events import json_schemas

    sys.stdout.buffer.write(orjson.dumps(json_schemas(), option=orjson.OPT_INDENT_2) + b"\n")


def _register() -> None:
    from watchkeeper.cli_alerts import register
    from watchkeeper.cli_dashboards import dashboards, report

    main.add_command(dashboards)
    main.add_command(report)
    register(main)


_register()

if __name__ == "__main__":
    main()
