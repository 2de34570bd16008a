"""The embedded store: the ClickHouse engine (chdb) served over ClickHouse's HTTP interface.

One process owns the chdb data path and answers the part of the HTTP interface
that clickhouse-connect uses, so every reader and writer — workers, CLI,
report, tests — talks HTTP to the embedded store as it would to a server.
Run it with ``watchkeeper store`` (or ``python -m watchkeeper.sinks.embedded.server``).

May import: nothing of the project outside ``sinks``.
"""
