"""Stable names for detector classes.

Configuration names a detector by its registry name (``"adwin"``,
``"watchkeeper_default"``, ...), never by an import path, so a stored
configuration survives refactoring. A test fails if a detector class is
defined in ``detectors`` but missing from the registry.

>>> from watchkeeper.detectors import registry
>>> registry.get("page_hinkley").__name__
'PageHinkley'
>>> det = registry.create("adwin", delta=0.01)
>>> det.delta
0.01
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from .base import DriftDetector

__all__ = ["REGISTRY", "register", "get", "create", "names", "name_of"]

REGISTRY: dict[str, type[DriftDetector]] = {}

T = TypeVar("T", bound=type[DriftDetector])


def register(name: str) -> Callable[[T], T]:
    """Class decorator: register a detector class under a stable ``name``."""

    def deco(cls: T) -> T:
        old = REGISTRY.get(name)
        # The same class imported twice (e.g. by a test runner) re-registers; another class may not.
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"detector name {name!r} already registered to {REGISTRY[name].__name__}")
        REGISTRY[name] = cls
        cls.registry_name = name  # type: ignore[attr-defined]
        return cls

    return deco


def _load() -> None:
    """The detectors register themselves when their modules load (the package loads them on first use)."""
    importlib.import_module(f"{__package__}.sequential")


def get(name: str) -> type[DriftDetector]:
    """The detector class registered as ``name``."""
    _load()
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown detector {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def create(name: str, **params: Any) -> DriftDetector:
    """A new detector of the class registered as ``name``."""
    return get(name)(**params)


def names() -> list[str]:
    """Registered names, sorted."""
    _load()
    return sorted(REGISTRY)


def name_of(cls_or_obj: type[DriftDetector] | DriftDetector) -> str:
    """The registry name of a detector class or instance."""
    _load()
    cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
    for name, c in REGISTRY.items():
        if c is cls or (c.__module__, c.__qualname__) == (cls.__module__, cls.__qualname__):
            return name
    raise KeyError(f"{cls.__name__} is not registered")
