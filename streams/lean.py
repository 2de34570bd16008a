"""The worker runs without pandas.

pyarrow and clickhouse-connect import pandas on first use only to check whether
what they are given is a pandas object (pyarrow when it builds a record batch);
the worker never gives them one, and pandas costs it about 45 MB of memory
(measured: ``make bench``'s worker peak). ``watchkeeper worker`` makes pandas
unimportable in its own process before anything imports it, which to these
libraries is the same as pandas not being installed — a configuration both
support. Commands that do use pandas (``watchkeeper reference``) run in their
own processes and are not affected.
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any

NOT_IN_WORKER = ("pandas",)


class _NotInWorker(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] in NOT_IN_WORKER:
            raise ModuleNotFoundError(f"No module named {name!r} in the worker (see streams/lean.py)", name=name)
        return None


def without_pandas() -> bool:
    """Make pandas unimportable in this process; False if it is already imported (nothing to save)."""
    if any(name in sys.modules for name in NOT_IN_WORKER):
        return False
    if not any(isinstance(finder, _NotInWorker) for finder in sys.meta_path):
        sys.meta_path.insert(0, _NotInWorker())
    return True
