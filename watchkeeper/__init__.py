"""watchkeeper: streaming monitoring for machine-learning models in production.

This package is the application shell — the ``watchkeeper`` command line, the
settings, the demo and its scenario, the embedded broker and store launchers,
Kafka administration and the publisher client. The service itself lives in
subpackages, in the order the data flows through them:

- ``watchkeeper.streams``    the Faust application: topics, agents, decoding, ingest
- ``watchkeeper.windows``    the model stage: windows, their metrics, drift, A/B
- ``watchkeeper.detectors``  pure computation: drift tests, metrics, fairness, statistics
- ``watchkeeper.alerts``     alert model, policies, engine, notifiers
- ``watchkeeper.sinks``      the ClickHouse schema and client; the embedded store server
- ``watchkeeper.dashboards`` Grafana dashboards and the static report

Installed, the subpackages are folders inside this one (one namespace in
site-packages); in a source checkout they are the top-level folders beside it,
which this module adds to its search path.
"""

from __future__ import annotations

from importlib import metadata as _metadata
from pathlib import Path as _Path

_ROOT = _Path(__file__).resolve().parent.parent
if (_ROOT / "pyproject.toml").is_file() and (_ROOT / "streams" / "__init__.py").is_file():
    # A source checkout: ``watchkeeper.streams`` is ``./streams`` (pyproject maps it the same way when installing).
    __path__.append(str(_ROOT))  # noqa: F821 - a package's __path__

try:
    __version__ = _metadata.version("watchkeeper")
except _metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout without installing
    __version__ = "0+unknown"
