"""Security on the real embedded stack: hostile names are data, secrets stay secret, loopback only, credentials.

One stack whose store requires credentials (a writer and a read-only analyst),
one worker with the writer's credentials and with alert receivers that are all
down, their URLs carrying tokens. Invariants:

(a) Hostile version, feature, segment and class names (quotes, backslashes,
    ``'); DROP TABLE``, parameter placeholders, control characters, unicode)
    go through the stream and come back verbatim from the raw tables and in
    the metric rows; hostile model names are dead letters with the name as
    data; afterwards every table still exists and holds exactly the rows sent.
    The CLI passes an operator's hostile values as data too.
(b) No secret (store passwords, ClickHouse URL password, webhook/Slack/Grafana
    tokens, SASL password) appears in the worker's, store's or broker's log,
    or in the output of commands that fail because the store or a receiver is
    unreachable; ``Settings.redacted()`` masks them.
(c) The embedded store, the broker and the worker's web port listen on
    127.0.0.1 only.
(d) With credentials configured the store refuses anonymous clients and wrong
    passwords, the worker works with the writer's credentials, and the
    read-only user can read every table but change nothing. (The store's own
    checks of each refused statement: tests/integration/test_store.py.)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from tests.stack import REPO, Stack, free_port
from watchkeeper.settings import Settings
from watchkeeper.sinks.embedded.server import ping

pytestmark = pytest.mark.integration

WRITER_PW = "Wr1ter-S3cret-pw"
ANALYST_PW = "An4lyst-S3cret-pw"
CH_PW = "Ch-S3cr3t-pw"
TOKEN = "T0k3n-xyz-webhook"
SLACK = "Sl4ck-S3cret-path"
RETRAIN = "R3train-S3cret-key"
GRAFANA = "Gr4fana-S3cret-token"
SASL = "S4sl-S3cret-pw"
WRONG_PW = "Wr0ng-S3cret-pw"
SECRETS = (WRITER_PW, ANALYST_PW, CH_PW, TOKEN, SLACK, RETRAIN, GRAFANA, SASL, WRONG_PW)

VERSIONS = [
    "v1'); DROP TABLE predictions; --",
    'v2" OR "1"="1',
    "v3\\'; SYSTEM SHUTDOWN; --",
    "{v:String}%(v)s",
    "版本-5 ☃ \u202e",
]
NUM_FEATURES = ["a'b", 'c"d', "e\\f", "'); DROP TABLE metrics; --", "%(x)s"]
CAT_FEATURES = ["{x:String}", "名前", "tab\there", "new\nline"]
SEGMENTS = {
    "re'gion": ["eu'); DROP TABLE dead_letters; --", "us\\"],
    "{seg:String}": ["%s", "ü"],
}
CLASSES = ["cat'); DROP TABLE outcomes; --", 'dog"', "bird\\", "魚"]
HOSTILE_MODELS = ["x'); DROP TABLE predictions; --", "a\\b", 'q"uote', "模型", "{m:String}"]
TABLES = {"predictions", "outcomes", "metrics", "drift", "alerts", "dead_letters"}
PER_VERSION = 90


def hostile_events(start: float) -> tuple[list[dict[str, Any]], Counter[tuple[str, str]]]:
    """JSONL records: a binary model per hostile version, a multiclass model with hostile classes,
    events under hostile model names, and a model whose traffic stops for two hours (a no_data alert)."""
    recs: list[dict[str, Any]] = []
    counts: Counter[tuple[str, str]] = Counter()
    for v, version in enumerate(VERSIONS):
        for i in range(PER_VERSION):
            ts = start + i * 10 + v
            pid = f"h-{v}-{i}"
            features: dict[str, Any] = {f: (i * (k + 1)) % 17 / 17 for k, f in enumerate(NUM_FEATURES)}
            features.update({f: ["x'y", "z\\w"][i % 2] for f in CAT_FEATURES})
            segments = {k: vals[i % len(vals)] for k, vals in SEGMENTS.items()}
            score = (i % 10) / 10 + 0.05
            recs.append(
                {"type": "prediction", "prediction_id": pid, "model": "hostile", "version": version, "ts": ts,
                 "prediction": score, "features": features, "segments": segments}
            )  # fmt: skip
            recs.append(
                {"type": "outcome", "prediction_id": pid, "model": "hostile", "ts": ts + 30, "outcome": i % 3 % 2}
            )
            counts[("hostile", version)] += 1
    for i in range(200):
        pid = f"mc-{i}"
        cls = CLASSES[i % len(CLASSES)]
        scores = {c: (0.7 if c == cls else 0.1) for c in CLASSES}
        recs.append(
            {"type": "prediction", "prediction_id": pid, "model": "hostile-mc", "version": "v1", "ts": start + i * 4,
             "prediction": cls, "scores": scores}
        )  # fmt: skip
        truth = CLASSES[(i // 3) % len(CLASSES)]
        recs.append({"type": "outcome", "prediction_id": pid, "model": "hostile-mc", "ts": start + i * 4 + 9,
                     "outcome": truth})  # fmt: skip
        counts[("hostile-mc", "v1")] += 1
    for i, model in enumerate(HOSTILE_MODELS):
        recs.append({"type": "prediction", "prediction_id": f"hm-{i}", "model": model, "prediction": 0.5, "ts": start})
    for i in range(40):  # 20 predictions, then none for two hours, then 20 more
        ts = start + (i % 20) * 5 + (7200 if i >= 20 else 0)
        recs.append({"type": "prediction", "prediction_id": f"gap-{i}", "model": "gappy", "ts": ts, "prediction": 0.4})
        counts[("gappy", "unknown")] += 1
    recs.sort(key=lambda r: r["ts"])
    return recs, counts


@dataclass
class Secure:
    stack: Stack
    worker: subprocess.Popen[bytes]
    counts: Counter[tuple[str, str]]
    tables_before: set[str]
    outputs: list[str]  # stdout and stderr of every command run here, checked for secrets at the end


def listening(port: int) -> set[str]:
    """Local addresses that listen on a TCP port (IPv4 and IPv6), from /proc/net/tcp*."""
    found = set()
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            if family == socket.AF_INET:
                found.add(socket.inet_ntop(family, raw[::-1]))
            else:  # four little-endian 32-bit words
                found.add(socket.inet_ntop(family, b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))))
    return found


def non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.254.254.254", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = str(sock.getsockname()[0])
    return None if address.startswith("127.") else address


def client(stack: Stack, username: str = "default", password: str = "") -> Any:
    s = stack.settings
    return clickhouse_connect.get_client(
        host="127.0.0.1", port=s.store_port, username=username, password=password, database="watchkeeper"
    )


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    root = tmp_path_factory.mktemp("secure")
    dead = free_port()  # nothing listens there: every receiver is down
    credentials = {
        "store_user": "writer",
        "store_password": WRITER_PW,
        "store_readonly_user": "analyst",
        "store_readonly_password": ANALYST_PW,
    }
    stack = Stack(
        root,
        **credentials,
        webhook_url=f"http://127.0.0.1:{dead}/hook?token={TOKEN}",
        slack_webhook_url=f"http://127.0.0.1:{dead}/services/T000/B000/{SLACK}",
        retrain_webhook_url=f"http://127.0.0.1:{dead}/retrain?key={RETRAIN}",
        grafana_url=f"http://127.0.0.1:{dead}",
        grafana_token=GRAFANA,
        kafka_sasl_username="svc",
        kafka_sasl_password=SASL,  # configured, unused on a PLAINTEXT broker: must not leak either
    )
    try:
        # The store is started from this process and reads its users from the environment.
        with pytest.MonkeyPatch.context() as mp:
            for key, value in credentials.items():
                mp.setenv(f"WATCHKEEPER_{key.upper()}", value)
            stack.start_services()
        start = (time.time() - 4 * 3600) // 300 * 300
        recs, counts = hostile_events(start)
        path = root / "hostile.jsonl"
        path.write_bytes(b"\n".join(orjson.dumps(r) for r in recs) + b"\n")
        worker = stack.start_worker()
        outputs = []
        out = stack.cli("publish", "--quiet", str(path))
        outputs += [out.stdout, out.stderr]
        expected = sorted((m, v, n) for (m, v), n in counts.items())
        seen = stack.wait_for(COUNTS_SQL, expected, timeout=180)
        assert seen == expected
        dead_letters = [(m,) for m in sorted(HOSTILE_MODELS)]
        assert stack.wait_for("SELECT model FROM dead_letters FINAL ORDER BY model", dead_letters, 60) == dead_letters
        tables = {r[0] for r in stack.store().query_rows("SHOW TABLES FROM watchkeeper")}
        yield Secure(stack, worker, counts, tables, outputs)
    finally:
        stack.stop()


COUNTS_SQL = (
    "SELECT model, version, toUInt64(sum(n)) FROM metrics FINAL "
    "WHERE metric = 'predictions' AND segment = '' GROUP BY model, version ORDER BY model, version"
)


# (a) Hostile names are data -----------------------------------------------------------------


def test_hostile_names_come_back_verbatim_from_the_raw_tables(secure: Secure) -> None:
    """(a) versions, feature names and values, segment keys and values, classes: exactly as sent."""
    store = secure.stack.store()
    rows = store.query_rows(
        "SELECT version, count(), arraySort(groupUniqArrayArray(mapKeys(features))), "
        "arraySort(groupUniqArrayArray(mapKeys(features_cat))), "
        "arraySort(groupUniqArrayArray(mapValues(features_cat))), "
        "arraySort(groupUniqArrayArray(arrayMap((k, v) -> concat(k, '=', v), mapKeys(segments), mapValues(segments)))) "
        "FROM predictions FINAL WHERE model = 'hostile' GROUP BY version ORDER BY version"
    )
    pairs = sorted(f"{k}={v}" for k, vals in SEGMENTS.items() for v in vals)
    assert rows == [
        (v, PER_VERSION, sorted(NUM_FEATURES), sorted(CAT_FEATURES), sorted(["x'y", "z\\w"]), pairs)
        for v in sorted(VERSIONS)
    ]
    classes = store.query_rows(
        "SELECT arraySort(groupUniqArray(prediction_class)), arraySort(groupUniqArrayArray(mapKeys(scores))) "
        "FROM predictions FINAL WHERE model = 'hostile-mc'"
    )
    assert classes == [(sorted(CLASSES), sorted(CLASSES))]
    outcomes = store.query_rows(
        "SELECT model, count(), arraySort(groupUniqArray(outcome_class)) FROM outcomes FINAL "
        "WHERE model LIKE 'hostile%' GROUP BY model ORDER BY model"
    )
    assert outcomes == [("hostile", len(VERSIONS) * PER_VERSION, [""]), ("hostile-mc", 200, sorted(CLASSES))]


def test_hostile_names_come_back_verbatim_in_metrics(secure: Secure) -> None:
    """(a) metric rows per hostile version and segment; per-class metrics named after hostile classes."""
    store = secure.stack.store()
    expected = sorted((m, v, n) for (m, v), n in secure.counts.items())
    assert store.query_rows(COUNTS_SQL) == expected
    segments = store.query_rows(
        "SELECT DISTINCT segment FROM metrics FINAL WHERE model = 'hostile' AND segment != '' "
        "AND segment NOT LIKE 'bin=%' ORDER BY segment"
    )
    values = {f"{k}={v}" for k, vals in SEGMENTS.items() for v in vals}
    assert {s for (s,) in segments} == values
    recall = store.query_rows(
        "SELECT DISTINCT metric FROM metrics FINAL WHERE model = 'hostile-mc' AND startsWith(metric, 'recall_')"
    )
    assert {m for (m,) in recall} == {f"recall_{c}" for c in CLASSES}
    drift = store.query_rows("SELECT DISTINCT feature FROM drift FINAL WHERE model = 'hostile'")
    assert {f for (f,) in drift} - {"__prediction__", "__error__", "__label__"} <= set(NUM_FEATURES + CAT_FEATURES)


def test_hostile_model_names_are_dead_letters_stored_as_data(secure: Secure) -> None:
    """(a) an invalid model name is refused, and the name is kept verbatim in the dead letter."""
    rows = secure.stack.store().query_rows("SELECT model, error FROM dead_letters FINAL ORDER BY model")
    assert [m for m, _ in rows] == sorted(HOSTILE_MODELS)
    assert all(e.startswith("model: String should match pattern") for _, e in rows)


def test_cli_passes_hostile_operator_values_as_data(secure: Secure) -> None:
    """(a) ``alerts --model``, ``sunset-candidates --model``, ``silence add --model/--comment``: data, not SQL."""
    stack, evil = secure.stack, "x'); DROP TABLE alerts; --"
    for args in (("alerts", "--model", evil, "--format", "json"), ("sunset-candidates", "--model", evil, "--format",
                 "json")):  # fmt: skip
        out = stack.cli(*args)
        secure.outputs += [out.stdout, out.stderr]
        assert json.loads(out.stdout) == []
    comment = "it's \\ fine'); DROP TABLE silences; --"
    out = stack.cli("silence", "add", "--model", evil, "--comment", comment, "--for", "1h", "--force")
    secure.outputs += [out.stdout, out.stderr]
    out = stack.cli("silence", "list", "--format", "json")
    secure.outputs += [out.stdout, out.stderr]
    assert [(s["model"], s["comment"]) for s in json.loads(out.stdout)] == [(evil, comment)]


def test_every_table_survives_with_exactly_the_rows_sent(secure: Secure) -> None:
    """(a) after all of the above the tables are those that were there, and the raw rows are exact."""
    store = secure.stack.store()
    tables = {r[0] for r in store.query_rows("SHOW TABLES FROM watchkeeper")}
    assert tables == secure.tables_before and TABLES <= tables
    n_pred = sum(secure.counts.values())
    n_out = len(VERSIONS) * PER_VERSION + 200
    got = store.query_rows(
        "SELECT (SELECT count() FROM predictions FINAL), (SELECT count() FROM outcomes FINAL), "
        "(SELECT count() FROM dead_letters FINAL)"
    )
    assert got == [(n_pred, n_out, len(HOSTILE_MODELS))]


# (d) Credentials ----------------------------------------------------------------------------


def test_the_store_refuses_anonymous_clients_and_wrong_passwords(secure: Secure) -> None:
    """(d) with credentials configured, user default (no password) and a wrong password are refused."""
    for user, password in (("default", ""), ("writer", ""), ("writer", WRITER_PW + "x"), ("analyst", WRITER_PW)):
        with pytest.raises(DatabaseError, match="Authentication failed"):
            client(secure.stack, user, password)
    assert ping("127.0.0.1", secure.stack.settings.store_port)  # /ping needs no credentials, as on a server


def test_the_worker_writes_with_the_writer_credentials(secure: Secure) -> None:
    """(d) everything above was written by a worker configured with the writer's credentials only
    (the store knows no other user that may write)."""
    assert "WATCHKEEPER_STORE_PASSWORD" in secure.stack.env and secure.worker.poll() is None
    c = client(secure.stack, "writer", WRITER_PW)
    try:
        assert c.command("SELECT count() FROM predictions FINAL") == sum(secure.counts.values())
    finally:
        c.close()


def test_the_read_only_user_reads_but_changes_nothing(secure: Secure) -> None:
    """(d) the analyst reads every table; INSERT, ALTER, DROP, TRUNCATE, SYSTEM, SET and settings are refused."""
    c = client(secure.stack, "analyst", ANALYST_PW)
    # The worker still writes metrics, drift and alerts as its timer runs: count what only input changes,
    # and compare every table's columns.
    counted = ("predictions", "outcomes", "dead_letters")
    columns = (
        "SELECT table, groupArray(name) FROM (SELECT table, name FROM system.columns "
        "WHERE database = currentDatabase() ORDER BY table, position) GROUP BY table ORDER BY table"
    )
    before = ({t: c.command(f"SELECT count() FROM {t}") for t in counted}, c.query(columns).result_rows)
    refused = [
        "INSERT INTO predictions (model, prediction_id) VALUES ('m', 'p')",
        "INSERT INTO metrics SELECT * FROM metrics",
        "ALTER TABLE metrics DELETE WHERE 1",
        "ALTER TABLE predictions MODIFY TTL toDateTime(ts) + INTERVAL 1 DAY",
        "ALTER TABLE alerts ADD COLUMN x UInt8",
        "DELETE FROM dead_letters WHERE 1",
        "DROP TABLE dead_letters",
        "TRUNCATE TABLE outcomes",
        "RENAME TABLE drift TO drift2",
        "CREATE TABLE x (a UInt8) ENGINE = Memory",
        "OPTIMIZE TABLE predictions FINAL",
        "SYSTEM STOP MERGES watchkeeper.predictions",
        "SYSTEM FLUSH LOGS",
        "SET max_threads = 1",
        "DROP DATABASE watchkeeper",
    ]
    try:
        for statement in refused:
            with pytest.raises(DatabaseError, match="readonly"):
                c.command(statement)
        with pytest.raises(DatabaseError, match="readonly"):
            c.insert("predictions", [["m", "p"]], column_names=["model", "prediction_id"])
        after = ({t: c.command(f"SELECT count() FROM {t}") for t in counted}, c.query(columns).result_rows)
        assert after == before
        assert TABLES <= {table for table, _ in after[1]}
    finally:
        c.close()
    # The analyst's own tool: `watchkeeper sql` with the read-only credentials.
    env = {"store_user": "analyst", "store_password": ANALYST_PW}
    out = cli(secure, env, "sql", "SELECT count() FROM predictions FINAL", "--format", "CSV")
    assert out.returncode == 0 and out.stdout.strip() == str(sum(secure.counts.values()))
    out = cli(secure, env, "sql", "DROP TABLE dead_letters")
    assert out.returncode != 0 and "readonly" in out.stderr


def test_the_read_only_user_cannot_kill_the_writers_queries(secure: Secure) -> None:
    """(d) the analyst's KILL QUERY is refused and the writer's query runs to its end."""
    writer = client(secure.stack, "writer", WRITER_PW)
    analyst = client(secure.stack, "analyst", ANALYST_PW)
    result: dict[str, Any] = {}

    def slow() -> None:  # about 3 s of work here
        try:
            result["rows"] = writer.command("SELECT count() FROM numbers(300000000) WHERE sipHash64(number) % 7 = 3")
        except DatabaseError as exc:
            result["error"] = str(exc).splitlines()[0]

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(1.0)
    try:
        analyst.command("KILL QUERY WHERE query LIKE '%sipHash64%' AND query NOT LIKE '%KILL%' SYNC")
        refused = False
    except DatabaseError as exc:
        refused = "readonly" in str(exc)
    thread.join(60)
    writer.close()
    analyst.close()
    assert refused, f"the analyst's KILL QUERY ran; the writer's query: {result}"
    assert result == {"rows": 42858485}


def test_a_worker_with_a_wrong_password_retries_without_crashing(secure: Secure, tmp_path: Path) -> None:
    """(d) a refused password is an operator's mistake to fix, not a reason to crash: the worker logs the
    authentication failure, keeps its agents alive (and its messages un-acked), and stops on SIGTERM."""
    stack = secure.stack
    own = {"app_id": "wrong-pw", "topic_predictions": "wp-predictions", "topic_outcomes": "wp-outcomes",
           "topic_alerts": "wp-alerts", "topic_dead_letters": "wp-dead-letters"}  # fmt: skip
    worker = stack.start_worker(store_password=WRONG_PW, **own)
    log_path = stack.root / f"worker-{len(stack.workers) - 1}.log"
    try:
        path = tmp_path / "wp.jsonl"
        events = [
            {"type": "prediction", "prediction_id": f"wp-{i}", "model": "wp", "prediction": 0.5} for i in range(50)
        ]
        path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
        out = cli(secure, own, "publish", "--quiet", str(path))
        assert out.returncode == 0, out.stderr
        deadline = time.monotonic() + 60
        while "Worker ready" not in log_path.read_text(errors="replace") and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(5)  # the agents have taken the messages and tried to write them
        log = log_path.read_text(errors="replace")
        assert "Authentication failed" in log  # it says why it cannot write
        assert "Crashed" not in log and worker.poll() is None
        worker.send_signal(signal.SIGTERM)
        worker.wait(10)  # a healthy worker stops in under 2 s here
    except subprocess.TimeoutExpired:
        raise AssertionError("the worker did not stop within 10 s of SIGTERM") from None
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_credentials_from_the_config_file_protect_the_store(secure: Secure, tmp_path: Path) -> None:
    """(d) ``watchkeeper store`` with credentials in the YAML file refuses an anonymous client."""
    config = tmp_path / "wk.yaml"
    config.write_text(f"store_user: writer\nstore_password: {WRITER_PW}\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    env.update({"WATCHKEEPER_CONFIG": str(config), "WATCHKEEPER_STORE_PATH": str(tmp_path / "store"),
                "WATCHKEEPER_STORE_PORT": str(port), "PYTHONPATH": str(REPO)})  # fmt: skip
    log_path = tmp_path / "store.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "watchkeeper.cli", "store"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not ping("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.2)
        anonymous = clickhouse_connect.get_client(host="127.0.0.1", port=port)
        anonymous.close()
        raise AssertionError("user default without a password was let in")
    except DatabaseError as exc:
        assert "Authentication failed" in str(exc)
    finally:
        proc.terminate()
        proc.wait(30)
        secure.outputs.append(log_path.read_text(errors="replace"))


def cli(secure: Secure, settings: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A command with settings of its own (added to the stack's); its output is kept for the secret check."""
    env = {**secure.stack.env, **{f"WATCHKEEPER_{k.upper()}": v for k, v in settings.items()}}
    out = subprocess.run(
        [sys.executable, "-m", "watchkeeper.cli", *args],
        env=env,
        cwd=secure.stack.root,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    secure.outputs += [out.stdout, out.stderr]
    return out


# (c) Loopback only --------------------------------------------------------------------------


def test_store_broker_and_web_port_listen_on_loopback_only(secure: Secure) -> None:
    """(c) 127.0.0.1 and nothing else, for the store, the broker and the worker's web port."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs /proc/net/tcp")
    s = secure.stack.settings
    web_port = int(secure.worker.args[secure.worker.args.index("--web-port") + 1])  # type: ignore[union-attr]
    deadline = time.monotonic() + 30
    while not listening(web_port) and time.monotonic() < deadline:
        time.sleep(0.5)
    for port in (s.store_port, s.broker_port, web_port):
        assert listening(port) == {"127.0.0.1"}, port
    other = non_loopback_address()
    if other is not None:
        assert not ping(other, s.store_port)


def test_the_bind_addresses_follow_the_settings(secure: Secure, tmp_path: Path) -> None:
    """(c) "unless configured otherwise": WATCHKEEPER_STORE_HOST and WATCHKEEPER_WEB_HOST are obeyed."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs /proc/net/tcp")
    stack = secure.stack
    own = {"app_id": "bind-check", "topic_predictions": "bc-predictions", "topic_outcomes": "bc-outcomes",
           "topic_alerts": "bc-alerts", "topic_dead_letters": "bc-dead-letters", "web_host": "0.0.0.0"}  # fmt: skip
    worker = stack.start_worker(**own)
    web_port = int(worker.args[worker.args.index("--web-port") + 1])  # type: ignore[union-attr]
    store_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    env.update({"WATCHKEEPER_STORE_HOST": "0.0.0.0", "WATCHKEEPER_STORE_PORT": str(store_port),
                "WATCHKEEPER_STORE_PATH": str(tmp_path / "store"), "PYTHONPATH": str(REPO)})  # fmt: skip
    store = subprocess.Popen(
        [sys.executable, "-m", "watchkeeper.cli", "store"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (listening(web_port) and listening(store_port)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert listening(store_port) == {"0.0.0.0"}
        assert listening(web_port) == {"0.0.0.0"}
    finally:
        for proc in (worker, store):
            proc.terminate()
        for proc in (worker, store):
            proc.wait(30)


# (b) Secrets --------------------------------------------------------------------------------


def test_commands_with_an_unreachable_store_fail_without_showing_its_password(secure: Secure) -> None:
    """(b) sql, alerts, report and worker against a dead ClickHouse URL with a password: they fail,
    say where they could not connect, and never print the password."""
    dead = free_port()
    env = {"clickhouse": f"http://writer:{CH_PW}@127.0.0.1:{dead}/watchkeeper", "app_id": "leak-check"}
    for args in (("sql", "SELECT 1"), ("alerts",), ("report", "--out", "report"), ("worker", "-l", "info")):
        out = cli(secure, env, *args, timeout=90)
        assert out.returncode != 0, args
        assert f"127.0.0.1:{dead}" in out.stdout + out.stderr, (args, out.stderr[-2000:])
        assert CH_PW not in out.stdout + out.stderr
    # A bad value next to the secrets: the message names the setting, not the secrets.
    out = cli(secure, {"clickhouse": f"ftp://writer:{CH_PW}@127.0.0.1/wk", "partitions": "many"}, "sql", "SELECT 1")
    assert out.returncode != 0 and "clickhouse" in out.stderr and "partitions" in out.stderr
    assert CH_PW not in out.stderr


def test_no_secret_in_any_log_or_output(secure: Secure) -> None:
    """(b) after alerts failed to reach every receiver: no secret in the worker's, store's or
    broker's log, nor in the output of any command run by this module."""
    stack = secure.stack
    fired = stack.wait_for(
        "SELECT kind, state FROM alerts WHERE model = 'gappy' ORDER BY ts, state",
        [("no_data", "firing"), ("no_data", "resolved")],
        timeout=60,
    )
    assert fired == [("no_data", "firing"), ("no_data", "resolved")]
    log_path = stack.root / "worker-0.log"
    deadline = time.monotonic() + 60
    while "undeliverable to webhook" not in log_path.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(1)
    logs = {
        p.name: p.read_text(errors="replace")
        for p in [*stack.root.glob("worker-*.log"), *(stack.settings.data_dir / "logs").glob("*.log")]
    }
    assert "undeliverable to webhook" in logs["worker-0.log"]  # the failure path ran
    assert "store.log" in logs and "broker.log" in logs
    for name, text in logs.items():
        for secret in SECRETS:
            assert secret not in text, (name, secret)
    for text in secure.outputs:
        for secret in SECRETS:
            assert secret not in text, secret


ALL_SECRETS = {
    "clickhouse": f"https://writer:{CH_PW}@ch.example:8443/wk",
    "store_password": WRITER_PW,
    "store_readonly_password": ANALYST_PW,
    "webhook_url": f"https://hooks.example/x?token={TOKEN}",
    "slack_webhook_url": f"https://hooks.slack.com/services/T0/B0/{SLACK}",
    "retrain_webhook_url": f"https://ml.example/retrain?key={RETRAIN}",
    "pagerduty_routing_key": "Pd-R0uting-S3cret",
    "grafana_token": GRAFANA,
    "grafana_password": "Gr4fana-S3cret-pw",
    "kafka_sasl_username": "svc",
    "kafka_sasl_password": SASL,
    "alert_receivers": {"team": {"type": "webhook", "url": "https://hooks.example/team?token=Rcv-S3cret"}},
}


def _leaks(text: str) -> list[str]:
    secrets = [*SECRETS, "Pd-R0uting-S3cret", "Gr4fana-S3cret-pw", "Rcv-S3cret", "Gr-Url-S3cret", "Am-Url-S3cret"]
    return [s for s in secrets if s in text]


def test_redacted_settings_show_no_secret() -> None:
    """(b) ``Settings.redacted()``, meant for logs, masks every secret setting."""
    s = Settings(**ALL_SECRETS)
    assert _leaks(json.dumps(s.redacted())) == []
    assert s.redacted()["clickhouse"] == "https://writer:***@ch.example:8443/wk"


def test_redacted_settings_mask_passwords_in_every_url() -> None:
    """(b) a password in any URL setting is masked by ``redacted()``."""
    s = Settings(
        grafana_url="https://admin:Gr-Url-S3cret@grafana.example", alertmanager_url="http://am:Am-Url-S3cret@am:9093"
    )
    assert _leaks(json.dumps(s.redacted())) == []


def test_settings_repr_shows_no_secret() -> None:
    """(b) a Settings object that ends up in a log line or a traceback shows no secret."""
    s = Settings(**ALL_SECRETS)
    assert _leaks(repr(s)) == [] and _leaks(str(s)) == []
