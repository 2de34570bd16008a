"""Per-model gauges on the worker's /metrics, scraped over HTTP from a worker on the embedded store.

The synthetic fleet of ``test_alert_engine``, windows 0-14 (of 5 minutes): in
window 14 ``wk.drop``'s accuracy is 0.60, ``wk.stable``'s 0.84, ``wk.drift``'s
feature ``amount`` is flagged, and ``wk.idle`` has been silent since window 4.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from tests.integration.conftest import free_port
from tests.integration.test_alert_engine import T0, W, _load
from watchkeeper.settings import Settings
from watchkeeper.streams.metrics_export import WorkerCollector
from watchkeeper.streams.service import Worker

pytestmark = pytest.mark.integration

DB = "wkgauges"


@pytest.fixture(scope="module")
def worker(store: tuple[str, int]) -> Iterator[Worker]:
    w = Worker(Settings(clickhouse=f"http://127.0.0.1:{store[1]}/{DB}", window_seconds=W))
    w.store.command(f"DROP DATABASE IF EXISTS {DB}", use_database=False)
    w.ensure_schema()
    _load(w.store, range(0, 15))
    w.owns = lambda model: model != "wk.equal"  # another worker's model: not exported here
    w.evaluate_alerts()
    w.dispatcher.close()
    yield w
    w.store.close()


def _scrape(worker: Worker) -> dict[str, float]:
    """GET /metrics from a Prometheus HTTP server serving the worker's collector: {series: value}."""
    registry = CollectorRegistry()
    registry.register(WorkerCollector(worker))
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        server.shutdown()
        thread.join(5)
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


def test_the_latest_window_of_each_owned_model_is_on_metrics(worker: Worker) -> None:
    assert _scrape(worker).get('watchkeeper_model_metric{metric="accuracy",model="wk.drop",version="v1"}') is None
    worker.refresh_model_gauges()  # the model stage does this after each alert evaluation
    got = _scrape(worker)
    assert got['watchkeeper_model_metric{metric="accuracy",model="wk.drop",version="v1"}'] == pytest.approx(0.60)
    assert got['watchkeeper_model_metric{metric="accuracy",model="wk.stable",version="v1"}'] == pytest.approx(0.84)
    assert got['watchkeeper_model_label_coverage{model="wk.drop",version="v1"}'] == pytest.approx(0.8)
    end_14 = (T0 + timedelta(seconds=W * 15)).timestamp()
    assert got['watchkeeper_model_last_window_end_seconds{model="wk.drop"}'] == end_14
    assert (
        got['watchkeeper_model_last_window_end_seconds{model="wk.idle"}'] == (T0 + timedelta(seconds=W * 5)).timestamp()
    )
    assert got['watchkeeper_model_drifted{feature="amount",model="wk.drift"}'] == 1.0
    assert got['watchkeeper_model_drifted{feature="tenure",model="wk.drift"}'] == 0.0
    # Another worker's model is exported by that worker only.
    assert not any('model="wk.equal"' in series for series in got)


def test_firing_alerts_are_counted_by_model_kind_and_severity(worker: Worker) -> None:
    worker.refresh_model_gauges()
    got = {k: v for k, v in _scrape(worker).items() if k.startswith("watchkeeper_alerts_firing{")}
    rows = worker.store.query_rows(
        "SELECT model, kind, severity, count() FROM (SELECT model, kind, severity, state FROM alerts FINAL "
        "ORDER BY alert_id, ts DESC LIMIT 1 BY alert_id) WHERE state = 'firing' AND model != 'wk.equal' "
        "GROUP BY model, kind, severity"
    )
    expected = {f'watchkeeper_alerts_firing{{kind="{k}",model="{m}",severity="{s}"}}': float(n) for m, k, s, n in rows}
    assert got == expected and expected
    assert any(re.search(r'model="wk.drift"', k) for k in got)  # the drifting feature's alert fires
