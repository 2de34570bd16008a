"""The embedded store: the ClickHouse engine (chdb) served over ClickHouse's HTTP interface.

One process owns the chdb data path and answers the part of the HTTP interface
that clickhouse-connect uses, so every reader and writer — workers, CLI,
report, tests — talks HTTP to the embedded store as it would to a server.
Run it with ``watchkeeper store`` (or ``python -m watchkeeper.sinks.embedded.server``).

Modules: ``server`` (entry point: serve, ping, the command line), ``handler`` (HTTP
answers), ``request`` (body, statement, parameters, settings), ``sql`` (the lexing the
store needs), ``engine`` (chdb, a connection per request), ``users`` and ``errors``.

May import: nothing of the project outside ``sinks``.
"""
