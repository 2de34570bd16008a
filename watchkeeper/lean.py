"""The worker runs without pandas, and imports scipy.stats only if a detector uses it.

pyarrow and clickhouse-connect import pandas on first use only to check whether
what they are given is a pandas object (pyarrow when it builds a record batch);
the worker never gives them one, and pandas costs it about 45 MB of memory
(measured: ``make bench``'s worker peak). ``watchkeeper worker`` makes pandas
unimportable in its own process before anything imports it, which to these
libraries is the same as pandas not being installed — a configuration both
support. Commands that do use pandas (``watchkeeper reference``) run in their
own processes and are not affected.

river imports scipy.stats with every drift detector (its KSWIN module does, and
its package imports them all): with scipy.optimize, which it imports, ~45 MB.
watchkeeper's own tests need only scipy.special (``detectors/drift.py``), so
the worker registers a stand-in that imports the real module on first use:
only a KSWIN detector, or ``ks_samples``, pays for it.

Arrow's default allocator (mimalloc) keeps what the worker frees in per-thread
heaps: decoding, inserting and the model stage's query results each run in
threads of their own, and each thread's heap kept its high-water mark. The
worker takes Arrow's memory from the system allocator instead, which gives it
back for reuse (measured: decoding and serialising the 100 models x 20 features
backlog added 19 MB of resident memory with mimalloc, 5 MB with the system
allocator; no measurable change in decoding speed), and caps glibc's malloc
arenas at ``MALLOC_ARENAS`` (glibc gives each thread that allocates an arena of
its own, up to 8 per core, each keeping its own free memory: the worker's peak
through ``make bench``'s 100-model backlog, on a fresh store, 242 MB with the
default and 219 MB with 2 arenas, one A/B pair run side by side).

What glibc's malloc frees it keeps for reuse, and the ingest and the model stage
allocate from different threads: after a backlog's drain, ``malloc_trim``
released 31-35 MB of free heap memory at once (resident anonymous memory
152-155 -> 120-122 MB), which the model stage's pass had allocated on top of.
The worker fixes malloc's mmap threshold at ``MMAP_THRESHOLD`` (glibc raises it
as large blocks are freed, up to 32 MB, after which a batch's buffers stay in the
heap), so that large buffers go back to the system when freed, and the model
stage hands the heap's free memory back before each pass (``malloc_trim``:
``streams/agents/model_stage.py``; 9 ms for 200 MB of freed blocks, nothing when
there is none). The 100-model backlog's peak, three backlogs each on a fresh
store: 255-262 MB without either, 216-236 MB with both.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.abc
import importlib.util
import os
import sys
import types
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


def on_first_use(name: str) -> bool:
    """Register a stand-in for module ``name`` that imports the real one on the first attribute read.

    False if the module is already imported (nothing to save) or cannot be found.
    """
    if name in sys.modules:
        return False
    try:
        spec = importlib.util.find_spec(name)  # imports the parent package, not the module
    except ModuleNotFoundError:  # no parent package
        return False
    if spec is None:
        return False
    stand_in = types.ModuleType(name, f"{name}, imported on first use (see streams/lean.py)")
    stand_in.__spec__ = spec
    stand_in.__file__ = spec.origin
    if spec.submodule_search_locations is not None:
        stand_in.__path__ = list(spec.submodule_search_locations)

    def load(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        real = importlib.import_module(name)
        # Who bound the stand-in (``from scipy import stats``) reads the real module's names from now on.
        stand_in.__dict__.update({k: v for k, v in vars(real).items() if not k.startswith("__")})
        return getattr(real, attr)

    stand_in.__getattr__ = load  # type: ignore[method-assign]
    sys.modules[name] = stand_in
    return True


MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameters
_M_MMAP_THRESHOLD = -3
# Blocks at least this large are mapped on their own and unmapped when freed (glibc's initial threshold,
# kept: fixing it also keeps glibc from raising it).
MMAP_THRESHOLD = 256 * 1024


def _libc() -> Any:
    return ctypes.CDLL("libc.so.6")


def arrow_system_allocator() -> str:
    """Make the system allocator Arrow's default in this process (see above); returns the backend's name."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
    return str(pa.default_memory_pool().backend_name)


def cap_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (see above), before the worker starts its threads; False if not glibc.

    ``MALLOC_ARENA_MAX`` in the environment, if set, wins: it is the operator's choice.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        return bool(_libc().mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc
        return False


def fix_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold (see above); False if not glibc, or if ``MALLOC_MMAP_THRESHOLD_`` in the
    environment already set it (the operator's choice)."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return False
    try:
        return bool(_libc().mallopt(_M_MMAP_THRESHOLD, size))
    except (OSError, AttributeError):
        return False
