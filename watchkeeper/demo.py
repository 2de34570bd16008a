"""``watchkeeper demo``: the embedded stack end to end, in a few minutes.

Starts (or reuses) the embedded broker and store, starts a worker, publishes the
built-in scenario through ``watchkeeper publish``'s code path, waits until every
prediction and label is counted in ``metrics``, prints a per-model summary and
writes ``reports/``. Data of earlier demo runs (models named ``demo.*``) is
cleared first so that the numbers are this run's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from watchkeeper.admin import ensure_topics
from watchkeeper.client import Publisher
from watchkeeper.detectors.timeutil import utc
from watchkeeper.embedded import ensure_broker, ensure_store, is_listening
from watchkeeper.publish import publish_files
from watchkeeper.scenario import MALFORMED, Scenario, write_scenario
from watchkeeper.settings import Settings
from watchkeeper.sinks.writer import Store
from watchkeeper.streams.service import migrate

DEMO_TABLES = ("predictions", "outcomes", "metrics", "drift", "alerts")
WAIT_SECONDS = 240
ALERT_WAIT_SECONDS = 30


def _free_web_port(start: int) -> int:
    port = start
    while is_listening("127.0.0.1", port):
        port += 1
    return port


def start_worker(
    settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A worker subprocess (``watchkeeper worker``) logging to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **(extra_env or {})}
    port = _free_web_port(settings.web_port)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "watchkeeper.cli", "worker", "-l", "info", "--web-port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


COUNTS = """
SELECT model, sumIf(n, metric = 'predictions') AS predictions, sumIf(value, metric = 'labelled') AS labelled
FROM metrics FINAL WHERE model IN {models:Array(String)} AND segment = '' GROUP BY model
"""

ACCURACY_SPLIT = """
SELECT model,
       sumIf(value, metric IN ('tp', 'tn') AND window_start < {t:DateTime('UTC')}) AS ok_before,
       sumIf(value, metric = 'labelled' AND window_start < {t:DateTime('UTC')}) AS lab_before,
       sumIf(value, metric IN ('tp', 'tn') AND window_start >= {t:DateTime('UTC')}) AS ok_after,
       sumIf(value, metric = 'labelled' AND window_start >= {t:DateTime('UTC')}) AS lab_after
FROM metrics FINAL WHERE model IN {models:Array(String)} AND segment = '' GROUP BY model
"""

ACCURACY_SERIES = """
SELECT model, toUnixTimestamp(window_start) AS ws, value FROM metrics FINAL
WHERE model IN {models:Array(String)} AND metric = 'accuracy' AND segment = '' ORDER BY model, ws
"""


def wait_until_counted(store: Store, expected: dict[str, dict[str, Any]], proc: subprocess.Popen[bytes]) -> bool:
    models = sorted(expected)
    total = sum(e["predictions"] + e["labelled"] for e in expected.values())
    deadline = time.monotonic() + WAIT_SECONDS
    with tqdm(total=total, desc="processing", unit="ev") as bar:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                rows = store.query(COUNTS, {"models": models})
            except Exception:
                rows = []
            done = sum(min(int(r["predictions"]), expected[r["model"]]["predictions"]) for r in rows)
            done += sum(min(int(r["labelled"]), expected[r["model"]]["labelled"]) for r in rows)
            bar.update(done - bar.n)
            if done >= total:
                return True
            time.sleep(1.0)
    return False


def summarise(store: Store, scenario: Scenario, run_start: datetime) -> dict[str, Any]:
    models = sorted(scenario.expected)
    drift_at = utc(scenario.drift_at)
    counts = {r["model"]: r for r in store.query(COUNTS, {"models": models})}
    split = {r["model"]: r for r in store.query(ACCURACY_SPLIT, {"models": models, "t": drift_at})}
    dead = store.query(
        "SELECT model, error, count() AS n FROM dead_letters FINAL WHERE ts >= {t:DateTime64(3, 'UTC')} "
        "GROUP BY model, error ORDER BY n DESC",
        {"t": run_start},
    )
    series: dict[str, list[tuple[int, float]]] = {m: [] for m in models}
    for r in store.query(ACCURACY_SERIES, {"models": models}):
        series[r["model"]].append((int(r["ws"]), float(r["value"])))
    out: dict[str, Any] = {"drift_at": drift_at.isoformat(), "models": {}, "dead_letters": []}
    for m in models:
        c = counts.get(m, {})
        s = split.get(m, {})
        out["models"][m] = {
            "predictions": int(c.get("predictions", 0)),
            "labelled": int(c.get("labelled", 0)),
            "accuracy_before": (s["ok_before"] / s["lab_before"]) if s.get("lab_before") else None,
            "accuracy_after": (s["ok_after"] / s["lab_after"]) if s.get("lab_after") else None,
            "expected": scenario.expected[m],
            "accuracy_by_window": series[m],
        }
    out["dead_letters"] = [{"model": r["model"], "error": r["error"], "n": int(r["n"])} for r in dead]
    out["dead_letters_total"] = sum(r["n"] for r in out["dead_letters"])
    return out


def _fmt(v: float | None) -> str:
    return "  -  " if v is None else f"{v:.3f}"


def print_summary(summary: dict[str, Any]) -> None:
    print(f"\nwatchkeeper demo — drift injected at {summary['drift_at']}")
    print(f"{'model':<14}{'predictions':>12}{'labelled':>10}{'acc before':>12}{'acc after':>11}")
    for m, s in summary["models"].items():
        print(
            f"{m:<14}{s['predictions']:>12}{s['labelled']:>10}{_fmt(s['accuracy_before']):>12}"
            f"{_fmt(s['accuracy_after']):>11}"
        )
    print(f"dead letters: {summary['dead_letters_total']}")
    for d in summary["dead_letters"]:
        print(f"  {d['n']:>4}  {d['model'] or '(unknown model)'}: {d['error'][:100]}")


def write_reports(summary: dict[str, Any], out: Path) -> None:
    """``summary.json`` and ``summary.html`` (models, alerts, dead letters) into ``out``."""
    from watchkeeper.dashboards.report import summary_page

    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    (out / "summary.html").write_text(summary_page(summary))


def demo_alerts(store: Store, models: list[str]) -> list[dict[str, Any]]:
    """Every alert state change of the demo's ``models``, oldest first (other models in the store are not read)."""
    from watchkeeper.alerts.engine import list_alerts

    # Per model: a store shared with other fleets may hold more recent alerts than one listing returns.
    changes = [a for m in models for a in list_alerts(store, model=m, history=True, limit=100_000)]
    return [a.to_json() for a in sorted(changes, key=lambda a: (a.ts, a.alert_id))]


def wait_for_alerts(
    store: Store, settings: Settings, models: list[str], timeout: float = ALERT_WAIT_SECONDS
) -> list[dict[str, Any]]:
    """Wait until the worker recorded every alert state change of ``models`` their written windows call for;
    returns those still missing at the timeout (none: all recorded).

    The worker judges windows a moment after it writes them. What it will decide is known in
    advance: the same engine, run dry over the same windows, decides the same (replays are exact).
    """
    from watchkeeper.alerts.engine import AlertEngine

    def key(a: dict[str, Any]) -> tuple[str, str, str]:
        return a["alert_id"], a["state"], a["ts"]

    dry = AlertEngine(store, settings.alert_config(), history_days=None, write=False)
    wanted = {key(a): a for a in (a.to_json() for a in dry.evaluate(models)) if a["model"] in models}
    deadline = time.monotonic() + timeout
    while True:
        recorded = {key(a) for a in demo_alerts(store, models)}
        missing = [a for k, a in sorted(wanted.items()) if k not in recorded]
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.5)


def missing_alerts_message(missing: list[dict[str, Any]], timeout: float, log: Path) -> str:
    """What the demo says when the worker did not record every expected alert state change in time.

    >>> a = {"model": "demo.churn", "kind": "drift", "state": "firing", "ts": "2026-03-02T12:05:00+00:00",
    ...      "summary": "prediction drift"}
    >>> print(missing_alerts_message([a], 30, Path("data/demo/worker.log")))
    the worker did not record 1 expected alert state change of the demo's models in 30 s (see data/demo/worker.log):
      demo.churn    drift       firing   decided 2026-03-02T12:05:00  prediction drift
    """
    head = (f"the worker did not record {len(missing)} expected alert state change{'s' if len(missing) != 1 else ''} "
            f"of the demo's models in {timeout:g} s (see {log}):")  # fmt: skip
    lines = [f"  {a['model']:<13} {a['kind']:<11} {a['state']:<8} decided {a['ts'][:19]}  {a['summary']}"
             for a in missing]  # fmt: skip
    return "\n".join([head, *lines])


def print_alerts(alerts: list[dict[str, Any]]) -> None:
    print(f"\nalerts raised: {len(alerts)} state changes")
    for a in alerts:
        print(f"  {a['ts'][:19]}  {a['state']:<8} {a['severity']:<8} {a['kind']:<11} {a['model']:<12} {a['summary']}")
        evidence = a.get("evidence") or {}
        shown = {k: v for k, v in evidence.items() if not isinstance(v, list | dict)}
        if shown:
            print("      evidence: " + ", ".join(f"{k}={v}" for k, v in list(shown.items())[:6]))
        if a.get("runbook_url"):
            print(f"      runbook: {a['runbook_url']}")


def run_demo(settings: Settings, out: Path, minutes: int = 120, keep_worker: bool = False) -> int:
    t_start = time.monotonic()
    run_start = datetime.now(UTC)
    print("starting the embedded broker and store ...", flush=True)
    ensure_broker(settings)
    ensure_store(settings)
    ensure_topics(settings)
    store = Store.from_settings(settings)
    migrate(store, settings)
    for table in DEMO_TABLES:
        store.delete(table, "model LIKE 'demo.%'")

    now = time.time()
    w = settings.window_seconds
    start = (now - minutes * 60 - 3600) // w * w
    scenario = Scenario(start=start, minutes=minutes)
    data_dir = settings.data_dir / "demo"  # this instance's: never a neighbour's data directory
    path = data_dir / "scenario.jsonl"
    write_scenario(path, scenario)

    print("starting a worker ...", flush=True)
    # A replayed file has no live tail: write its last windows 3 s after it goes quiet.
    proc = start_worker(settings, data_dir / "worker.log", {"WATCHKEEPER_IDLE_FLUSH": "3"})
    try:
        with Publisher(
            settings.kafka_bootstrap,
            predictions_topic=settings.topic_predictions,
            outcomes_topic=settings.topic_outcomes,
            **settings.kafka_python_config(),
        ) as pub:
            publish_files(pub, [path])
        # The scenario's own counts: the publisher counts a malformed line that still names a "type"
        # as a prediction or outcome (the worker judges it), so its counts would say 4 malformed, not 8.
        n_pred = sum(e["predictions"] for e in scenario.expected.values())
        n_out = sum(e["labelled"] for e in scenario.expected.values())
        print(f"published {n_pred} predictions, {n_out} outcomes, {len(MALFORMED)} malformed lines", flush=True)
        ok = wait_until_counted(store, scenario.expected, proc)
        if not ok:
            print(
                f"the worker did not finish in {WAIT_SECONDS} s; see {data_dir / 'worker.log'}",
                file=sys.stderr,
            )
        time.sleep(2)  # let the dead letters of the last batch land
        summary = summarise(store, scenario, run_start)
        missing = wait_for_alerts(store, settings, sorted(scenario.expected))
        if missing:
            print(missing_alerts_message(missing, ALERT_WAIT_SECONDS, data_dir / "worker.log"), file=sys.stderr)
        summary["alerts"] = demo_alerts(store, sorted(scenario.expected))
        print_summary(summary)
        print_alerts(summary["alerts"])
        write_reports(summary, out)
        from watchkeeper.dashboards.report import render_report

        pages = render_report(store, out)
        print(
            f"\nreports written to {out}/ (summary.json, summary.html, index.html and {len(pages) - 1} model pages)"
            f" in {time.monotonic() - t_start:.0f} s"
        )
        print('query the tables with: watchkeeper sql "SELECT * FROM metrics FINAL LIMIT 10"')
        return 0 if ok else 1
    finally:
        if not keep_worker:
            stop_worker(proc)
