"""The alert engine against the real embedded store (chdb behind ClickHouse's HTTP interface).

A synthetic fleet of ``metrics`` and ``drift`` rows, 40 windows of 5 minutes:

- ``wk.stable``: steady accuracy; gets no alert at all.
- ``wk.drop``: accuracy 0.85 -> 0.60 for windows 10-19 -> 0.85 again: one retrain alert
  (and one retrain-webhook call) that fires and then resolves.
- ``wk.drift``: feature ``amount`` drifted in windows 10-19, ``age`` in isolated windows:
  one drift alert per model naming ``amount`` only.
- ``wk.idle``: traffic stops after window 4: no_data, then sunset (idle).
- ``wk.worse``: does worse than its baseline on the same predictions (discordant pairs 16 vs 48 of
  400 a window, accuracy -0.08): sunset evidence.
- ``wk.equal``: as good as its baseline, with a coin-flip lift of -0.0025 in every window: no alert.
- ``wk.versions``: v2 takes over from v1 at window 15: v1 is superseded.
- ``wk.shift``: a per-event ``mean_shift`` alarm on ``amount`` 45 s into window 10, confirmed by the
  window test: a drift alert at the alarm's event time.
- ``wk.unfair``: 4 regions, 300 events a window, an equal-opportunity gap of 0.3 (latam): a
  fairness alert within 30 minutes.
- ``wk.ab``: the A/B test decides from window 8 that challenger v2 is worse than champion v1.

The "live" run writes the windows in chunks and evaluates after each chunk, the
way the model stage calls the engine; the replay writes every row into an empty
database and evaluates once. Both must decide exactly the same alerts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
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
LABEL_DELAY = timedelta(seconds=600)  # the default: a window is final that long after its end
GRACE = timedelta(seconds=10)  # the default: a window's label-free results are written that long after its end
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


def _drift(model: str, version: str, i: int, drifted: set[str], alarm: bool = False) -> list[dict[str, Any]]:
    start = T0 + timedelta(seconds=W * i)
    stats = {"amount": 0.31, "age": 0.12, "tenure": 0.02}
    seq: list[dict[str, Any]] = []
    if alarm:  # the per-event detector: its row's ts is the alarm's event time; the test of the events after it
        end = start + timedelta(seconds=W)
        seq = [{"ts": start + timedelta(seconds=45.5), "window_start": start, "window_end": end, "model": model,
                "version": version, "feature": "amount", "detector": "mean_shift", "statistic": 9.1, "threshold": 8.2,
                "drifted": 1, "computed_at": start + timedelta(seconds=W + 600)},
               {"ts": end, "window_start": start, "window_end": end, "model": model, "version": version,
                "feature": "amount", "detector": "after_alarm", "statistic": 0.33, "threshold": 0.05, "drifted": 1,
                "computed_at": start + timedelta(seconds=W + 600)}]  # fmt: skip
    return seq + [
        {"ts": start + timedelta(seconds=W), "window_start": start, "window_end": start + timedelta(seconds=W),
         "model": model, "version": version, "feature": f, "detector": "ks",
         "statistic": stats[f] if f in drifted else 0.01, "threshold": 0.05, "drifted": int(f in drifted),
         "computed_at": start + timedelta(seconds=W + 600)}
        for f in sorted(stats)
    ]  # fmt: skip


def _rows(
    model: str, version: str, i: int, segment: str, metrics: dict[str, tuple[float, int]]
) -> list[dict[str, Any]]:
    start = T0 + timedelta(seconds=W * i)
    base = {"window_start": start, "window_end": start + timedelta(seconds=W), "model": model, "version": version,
            "segment": segment, "computed_at": start + timedelta(seconds=W + 600)}  # fmt: skip
    return [{**base, "metric": m, "value": float(v), "n": int(n)} for m, (v, n) in metrics.items()]


def _paired(b: int, c: int, n: int = 400) -> dict[str, tuple[float, int]]:
    return {"lift_accuracy": ((b - c) / n, n), "baseline_discordant_model_right": (b, n),
            "baseline_discordant_baseline_right": (c, n)}  # fmt: skip


def _groups(i: int) -> list[dict[str, Any]]:
    """wk.unfair's per-region rows: 75 events per region and window, TPR 0.8 except latam's 0.5."""
    rng = np.random.default_rng(100 + i)
    out = []
    for g, tpr in {"eu": 0.8, "us": 0.8, "apac": 0.8, "latam": 0.5}.items():
        n = 75
        pos = int(rng.binomial(n, 0.3))
        tp, fp = int(rng.binomial(pos, tpr)), int(rng.binomial(n - pos, 0.2))
        out += _rows("wk.unfair", "v1", i, f"region={g}", {
            "positive_rate": ((tp + fp) / n, n), "tp": (tp, n), "fp": (fp, n), "tn": (n - pos - fp, n),
            "fn": (pos - tp, n)})  # fmt: skip
    return out


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
        m += _window("wk.worse", "v1", i, 0.80, **_paired(16, 48))
        m += _window("wk.equal", "v1", i, 0.85, **_paired(40, 41))
        m += _window("wk.shift", "v1", i, 0.85)
        d += _drift("wk.shift", "v1", i, {"amount"} if i >= 10 and i < 20 else set(), alarm=i == 10)
        m += _window("wk.unfair", "v1", i, 0.85)
        m += _groups(i)
        m += _window("wk.ab", "v1", i, 0.85) + _window("wk.ab", "v2", i, 0.80)
        m += _rows("wk.ab", "v2 vs v1", i, "", {
            "ab_error_diff": (0.05, 800 * (i + 1)), "ab_error_ci_low": (0.01 if i >= 8 else -0.02, 800 * (i + 1)),
            "ab_error_ci_high": (0.09, 800 * (i + 1)), "ab_error_p_value": (0.01 if i >= 8 else 0.3, 800 * (i + 1)),
            "ab_error_decision": (1.0 if i >= 8 else 0.0, 800 * (i + 1))})  # fmt: skip
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
    # A strongly significant drop in window 10 fires on its evidence at its end; good 20, 21, 22: resolves on
    # the end of 22. Each is decided when the model stage wrote its window: the label delay (600 s) later.
    assert fired.evidence_ts == T0 + timedelta(seconds=11 * W)
    assert resolved.evidence_ts == T0 + timedelta(seconds=23 * W)
    assert fired.ts == fired.evidence_ts + LABEL_DELAY and resolved.ts == resolved.evidence_ts + LABEL_DELAY
    assert fired.severity == resolved.severity == "critical"
    ev = fired.evidence
    assert ev["reference"]["value"] == pytest.approx(0.85) and ev["current"]["value"] == pytest.approx(0.60)
    assert ev["drop_lower_bound"] > 0 and ev["label_coverage"] == pytest.approx(0.8)
    assert ev["reasons"] == ["performance"] and len(ev["run_ends"]) == 1 and ev["fast_path"] == "performance"
    assert "accuracy fell to 0.600 from a reference of 0.850" in fired.summary
    assert fired.owner == "risk-ml" and fired.runbook_url == "https://runbooks.example/drop"
    assert resolved.evidence["firing_since"] == "2026-03-02T08:55:00Z"


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
    # A label-free alert: decided once the window's label-free results are written, not after the label delay.
    assert fired.evidence_ts == T0 + timedelta(seconds=13 * W) and fired.ts == fired.evidence_ts + GRACE


def test_idle_model_gets_no_data_then_sunset(live: dict[str, Any]) -> None:
    alerts = _of(live["alerts"], "wk.idle")
    kinds = [(a.kind, a.subject, a.state) for a in alerts]
    assert kinds == [("no_data", "traffic", "firing"), ("sunset", "idle", "firing")]
    last = T0 + timedelta(seconds=5 * W)
    assert alerts[0].evidence_ts == last + timedelta(minutes=30)
    assert alerts[1].evidence_ts == last + timedelta(hours=1)
    # A gap is seen once a window ending then is written (the other models' windows): the grace later.
    assert [a.ts - a.evidence_ts for a in alerts] == [GRACE, GRACE]
    assert alerts[1].severity == "info" and alerts[1].evidence["last_traffic"] == "2026-03-02T08:25:00Z"


def test_stable_model_gets_no_alert(live: dict[str, Any]) -> None:
    assert _of(live["alerts"], "wk.stable") == []
    assert _of(live["alerts"], "wk.equal") == []  # six (and forty) negative-lift windows are a coin flip


def test_per_event_alarm_confirmed_by_the_window_test_keeps_its_event_time_as_evidence(live: dict[str, Any]) -> None:
    alerts = _of(live["alerts"], "wk.shift")
    assert [(a.kind, a.state) for a in alerts] == [("drift", "firing"), ("drift", "resolved")]
    assert alerts[0].evidence_ts == T0 + timedelta(seconds=10 * W + 46)  # the alarm (45.5 s in)
    # Decided when the window test could run: its window's label-free results written, at its end plus the grace.
    assert alerts[0].ts == T0 + timedelta(seconds=11 * W) + GRACE
    assert alerts[0].evidence["features"][0]["detectors"] == ["after_alarm", "ks", "mean_shift"]


def test_fairness_gap_fires_within_30_minutes(live: dict[str, Any]) -> None:
    alerts = _of(live["alerts"], "wk.unfair")
    assert [(a.kind, a.subject, a.state) for a in alerts] == [("fairness", "region", "firing")]
    assert alerts[0].ts <= T0 + timedelta(minutes=30) + LABEL_DELAY
    assert any(b["metric"] == "equal_opportunity_difference" and b["groups"][1] == "latam"
               for b in alerts[0].evidence["breaches"])  # fmt: skip


def test_challenger_alert_when_the_ab_test_decides(live: dict[str, Any]) -> None:
    alerts = _of(live["alerts"], "wk.ab", "challenger")
    assert [(a.version, a.subject, a.state, a.severity) for a in alerts] == [("v2", "error_rate", "firing", "warning")]
    ev = alerts[0].evidence
    assert alerts[0].evidence_ts == T0 + timedelta(seconds=9 * W)
    assert alerts[0].ts == alerts[0].evidence_ts + LABEL_DELAY
    assert {k: ev[k] for k in ("champion", "challenger", "metric", "decision")} == {
        "champion": "v1", "challenger": "v2", "metric": "error_rate", "decision": "worse"}
    assert (ev["diff"], ev["ci_low"], ev["ci_high"], ev["p_value"]) == (0.05, 0.01, 0.09, 0.01)
    assert alerts[0].runbook_url == f"{RUNBOOKS}#challenger"


def test_alerts_are_recorded_once_and_listed(stores: dict[str, Store], live: dict[str, Any]) -> None:
    st = stores["wklive"]
    history = list_alerts(st, history=True)
    assert _decisions(history) == _decisions(live["alerts"])
    firing = list_alerts(st, state="firing")
    assert {(a.model, a.kind) for a in firing} == {
        ("wk.idle", "no_data"), ("wk.idle", "sunset"), ("wk.worse", "sunset"), ("wk.versions", "sunset"),
        ("wk.unfair", "fairness"), ("wk.ab", "challenger"),
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
    ev = worse.evidence["below_baseline"]
    assert ev["lift"] == pytest.approx(-0.08) and ev["ci_high"] < -0.02 and ev["method"] == "paired"
    # The pooled pairs decide after a few windows, not after a run of six.
    assert worse.since < T0 + timedelta(seconds=6 * W)
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
    # Both times: the decision's and, before it, the evidence's.
    assert [(a["ts"], a["evidence_ts"]) for a in history][1] == ("2026-03-02T09:05:00Z", "2026-03-02T08:55:00Z")
    table = run("alerts", "--kind", "retrain")
    head = ["TS", "EVIDENCE_TS", "STATE", "SEVERITY", "KIND"]
    assert table.splitlines()[0].split()[:5] == head and "wk.drop" in table

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


@contextmanager
def _demo_store(store: tuple[str, int], database: str) -> Iterator[Store]:
    """A database holding the windows of ``demo.drop``, whose accuracy drops at its 10th window."""
    host, port = store
    st = Store(host=host, port=port, database=database)
    st.migrate(Retention())
    try:
        _insert(st, [r for i in range(N_WINDOWS) for r in _window("demo.drop", "v1", i, 0.60 if i >= 10 else 0.85)],
                "metrics")  # fmt: skip
        yield st
    finally:
        st.close()


def test_demo_waits_for_the_alerts_its_windows_call_for(store: tuple[str, int]) -> None:
    """`watchkeeper demo` reports alerts only once the worker recorded what a dry run of the same windows decides."""
    from watchkeeper.demo import wait_for_alerts

    with _demo_store(store, "wkdemo") as st:
        missing = wait_for_alerts(st, _settings(), ["demo.drop"], timeout=0.5)  # nothing recorded yet
        assert [(a["model"], a["kind"], a["state"]) for a in missing] == [("demo.drop", "retrain", "firing")]
        recorded = AlertEngine(st, _settings().alert_config()).evaluate()  # what the worker's model stage does
        assert [(a.kind, a.state) for a in recorded] == [("retrain", "firing")]
        assert wait_for_alerts(st, _settings(), ["demo.drop"], timeout=0.5) == []


def test_the_demo_counts_only_its_own_models_alerts_in_a_shared_store(store: tuple[str, int]) -> None:
    """Another fleet's alerts in the same store, newer and more than one listing holds, hide none of the demo's."""
    from watchkeeper.demo import demo_alerts, wait_for_alerts

    with _demo_store(store, "wkdemoshared") as st:
        recorded = AlertEngine(st, _settings().alert_config()).evaluate()
        later = T0 + timedelta(days=30)
        others = [Alert(alert_id=f"other-{i}", model="other.fleet", version="v1", kind="drift", severity="info",
                        state="firing", summary="s", evidence={}, ts=later + timedelta(seconds=i),
                        fired_at=later).to_row() for i in range(1001)]  # fmt: skip
        _insert(st, others, "alerts")
        assert wait_for_alerts(st, _settings(), ["demo.drop"], timeout=0.5) == []
        assert [(a["model"], a["kind"]) for a in demo_alerts(st, ["demo.drop"])] == [
            (a.model, a.kind) for a in recorded] == [("demo.drop", "retrain")]  # fmt: skip


def test_discordant_pairs_are_counted_in_the_store(store: tuple[str, int]) -> None:
    """The model stage's paired counts (windows/metrics.py): model right and baseline wrong, the reverse."""
    from watchkeeper.windows.config import WindowConfig, WindowKey
    from watchkeeper.windows.due import due_params
    from watchkeeper.windows.metrics import discordant_rows

    host, port = store
    st = Store(host=host, port=port, database="wkpairs")
    st.migrate(Retention())
    rng = np.random.default_rng(5)
    n = 200
    score, base, y = rng.uniform(size=n), rng.uniform(size=n), rng.integers(0, 2, n)
    base[:10] = np.nan  # no baseline: not a pair
    labelled = np.arange(n) % 5 != 0
    t0 = datetime.fromtimestamp((datetime.now(UTC).timestamp() - 3600) // W * W, UTC)  # raw rows have a TTL
    ts = [t0 + timedelta(seconds=float(t)) for t in rng.uniform(0, W, n)]
    try:
        st.insert("predictions", {
            "ts": ts, "model": ["wk.pairs"] * n, "version": ["v1"] * n,
            "prediction_id": [f"p{i}" for i in range(n)], "event_id": [f"e{i}" for i in range(n)],
            "prediction": score.tolist(), "baseline": [None if np.isnan(b) else float(b) for b in base],
        })  # fmt: skip
        idx = np.flatnonzero(labelled)
        st.insert("outcomes", {
            "ts": [ts[i] + timedelta(seconds=60) for i in idx], "model": ["wk.pairs"] * len(idx),
            "prediction_id": [f"p{i}" for i in idx], "event_id": [f"o{i}" for i in idx],
            "outcome": [float(y[i]) for i in idx],
        })  # fmt: skip
        key = WindowKey("wk.pairs", "v1", int(t0.timestamp()))
        params = due_params(WindowConfig(window_seconds=W), [key])
        rows = {r["metric"]: (r["value"], r["n"]) for r in discordant_rows(st, params, W, {key})}
        judged = labelled & ~np.isnan(base)
        m_right, b_right = (score >= 0.5) == (y == 1), (base >= 0.5) == (y == 1)
        assert rows == {
            "baseline_discordant_model_right": (float((judged & m_right & ~b_right).sum()), int(judged.sum())),
            "baseline_discordant_baseline_right": (float((judged & ~m_right & b_right).sum()), int(judged.sum())),
        }
    finally:
        st.close()


def test_the_performance_reference_is_the_first_labels_not_the_first_three_windows(store: tuple[str, int]) -> None:
    """A busy version has its reference after its first 300 labels (one window here), so a drop in its second
    window is judged; a quiet one pools as many windows as 300 labels take."""
    host, port = store
    st = Store(host=host, port=port, database="wkrefsize")
    st.migrate(Retention())
    try:
        busy = [r for i in range(4) for r in _window("busy", "v1", i, 0.90 if i == 0 else 0.60,
                                                      accuracy=(0.90 if i == 0 else 0.60, 3000))]  # fmt: skip
        quiet = [r for i in range(8) for r in _window("quiet", "v1", i, None, accuracy=(0.85, 60))]
        _insert(st, busy + quiet, "metrics")
        engine = AlertEngine(st, _settings().alert_config())
        fired = [a for a in engine.evaluate() if a.model == "busy"]
        assert [(a.kind, a.state) for a in fired] == [("retrain", "firing")]
        # Decided on window 1 (the first after the reference), its window written 600 s after its end.
        assert fired[0].evidence_ts == T0 + timedelta(seconds=2 * W)
        assert fired[0].ts == fired[0].evidence_ts + LABEL_DELAY
        ref = fired[0].evidence["reference"]
        assert ref["n"] == 3000 and ref["windows"] == ["2026-03-02T08:00:00Z"]
        # A stream that went quiet 100 s after window 1 ended: the model stage flushed it idle, sooner than
        # the label delay; the decision is dated by the stream's last event, from the store's raw rows (recent
        # ones: raw rows older than the retention are dropped).
        shift = (datetime.now(UTC) - timedelta(days=1) - T0) // timedelta(seconds=W) * timedelta(seconds=W)
        recent = [{**r, "model": "flushed", "window_start": r["window_start"] + shift,
                   "window_end": r["window_end"] + shift, "computed_at": r["computed_at"] + shift}
                  for r in busy if r["window_start"] < T0 + timedelta(seconds=2 * W)]  # fmt: skip
        _insert(st, recent, "metrics")
        last = T0 + shift + timedelta(seconds=2 * W + 100)
        st.insert("predictions", {"ts": [last], "model": ["flushed"], "version": ["v1"], "prediction_id": ["p"],
                                  "event_id": ["e"]})  # fmt: skip
        [flushed] = [a for a in AlertEngine(st, _settings().alert_config()).evaluate() if a.model == "flushed"]
        assert flushed.evidence_ts == T0 + shift + timedelta(seconds=2 * W) and flushed.ts == last
        # 60 labels a window: the first 5 windows hold 300.
        quiet_ref = engine._load_references(["quiet"], {"quiet": {"v1": (0, 0)}})[0]["quiet"]["v1"]
        assert quiet_ref.n == 300 and len(quiet_ref.starts) == 5
    finally:
        st.close()
