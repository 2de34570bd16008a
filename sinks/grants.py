"""The access each kind of statement watchkeeper sends needs on ClickHouse, and whether a user's grants give it.

ClickHouse checks every statement against the user's grants (the embedded store checks none, so only this
table and its test stand between a statement and ACCESS_DENIED on a server). Sources: the GRANT statement's
"Privileges" section (https://clickhouse.com/docs/sql-reference/statements/grant), and the engine itself:

- ``ENGINE = Distributed`` and the ``clusterAllReplicas`` table function are the ``REMOTE`` source
  (``StorageDistributed.cpp`` registers ``source_access_type = REMOTE``; without
  ``access_control_improvements.enable_read_write_grants``, off by default, that is the global ``REMOTE``
  grant); the table function reads the remote table's structure first (``DESCRIBE``: ``SHOW COLUMNS``);
- ``ON CLUSTER`` needs ``CLUSTER`` (``access_control_improvements.on_cluster_queries_require_cluster_grant``);
- ``CREATE OR REPLACE VIEW`` drops the old view: ``CREATE VIEW`` and ``DROP VIEW``;
- ``EXCHANGE TABLES`` is a rename both ways: ``SELECT, DROP TABLE`` on each, ``CREATE TABLE, INSERT`` on each;
- a lightweight ``DELETE`` is ``ALTER DELETE``; ``ALTER ... MODIFY TTL`` is ``ALTER TTL`` (and the rewrite it
  starts, ``ALTER MATERIALIZE TTL``, which ``ALTER TTL`` implies); ``MODIFY SETTING`` is ``ALTER SETTINGS``;
- ``system.tables``, ``system.databases`` and ``system.columns`` are readable by every user, other system
  tables (``system.clusters``) need ``SELECT`` where ``select_from_system_db_requires_grant`` is on.

:data:`PARENT` is the part of the privilege tree that these need (``system.privileges``; the test checks it
against the engine's).

>>> sorted(needs("DELETE FROM wk.metrics_local ON CLUSTER `c` WHERE model = 'm'", "wk"))
[('ALTER DELETE', 'wk.metrics_local'), ('CLUSTER', '*')]
>>> covered({("CREATE VIEW", "wk.v")}, ["GRANT CREATE ON wk.*"])
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# privilege -> its parent in ClickHouse's tree (GRANT of a parent grants its children).
PARENT: dict[str, str] = {
    "SELECT": "ALL", "INSERT": "ALL", "OPTIMIZE": "ALL", "CLUSTER": "ALL", "REMOTE": "ALL",
    "SHOW": "ALL", "SHOW DATABASES": "SHOW", "SHOW TABLES": "SHOW", "SHOW COLUMNS": "SHOW",
    "CREATE": "ALL", "CREATE DATABASE": "CREATE", "CREATE TABLE": "CREATE", "CREATE VIEW": "CREATE",
    "DROP": "ALL", "DROP TABLE": "DROP", "DROP VIEW": "DROP",
    "ALTER": "ALL", "ALTER TABLE": "ALTER", "ALTER DELETE": "ALTER TABLE", "ALTER TTL": "ALTER TABLE",
    "ALTER MATERIALIZE TTL": "ALTER TABLE", "ALTER SETTINGS": "ALTER TABLE", "ALTER COLUMN": "ALTER TABLE",
    "ALTER ADD COLUMN": "ALTER COLUMN", "ALTER COMMENT COLUMN": "ALTER COLUMN",
}  # fmt: skip
# Granted with another, implicitly (``addImplicitAccessRights`` in ClickHouse's ``ContextAccess.cpp``).
IMPLIED: dict[str, tuple[str, ...]] = {
    "CREATE TABLE": ("CREATE VIEW",), "DROP TABLE": ("DROP VIEW",), "ALTER TTL": ("ALTER MATERIALIZE TTL",),
}  # fmt: skip
# Readable by every user (they show only what the user may see): no grant needed to SELECT from them locally.
ALWAYS_READABLE = frozenset({"system.one", "system.databases", "system.tables", "system.columns"})

Need = tuple[str, str]  # (privilege, "db.table" | "db.*" | "*")

_NAME = r"`?([\w.]+)`?"
_TABLES = re.compile(r"\b(?:FROM|(?<!ARRAY )JOIN)\s+(?!\()" + _NAME, re.I)
_REMOTE = re.compile(r"\bclusterAllReplicas\s*\(\s*'[^']*'\s*,\s*([\w.]+)\s*\)", re.I)


def _qualified(name: str, db: str) -> str:
    return name if "." in name else f"{db}.{name}"


def _reads(sql: str, db: str) -> set[Need]:
    needs: set[Need] = set()
    for remote in _REMOTE.findall(sql):
        needs |= {("REMOTE", "*"), ("SELECT", remote), ("SHOW COLUMNS", remote)}
    for name in _TABLES.findall(_REMOTE.sub("", sql)):
        if _qualified(name, db) not in ALWAYS_READABLE:
            needs.add(("SELECT", _qualified(name, db)))
    return needs


def needs(sql: str, db: str) -> set[Need]:
    """The privileges one statement needs, each on the object it acts on."""
    s = " ".join(sql.split())
    out: set[Need] = {("CLUSTER", "*")} if re.search(r"\bON CLUSTER\b", s) else set()
    if m := re.match(r"CREATE DATABASE (?:IF NOT EXISTS )?" + _NAME, s):
        return out | {("CREATE DATABASE", m.group(1) + ".*")}
    if m := re.match(r"CREATE OR REPLACE VIEW " + _NAME, s):
        return out | {("CREATE VIEW", m.group(1)), ("DROP VIEW", m.group(1))} | _reads(s, db)
    if m := re.match(r"CREATE VIEW (?:IF NOT EXISTS )?" + _NAME, s):
        return out | {("CREATE VIEW", m.group(1))} | _reads(s, db)
    if m := re.match(r"CREATE TABLE (?:IF NOT EXISTS )?" + _NAME, s):
        out.add(("CREATE TABLE", m.group(1)))
        return out | ({("REMOTE", "*")} if re.search(r"ENGINE = Distributed\(", s) else set())
    if m := re.match(r"DROP TABLE (?:IF EXISTS )?" + _NAME, s):
        return out | {("DROP TABLE", m.group(1))}
    if m := re.match(rf"EXCHANGE TABLES {_NAME} AND {_NAME}", s):
        return out | {(p, t) for t in m.groups() for p in ("SELECT", "DROP TABLE", "CREATE TABLE", "INSERT")}
    if m := re.match(r"INSERT INTO " + _NAME, s):
        return out | {("INSERT", _qualified(m.group(1), db))} | _reads(s, db)
    if m := re.match(r"DELETE FROM " + _NAME, s):
        return out | {("ALTER DELETE", _qualified(m.group(1), db))}
    if m := re.match(r"ALTER TABLE " + _NAME, s):
        table = _qualified(m.group(1), db)
        kinds = {
            "ADD COLUMN": ["ALTER ADD COLUMN"],
            "COMMENT COLUMN": ["ALTER COMMENT COLUMN"],
            "MODIFY SETTING": ["ALTER SETTINGS"],
            "MODIFY TTL": ["ALTER TTL", "ALTER MATERIALIZE TTL"],
        }
        found = {(p, table) for k, ps in kinds.items() if k in s for p in ps}
        if not found:
            raise ValueError(f"no privilege known for {s[:120]!r}: add it to sinks/grants.py")
        return out | found
    if re.match(r"(?:SELECT|WITH)\b", s, re.I):
        return out | _reads(s, db)
    if m := re.match(r"(?:DESCRIBE|DESC)(?: TABLE)? " + _NAME, s, re.I):
        return {("SHOW COLUMNS", _qualified(m.group(1), db))}
    if re.match(r"SHOW TABLES\b", s, re.I):
        return {("SHOW TABLES", db + ".*")}
    raise ValueError(f"no privilege known for {s[:120]!r}: add it to sinks/grants.py")


def _granted(grants: Iterable[str]) -> set[Need]:
    out: set[Need] = set()
    for grant in grants:
        m = re.match(r"GRANT (.+) ON (\S+)$", " ".join(grant.split()))
        if m is None:
            raise ValueError(f"cannot read grant {grant!r}")
        target = "*" if m.group(2) == "*.*" else m.group(2)
        for p in (p.strip() for p in m.group(1).split(",")):
            out |= {(q, target) for q in (p, *IMPLIED.get(p, ()))}
    return out


def _ancestors(privilege: str) -> list[str]:
    chain = [privilege]
    while chain[-1] in PARENT:
        chain.append(PARENT[chain[-1]])
    return chain


def covered(required: Iterable[Need], grants: Iterable[str]) -> bool:
    return not missing(required, grants)


def missing(required: Iterable[Need], grants: Iterable[str]) -> set[Need]:
    """What ``grants`` (``GRANT ... ON ...`` statements) leave out of ``required``."""
    granted = _granted(grants)

    def scopes(target: str) -> set[str]:
        db = target.split(".")[0]
        return {"*", target, f"{db}.*"}

    return {(p, t) for p, t in required if not any((a, s) in granted for a in _ancestors(p) for s in scopes(t))}
