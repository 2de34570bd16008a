"""A store wrapper that counts the statements sent through it (the model stage logs them per pass).

>>> class Echo:
...     database = "wk"
...     def query_rows(self, sql, params=None):
...         return [(sql,)]
>>> store = CountingStore.wrap(Echo())
>>> store.query_rows("SELECT 1"), store.statements, store.database
([('SELECT 1',)], 1, 'wk')
>>> CountingStore.wrap(store) is store
True
"""

from __future__ import annotations

from typing import Any

__all__ = ["STATEMENT_METHODS", "CountingStore"]

# The store's methods that send one statement each.
STATEMENT_METHODS = frozenset(
    {"query", "query_rows", "query_arrow", "query_df", "raw", "command", "execute", "delete", "insert",
     "insert_arrow", "insert_retrying"}
)  # fmt: skip


class CountingStore:
    """Passes everything to ``store``; counts the calls that send a statement (``statements``)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.statements = 0

    @classmethod
    def wrap(cls, store: Any) -> CountingStore:
        return store if isinstance(store, CountingStore) else cls(store)

    @property
    def inner(self) -> Any:
        return self._store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name not in STATEMENT_METHODS:
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.statements += 1
            return attr(*args, **kwargs)

        return counted
