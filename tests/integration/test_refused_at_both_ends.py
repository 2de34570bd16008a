"""On the real embedded stack: infinity is refused by the client at the call and by the worker in the
stream, and a worker without ``WATCHKEEPER_RUNBOOK_BASE_URL`` says so when it starts.

- The light client refuses ``float("inf")`` in a feature (it used to be sent as ``null`` and stored as
  NaN), counting it under ``features``.
- Another producer's JSON (Python's ``json``, Jackson) writes ``Infinity``: the worker dead-letters the
  event carrying it, with the field in the reason and the bytes as they came, and keeps its envelope
  neighbour (the whole envelope used to be refused as bad JSON).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchkeeper_client import Publisher

from tests.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("refusals"))
    s.start_services()
    s.start_worker()
    yield s
    s.stop()


def test_infinity_is_refused_by_the_client_and_dead_lettered_by_the_worker(stack: Stack) -> None:
    now = time.time()
    pub = Publisher(stack.settings.kafka_bootstrap)
    pub.prediction(model="inf.client", prediction=0.5, prediction_id="client-inf", features={"x": math.inf})
    pub.prediction(model="inf.client", prediction=0.5, prediction_id="client-ok", features={"x": 1.0})
    base = {"model": "inf.other", "prediction": 0.5, "ts": now}
    envelope = {
        "events": [
            {**base, "prediction_id": "other-ok", "features": {"x": 2.0}},
            {**base, "prediction_id": "other-inf", "features": {"x": math.inf}},
        ]
    }
    pub.send_message("prediction", json.dumps(envelope).encode(), key=b"other-ok")  # Python's json: Infinity
    assert pub.flush(30)
    s = pub.stats()
    pub.close(5)
    assert (s["sent"], s["rejected"], s["rejected_reasons"]) == (2, 1, {"features": 1})

    sql = "SELECT prediction_id FROM predictions FINAL WHERE model LIKE 'inf.%' ORDER BY prediction_id"
    assert stack.wait_for(sql, [("client-ok",), ("other-ok",)], timeout=120) == [("client-ok",), ("other-ok",)]
    count = "SELECT count() FROM dead_letters FINAL WHERE model LIKE 'inf.%'"
    assert stack.wait_for(count, [(1,)], timeout=60) == [(1,)]
    rows = stack.store().query_rows("SELECT model, event_index, error, payload FROM dead_letters FINAL "
                                    "WHERE model LIKE 'inf.%'")  # fmt: skip
    model, index, error, payload = rows[0]
    assert (model, index) == ("inf.other", 1)
    assert "feature 'x'" in error and "NaN and infinity are not allowed" in error
    assert '"x": Infinity' in (payload.decode() if isinstance(payload, bytes) else payload)


def test_the_worker_says_at_start_up_that_the_runbook_base_is_unset(stack: Stack) -> None:
    log = Path(stack.root / "worker-0.log")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "WATCHKEEPER_RUNBOOK_BASE_URL" not in log.read_text(errors="replace"):
        time.sleep(1)
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if "WATCHKEEPER_RUNBOOK_BASE_URL" in ln]
    assert len(lines) == 1, lines
    assert "WARNING" in lines[0] and "first steps" in lines[0]


def test_the_sql_in_the_first_steps_runs(stack: Stack) -> None:
    """The queries payloads carry instead of a runbook link run as shown, against the real store."""
    import shlex
    from datetime import UTC, datetime

    from watchkeeper.alerts.links import FIRST_STEPS, first_steps
    from watchkeeper.alerts.model import Alert

    t = datetime.now(UTC)
    commands = set()
    for kind in FIRST_STEPS:
        a = Alert(alert_id="x", model="inf.other", version="v1", kind=kind, severity="warning", state="firing",
                  summary="s", evidence={"subject": ""}, ts=t, fired_at=t,
                  runbook_url=f"docs/runbooks.md#{kind}")  # fmt: skip
        for step in first_steps(a):
            commands |= {c for c in step.split("`") if c.startswith("watchkeeper sql ")}
    assert len(commands) == 3  # dead letters (no_data, ops), traffic by model name (no_data)
    for command in sorted(commands):
        out = stack.cli(*shlex.split(command)[1:])
        assert out.returncode == 0, out.stderr
    dead = stack.cli("sql", "SELECT error FROM dead_letters FINAL WHERE model = 'inf.other'").stdout
    assert "NaN and infinity" in dead
