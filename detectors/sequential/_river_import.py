"""Import ``river.drift`` without its example datasets.

``river.drift``'s package imports ``river.drift.datasets`` for convenience,
which imports pandas and scikit-learn: about 140 MB of a worker's memory for
data the detectors never read. A stand-in module, registered first, loads the
real subpackage on the first attribute read from it.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

NAME = "river.drift.datasets"


def _register_stand_in() -> None:
    if NAME in sys.modules or "river.drift" in sys.modules:
        return
    river = importlib.util.find_spec("river")
    if river is None or not river.submodule_search_locations:
        return
    folder = Path(next(iter(river.submodule_search_locations))) / "drift" / "datasets"
    spec = importlib.util.spec_from_file_location(
        NAME, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:
        return
    loader = spec.loader
    stand_in = types.ModuleType(NAME, "river's drift datasets, loaded on first use")
    stand_in.__spec__, stand_in.__path__, stand_in.__file__ = spec, [str(folder)], str(folder / "__init__.py")

    def load(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        real = importlib.util.module_from_spec(spec)
        sys.modules[NAME] = real
        loader.exec_module(real)
        sys.modules["river.drift"].datasets = real
        return getattr(real, attr)

    stand_in.__getattr__ = load  # type: ignore[method-assign]
    sys.modules[NAME] = stand_in


_register_stand_in()
