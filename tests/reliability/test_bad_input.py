"""Bad input on the real embedded stack: every bad item is a dead letter, every good event is counted.

One stack (Tansu broker, chdb store, one worker). The input mixes good events
of several models with 37 kinds of bad input, over 1,000 bad items in all,
sent three ways: raw Kafka messages (kafka-python), raw envelopes in which bad
events sit among good neighbours, and a JSONL file through ``watchkeeper
publish`` (whose client packs events into envelopes of its own).

Every bad item carries a tag ``BAD|<kind>|<n>`` in its bytes (tombstones and
empty messages excepted, they have none), so each ``dead_letters`` row can be
traced back to the item behind it. Invariants, each checked exactly against
counts computed here from the input:

1. ``dead_letters`` holds exactly one row per bad item: per (kind, topic) the
   counts are those sent; each row's reason matches its kind; an event refused
   inside a raw envelope carries its index there, a refused message -1; the
   raw bytes are kept (non-UTF-8 ones byte for byte).
2. The ``dead-letters`` topic carries the same items as the table.
3. Every good event is counted once in ``metrics`` (``predictions``, ``segment
   = ''``): duplicate event ids once; labels once (``labelled``); outcomes of
   unknown predictions as ``orphaned_outcomes``; labels past the allowed delay
   as ``late_labels``; outcomes that arrive before their prediction are joined,
   also when their window was first written with them as orphans.
4. The worker never crashed: alive, no "Crashed" and no traceback in its log.

The decoder (``watchkeeper.streams.decode.decode_message``) is fuzzed with hypothesis at the
end, beyond what tests/unit/test_events.py fuzzes.
"""

from __future__ import annotations

import base64
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.stack import Stack
from watchkeeper.streams.decode import decode_message
from watchkeeper.streams.events import MAX_FEATURES, Outcome, Prediction

pytestmark = pytest.mark.integration

PRED, OUT = "predictions", "outcomes"
HUGE = 9 * 1024 * 1024  # above the default 8 MiB message limit
TAG = re.compile(rb"BAD\|([a-z0-9_]+)\|\d+")

# kind -> the reason its dead letter must give (a regex searched in ``error``).
NON_FINITE = r"^(prediction: Value error, NaN and infinity are not allowed|outcome: Field required)"
REASONS: dict[str, str] = {
    # Whole messages (event_index -1).
    "bad_json": r"^bad JSON: unexpected end of data",
    "non_utf8": r"^bad JSON: str is not valid UTF-8",
    # JSON has no NaN or infinity, but other encoders write them: the event is refused for the value
    # (a prediction) or for what it lacks (the same bytes on the outcomes topic), not as bad JSON.
    "nan_literal": NON_FINITE,
    "infinity_literal": NON_FINITE,
    "overflow_number": NON_FINITE,
    "too_deep_json": r"^bad JSON: depth limit exceeded",
    "not_an_object": r"^expected a JSON object or an envelope",
    "events_not_a_list": r"^envelope: 'events' must be a list$",
    "huge_event": rf"^message of \d+ bytes exceeds the {8 * 1024 * 1024}-byte limit$",
    "huge_envelope": rf"^message of \d+ bytes exceeds the {8 * 1024 * 1024}-byte limit$",
    "expired_ts": r"^ts: older than the raw-data retention",
    "empty": r"^(empty message|bad JSON: Input is a zero-length)",
    # Events, alone or inside envelopes.
    "missing_prediction_id": r"^prediction_id: Field required$",
    "missing_model": r"^model: Field required$",
    "missing_prediction": r"^prediction: Field required$",
    "prediction_is_object": r"^prediction: Value error, expected a number or a string$",
    "prediction_is_bool": r"^prediction: Value error, expected a number or a string$",
    "prediction_id_is_number": r"^prediction_id: Input should be a valid string$",
    "hostile_model_name": r"^model: String should match pattern",
    "model_name_too_long": r"^model: String should match pattern",
    "ancient_ts": r"^ts: Value error, ts: before 2000-01-01",
    "future_ts": r"^ts: Value error, ts: more than a day in the future$",
    "millisecond_ts": r"^ts: Value error, ts: more than a day in the future$",
    "ts_not_a_time": r"^ts: Value error, ts: not an RFC 3339 timestamp$",
    "ten_thousand_features": rf"^features: Value error, more than {MAX_FEATURES} features$",
    "nested_features": r"^features: Value error, feature 'deep': expected a number, string, bool or null$",
    "features_not_an_object": r"^features: Value error, expected an object",
    "empty_feature_name": r"^features: Value error, feature name must be",
    "negative_latency": r"^latency_ms: Input should be greater than or equal to 0$",
    "score_not_a_probability": r"^scores: Value error, score of class 'yes' must be a probability",
    "segment_not_text": r"^segments: Value error, segment 'region': expected a string",
    "fallback_not_bool": r"^fallback: Input should be a valid boolean$",
    "text_too_long": r"^prediction: Value error, text longer than 1024 characters$",
    "prediction_id_too_long": r"^prediction_id: String should have at most 256 characters$",
    "empty_version": r"^version: String should have at least 1 character$",
    "outcome_missing": r"^outcome: Field required$",
    "outcome_is_list": r"^outcome: Value error, expected a number or a string$",
}
HOSTILE_MODELS = [
    "fr aud",
    "x'); DROP TABLE predictions; --",
    "modèle",
    "a\\b",
    'q"uote',
    "",
    "dead;letters",
    "\u202eevil",
]


@dataclass
class Plan:
    """What is sent, and what must come out of it."""

    start: float
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))
    raw: dict[str, list[tuple[bytes | None, bytes | None]]] = field(default_factory=lambda: {PRED: [], OUT: []})
    lines: list[bytes] = field(default_factory=list)
    dead: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, topic) -> items
    index: dict[bytes, int] = field(default_factory=dict)  # tag of a raw-carried item -> event_index
    sent_bytes: dict[bytes, bytes] = field(default_factory=dict)  # tag -> raw message (non-UTF-8 kind)
    event_ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # model -> unique event ids
    labelled: Counter[str] = field(default_factory=Counter)
    orphaned: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)  # distinct outcome events per model
    late: Counter[str] = field(default_factory=Counter)
    serial: Counter[str] = field(default_factory=Counter)

    # Building blocks ------------------------------------------------------
    def tag(self, kind: str) -> str:
        self.serial[kind] += 1
        return f"BAD|{kind}|{self.serial[kind]}"

    def prediction(self, model: str, i: int, **extra: Any) -> dict[str, Any]:
        ts = self.start + i * 0.7
        score = round(float(self.rng.uniform()), 3)
        event = {"prediction_id": f"{model}-{i}", "model": model, "version": "v1", "ts": ts, "prediction": score}
        event.update(extra)
        return event

    def outcome(self, pred: dict[str, Any], delay: float = 60.0) -> dict[str, Any]:
        y = int(self.rng.uniform() < pred["prediction"])
        return {"prediction_id": pred["prediction_id"], "model": pred["model"], "ts": pred["ts"] + delay, "outcome": y}

    # Bad items ------------------------------------------------------------
    def bad_event(self, kind: str, topic: str = PRED) -> dict[str, Any]:
        """An event that must be refused for reason ``kind`` (tagged, so its dead letter is traceable)."""
        tag = self.tag(kind)
        n = self.serial[kind]
        if topic == OUT:
            base: dict[str, Any] = {"tag": tag, "prediction_id": f"o-{tag}", "model": "good-a", "outcome": 1}
            if kind == "outcome_missing":
                del base["outcome"]
            elif kind == "outcome_is_list":
                base["outcome"] = [1]
            else:
                raise ValueError(kind)
            return base
        e: dict[str, Any] = {"tag": tag, "prediction_id": f"p-{tag}", "model": "good-a", "prediction": 0.5}
        now = time.time()
        match kind:
            case "missing_prediction_id":
                del e["prediction_id"]
            case "missing_model":
                del e["model"]
            case "missing_prediction":
                del e["prediction"]
            case "prediction_is_object":
                e["prediction"] = {"p": 0.5}
            case "prediction_is_bool":
                e["prediction"] = True
            case "prediction_id_is_number":
                e["prediction_id"] = 1000 + n
            case "hostile_model_name":
                e["model"] = HOSTILE_MODELS[n % len(HOSTILE_MODELS)]
            case "model_name_too_long":
                e["model"] = "m" * 129
            case "ancient_ts":
                e["ts"] = [946684799, 0, "1999-12-31T23:59:59Z", 86400.0][n % 4]
            case "future_ts":
                e["ts"] = now + 3 * 86400
            case "millisecond_ts":
                e["ts"] = now * 1000
            case "ts_not_a_time":
                e["ts"] = ["yesterday", "2024-13-45T00:00:00Z", "", "now"][n % 4]
            case "ten_thousand_features":
                e["features"] = {f"f{i}": i for i in range(10_000)}
            case "nested_features":
                deep: Any = 1.0
                for _ in range(100):
                    deep = {"d": deep}
                e["features"] = {"x": 1.0, "deep": deep}
            case "features_not_an_object":
                e["features"] = [1.0, 2.0]
            case "empty_feature_name":
                e["features"] = {"": 1.0}
            case "negative_latency":
                e["latency_ms"] = -5.0
            case "score_not_a_probability":
                e["scores"] = {"yes": 1.5, "no": -0.5}
            case "segment_not_text":
                e["segments"] = {"region": 7}
            case "fallback_not_bool":
                e["fallback"] = "yes"
            case "text_too_long":
                e["prediction"] = "c" * 2000
            case "prediction_id_too_long":
                e["prediction_id"] = "p" * 257
            case "empty_version":
                e["version"] = ""
            case _:
                raise ValueError(kind)
        return e

    def bad_message(self, kind: str) -> bytes | None:
        """A whole Kafka message that must be refused for reason ``kind``."""
        if kind == "empty":
            return None
        tag = self.tag(kind)
        t = tag.encode()
        match kind:
            case "bad_json":
                return b'{"tag": "' + t + b'", "prediction_id": "x", "model": "good-a", "prediction": 0.'
            case "non_utf8":
                return b'{"tag": "' + t + b'", "prediction_id": "\xff\xfe\xfa", "model": "good-a", "prediction": 1}'
            case "nan_literal":
                return b'{"tag": "' + t + b'", "prediction_id": "n", "model": "good-a", "prediction": NaN}'
            case "infinity_literal":
                return b'{"tag": "' + t + b'", "prediction_id": "n", "model": "good-a", "prediction": -Infinity}'
            case "overflow_number":
                return b'{"tag": "' + t + b'", "prediction_id": "n", "model": "good-a", "prediction": 1e999}'
            case "too_deep_json":
                return b'{"tag": "' + t + b'", "features": ' + b'{"a": ' * 2000 + b"1" + b"}" * 2001
            case "not_an_object":
                return orjson.dumps([tag, 1, 2])
            case "events_not_a_list":
                return orjson.dumps({"events": {"tag": tag}})
            case "huge_event":
                blob = {"b": "x" * HUGE}
                return orjson.dumps(
                    {"tag": tag, "prediction_id": "h", "model": "good-a", "prediction": 0.1, "features": blob}
                )
            case "huge_envelope":
                first = {"tag": tag, "prediction_id": "he-0", "model": "good-a", "prediction": 0.1}
                rest = [{"prediction_id": f"he-{i}", "model": "good-a", "prediction": 0.1} for i in range(1, 160_000)]
                return orjson.dumps({"events": [first, *rest]})
            case "expired_ts":
                return orjson.dumps(
                    {"tag": tag, "prediction_id": f"p-{tag}", "model": "good-a", "prediction": 0.2, "ts": 1.5e9}
                )
        raise ValueError(kind)

    def expect(self, kind: str, topic: str, n: int = 1) -> None:
        self.dead[(kind, topic)] += n

    # Good events ----------------------------------------------------------
    def count_good(self, pred: dict[str, Any]) -> None:
        self.event_ids[pred["model"]].add(pred.get("event_id", pred["prediction_id"]))


def key_of(event: dict[str, Any]) -> bytes | None:
    pid = event.get("prediction_id")
    return pid.encode() if isinstance(pid, str) else None


def jsonl(kind: str, event: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": kind, **event})


WHOLE_MESSAGE_KINDS = {"huge_event", "huge_envelope", "expired_ts", "empty"}
OUTCOME_KINDS = ("outcome_missing", "outcome_is_list")
MESSAGE_KINDS = [
    "bad_json",
    "non_utf8",
    "nan_literal",
    "infinity_literal",
    "overflow_number",
    "too_deep_json",
    "not_an_object",
    "events_not_a_list",
]
EVENT_KINDS = [k for k in REASONS if k not in {*MESSAGE_KINDS, *WHOLE_MESSAGE_KINDS, *OUTCOME_KINDS}]


def build_plan(start: float) -> Plan:
    """The whole input: good traffic of six models with every kind of bad input woven in."""
    plan = Plan(start)
    rng = plan.rng
    preds: list[dict[str, Any]] = []  # good predictions, to be spread over the carriers
    outs: list[dict[str, Any]] = []  # good outcomes

    # good-a, good-b: plain binary traffic; 80 % labelled.
    for model, n in (("good-a", 900), ("good-b", 500)):
        for i in range(n):
            p = plan.prediction(model, i, features={"x": i % 7, "city": ["paris", "oslo"][i % 2]})
            preds.append(p)
            plan.count_good(p)
            if i % 5:
                outs.append(plan.outcome(p))
                plan.labelled[model] += 1
                plan.outcomes[model] += 1

    # dup: 100 predictions sent twice (envelope + single message / JSONL), labels sent twice too;
    # 30 pairs that share an event_id under two prediction ids. Each event id counts once.
    for i in range(100):
        p = plan.prediction("dup", i)
        o = plan.outcome(p)
        plan.count_good(p)
        plan.labelled["dup"] += 1
        plan.outcomes["dup"] += 1
        plan.raw[PRED].append((key_of(p), orjson.dumps(p)))
        plan.raw[OUT].append((key_of(o), orjson.dumps(o)))
        preds.append(p)
        outs.append(o)
    for i in range(100, 130):
        a = plan.prediction("dup", i, event_id=f"dup-shared-{i}")
        b = {**a, "prediction_id": f"dup-twin-{i}"}
        plan.count_good(a)
        plan.count_good(b)
        preds += [a, b]

    # early: outcomes published (and consumed) before their predictions; joined all the same.
    early_preds = [plan.prediction("early", i) for i in range(60)]
    early_outs = [plan.outcome(p) for p in early_preds]
    for p in early_preds:
        plan.count_good(p)
    plan.labelled["early"] += 60
    plan.outcomes["early"] += 60

    # orph: 100 labelled predictions and 40 outcomes whose prediction never comes.
    for i in range(100):
        p = plan.prediction("orph", i)
        preds.append(p)
        plan.count_good(p)
        outs.append(plan.outcome(p))
    for i in range(40):
        ghost = {"prediction_id": f"ghost-{i}", "model": "orph", "prediction": 0.5, "ts": start + i}
        outs.append(plan.outcome(ghost))
    plan.labelled["orph"] += 100
    plan.outcomes["orph"] += 140
    plan.orphaned["orph"] += 40

    # late: labels 20 minutes after the prediction (allowed delay 10 minutes after the window).
    for i in range(50):
        p = plan.prediction("late", i)
        preds.append(p)
        plan.count_good(p)
        outs.append(plan.outcome(p, delay=1200.0))
    plan.labelled["late"] += 50
    plan.outcomes["late"] += 50
    plan.late["late"] += 50

    # Bad events: 36 of each event kind on predictions, 40 of each outcome kind.
    per_kind = {kind: 12 if kind == "ten_thousand_features" else 36 for kind in EVENT_KINDS}
    bad_preds = [plan.bad_event(kind) for kind, n in per_kind.items() for _ in range(n)]
    bad_outs = [plan.bad_event(kind, OUT) for kind in OUTCOME_KINDS for _ in range(40)]

    # Carriers: raw envelopes (bad among good), the JSONL file, single raw messages.
    def spread(good: list[dict[str, Any]], bad: list[dict[str, Any]], topic: str, kind: str) -> None:
        items = [(e, False) for e in good] + [(e, True) for e in bad]
        order = rng.permutation(len(items))
        envelope: list[dict[str, Any]] = []
        for j in order:
            event, is_bad = items[j]
            route = ("envelope", "jsonl", "single")[int(rng.choice(3, p=[0.5, 0.4, 0.1]))]
            if is_bad:
                plan.expect(TAG.search(event["tag"].encode()).group(1).decode(), topic)  # type: ignore[union-attr]
                if route == "single":
                    plan.index[event["tag"].encode()] = -1
            if route == "envelope":
                if is_bad:
                    plan.index[event["tag"].encode()] = len(envelope)
                envelope.append(event)
                if len(envelope) >= int(rng.integers(2, 60)):
                    plan.raw[topic].append((key_of(envelope[0]), orjson.dumps({"events": envelope})))
                    envelope = []
            elif route == "jsonl":
                plan.lines.append(jsonl(kind, event))
            else:
                plan.raw[topic].append((key_of(event), orjson.dumps(event)))
        if envelope:
            plan.raw[topic].append((key_of(envelope[0]), orjson.dumps({"events": envelope})))

    spread(preds, bad_preds, PRED, "prediction")
    spread(outs, bad_outs, OUT, "outcome")

    # One bad event among 49 good ones, 12 times (hostile model names, the most dangerous kind).
    for j in range(12):
        good = [plan.prediction("good-c", j * 49 + i) for i in range(49)]
        for p in good:
            plan.count_good(p)
        bad = plan.bad_event("hostile_model_name")
        pos = int(rng.integers(0, 50))
        plan.index[bad["tag"].encode()] = pos
        plan.expect("hostile_model_name", PRED)
        plan.raw[PRED].append((key_of(good[0]), orjson.dumps({"events": [*good[:pos], bad, *good[pos:]]})))

    # Bad whole messages: raw on both topics, and as lines of the JSONL file (sent as they are).
    for kind in MESSAGE_KINDS:
        for i in range(24):
            value = plan.bad_message(kind)
            assert value is not None
            tag = TAG.search(value).group(0)  # type: ignore[union-attr]
            if kind == "non_utf8":
                plan.sent_bytes[tag] = value
            if i % 3 == 0:
                plan.lines.append(value)  # publish sends an unrecognised line to the predictions topic
                plan.expect(kind, PRED)
            else:
                topic = (PRED, OUT)[i % 3 - 1]
                plan.raw[topic].append((tag, value))
                plan.index[tag] = -1
                plan.expect(kind, topic)
    for kind, n in (("huge_event", 1), ("huge_envelope", 1), ("expired_ts", 30)):
        for _ in range(n):
            value = plan.bad_message(kind)
            assert value is not None
            tag = TAG.search(value).group(0)  # type: ignore[union-attr]
            plan.raw[PRED].append((tag, value))
            plan.index[tag] = -1
            plan.expect(kind, PRED)
    for topic in (PRED, OUT):  # tombstones (no value at all) and zero-length values
        for i in range(10):
            plan.raw[topic].append((b"empty-%d" % i, None if i % 2 else b""))
            plan.expect("empty", topic)

    # early: the outcomes first, the predictions last (raw, and in the JSONL file).
    plan.raw[OUT][:0] = [(key_of(o), orjson.dumps(o)) for o in early_outs[:30]]
    plan.raw[PRED] += [(key_of(p), orjson.dumps(p)) for p in early_preds[:30]]
    plan.lines[:0] = [jsonl("outcome", o) for o in early_outs[30:]]
    plan.lines += [jsonl("prediction", p) for p in early_preds[30:]]
    return plan


def send_raw(stack: Stack, messages: dict[str, list[tuple[bytes | None, bytes | None]]]) -> int:
    producer = KafkaProducer(
        bootstrap_servers=stack.settings.kafka_bootstrap, max_request_size=32 * 1024 * 1024, linger_ms=5
    )
    # Outcomes first: the "early" model's labels go out before its predictions.
    futures = [producer.send(topic, key=k, value=v) for topic in (OUT, PRED) for k, v in messages.get(topic, [])]
    producer.flush()
    for f in futures:
        f.get(timeout=30)
    producer.close()
    return len(futures)


@dataclass
class Run:
    stack: Stack
    plan: Plan
    worker: Any
    dead_rows: list[tuple[str, str, int, str, str, str]]  # (tag, topic, event_index, error, model, hex payload)


DEAD_SQL = (
    "SELECT extract(payload, 'BAD[|][a-z0-9_]+[|][0-9]+') AS tag, topic, event_index, error, model, "
    "if(tag LIKE 'BAD|non_utf8|%', hex(payload), '') "
    "FROM dead_letters FINAL ORDER BY topic, partition, offset, event_index"
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("bad-input")
    stack = Stack(root)
    try:
        stack.start_services()
        plan = build_plan((time.time() - 3 * 3600) // 300 * 300)
        worker = stack.start_worker()
        send_raw(stack, plan.raw)
        path = root / "mixed.jsonl"
        path.write_bytes(b"\n".join(plan.lines) + b"\n")
        out = stack.cli("publish", "--quiet", str(path))
        typed = Counter(line[: line.find(b",")] for line in plan.lines if line.startswith(b'{"type":'))
        n_pred, n_out = typed[b'{"type":"prediction"'], typed[b'{"type":"outcome"']
        untyped = len(plan.lines) - n_pred - n_out
        assert f"published {n_pred} predictions, {n_out} outcomes, {untyped} unrecognised lines" in out.stdout

        expected_dead = sum(plan.dead.values())
        seen = stack.wait_for("SELECT count() FROM dead_letters FINAL", [(expected_dead,)], timeout=180)
        assert seen == [(expected_dead,)], f"dead letters: {seen} of {expected_dead}"
        models = sorted(plan.event_ids)
        expected = [(m, len(plan.event_ids[m]), plan.labelled[m]) for m in models]
        seen = stack.wait_for(PREDICTIONS_SQL, expected, timeout=180)
        assert seen == expected
        rows = stack.store().query_rows(DEAD_SQL)
        yield Run(stack, plan, worker, rows)
    finally:
        stack.stop()


PREDICTIONS_SQL = (
    "SELECT model, toUInt64(sumIf(n, metric = 'predictions')), toUInt64(sumIf(value, metric = 'labelled')) "
    "FROM metrics FINAL WHERE segment = '' AND version != '' AND model != 'pause' GROUP BY model ORDER BY model"
)


def test_the_input_is_as_varied_as_promised(run: Run) -> None:
    """At least 20 kinds and 1,000 bad items, interleaved with more good events than bad."""
    kinds = {kind for kind, _ in run.plan.dead}
    assert len(kinds) >= 20 and set(REASONS) == kinds
    assert sum(run.plan.dead.values()) >= 1000
    assert sum(len(ids) for ids in run.plan.event_ids.values()) > sum(run.plan.dead.values())


def test_every_bad_item_is_one_dead_letter_with_its_reason(run: Run) -> None:
    """Invariant 1: per (kind, topic), the dead letters are exactly the items sent; reasons match the kind."""
    got: Counter[tuple[str, str]] = Counter()
    for tag, topic, _, error, _, _ in run.dead_rows:
        kind = tag.split("|")[1] if tag else "empty"
        got[(kind, topic)] += 1
        assert re.search(REASONS[kind], error), (tag, error)
    assert got == run.plan.dead
    tags = [tag for tag, *_ in run.dead_rows if tag]
    assert len(tags) == len(set(tags))  # one row per item, none twice


def test_dead_letters_carry_index_model_and_raw_bytes(run: Run) -> None:
    """Invariant 1: index inside the raw envelope (-1 for a whole message); model as sent; bytes as sent."""
    by_tag = {tag.encode(): (index, model, hexed) for tag, _, index, _, model, hexed in run.dead_rows if tag}
    for tag, index in run.plan.index.items():
        assert by_tag[tag][0] == index, tag
    hostile = [m for tag, (_, m, _) in by_tag.items() if tag.startswith(b"BAD|hostile_model_name|")]
    assert Counter(hostile) == Counter(
        HOSTILE_MODELS[int(tag.split(b"|")[2]) % len(HOSTILE_MODELS)]
        for tag in by_tag
        if tag.startswith(b"BAD|hostile_model_name|")
    )
    assert set(hostile) == set(HOSTILE_MODELS)  # stored as data, quotes and all
    for tag, raw in run.plan.sent_bytes.items():
        assert bytes.fromhex(by_tag[tag][2]) == raw  # non-UTF-8 bytes kept byte for byte


def test_dead_letters_topic_carries_the_same_items(run: Run) -> None:
    """Invariant 2: one JSON record per dead letter on the dead-letters topic, with the same items."""
    s = run.stack.settings
    consumer = KafkaConsumer(bootstrap_servers=s.kafka_bootstrap, consumer_timeout_ms=5000, fetch_max_bytes=64 << 20)
    try:
        parts = [TopicPartition(s.topic_dead_letters, p) for p in range(s.partitions)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        records = [orjson.loads(m.value) for m in consumer]
    finally:
        consumer.close()
    got: Counter[tuple[str, str]] = Counter()
    for r in records:
        found = TAG.search(base64.b64decode(r["payload_base64"]))
        kind = found.group(1).decode() if found else "empty"
        if kind in REASONS:  # not the items of the tests that run after this one
            got[(kind, r["topic"])] += 1
    assert got == run.plan.dead


def test_every_good_event_is_counted_once(run: Run) -> None:
    """Invariant 3: predictions = distinct event ids, labels once, orphans and late labels exactly."""
    plan, store = run.plan, run.stack.store()
    models = sorted(plan.event_ids)
    assert store.query_rows(PREDICTIONS_SQL) == [(m, len(plan.event_ids[m]), plan.labelled[m]) for m in models]
    orphans = store.query_rows(
        "SELECT model, toUInt64(sum(value)), toUInt64(sum(n)) FROM metrics FINAL "
        "WHERE metric = 'orphaned_outcomes' AND segment = '' AND model != 'pause' GROUP BY model ORDER BY model"
    )
    assert orphans == [(m, plan.orphaned[m], plan.outcomes[m]) for m in sorted(plan.outcomes)]
    late = store.query_rows(
        "SELECT model, toUInt64(sum(value)) FROM metrics FINAL WHERE metric = 'late_labels' AND segment = '' "
        "GROUP BY model HAVING sum(value) > 0 ORDER BY model"
    )
    assert late == sorted(plan.late.items())


# Run last: these add to the stream after the checks above.


def test_expired_events_of_one_envelope_are_each_a_dead_letter(run: Run) -> None:
    """Invariant 1 for an envelope of five events older than the raw retention: five rows, at their indices."""
    events = [
        {"prediction_id": f"BAD|expired_in_envelope|{i}", "model": "good-a", "prediction": 0.2, "ts": 1.5e9 + i}
        for i in range(5)
    ]
    sentinel = orjson.dumps(["BAD|sentinel|1"])  # same key, so same partition, next offset
    send_raw(run.stack, {PRED: [(b"exp", orjson.dumps({"events": events})), (b"exp", sentinel)]})
    run.stack.wait_for("SELECT count() FROM dead_letters WHERE payload LIKE '%BAD|sentinel|%'", [(1,)], timeout=60)
    rows = run.stack.store().query_rows(
        "SELECT event_index, payload FROM dead_letters FINAL WHERE payload LIKE '%BAD|expired_in_envelope|%' "
        "ORDER BY event_index"
    )
    assert rows == [(i, orjson.dumps(e).decode()) for i, e in enumerate(events)]


def test_outcomes_whose_predictions_arrive_after_a_pause_are_no_longer_orphans(run: Run) -> None:
    """Invariant 3 over time: 20 outcomes first (their window is written: 20 orphans), then their
    20 predictions; afterwards 20 labelled and 0 orphaned — no outcome counted both ways."""
    plan = Plan(run.plan.start)
    preds = [plan.prediction("pause", i) for i in range(20)]
    outs = [plan.outcome(p) for p in preds]
    send_raw(run.stack, {OUT: [(key_of(o), orjson.dumps(o)) for o in outs]})
    orphans = (
        "SELECT toUInt64(sum(value)), toUInt64(sum(n)) FROM metrics FINAL "
        "WHERE model = 'pause' AND metric = 'orphaned_outcomes' AND segment = ''"
    )
    assert run.stack.wait_for(orphans, [(20, 20)], timeout=60) == [(20, 20)]  # the prediction is not there yet
    send_raw(run.stack, {PRED: [(key_of(p), orjson.dumps(p)) for p in preds]})
    counts = (
        "SELECT toUInt64(sumIf(n, metric = 'predictions')), toUInt64(sumIf(value, metric = 'labelled')) "
        "FROM metrics FINAL WHERE model = 'pause' AND segment = '' AND version != ''"
    )
    assert run.stack.wait_for(counts, [(20, 20)], timeout=60) == [(20, 20)]
    time.sleep(6)  # two idle flushes: any recomputation of the outcome window has happened by now
    assert run.stack.store().query_rows(orphans) == [(0, 20)]


def test_the_worker_never_crashed(run: Run) -> None:
    """Invariant 4 (last: after all the input above): the worker is still running, no agent crashed."""
    assert run.worker.poll() is None
    log = (run.stack.root / "worker-0.log").read_text(errors="replace")
    assert "Crashed" not in log and "Traceback" not in log


# The decoder itself, fuzzed. tests/unit/test_events.py already fuzzes arbitrary bytes and arbitrary
# prediction objects; these add outcomes, every kind of JSON document, and mutated envelopes.

json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)
GOOD_OUTCOME = {"prediction_id": "p1", "model": "m", "outcome": 1}


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from([Prediction, Outcome]))
def test_decoder_gives_a_result_for_any_json_document(doc: Any, kind: type[Prediction] | type[Outcome]) -> None:
    good, bad = decode_message(orjson.dumps(doc), kind)
    assert len(good) + len(bad) >= 1
    assert all(r.reason for r in bad)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.dictionaries(st.sampled_from([*Outcome.model_fields, "x"]), json_values, max_size=6), max_size=8),
    st.integers(0, 8),
)
def test_decoder_accounts_for_every_event_of_an_outcome_envelope(docs: list[dict[str, Any]], at: int) -> None:
    events = [*docs[:at], GOOD_OUTCOME, *docs[at:]]
    good, bad = decode_message(orjson.dumps({"events": events}), Outcome)
    assert len(good) + len(bad) == len(events)
    assert sorted(r.index for r in bad) == sorted(set(r.index for r in bad))
    assert all(0 <= r.index < len(events) for r in bad)
    assert any(e.prediction_id == "p1" for e in good)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_decoder_survives_mutated_envelopes(data: st.DataObject) -> None:
    events = [{"prediction_id": f"p{i}", "model": "m", "prediction": 0.5, "ts": 1.7e9} for i in range(3)]
    envelope = bytearray(orjson.dumps({"events": events}))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(envelope) - 1))
        envelope[pos] = data.draw(st.integers(0, 255))
    good, bad = decode_message(bytes(envelope), Prediction)
    assert len(good) + len(bad) >= 1
    try:
        doc = orjson.loads(bytes(envelope))
    except orjson.JSONDecodeError:
        return
    if isinstance(doc, dict) and isinstance(doc.get("events"), list) and "prediction_id" not in doc:
        assert len(good) + len(bad) == len(doc["events"])  # still an envelope: every event accounted for
