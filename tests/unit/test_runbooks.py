"""docs/runbooks.md covers every alert kind, the way on-call reads it.

- every kind of ``watchkeeper.alerts.model.KINDS`` (and ``challenger``) has a ``## <kind>``
  section whose GitHub anchor is exactly the kind, since alerts link ``<base>#<kind>``;
- each section says what the alert means, the first three checks and what to do, with at
  least one SQL or CLI block;
- every SQL block can be pasted into ``watchkeeper sql "..."`` (no double quote, ``$``,
  backtick, ``;`` or ``{name:Type}`` placeholder) and reads deduplicated tables with ``FINAL``;
- every ``watchkeeper`` command shown parses with the real CLI (commands, options, choices);
- the default runbook base is the repository's own doc, and the README names only docs that exist;
- each section's "First steps" are the ones alert payloads carry when the runbook has no address
  (``watchkeeper.alerts.links.FIRST_STEPS``), word for word.

The SQL blocks are executed against a real store in tests/integration/test_runbooks.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from watchkeeper.alerts.links import first_steps
from watchkeeper.alerts.model import KINDS, Alert, runbook_url_for
from watchkeeper.cli import main
from watchkeeper.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks.md"
# Kinds being added alongside the engine's own (the A/B test's decision).
EXTRA_KINDS = tuple(k for k in ("challenger",) if k not in KINDS)
PARTS = ("What it means", "First three checks", "What to do")
# Tables rewritten by design (ReplacingMergeTree): read them with FINAL or count rows twice.
REPLACING = ("predictions", "outcomes", "metrics", "drift", "alerts", "metrics_daily", "mistakes",
             "dead_letters", "alert_silences")  # fmt: skip

BLOCK = re.compile(r"^[ \t]*```(\w*)[ \t]*\n(.*?)^[ \t]*```", re.S | re.M)


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation other than ``-``/``_`` dropped, spaces to ``-``.

    >>> github_anchor("no_data"), github_anchor("What it means")
    ('no_data', 'what-it-means')
    """
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def sections(text: str) -> dict[str, str]:
    """``## `` heading -> its body (up to the next ``## ``), fenced blocks not mistaken for headings."""
    out: dict[str, str] = {}
    current: str | None = None
    fenced = False
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            current = line[3:].strip()
            out[current] = ""
        elif current is not None:
            out[current] += line
    return out


def blocks(text: str, lang: str | None = None) -> list[str]:
    return [body for kind, body in BLOCK.findall(text) if lang is None or kind == lang]


def cli_commands(text: str) -> list[str]:
    """Every ``watchkeeper ...`` command in sh blocks and inline code; comments and redirections cut."""
    found = []
    for body in blocks(text, "sh"):
        found += [ln.strip() for ln in body.splitlines() if ln.strip().startswith("watchkeeper ")]
    # Inline code: a bare name (`watchkeeper sql`) is prose; with arguments it is a command.
    found += [c for c in re.findall(r"`(watchkeeper [^`]+)`", text) if len(c.split()) >= 3]
    out = []
    for cmd in found:
        cmd = re.split(r"\s+#\s", cmd)[0]
        cmd = re.split(r"\s+[>|]\s", cmd)[0]
        out.append(cmd.strip())
    return out


TEXT = RUNBOOKS.read_text()
SECTIONS = sections(TEXT)


@pytest.mark.parametrize("kind", [*KINDS, *EXTRA_KINDS])
def test_every_alert_kind_has_a_section(kind: str) -> None:
    assert kind in SECTIONS, f"docs/runbooks.md has no '## {kind}' section"
    assert github_anchor(kind) == kind
    assert runbook_url_for(kind, Settings().runbook_base_url) == f"docs/runbooks.md#{kind}"


@pytest.mark.parametrize("kind", [*KINDS, *EXTRA_KINDS])
def test_each_section_has_meaning_checks_and_actions(kind: str) -> None:
    body = SECTIONS[kind]
    headings = [h.strip() for h in re.findall(r"^### (.+)$", body, re.M)]
    assert headings[: len(PARTS)] == list(PARTS), f"{kind}: parts are {headings}"
    checks = body.split("### First three checks", 1)[1].split("### What to do", 1)[0]
    assert re.findall(r"^(\d)\. ", checks, re.M)[:3] == ["1", "2", "3"], f"{kind}: three numbered checks"
    assert blocks(checks, "sql") or blocks(checks, "sh"), f"{kind}: no SQL or CLI block among the checks"
    assert "watchkeeper " in body, f"{kind}: no CLI command"
    assert body.split("### What to do", 1)[1].count("\n- ") >= 2, f"{kind}: what to do, as a list of cases"


def test_sql_blocks_paste_into_the_cli_and_read_with_final() -> None:
    sql = blocks(TEXT, "sql")
    assert len(sql) >= 16
    for q in sql:
        assert not set(q) & set('"$`\\'), f"not safe between double quotes in a shell:\n{q}"
        assert ";" not in q, f"one statement per block:\n{q}"
        assert not re.search(r"\{\w+:\w", q), f"query parameters do not work from the CLI:\n{q}"
        for table in re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", q):
            if table in REPLACING:
                assert re.search(rf"\b(?:FROM|JOIN)\s+{table}(?:\s+AS\s+\w+)?\s+FINAL\b", q), (
                    f"{table} without FINAL:\n{q}"
                )


def _parse(args: list[str]) -> None:
    """Resolve subcommands and parse the leaf's options as click would, without running anything."""
    cmd: click.Command = main
    name = "watchkeeper"
    while isinstance(cmd, click.Group) and args and args[0] in cmd.commands:
        name, cmd, args = args[0], cmd.commands[args[0]], args[1:]
    assert not isinstance(cmd, click.Group), f"incomplete command: {name}"
    cmd.make_context(name, args)


@pytest.mark.parametrize("command", sorted(set(cli_commands(TEXT))))
def test_cli_commands_shown_are_real(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = shlex.split(command)[1:]
    # Files the examples name (a training file, events to replay) exist where the command runs.
    monkeypatch.chdir(tmp_path)
    for a in args:
        if re.fullmatch(r"[\w-]+\.(csv|parquet|jsonl)", a):
            (tmp_path / a).touch()
    try:
        _parse(args)
    except click.ClickException as exc:
        pytest.fail(f"{command!r}: {exc.format_message()}")


def test_the_readme_names_only_docs_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"[\w./-]+\.md\b", readme))
    assert {"docs/runbooks.md", "docs/design.md"} <= named
    missing = sorted(n for n in named if not (ROOT / n).is_file())
    assert not missing, f"README names missing files: {missing}"


@pytest.mark.parametrize("kind", [*KINDS, *EXTRA_KINDS])
def test_the_first_steps_in_payloads_are_the_sections_own(kind: str) -> None:
    """What Slack, PagerDuty and the webhooks show instead of a link that opens nothing is what this doc says."""
    from datetime import UTC, datetime

    body = SECTIONS[kind].split("### What it means", 1)[0]
    assert "**First steps**" in body, f"{kind}: no First steps list at the top of its section"
    listed = re.findall(r"^\d\. (.+)$", body, re.M)
    t = datetime(2026, 3, 2, tzinfo=UTC)
    alert = Alert(alert_id="x", model="fraud", version="v3", kind=kind, severity="warning", state="firing",
                  summary="s", evidence={"subject": ""}, ts=t, fired_at=t,
                  runbook_url=runbook_url_for(kind, Settings().runbook_base_url))  # fmt: skip
    assert listed == list(first_steps(alert))
