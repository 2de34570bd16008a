"""Just enough SQL lexing to find clause keywords outside strings and comments.

The store reads a statement only to split ``INSERT ... FORMAT X`` from its data,
to refuse what a ClickHouse server refuses over HTTP (several statements, server
files) and to name the format of a result; the engine parses everything else.

>>> split_insert(b"INSERT INTO t FORMAT CSV\\n1,2\\n")
InsertData(statement=b'INSERT INTO t ', data_format='CSV', data_offset=25)
>>> output_format(b"SELECT 'FORMAT x' FORMAT JSON"), produces_result(b"(SELECT 1)")
('JSON', True)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from watchkeeper.sinks.embedded.errors import StoreError

# Statements that produce a result set; ClickHouse announces their format with
# X-ClickHouse-Format even when there are no rows, and clickhouse-connect's
# command() relies on that to tell "no rows" from "no result".
_RESULT_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK", "KILL"})

_TOKEN = re.compile(
    rb"""(?P<space>\s+)
    |(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    |(?P<quoted>'(?:[^'\\]|\\.|'')*(?:'|\Z)|"(?:[^"\\]|\\.|"")*(?:"|\Z)|`(?:[^`\\]|\\.|``)*(?:`|\Z))
    |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<other>.)""",
    re.DOTALL | re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "quoted" or "other"
    text: bytes  # upper-cased for words
    start: int
    end: int
    depth: int  # parenthesis depth before the token


def _tokens(sql: bytes) -> Iterator[_Token]:
    depth = 0
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup or "other"
        if kind in ("space", "comment"):
            continue
        text = match.group()
        yield _Token(kind, text.upper() if kind == "word" else text, match.start(), match.end(), depth)
        if text == b"(":
            depth += 1
        elif text == b")":
            depth = max(depth - 1, 0)


@dataclass(frozen=True)
class InsertData:
    """An ``INSERT ... FORMAT X`` statement followed by its data."""

    statement: bytes  # everything before FORMAT
    data_format: str
    data_offset: int  # where the data starts in the scanned text


def split_insert(head: bytes) -> InsertData | None:
    """Find where an ``INSERT ... FORMAT X`` statement ends and its data begins."""
    tokens = _tokens(head)
    previous = next(tokens, None)
    if previous is None or previous.text != b"INSERT":
        return None
    for token in tokens:
        after_name_keyword = previous.text in (b"INTO", b"TABLE", b".")  # a table may be named "format"
        previous = token
        if token.depth or token.kind != "word" or after_name_keyword:
            continue
        if token.text in (b"SELECT", b"WITH", b"VALUES"):
            return None  # the statement is SQL through to the end
        if token.text == b"FORMAT":
            name = next(tokens, None)
            if name is None or name.kind != "word":
                return None
            # ClickHouse: data starts after the first newline, if there is one, or after all the
            # whitespace otherwise. Binary data may itself start with a newline byte: skip only one.
            pos = name.end
            while pos < len(head) and head[pos : pos + 1] in (b" ", b"\t", b"\f"):
                pos += 1
            if head[pos : pos + 1] == b"\r":
                pos += 1
            if head[pos : pos + 1] == b"\n":
                pos += 1
            return InsertData(head[: token.start], head[name.start : name.end].decode(), pos)
    return None


def check_statement(sql: bytes) -> None:
    """Refuse what a ClickHouse server refuses over HTTP, and server file access.

    One pass, no token list: a VALUES insert can be megabytes long.
    """
    previous: _Token | None = None
    ended = False  # a ';' was seen: only more ';' may follow
    for token in _tokens(sql):
        if token.text == b";":
            ended = previous is not None
            continue
        if ended:
            raise StoreError(62, "Multi-statements are not allowed")
        pair = (previous.text if previous is not None and previous.kind == "word" else b"", token.text)
        if pair == (b"INTO", b"OUTFILE"):
            raise StoreError(358, "INTO OUTFILE is not allowed")
        if pair == (b"FROM", b"INFILE"):
            raise StoreError(78, "Query has infile and was send directly to server")
        if pair in ((b"FILE", b"("), (b"FILECLUSTER", b"(")):  # the file() table function and File engine
            raise StoreError(497, "Reading or writing server files is not allowed in the embedded store")
        previous = token
    if previous is None:
        raise StoreError(62, "Empty query")


def output_format(sql: bytes) -> str | None:
    """The format named by the statement's own top-level FORMAT clause, if any."""
    found = None
    tokens = _tokens(sql)
    for token in tokens:
        if token.kind == "word" and token.text == b"FORMAT" and token.depth == 0:
            name = next(tokens, None)
            if name is not None and name.kind == "word":
                found = sql[name.start : name.end].decode()
    return found


def first_word(sql: bytes) -> bytes:
    first = next((t for t in _tokens(sql) if t.text != b"("), None)
    return first.text if first is not None else b""


def produces_result(sql: bytes) -> bool:
    first = next((t for t in _tokens(sql) if t.text != b"("), None)
    return first is not None and first.text.decode(errors="replace") in _RESULT_KEYWORDS
