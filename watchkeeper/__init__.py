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
site-packages); in a source checkout (``pip install -e .``) they are the top-level
folders beside it, which the editable install maps to the same names. Each module
has one name: ``watchkeeper.watchkeeper`` or ``watchkeeper.sinks.sinks`` do not exist.
"""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("watchkeeper")
except _metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout without installing
    __version__ = "0+unknown"
