"""What the stages need of the store, as two small protocols: reading and writing.

The worker's stages (ingest, the model stage, alerts) take a :class:`StoreReader`,
a :class:`StoreWriter` or both rather than the concrete client, so that what a
stage does to the store is written in its signature. :class:`~watchkeeper.sinks.writer.Store`
satisfies both; a test may pass anything with the same methods.

>>> from watchkeeper.sinks.writer import Store
>>> isinstance(Store(host="127.0.0.1", port=1), StoreReader), isinstance(Store(host="127.0.0.1", port=1), StoreWriter)
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class StoreReader(Protocol):
    """Parameterised reads (values travel as ``{name:Type}`` parameters, never in the SQL text)."""

    database: str

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def query_rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]: ...

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None) -> Any: ...


@runtime_checkable
class StoreWriter(Protocol):
    """Deduplicated inserts (a repeated ``token`` inserts nothing) and single statements."""

    database: str

    def insert(self, table: str, columns: Mapping[str, Sequence[Any]], *, token: str | None = None) -> int: ...

    def insert_arrow(self, table: str, data: Any, *, token: str | None = None) -> int: ...

    def command(
        self,
        sql: str,
        params: dict[str, Any] | None = None,
        *,
        use_database: bool = True,
        settings: dict[str, Any] | None = None,
    ) -> Any: ...


@runtime_checkable
class StoreClient(StoreReader, StoreWriter, Protocol):
    """Both: what a stage that reads what it writes (the model stage, the alert engine) takes."""

    def close(self) -> None: ...
