"""The cluster's nodes against its tables, read at every start: what a node lacks is created on it, a new shard
is refused.

A node added to a shard (a new replica) gets no tables from ``ON CLUSTER`` statements already run, and
``schema_migrations`` (replicated) tells it nothing is pending: its inserts would fail. Every start reads
each node's shard (``system.clusters``, the row the node calls its own) and tables (``system.tables``),
through ``clusterAllReplicas``, and creates on the nodes that lack a table the table as another node has it:
its own DDL, with its UUID, so that a replicated table's Keeper path (the default names the UUID) is the one
its shard's other replicas use and the new replica fetches their rows.

A node on a shard that has no tables while other shards have them is a new shard. Rows are placed by
``cityHash64(model) % shards``: with one more shard a model's new rows go elsewhere than its old ones, and
a query on one model reads one shard only (``optimize_skip_unused_shards``), so its old rows would vanish from
results. That start is refused (:class:`NewShardRefused`) with what to do instead: a new cluster and a
backfill.

>>> nodes = [("ch1", 1, 1), ("ch2", 1, 2)]
>>> tables = {"ch1": {"metrics_local": ("5c0e", "CREATE TABLE wk.metrics_local (x UInt8) ENGINE = M")}}
>>> for stmt in check("wk", "c", nodes, tables):
...     print(stmt)
CREATE DATABASE IF NOT EXISTS wk ON CLUSTER `c`
CREATE TABLE IF NOT EXISTS wk.metrics_local UUID '5c0e' ON CLUSTER `c` (x UInt8) ENGINE = M
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from watchkeeper.sinks.cluster import checked_name, literal, on_cluster

# (host, shard, replica) of every node that answers, as the node itself reports it.
Node = tuple[str, int, int]
# host -> table name -> (uuid, create_table_query)
Tables = Mapping[str, Mapping[str, tuple[str, str]]]

_CREATE = re.compile(r"^CREATE (TABLE|VIEW|MATERIALIZED VIEW) (\S+) ", re.S)


class NewShardRefused(RuntimeError):
    """The cluster has a shard more than when its tables were made: resharding is a new cluster and a backfill."""


def nodes_query(cluster: str) -> tuple[str, dict[str, str]]:
    """Each node's own row of ``system.clusters``: its host name, shard and replica numbers."""
    name = checked_name(cluster)
    # A macro names the cluster differently on no node: each node expands it itself.
    which = f"getMacro({literal(name[1:-1])})" if name.startswith("{") else "{cluster:String}"
    sql = (
        f"SELECT hostName(), shard_num, replica_num FROM clusterAllReplicas({literal(name)}, system.clusters) "
        f"WHERE cluster = {which} AND is_local\nSETTINGS skip_unavailable_shards = 1"
    )
    return sql, ({} if name.startswith("{") else {"cluster": name})


def tables_query(cluster: str) -> str:
    """Every node's tables of the database, with their UUID and DDL."""
    return (
        "SELECT name, create_table_query, hostName(), toString(uuid) "
        f"FROM clusterAllReplicas({literal(checked_name(cluster))}, system.tables) WHERE database = {{db:String}}\n"
        "SETTINGS skip_unavailable_shards = 1"
    )


def check(db: str, cluster: str, nodes: Sequence[Node], tables: Tables) -> list[str]:
    """The statements that give every node the tables another node has (views last); raises
    :class:`NewShardRefused` where a whole shard has none while another has some."""
    shard_of = {host: shard for host, shard, _ in nodes}
    holding = {shard_of[h] for h, named in tables.items() if named and h in shard_of}
    empty = sorted({shard for shard in shard_of.values()} - holding)
    if holding and empty:
        raise NewShardRefused(reshard_message(cluster, empty, sorted(holding)))
    missing: dict[str, tuple[str, str]] = {}
    for host in shard_of:
        for other in tables.values():
            for name, made in other.items():
                if name not in tables.get(host, {}):
                    missing.setdefault(name, made)
    if not missing:
        return []
    on = on_cluster(cluster)
    out = [f"CREATE DATABASE IF NOT EXISTS {db}{on}"]
    views: list[str] = []
    for name, (uuid, ddl) in sorted(missing.items()):
        m = _CREATE.match(ddl)
        if m is None:
            raise ValueError(f"cannot recreate {db}.{name} from {ddl[:80]!r}")
        stmt = f"CREATE {m.group(1)} IF NOT EXISTS {m.group(2)} UUID {literal(uuid)}{on} " + ddl[m.end() :]
        (views if "VIEW" in m.group(1) else out).append(stmt)
    return out + views


def reshard_message(cluster: str, empty: list[int], holding: list[int]) -> str:
    return (
        f"cluster {cluster}: shard(s) {', '.join(map(str, empty))} have no watchkeeper tables while shard(s) "
        f"{', '.join(map(str, holding))} do: a shard was added to a running cluster. Refused: rows are placed by "
        "cityHash64(model) modulo the number of shards, so a model's new rows would land on another shard than "
        "its old ones, and queries on one model read one shard only - its old rows would vanish from results. "
        "To grow, reshard: build a new cluster with the new shard count (a new remote_servers entry), run "
        "`watchkeeper migrate` against it with WATCHKEEPER_CLICKHOUSE_CLUSTER naming it, backfill it through its "
        "Distributed tables (INSERT INTO each table SELECT * FROM remote() of an old node's Distributed table, "
        "which returns every old shard's rows once), then point the workers at it. Or remove the new shard from "
        "remote_servers and restart. (README: Nodes and shards, checked at every start.)"
    )
