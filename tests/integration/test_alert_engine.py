"""The alert engine against the real embedded store (chdb behind ClickHouse's HTTP interface).

A synthetic fleet of ``metrics`` and ``drift`` rows, 40 windows of 5 minutes:

- ``wk.stable``: steady accuracy; gets no alert at all.
- ``wk.drop``: accuracy 0.85 -> 0.60 for windows 10-19 -> 0.85 again: one retrain alert
  (and one retrain-webhook call) that fires and then resolves.
- ``wk.drift``: feature ``amount`` drifted in windows 10-19, ``age`` in isolated windows:
  one drift alert per model naming ``amount`` only.
- ``wk.idle``: traffic stops after window 4: no_data, then sunset (idle).
- ``wk.worse``: does worse than its baseline (``lift_accuracy`` < 0): sunset evidence.
- ``wk.versions``: v2 takes over from v1 at window 15: v1 is superseded.

The "live" run writes the windows in chunks and evaluates after each chunk, the
way the model stage calls the engine; the replay writes every row into an empty
database and evaluates once. Both must decide exactly the same alerts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from watchkeeper.alerts.dispatch import Dispatcher, Retry
from watchkeeper.alerts.engine import AlertEngine, list_alerts
from watchkeeper.alerts.model import Alert
from watchkeeper.alerts.notifiers import RetrainWebhook
from watchkeeper.alerts.policy import AlertPolicy, NoDataRule, SunsetRule
from watchkeeper.alerts.silences import add_silence
from watchkeeper.alerts.sunset import sunset_candidates
from watchkeeper.alerts.testing import HttpReceiver
from watchkeeper.settings import Settings
from watchkeeper.sinks.schema import Retention
from watchkeeper.sinks.writer import Store

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
W = 300
N_WINDOWS = 40
RUNBOOKS = "https://runbooks.example/watchkeeper.md"

POLICIES = {
    "wk.idle": AlertPolicy(sunset=SunsetRule(idle_days=1 / 24), no_data=NoDataRule(after_minutes=30)),
    "wk.versions": AlertPolicy(sunset=SunsetRule(superseded_days=1 / 24)),
}


def _settings() -> Settings:
    return Settings(
        window_seconds=W,
        runbook_base_url=RUNBOOKS,
        models={"wk.drop": {"owner": "risk-ml", "runbook_url": "https://runbooks.example/drop"}},
    )


def _window(model: str, version: str, i: int, acc: float | None, **extra: tuple[float, int]) -> list[dict[str, Any]]:
    start = T0 + timedelta(seconds=W * i)
    base = {"window_start": start, "window_end": start + timedelta(seconds=W), "model": model, "version": version,
            "segment": "", "computed_at": start + timedelta(seconds=W + 600)}  # fmt: skip
    metrics: dict[str, tuple[float, int]] = {
        "predictions": (500, 500), "labelled": (400, 500), "label_rate": (0.8, 500)
    }  # fmt: skip
    if acc is not None:
        metrics["accuracy"] = (acc, 400)
    metrics.update(extra)
    return [{**base, "metric": m, "value": float(v), "n": int(n)} for m, (v, n) in metrics.items()]


def _drift(model: str, version: str, i: int, drifted: set[str]) -> list[dict[str, Any]]:
    start = T0 + timedelta(seconds=W * i)
    stats = {"amount": 0.31, "age": 0.12, "tenure": 0.02}
    return [
        {"ts": start + timedelta(seconds=W), "window_start": start, "window_end": start + timedelta(seconds=W),
         "model": model, "version": version, "feature": f, "detector": "ks",
         "statistic": stats[f] if f in drifted else 0.01, "threshold": 0.05, "drifted": int(f in drifted),
         "computed_at": start + timedelta(seconds=W + 600)}
        for f in sorted(stats)
    ]  # fmt: skip


def fleet() -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """(metric rows, drift rows) per window index."""
    out = []
    for i in range(N_WINDOWS):
        m: list[dict[str, Any]] = []
        d: list[dict[str, Any]] = []
        m += _window("wk.stable", "v1", i, 0.85 + (0.01 if i % 2 else -0.01))
        m += _window("wk.drop", "v1", i, 0.60 if 10 <= i < 20 else 0.85)
        m += _window("wk.drift", "v1", i, 0.85)
        drifted = ({"amount"} if 10 <= i < 20 else set()) | ({"age"} if i in (5, 15) else set())
        d += _drift("wk.drift", "v1", i, drifted)
        if i < 5:
            m += _window("wk.idle", "v1", i, 0.85)
        m += _window("wk.worse", "v1", i, 0.80, lift_accuracy=(-0.04, 400))
        if i < 15:
            m += _window("wk.versions", "v1", i, 0.85)
        if i >= 10:
            m += _window("wk.versions", "v2", i, 0.86)
        out.append((m, d))
    return out


def _insert(store: Store, rows: list[dict[str, Any]], table: str) -> None:
    if rows:
        store.insert(table, {c: [r[c] for r in rows] for c in rows[0]})


def _load(store: Store, windows: range) -> None:
    data = fleet()
    _insert(store, [r for i in windows for r in data[i][0]], "metrics")
    _insert(store, [r for i in windows for r in data[i][1]], "drift")


def _decisions(alerts: list[Alert]) -> list[dict[str, Any]]:
    return sorted((a.decision() for a in alerts), key=lambda d: (d["ts"], d["alert_id"], d["state"]))


@pytest.fixture(scope="module")
def stores(store: tuple[str, int]) -> Iterator[dict[str, Store]]:
    host, port = store
    out = {name: Store(host=host, port=port, database=name) for name in ("wklive", "wkreplay", "wkrestart")}
    for s in out.values():
        s.migrate(Retention())
    yield out
    for s in out.values():
        s.close()


@pytest.fixture(scope="module")
def live(stores: dict[str, Store]) -> dict[str, Any]:
    """The live run: 8 chunks of 5 windows, evaluated after each; retrain webhook on loopback."""
    st = stores["wklive"]
    engine = AlertEngine(st, _settings().alert_config(POLICIES))
    produced: list[Alert] = []
    with HttpReceiver() as rx:
        dispatcher = Dispatcher([RetrainWebhook(rx.url("/retrain"))], retry=Retry(attempts=2, initial_delay=0.05))
        for chunk in range(0, N_WINDOWS, 5):
            _load(st, range(chunk, chunk + 5))
            alerts = engine.evaluate()
            produced += alerts
            dispatcher.submit(alerts)
        assert dispatcher.flush(10)
        dispatcher.close()
        requests = list(rx.requests)
    return {"alerts": produced, "retrain_requests": requests, "engine": engine}


def _of(alerts: list[Alert], model: str, kind: str | None = None) -> list[Alert]:
    return [a for a in alerts if a.model == model and (kind is None or a.kind == kind)]


def test_sustained_accuracy_drop_fires_one_retrain_alert_that_resolves(live: dict[str, Any]) -> None:
    alerts = _of(live["alerts"], "wk.drop")
    assert [(a.kind, a.state) for a in alerts] == [("retrain", "firing"), ("retrain", "resolved")]
    fired, resolved = alerts
    assert fired.alert_id == resolved.alert_id
    # Bad windows 10, 11, 12: fires at the end of window 12; good 20, 21, 22: resolves at the end of 22.
    assert fired.ts == T0 + timedelta(seconds=13 * W) and resolved.ts == T0 + timedelta(seconds=23 * W)
    assert fired.severity == resolved.severity == "critical"
    ev = fired.evidence
    assert ev["reference"]["value"] == pytest.approx(0.85) and ev["current"]["value"] == pytest.approx(0.60)
    assert ev["drop_lower_bound"] > 0 and ev["label_coverage"] == pytest.approx(0.8)
    assert ev["reasons"] == ["performance"] and len(ev["run_ends"]) == 3
    assert "accuracy fell to 0.600 from a reference of 0.850" in fired.summary
    assert fired.owner == "risk-ml" and fired.runbook_url == "https://runbooks.example/drop"
    assert resolved.evidence["firing_since"] == "2026-03-02T09:05:00Z"


def test_retrain_webhook_called_once_with_the_evidence(live: dict[str, Any]) -> None:
    reqs = live["retrain_requests"]
    assert len(reqs) == 1
    body = reqs[0].json
    assert body["event"] == "retrain" and body["model"] == "wk.drop" and body["version"] == "v1"
    assert body["evidence"]["current"]["value"] == pytest.approx(0.60)
    assert reqs[0].headers["Content-Type"] == "application/json"


def test_feature_shift_gives_one_drift_alert_naming_the_feature(live: dict[str, Any]) -> None:
    alerts = _of(live["alerts"], "wk.drift")
    assert [(a.kind, a.state) for a in alerts] == [("drift", "firing"), ("drift", "resolved")]
    fired = alerts[0]
    assert [f["feature"] for f in fired.evidence["features"]] == ["amount"]
    assert fired.evidence["features"][0]["detectors"] == ["ks"]
    assert "amount" in fired.summary and "age" not in fired.summary
    assert fired.ts == T0 + timedelta(seconds=13 * W)


def test_idle_model_gets_no_data_then_sunset(live: dict[str, Any]) -> None:
    alerts = _of(live["alerts"], "wk.idle")
    kinds = [(a.kind, a.subject, a.state) for a in alerts]
    assert kinds == [("no_data", "traffic", "firing"), ("sunset", "idle", "firing")]
    last = T0 + timedelta(seconds=5 * W)
    assert alerts[0].ts == last + timedelta(minutes=30) and alerts[1].ts == last + timedelta(hours=1)
    assert alerts[1].severity == "info" and alerts[1].evidence["last_traffic"] == "2026-03-02T08:25:00Z"


def test_stable_model_gets_no_alert(live: dict[str, Any]) -> None:
    assert _of(live["alerts"], "wk.stable") == []


def test_alerts_are_recorded_once_and_listed(stores: dict[str, Store], live: dict[str, Any]) -> None:
    st = stores["wklive"]
    history = list_alerts(st, history=True)
    assert _decisions(history) == _decisions(live["alerts"])
    firing = list_alerts(st, state="firing")
    assert {(a.model, a.kind) for a in firing} == {
        ("wk.idle", "no_data"), ("wk.idle", "sunset"), ("wk.worse", "sunset"), ("wk.versions", "sunset")
    }  # fmt: skip
    # Evaluating again changes nothing; a restarted engine rebuilds its state from the store.
    assert live["engine"].evaluate() == []
    assert AlertEngine(st, _settings().alert_config(POLICIES)).evaluate() == []
    assert len(list_alerts(st, history=True)) == len(history)


def test_sunset_candidates_with_evidence(stores: dict[str, Store], live: dict[str, Any]) -> None:
    found = {(c.model, c.version): c for c in sunset_candidates(stores["wklive"], _settings().alert_config(POLICIES))}
    assert set(found) == {("wk.idle", ""), ("wk.worse", "v1"), ("wk.versions", "v1")}
    worse = found[("wk.worse", "v1")]
    assert worse.reasons == ("below_baseline",)
    assert worse.evidence["below_baseline"]["lift"] == pytest.approx(-0.04)
    assert worse.since == T0 + timedelta(seconds=6 * W)
    assert found[("wk.versions", "v1")].evidence["superseded"]["superseded_by"] == "v2"
    assert found[("wk.idle", "")].reasons == ("idle",)


def test_replay_of_the_same_rows_gives_the_same_alerts(stores: dict[str, Store], live: dict[str, Any]) -> None:
    st = stores["wkreplay"]
    _load(st, range(N_WINDOWS))
    replayed = AlertEngine(st, _settings().alert_config(POLICIES)).evaluate()
    assert _decisions(replayed) == _decisions(live["alerts"])


def test_restarted_engine_continues_where_the_store_says(stores: dict[str, Store], live: dict[str, Any]) -> None:
    """Half the windows with one engine, the rest with a new one (state rebuilt from ``alerts``)."""
    st = stores["wkrestart"]
    _load(st, range(0, 15))
    first = AlertEngine(st, _settings().alert_config(POLICIES)).evaluate()
    _load(st, range(15, N_WINDOWS))
    second = AlertEngine(st, _settings().alert_config(POLICIES)).evaluate()
    assert _decisions(first + second) == _decisions(live["alerts"])


def test_silenced_alert_is_recorded_but_flagged(stores: dict[str, Store]) -> None:
    st = Store(host=stores["wklive"]._params["host"], port=stores["wklive"]._params["port"], database="wksilence")
    st.migrate(Retention())
    add_silence(st, model="wk.drop", duration=timedelta(hours=1), comment="known incident")
    _load(st, range(0, 15))
    alerts = AlertEngine(st, _settings().alert_config(POLICIES)).evaluate()
    drop = _of(alerts, "wk.drop")
    assert [a.silenced for a in drop] == [True]
    assert all(not a.silenced for a in alerts if a.model != "wk.drop")
    assert [a.alert_id for a in list_alerts(st, model="wk.drop")] == [drop[0].alert_id]
    st.close()


def test_cli_lists_silences_and_acknowledges(stores: dict[str, Store], live: dict[str, Any]) -> None:
    import json

    from click.testing import CliRunner

    from watchkeeper.cli_alerts import COMMANDS

    cmds = {c.name: c for c in COMMANDS}
    obj = {"settings": _settings(), "store": stores["wklive"]}

    def run(name: str, *args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cmds[name], list(args), obj=obj, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    firing = json.loads(run("alerts", "--state", "firing", "--format", "json"))
    assert {(a["model"], a["kind"]) for a in firing} >= {("wk.worse", "sunset"), ("wk.idle", "no_data")}
    assert all(a["state"] == "firing" and not a["silenced"] for a in firing)
    history = json.loads(run("alerts", "--model", "wk.drop", "--history", "--format", "json"))
    assert [a["state"] for a in history] == ["resolved", "firing"]
    table = run("alerts", "--kind", "retrain")
    assert table.splitlines()[0].split()[:4] == ["TS", "STATE", "SEVERITY", "KIND"] and "wk.drop" in table

    # With the default policy (idle after 7 days), only the model worse than its baseline is a candidate.
    cands = json.loads(run("sunset-candidates", "--format", "json"))
    assert [(c["model"], c["reasons"]) for c in cands] == [("wk.worse", ["below_baseline"])]
    assert "below_baseline" in run("sunset-candidates")

    out = run("silence", "add", "--model", "wk.worse", "--for", "1h", "--comment", "retiring next week")
    silence_id = out.split()[1]
    assert silence_id in run("silence", "list")
    assert "silenced until" in run("alerts", "--model", "wk.worse")
    assert "expired" in run("silence", "expire", silence_id)
    assert "silenced until" not in run("alerts", "--model", "wk.worse")
    run("silence", "expire", silence_id, code=1)
    run("silence", "add", "--for", "1h", code=2)  # a silence needs a matcher

    worse = next(a for a in firing if a["model"] == "wk.worse")
    assert "acknowledged" in run("ack", worse["alert_id"], "--author", "ana")
    listed = json.loads(run("alerts", "--model", "wk.worse", "--format", "json"))
    assert listed[0]["acknowledged"] is True
    assert "acked by ana" in run("alerts", "--model", "wk.worse")
    run("ack", history[0]["alert_id"], code=1)  # resolved: nothing to acknowledge
    run("ack", "no-such-alert", code=1)


def test_demo_waits_for_the_alerts_its_windows_call_for(store: tuple[str, int]) -> None:
    """`watchkeeper demo` reports alerts only once the worker recorded what a dry run of the same windows decides."""
    from watchkeeper.demo import wait_for_alerts

    host, port = store
    st = Store(host=host, port=port, database="wkdemo")
    st.migrate(Retention())
    try:
        _insert(st, [r for i in range(N_WINDOWS) for r in _window("demo.drop", "v1", i, 0.60 if i >= 10 else 0.85)],
                "metrics")  # fmt: skip
        assert not wait_for_alerts(st, _settings(), ["demo.drop"], timeout=0.5)  # nothing recorded yet
        recorded = AlertEngine(st, _settings().alert_config()).evaluate()  # what the worker's model stage does
        assert [(a.kind, a.state) for a in recorded] == [("retrain", "firing")]
        assert wait_for_alerts(st, _settings(), ["demo.drop"], timeout=0.5)
    finally:
        st.close()
