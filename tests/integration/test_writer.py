"""The clickhouse-connect writer against the embedded store (and a server when configured)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.stack import free_port
from watchkeeper.settings import Settings
from watchkeeper.sinks.schema import Retention
from watchkeeper.sinks.writer import Store, StoreUnavailable

pytestmark = pytest.mark.integration

SERVER_URL = os.environ.get("WATCHKEEPER_TEST_CLICKHOUSE_URL")


@pytest.fixture(params=["embedded", "server"])
def writer(request: pytest.FixtureRequest, store: tuple[str, int]) -> Iterator[Store]:
    if request.param == "server":
        if not SERVER_URL:
            pytest.skip("WATCHKEEPER_TEST_CLICKHOUSE_URL is not set: no ClickHouse server to test against")
        s = Store.from_settings(Settings(clickhouse=SERVER_URL))
    else:
        s = Store(host=store[0], port=store[1])
    s.migrate(Retention())
    yield s
    s.close()


def _now() -> datetime:
    return datetime.now(UTC)


def metric_row(model: str, ts: datetime) -> dict[str, list]:
    return {
        "window_start": [ts],
        "window_end": [ts + timedelta(minutes=5)],
        "model": [model],
        "version": ["v1"],
        "segment": [""],
        "metric": ["predictions"],
        "value": [1.0],
        "n": [1],
        "computed_at": [ts],
    }


def prediction_row(model: str, ts: datetime, pid: str = "p") -> dict[str, list]:
    return {
        "ts": [ts],
        "model": [model],
        "version": ["v1"],
        "prediction_id": [pid],
        "event_id": [pid],
        "prediction": [0.5],
        "prediction_class": [""],
        "scores": [{}],
        "features": [{"x": 1.0}],
        "features_cat": [{"c": "a"}],
        "segments": [{"region": "eu"}],
        "latency_ms": [None],
        "fallback": [0],
        "baseline": [None],
        "baseline_class": [""],
        "src_partition": [0],
        "src_offset": [0],
    }


def count(s: Store, table: str, model: str) -> int:
    return s.query_rows(f"SELECT count() FROM {table} WHERE model = {{m:String}}", {"m": model})[0][0]


def test_migrate_is_idempotent_and_creates_every_table(writer: Store) -> None:
    writer.migrate(Retention())
    tables = {r[0] for r in writer.query_rows("SELECT name FROM system.tables WHERE database = currentDatabase()")}
    assert {"predictions", "outcomes", "metrics", "drift", "alerts", "dead_letters"} <= tables


def test_repeated_token_inserts_nothing(writer: Store) -> None:
    model = f"tok{time.time_ns()}"
    row = prediction_row(model, _now())
    assert writer.insert("predictions", row, token=f"t-{model}") == 1
    writer.insert("predictions", row, token=f"t-{model}")
    assert count(writer, "predictions", model) == 1
    writer.insert("predictions", row, token=f"t2-{model}")  # another batch: inserted, deduplicated by FINAL
    assert count(writer, "predictions FINAL", model) == 1


def test_hostile_names_are_data(writer: Store) -> None:
    model = "x'); DROP TABLE metrics; --\\ ü"
    writer.insert("metrics", metric_row(model, _now()))
    rows = writer.query_rows("SELECT model FROM metrics WHERE model = {m:String}", {"m": model})
    assert rows == [(model,)]


def test_retention_is_a_setting_raw_rows_expire_aggregates_stay(writer: Store) -> None:
    model = f"ttl{time.time_ns()}"
    old = _now() - timedelta(days=10)
    writer.insert("predictions", prediction_row(model, old))
    writer.insert("metrics", metric_row(model, old))
    assert count(writer, "predictions", model) == 1
    writer.migrate(Retention(raw_days=5, aggregate_days=400))  # the operator shortens raw retention
    writer.command("OPTIMIZE TABLE predictions FINAL")
    writer.command("OPTIMIZE TABLE metrics FINAL")
    assert count(writer, "predictions", model) == 0
    assert count(writer, "metrics", model) == 1
    writer.migrate(Retention())  # back to the defaults for the other tests


def test_unreachable_store_raises_store_unavailable_without_secrets() -> None:
    s = Store(host="127.0.0.1", port=free_port(), password="hunter2-secret", connect_timeout=1)
    with pytest.raises(StoreUnavailable) as exc:
        s.query_rows("SELECT 1")
    assert "hunter2" not in str(exc.value)


@pytest.mark.parametrize("n", [200, 6000])
def test_insert_arrow_small_tables_in_one_body_large_ones_streamed(writer: Store, n: int) -> None:
    """Both ways of sending an Arrow table insert every row and value as decoded."""
    import orjson

    from watchkeeper.sinks.writer import ONE_BODY_BYTES
    from watchkeeper.streams.events import Prediction
    from watchkeeper.streams.ingest import SourceMessage
    from watchkeeper.streams.service import Worker

    model = f"arrow-{n}-{time.time_ns()}"
    t0 = time.time() - 3600
    events = [
        {"prediction_id": f"p{i}", "model": model, "ts": t0 + i / 10, "prediction": (i % 100) / 100,
         "features": {f"f{j}": float(i * j) for j in range(10)}, "segments": {"region": "eu"}}
        for i in range(n)
    ]  # fmt: skip
    messages = [SourceMessage("predictions", 0, i, orjson.dumps(e), None) for i, e in enumerate(events)]
    [(_, batch)] = Worker(Settings()).build_batches(messages, Prediction)
    table = batch.tables()["predictions"]
    assert (table.nbytes > ONE_BODY_BYTES) == (n > 1000)
    assert writer.insert_arrow("predictions", table) == n
    rows = writer.query_rows(
        "SELECT count(), sum(prediction), sum(features['f9']), uniqExact(prediction_id) FROM predictions "
        "WHERE model = {m:String}",
        {"m": model},
    )
    assert rows == [(n, pytest.approx(sum(e["prediction"] for e in events)), 9.0 * n * (n - 1) / 2, n)]


def test_the_model_stages_final_reads_of_a_time_range_read_that_range_not_the_whole_day(
    store: tuple[str, int],
) -> None:
    """Predictions are ordered by (model, event_id), and event ids do not follow time: a FINAL read of five
    minutes read every part of the model's day. The model stage's connection reads the parts and granules of
    the range, and FINAL still collapses the copies of an event (a re-sent event keeps its time)."""
    import uuid

    plain = Store(host=store[0], port=store[1])
    plain.migrate(Retention())
    stage = Store(host=store[0], port=store[1], final_by_time=True)
    table = f"predictions_final_{time.time_ns()}"  # the raw table's engine, key and indexes; unmerged parts
    plain.command(f"CREATE TABLE {table} AS predictions")
    plain.command(f"SYSTEM STOP MERGES {table}")
    model = "final"
    day = datetime.combine((_now() - timedelta(days=1)).date(), datetime.min.time(), UTC)
    per_part = 10_000
    try:
        for hour in range(6):  # one insert, one part, per hour of the day
            ids = [uuid.uuid4().hex for _ in range(per_part)]
            rows = {k: v * per_part for k, v in prediction_row(model, day).items()}
            rows["ts"] = [day + timedelta(hours=hour, seconds=i * 0.36) for i in range(per_part)]
            rows["prediction_id"] = rows["event_id"] = ids
            plain.insert(table, rows)
        plain.insert(table, {k: v[:500] for k, v in rows.items()})  # the first 500 of the last hour, sent again
        t0, t1 = day + timedelta(hours=5), day + timedelta(hours=5, minutes=5)
        sql = (
            f"SELECT count() FROM {table} FINAL WHERE model IN {{models:Array(String)}} "
            "AND ts >= {t0:DateTime64(3, 'UTC')} AND ts < {t1:DateTime64(3, 'UTC')} "
            "SETTINGS max_rows_to_read = {cap:UInt64}, read_overflow_mode = 'throw'"
        )
        params = {"models": [model], "t0": t0, "t1": t1, "cap": 3 * per_part}
        in_range = sum(1 for i in range(per_part) if i * 0.36 < 5 * 60)  # the events of the five minutes, once
        assert stage.query_rows(sql, params) == [(in_range,)]
        with pytest.raises(Exception, match="Limit for rows"):  # every part of the day: 60,500 rows
            plain.query_rows(sql, params)
        assert plain.query_rows(sql, {**params, "cap": 0}) == [(in_range,)]
    finally:
        plain.command(f"DROP TABLE IF EXISTS {table}")
        stage.close()
        plain.close()
