"""The store: the ClickHouse schema (``schema``), the clickhouse-connect client (``writer.Store``), the embedded server.

Owns every byte that goes to or comes from ClickHouse: DDL and retention
(``schema``), the HTTP client with deduplicated inserts and parameterised
queries (``writer``), and the embedded store that serves the ClickHouse engine
(chdb) over HTTP for the default, single-machine setup (``embedded/``).

May import: nothing of the project outside ``sinks``.
"""
