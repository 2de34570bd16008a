"""``watchkeeper dead-letters replay``: re-publish dead letters to the topics they came from."""

from __future__ import annotations

import click

from watchkeeper.settings import MODEL_NAME_PATTERN


@click.group("dead-letters")
def dead_letters() -> None:
    """Dead letters: the messages and events the worker refused, kept with their bytes."""


@dead_letters.command()
@click.option("--reason", metavar="TEXT", help="Only dead letters whose error contains TEXT (any case).")
@click.option("--since", metavar="TIME", help="Only those rejected since TIME: ISO 8601, or a duration (30m, 6h, 2d).")
@click.option("--model", metavar="MODEL", help="Only those of MODEL (the dead letter's, or named in its payload).")
@click.option("--dry-run", is_flag=True, help="Count what would be replayed; send and record nothing.")
def replay(reason: str | None, since: str | None, model: str | None, dry_run: bool) -> None:
    """Re-publish dead letters to their source topic (run it once their cause is fixed).

    Each one sent is recorded in the dead_letter_replays table: a second run skips it.
    """
    import re

    from watchkeeper.cli import _settings, _started, _store
    from watchkeeper.dead_letters import parse_since
    from watchkeeper.dead_letters import replay as run_replay
    from watchkeeper.embedded import ensure_broker

    if model is not None and not re.match(MODEL_NAME_PATTERN, model):
        raise click.BadParameter(f"{model!r} is not a valid model name", param_hint="--model")
    try:
        since_ts = parse_since(since) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    settings = _settings()
    if not dry_run:
        _started(ensure_broker(settings), "broker", settings)
    store = _store(settings, start=settings.embedded_store)
    try:
        report = run_replay(store, settings, reason=reason, since=since_ts, model=model, dry_run=dry_run)
    finally:
        store.close()
    click.echo(report.describe())
