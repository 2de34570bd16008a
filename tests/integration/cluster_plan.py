"""Plan statements against the cluster-mode schema on the embedded engine, in a process of its own.

The engine is configured with a ``remote_servers`` cluster of two shards that do not answer, so
every table of the cluster-mode schema is a ``Distributed`` table over two shards. ``EXPLAIN PLAN``
analyses a query as the initiator of a distributed query does — the rewrites of
``distributed_product_mode``, ``FINAL`` on a Distributed table, what goes to the shards — without
connecting to them. (One chdb engine per process, hence the subprocess.)

Input on stdin (JSON): ``cluster``, ``ddl`` (statements, run as they are), ``settings`` (name →
value, for the session), ``queries`` (``[sql, params]``, params in ClickHouse's text format).
Output on stdout (JSON): ``{"refused": [[index, error], ...], "plans": [plan or null, ...]}``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import chdb

CONFIG = """<clickhouse><remote_servers><{cluster}>
  <shard><replica><host>127.0.0.2</host><port>9</port></replica></shard>
  <shard><replica><host>127.0.0.3</host><port>9</port></replica></shard>
</{cluster}></remote_servers></clickhouse>
"""


def main() -> None:
    job = json.load(sys.stdin)
    work = Path(tempfile.mkdtemp(prefix="watchkeeper-cluster-plan-"))
    (work / "config.xml").write_text(CONFIG.format(cluster=job["cluster"]))
    conn = chdb.connect(f"{work / 'data'}?config-file={work / 'config.xml'}")
    for name, value in job["settings"].items():
        conn.query(f"SET {name} = {{v:String}}", params={"v": str(value)})
    for stmt in job["ddl"]:
        conn.query(stmt)
    errors, plans = [], []
    for i, (sql, params) in enumerate(job["queries"]):
        try:
            plans.append(conn.query(f"EXPLAIN PLAN {sql}", "TabSeparated", params=params).bytes().decode())
        except Exception as exc:  # the engine's refusal, reported to the test
            errors.append([i, str(exc)[:600]])
            plans.append(None)
    json.dump({"refused": errors, "plans": plans}, sys.stdout)


if __name__ == "__main__":
    main()
