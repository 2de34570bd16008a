"""Live mode of the alert benchmark: pages timed by the wall clock, through the whole service.

``python -m bench.alerts --live`` (``make bench-alerts-live``; about 12 minutes). Starts an embedded
broker, store and a real worker subprocess (``watchkeeper worker``) with
``WATCHKEEPER_LABEL_DELAY_SECONDS=60`` and every other setting at its default, and a webhook receiver
(``WATCHKEEPER_WEBHOOK_URL``) that notes the wall time of every POST. The light client
(``watchkeeper_client.Publisher``) then streams three models in real time (event time = now), 10
predictions per second each, every label 20 s after its prediction:

- ``live.stable``: nothing changes (it must never be paged);
- ``live.shift``: from the change on, feature f3 is shifted by 0.5 sigma (a ``drift`` page is due);
- ``live.concept``: from the change on the label is ``[x0 - 0.3 x1 + e > 0]`` instead of
  ``[x0 + 0.5 x1 + e > 0]``: the model's accuracy falls from about 0.87 to about 0.73 (a ``retrain``
  page is due from the moment its labels show it, 20 s after the change).

Five minutes of normal traffic (``--history-seconds``), then the change; the stream goes on until both
pages have arrived or ``--observe-seconds`` have passed. Measured: wall-clock seconds from the change
(for the concept, from its first labels) to the webhook POST that carries the page. Targets: a drift page
<= 60 s after the shift, a retrain page <= 60 s after the labels show the change, no page on the stable
model. Then a replay check: the same events (their recorded times) are published as fast as the client
sends them into a fresh broker, store and worker; the decisions (model, kind, state, decision time) must
be the ones the live stream gave. Results: ``bench/results/alerts_live.json`` (``bench.record``).
"""

from __future__ import annotations

import collections
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench import record

RATE = 10.0  # predictions per second per model
LABEL_AFTER = 20.0  # seconds from a prediction to its label
LABEL_DELAY_SETTING = "60"  # WATCHKEEPER_LABEL_DELAY_SECONDS
TARGET_S = 60.0
SHIFT_SIGMA = 0.5
CONCEPT_X1 = -0.3  # the label's weight on x1 after the change (0.5 before): accuracy 0.87 -> 0.73
FEATURES = ("f0", "f1", "f2", "f3", "f4")
# model -> (the page due, seconds after the change from which it is due)
MODELS: dict[str, tuple[str | None, float]] = {
    "live.stable": (None, 0.0),
    "live.shift": ("drift", 0.0),
    "live.concept": ("retrain", LABEL_AFTER),
}


# The stream -------------------------------------------------------------------------------------


def event(model: str, i: int, changed: bool, rng: np.random.Generator) -> tuple[dict[str, Any], int]:
    """Prediction ``i`` of ``model`` (without its time) and its label.

    >>> p, y = event("live.shift", 7, True, np.random.default_rng(0))
    >>> p["prediction_id"], sorted(p["features"]), y in (0, 1), 0 < p["prediction"] < 1
    ('live.shift-7', ['f0', 'f1', 'f2', 'f3', 'f4'], True, True)
    """
    x = rng.normal(size=len(FEATURES))
    if changed and model == "live.shift":
        x[3] += SHIFT_SIGMA
    signal = x[0] + 0.5 * x[1]
    truth = x[0] + CONCEPT_X1 * x[1] if changed and model == "live.concept" else signal
    y = int(truth + rng.normal(0.0, 0.5) > 0)
    score = 1.0 / (1.0 + math.exp(-2.0 * signal))
    features = {f: round(float(v), 4) for f, v in zip(FEATURES, x, strict=True)}
    return {"model": model, "prediction_id": f"{model}-{i}", "prediction": round(score, 4), "features": features}, y


@dataclass
class Stream:
    """Publishes the three models in real time and keeps every event it sent, in order (for the replay)."""

    publisher: Any
    change_at: float  # wall time of the change
    seed: int = 0
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # ("prediction" | "outcome", event)
    _labels: collections.deque[tuple[float, str, str, int]] = field(default_factory=collections.deque)

    def run_until(self, stop: Any, tick: float = 1.0 / RATE) -> None:
        """One prediction per model every ``tick`` seconds, each label ``LABEL_AFTER`` s later, until ``stop()``."""
        rng = np.random.default_rng(self.seed)
        i = 0
        next_at = time.time()
        while not stop():
            now = time.time()
            if now < next_at:
                time.sleep(min(next_at - now, 0.05))
                continue
            for model in MODELS:
                p, y = event(model, i, now >= self.change_at, rng)
                p["ts"] = now
                self.publisher.prediction(**p)
                self.sent.append(("prediction", p))
                self._labels.append((now + LABEL_AFTER, model, p["prediction_id"], y))
            i += 1
            next_at += tick
            while self._labels and self._labels[0][0] <= now:
                _, model, pid, y = self._labels.popleft()
                o = {"model": model, "prediction_id": pid, "outcome": y, "ts": time.time()}
                self.publisher.outcome(**o)
                self.sent.append(("outcome", o))


# The webhook -----------------------------------------------------------------------------------


class TimedReceiver:
    """A loopback webhook that notes the wall time each alert in a POST arrived: (time, alert JSON)."""

    def __init__(self) -> None:
        self.alerts: list[tuple[float, dict[str, Any]]] = []
        lock = threading.Lock()
        received = self.alerts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    received.extend((at, a) for a in orjson.loads(body or b"{}").get("alerts", []))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# Scoring ----------------------------------------------------------------------------------------


def pages(received: Sequence[tuple[float, dict[str, Any]]], change_at: float) -> dict[str, Any]:
    """Per model: the first page of the kind due (seconds after it was due), and every other firing page.

    >>> got = pages([(130.0, {"model": "live.shift", "kind": "drift", "state": "firing"}),
    ...              (90.0, {"model": "live.stable", "kind": "drift", "state": "firing"})], 100.0)
    >>> got["live.shift"]["delay_s"], got["live.concept"]["delay_s"], got["live.stable"]["other"]
    (30.0, None, ['drift@-10s'])
    """
    out: dict[str, Any] = {}
    for model, (kind, due_after) in MODELS.items():
        mine = [(at, a) for at, a in received if a.get("model") == model and a.get("state") == "firing"]
        firing = sorted(mine, key=lambda x: x[0])  # by arrival (a POST may carry several alerts)
        hit = next((at for at, a in firing if a.get("kind") == kind and at >= change_at), None)
        other = [f"{a.get('kind')}@{at - change_at:.0f}s" for at, a in firing if at != hit or a.get("kind") != kind]
        out[model] = {
            "expect": kind,
            "delay_s": None if hit is None else round(hit - change_at - due_after, 1),
            "other": other,
        }
    return out


TARGETS = (
    record.Target("drift_page_s", "<=", TARGET_S),  # after the 0.5 sigma shift
    record.Target("retrain_page_s", "<=", TARGET_S),  # after the labels show the concept change
    record.Target("stable_pages", "<=", 0),
    record.Target("replay_differences", "<=", 0),  # decisions in one of the live run and the replay only
)


# Running ----------------------------------------------------------------------------------------


def _stack(root: Path, **settings: str) -> Any:
    from tests.stack import Stack

    # The stack for tests shortens the idle flush; the bench keeps the default.
    stack = Stack(root, label_delay_seconds=LABEL_DELAY_SETTING, idle_flush="30", **settings)
    stack.start_services()
    return stack


def decisions(stack: Any) -> list[tuple[str, str, str, str]]:
    """Every alert state change in the store: (model, kind, state, decision time), sorted."""
    from watchkeeper.alerts.engine import list_alerts

    store = stack.store()
    try:
        rows = list_alerts(store, history=True, limit=1_000_000)
    finally:
        store.close()
    return sorted((a.model, a.kind, a.state, a.to_json()["ts"]) for a in rows)


COUNTED = (
    "SELECT model, toUInt64(sumIf(n, metric = 'predictions')), toUInt64(sumIf(value, metric = 'labelled')) "
    "FROM metrics FINAL WHERE segment = '' AND version != '' GROUP BY model ORDER BY model"
)


def settle(stack: Any, events: Sequence[tuple[str, dict[str, Any]]], timeout: float) -> bool:
    """Wait until the worker has written windows counting every prediction and label sent (its idle flush
    writes the last ones); False if it had not after ``timeout`` seconds."""
    sent = collections.Counter((kind, e["model"]) for kind, e in events)
    expected = [(m, sent[("prediction", m)], sent[("outcome", m)]) for m in sorted(MODELS)]
    return bool(stack.wait_for(COUNTED, expected, timeout=timeout) == expected)


def _publisher(stack: Any, **options: Any) -> Any:
    from watchkeeper_client import Publisher

    return Publisher(stack.settings.kafka_bootstrap, **options)


def live(history_s: float, observe_s: float, settle_s: float, log: Any = print) -> dict[str, Any]:
    """The live run: the pages, and the events sent and decisions made (for the replay)."""
    root = Path(tempfile.mkdtemp(prefix="bench-alerts-live-"))
    receiver = TimedReceiver()
    stack = _stack(root, webhook_url=receiver.url)
    try:
        stack.start_worker()
        pub = _publisher(stack)
        start = time.time()
        stream = Stream(pub, change_at=start + history_s)
        due = {m: k for m, (k, _) in MODELS.items() if k}

        def done() -> bool:
            now = time.time()
            if now >= stream.change_at + observe_s:
                return True
            got = pages(list(receiver.alerts), stream.change_at)
            return now > stream.change_at and all(got[m]["delay_s"] is not None for m in due)

        log(f"streaming 3 models at {RATE:g}/s each; the change at +{history_s:.0f} s; worker log in {root}")
        stream.run_until(done)
        ended = time.time()
        pub.flush(30)
        pub.close(10)
        log(f"stream stopped {ended - stream.change_at:.0f} s after the change; waiting for the worker to count "
            "every event")  # fmt: skip
        counted = settle(stack, stream.sent, settle_s)
        time.sleep(10)  # the alerts are judged in the same pass, a moment after its windows are written
        found = pages(list(receiver.alerts), stream.change_at)
        return {
            "pages": found,
            "received": [{"at_s": round(at - stream.change_at, 1), **a} for at, a in receiver.alerts],
            "events": stream.sent,
            "decisions": decisions(stack),
            "stream_seconds": round(ended - start, 1),
            "counted": counted,
            "publisher": pub.stats(),
        }
    finally:
        stack.stop()
        receiver.close()


def replay(events: Sequence[tuple[str, dict[str, Any]]], expected: list[Any], wait_s: float,
           log: Any = print) -> list[Any]:  # fmt: skip
    """The same events, as fast as the client sends them, into a fresh stack: its decisions."""
    root = Path(tempfile.mkdtemp(prefix="bench-alerts-replay-"))
    stack = _stack(root)
    try:
        stack.start_worker()
        pub = _publisher(stack, when_full="block")
        for kind, e in events:
            (pub.prediction if kind == "prediction" else pub.outcome)(**e)
        pub.flush(120)
        pub.close(10)
        log(f"replay: {len(events)} events published; waiting for the worker to count them")
        if not settle(stack, events, wait_s):
            log("replay: the worker did not count every event in time")
            try:
                return decisions(stack)
            except Exception as exc:  # no schema yet: the worker never got going
                log(f"replay: no decisions to read ({exc.__class__.__name__})")
                return []
        deadline = time.monotonic() + 60  # the alerts of the last pass, a moment after its windows
        got = decisions(stack)
        while got != expected and time.monotonic() < deadline:
            time.sleep(5)
            got = decisions(stack)
        return got
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


def _seconds(v: float | None) -> str:
    return "never" if v is None else f"{v:.0f} s"


def run(history_s: float, observe_s: float, settle_s: float, do_replay: bool, replay_wait_s: float) -> int:
    """The whole live benchmark; prints met/MISSED, writes ``alerts_live.json``; 1 on a miss."""
    t0 = time.perf_counter()
    got = live(history_s, observe_s, settle_s)
    if not got["counted"]:
        print("the live worker had not counted every event when the bench stopped waiting")
    print(f"\nlive: {len(got['events'])} events in {got['stream_seconds']:.0f} s, change after {history_s:.0f} s")
    for model, p in got["pages"].items():
        due = f"{p['expect']} page {_seconds(p['delay_s'])} after due" if p["expect"] else "no page due"
        print(f"- {model}: {due}; other pages: {', '.join(p['other']) or 'none'}")
    replayed: list[Any] | None = None
    differences: list[Any] = []
    if do_replay:
        replayed = replay(got["events"], got["decisions"], replay_wait_s)
        live_set, replay_set = set(got["decisions"]), set(replayed)
        differences = [["live only", *d] for d in sorted(live_set - replay_set)]
        differences += [["replay only", *d] for d in sorted(replay_set - live_set)]
        print(f"replay: {len(replayed)} decisions, live {len(got['decisions'])}, {len(differences)} differ")
        for d in differences:
            print(f"  {d}")
    pg = got["pages"]
    results = {
        "drift_page_s": pg["live.shift"]["delay_s"], "retrain_page_s": pg["live.concept"]["delay_s"],
        "stable_pages": len(pg["live.stable"]["other"]),
        "replay_differences": len(differences) if do_replay else None,
        "history_seconds": history_s, "observe_seconds": observe_s, "rate_per_model": RATE,
        "label_after_seconds": LABEL_AFTER, "label_delay_setting": int(LABEL_DELAY_SETTING),
        "pages": pg, "webhook": got["received"], "decisions": got["decisions"],
        "replay_decisions": replayed, "replay_differ": differences,
        "events": len(got["events"]), "all_counted": got["counted"], "stream_seconds": got["stream_seconds"],
        "publisher": got["publisher"],
        "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    targets = TARGETS if do_replay else TARGETS[:-1]
    verdicts = record.check(results, targets)  # a page never sent is missed
    path = record.write("alerts_live", results, verdicts)
    print(f"wrote {path}")
    return 0 if all(v.met for v in verdicts) else 1
