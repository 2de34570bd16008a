"""One contract over every registered detector: pickles, clones, immutable defaults, docstring."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
import types

import numpy as np
import pytest
from pydantic import BaseModel

from watchkeeper import detectors
from watchkeeper.detectors import registry
from watchkeeper.detectors.base import DriftDetector

NAMES = registry.names()


def _concrete_detector_classes(package: types.ModuleType) -> set[type]:
    """Every public, concrete DriftDetector subclass defined in the package's modules."""
    found: set[type] = set()
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue  # private helper modules hold base classes only
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, DriftDetector)
                and obj.__module__ == module.__name__
                and not inspect.isabstract(obj)
                and not obj.__name__.startswith("_")
            ):
                found.add(obj)
    return found


def unregistered(classes: set[type]) -> list[str]:
    registered = {(c.__module__, c.__qualname__) for c in registry.REGISTRY.values()}
    return sorted(c.__qualname__ for c in classes if (c.__module__, c.__qualname__) not in registered)


def test_every_detector_class_is_registered() -> None:
    assert unregistered(_concrete_detector_classes(detectors)) == []


def test_a_class_missing_from_the_registry_fails_the_check() -> None:
    class Forgotten(DriftDetector):
        def update(self, x: float) -> Forgotten:
            return self

    assert unregistered({Forgotten}) == ["test_a_class_missing_from_the_registry_fails_the_check.<locals>.Forgotten"]


def _immutable(v: object) -> bool:
    if v is None or isinstance(v, bool | int | float | str | bytes | frozenset):
        return True
    if isinstance(v, tuple):
        return all(_immutable(x) for x in v)
    if isinstance(v, BaseModel):
        return bool(v.model_config.get("frozen"))
    return False


def _stream(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).binomial(1, 0.2, n).astype(float)


@pytest.mark.parametrize("name", NAMES)
def test_contract(name: str) -> None:
    cls = registry.get(name)
    # Docstring with a seeded example.
    doc = inspect.getdoc(cls) or ""
    assert "Examples" in doc and ">>>" in doc and "Parameters" in doc, name
    # Defaults are immutable, so instances never share state through them.
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.default is not inspect.Parameter.empty:
            assert _immutable(p.default), f"{name}.{p.name} has a mutable default {p.default!r}"
    det = cls()
    assert registry.name_of(det) == name
    # Parameters round-trip and state is built in _reset.
    assert det._get_params() == cls(**det._get_params())._get_params()
    assert "_reset" in vars(cls) or any("_reset" in vars(b) for b in cls.__mro__[1:-1] if b is not DriftDetector)
    # update returns self; drift_detected is read-only.
    assert det.update(0.0) is det
    with pytest.raises(AttributeError):
        det.drift_detected = True  # type: ignore[misc]
    # Pickled mid-stream, the copy behaves exactly as the original from then on.
    for x in _stream(100, 1):
        det.update(x)
    twin = pickle.loads(pickle.dumps(det))
    rest = _stream(100, 2)
    assert [det.update(x).drift_detected for x in rest] == [twin.update(x).drift_detected for x in rest]
    # A clone has the same parameters and fresh state.
    fresh, clone = cls(), det.clone()
    assert repr(clone) == repr(det)
    xs = _stream(100, 3)
    assert [fresh.update(x).drift_detected for x in xs] == [clone.update(x).drift_detected for x in xs]


def test_registry_lookup_errors_are_clear() -> None:
    with pytest.raises(KeyError, match="unknown detector 'nope'"):
        registry.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("adwin")(type("Other", (DriftDetector,), {"update": lambda self, x: self}))


def test_the_contract_sees_every_detector() -> None:
    """The registry lists its detectors even before anything else loaded them (they load on first use)."""
    assert len(NAMES) >= 12 and {"adwin", "page_hinkley", "cusum", "mean_shift"} <= set(NAMES)
