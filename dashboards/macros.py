r"""Grafana's SQL dialect for the ClickHouse plugin, turned into parameterised ClickHouse SQL.

Panel SQL (``dashboards/panels/``) is written once, for Grafana: it uses the
macros of the official ClickHouse plugin (``grafana-clickhouse-datasource``)
and the dashboard's template variables. The static report and the tests run the
same SQL against the store; ``bind`` rewrites every macro and variable into a
ClickHouse query parameter, so that no value is ever formatted into the text.

Macros (as the plugin's backend expands them, ``pkg/macros/macros.go``):

============================  ====================================================
``$__timeFilter(col)``        ``col >= <from> AND col <= <to>`` (seconds)
``$__fromTime`` / ``$__toTime``  the range's ends as ``DateTime``
``$__interval_s``             Grafana's interval in seconds (at least 1)
``$__timeInterval(col)``      ``toStartOfInterval(toDateTime(col), INTERVAL <interval_s> second)``
============================  ====================================================

Template variables, always with Grafana's ``singlequote`` format so that Grafana
quotes and escapes the values:

- ``${model:singlequote}``: one model name (a ``String``);
- ``IN (${version:singlequote})``: the selected versions (an ``Array(String)``),
  only ever written as the right-hand side of ``IN``.

Example:
    >>> from datetime import UTC, datetime
    >>> q = bind(
    ...     "SELECT count() FROM metrics WHERE model = ${model:singlequote} "
    ...     "AND version IN (${version:singlequote}) AND $__timeFilter(window_start)",
    ...     TimeRange(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)),
    ...     model="fraud", versions=["v1", "v2"],
    ... )
    >>> print(q.sql.replace(" AND ", "\n  AND "))
    SELECT count() FROM metrics WHERE model = {model:String}
      AND version IN {version:Array(String)}
      AND (window_start >= {__from:DateTime('UTC')}
      AND window_start <= {__to:DateTime('UTC')})
    >>> q.params["model"], q.params["version"], q.params["__interval_s"]
    ('fraud', ['v1', 'v2'], 576)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Macro name -> how many arguments it takes. The plugin has more (``_ms`` variants,
# ``$__dateFilter``); panels use only these, and ``bind`` refuses anything else.
MACROS = {"timeFilter": 1, "timeInterval": 1, "fromTime": 0, "toTime": 0, "interval_s": 0}
VARIABLES = ("model", "version")

_MACRO = re.compile(r"\$__(\w+)")
_MODEL = "${model:singlequote}"
_VERSIONS = "IN (${version:singlequote})"


class MacroError(ValueError):
    """Panel SQL uses a macro or variable that ``bind`` cannot expand."""


@dataclass(frozen=True)
class TimeRange:
    """A dashboard's time range (both ends inclusive, as the plugin's ``$__timeFilter``)."""

    start: datetime
    end: datetime

    def interval_s(self, max_points: int = 150, minimum: int = 1) -> int:
        """Grafana's ``$__interval`` in seconds: the range over the number of points, at least ``minimum``."""
        span = (self.end - self.start).total_seconds()
        return max(minimum, math.ceil(span / max_points), 1)


@dataclass(frozen=True)
class BoundQuery:
    """ClickHouse SQL with ``{name:Type}`` placeholders and their values."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)


def _macro_args(sql: str, open_paren: int) -> tuple[list[str], int]:
    """Arguments of a macro call whose ``(`` is at ``open_paren``; returns (args, index after ``)``)."""
    depth, start, args = 0, open_paren + 1, []
    for i in range(open_paren, len(sql)):
        c = sql[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i].strip())
                return args, i + 1
        elif c == "," and depth == 1:
            args.append(sql[start:i].strip())
            start = i + 1
    raise MacroError(f"unbalanced parentheses after macro at {open_paren}")


def used_variables(sql: str) -> set[str]:
    """Template variables the SQL refers to (``model``, ``version``)."""
    return {name for name in re.findall(r"\$\{(\w+)", sql)}


def bind(
    sql: str,
    time_range: TimeRange,
    *,
    interval_s: int | None = None,
    model: str | None = None,
    versions: list[str] | None = None,
) -> BoundQuery:
    """Expand Grafana macros and template variables into ClickHouse query parameters.

    Raises ``MacroError`` for an unknown macro or variable, or one the caller gave no value for.
    """
    params: dict[str, Any] = {
        "__from": time_range.start,
        "__to": time_range.end,
        "__interval_s": interval_s if interval_s is not None else time_range.interval_s(),
    }
    out = sql
    if _MODEL in out:
        if model is None:
            raise MacroError("the SQL uses ${model} but no model was given")
        out = out.replace(_MODEL, "{model:String}")
        params["model"] = model
    if _VERSIONS in out:
        if versions is None:
            raise MacroError("the SQL uses ${version} but no versions were given")
        out = out.replace(_VERSIONS, "IN {version:Array(String)}")
        params["version"] = list(versions)
    leftover = used_variables(out)
    if leftover or re.search(r"\$(?!__)\w", out):
        raise MacroError(
            f"unsupported template variable syntax {sorted(leftover) or '$var'}: write {_MODEL!r} or {_VERSIONS!r}"
        )

    parts: list[str] = []
    pos = 0
    for m in _MACRO.finditer(out):
        if m.start() < pos:
            continue  # inside a macro already expanded
        name = m.group(1)
        if name not in MACROS:
            raise MacroError(f"unsupported macro $__{name}")
        parts.append(out[pos : m.start()])
        end = m.end()
        if MACROS[name]:
            if end >= len(out) or out[end] != "(":
                raise MacroError(f"$__{name} needs an argument")
            args, end = _macro_args(out, end)
            if len(args) != MACROS[name] or not all(args):
                raise MacroError(f"$__{name} takes {MACROS[name]} argument(s), got {args}")
        if name == "timeFilter":
            col = args[0]
            parts.append(f"({col} >= {{__from:DateTime('UTC')}} AND {col} <= {{__to:DateTime('UTC')}})")
        elif name == "timeInterval":
            parts.append(f"toStartOfInterval(toDateTime({args[0]}), toIntervalSecond({{__interval_s:UInt32}}))")
        elif name == "fromTime":
            parts.append("{__from:DateTime('UTC')}")
        elif name == "toTime":
            parts.append("{__to:DateTime('UTC')}")
        else:  # interval_s
            parts.append("{__interval_s:UInt32}")
        pos = end
    parts.append(out[pos:])
    return BoundQuery("".join(parts), params)
