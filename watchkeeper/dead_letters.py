"""``watchkeeper dead-letters replay``: send dead letters back to the topic they came from.

A dead letter keeps the bytes it was refused for (``dead_letters.payload``: the
event, or the whole message when it could not be split into events, or a batch
the store refused). Once the cause is fixed — a retention or size setting, a
producer's bug, the store's data error — replay re-publishes those bytes to their
source topic, where the worker takes them as new messages.

Each dead letter replayed is recorded in ``dead_letter_replays`` (``sinks/replays.py``)
once the broker has acknowledged it, and a later replay skips it: running the
command twice publishes nothing twice. (A replay killed between the broker's
acknowledgement and the record re-sends at most that last chunk; a prediction
keeps its ``event_id``, and the store's tables key rows by it.)
"""

from __future__ import annotations

import base64
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from watchkeeper.settings import Settings
from watchkeeper.sinks.replays import REPLAYS

# Dead letters sent between two records of what was sent (and two waits for the broker).
CHUNK = 1000
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO 8601 time (UTC unless it says otherwise) or a duration back from now.

    >>> parse_since("2026-12-01T08:00:00Z")
    datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.timezone.utc)
    >>> parse_since("2h", now=datetime(2026, 12, 1, 10, tzinfo=UTC))
    datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.timezone.utc)
    """
    m = _DURATION.match(text.strip())
    if m:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        ts = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO 8601 time nor a duration such as 30m, 6h, 2d") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    event_index: int
    model: str
    payload: bytes


@dataclass
class ReplayReport:
    """What a replay found and did."""

    dry_run: bool
    replay_id: str
    sent: Counter[str] = field(default_factory=Counter)  # per topic
    already: int = 0  # matched, but replayed before: skipped
    other_topics: Counter[str] = field(default_factory=Counter)  # not an input topic (any more): skipped

    def describe(self) -> str:
        total = sum(self.sent.values())
        verb = "would replay" if self.dry_run else "replayed"
        per_topic = ", ".join(f"{t}: {n}" for t, n in sorted(self.sent.items()))
        lines = [f"{verb} {total} dead letters" + (f" ({per_topic})" if per_topic else "")]
        if not self.dry_run and total:
            lines.append(f"recorded in dead_letter_replays as replay_id {self.replay_id}")
        if self.already:
            lines.append(f"skipped {self.already} replayed before (see dead_letter_replays)")
        for topic, n in sorted(self.other_topics.items()):
            lines.append(f"skipped {n} from topic {topic!r}, not an input topic of these settings")
        return "\n".join(lines)


def select(
    store: Any, *, reason: str | None = None, since: datetime | None = None, model: str | None = None
) -> list[tuple[DeadLetter, bool]]:
    """The dead letters matching the filters, oldest first, each with whether it was replayed before.

    ``reason``: a part of the error (any case); ``model``: the dead letter's model, or one named in its payload.
    """
    where: list[str] = ["1"]
    params: dict[str, Any] = {}
    if reason:
        where.append("positionCaseInsensitive(d.error, {reason:String}) > 0")
        params["reason"] = reason
    if since is not None:
        where.append("d.ts >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since
    if model:
        where.append(
            "(d.model = {model:String} OR JSONExtractString(d.payload, 'model') = {model:String} OR "
            "has(arrayMap(e -> JSONExtractString(e, 'model'), JSONExtractArrayRaw(d.payload, 'events')), "
            "{model:String}))"
        )
        params["model"] = model
    rows = store.query_rows(
        "SELECT d.topic, d.partition, d.offset, d.event_index, "
        "if(d.model != '', d.model, JSONExtractString(d.payload, 'model')), base64Encode(d.payload), "
        f"(d.topic, d.partition, d.offset, d.event_index) IN (SELECT topic, partition, offset, event_index "
        f"FROM {REPLAYS.name}) FROM dead_letters AS d FINAL WHERE {' AND '.join(where)} "
        "ORDER BY d.ts, d.topic, d.partition, d.offset, d.event_index",
        params,
    )
    return [
        (DeadLetter(str(t), int(p), int(o), int(i), str(m), base64.b64decode(b)), bool(done))
        for t, p, o, i, m, b, done in rows
    ]


def key_of(payload: bytes) -> bytes | None:
    """The Kafka key producers use (the prediction_id), when the payload is one event that has it."""
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    pid = event.get("prediction_id") if isinstance(event, dict) else None
    return pid.encode() if isinstance(pid, str) else None


def replay(
    store: Any,
    settings: Settings,
    *,
    reason: str | None = None,
    since: datetime | None = None,
    model: str | None = None,
    dry_run: bool = False,
    producer: Callable[[], Any] | None = None,
) -> ReplayReport:
    """Re-publish the matching dead letters not replayed before to their source topics (``dry_run``: count)."""
    report = ReplayReport(dry_run=dry_run, replay_id=uuid.uuid4().hex[:12])
    inputs = {settings.topic_predictions, settings.topic_outcomes}
    todo: list[DeadLetter] = []
    for letter, replayed_before in select(store, reason=reason, since=since, model=model):
        if replayed_before:
            report.already += 1
        elif letter.topic not in inputs:
            report.other_topics[letter.topic] += 1
        else:
            todo.append(letter)
    if dry_run:
        report.sent.update(letter.topic for letter in todo)
        return report
    if not todo:
        return report
    kafka = (producer or (lambda: _producer(settings)))()
    try:
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            _send(kafka, chunk, report.replay_id)
            _record(store, chunk, report.replay_id, start // CHUNK)
            report.sent.update(letter.topic for letter in chunk)
    finally:
        kafka.close()
    return report


def _producer(settings: Settings) -> Any:
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="watchkeeper-replay",
        acks="all",
        max_request_size=max(settings.max_message_bytes * 2, 4 * 1024 * 1024),
        **settings.kafka_python_config(),
    )


def _send(kafka: Any, letters: Iterable[DeadLetter], replay_id: str) -> None:
    """Send and wait for the broker's acknowledgement of each (an error raises: nothing is recorded)."""
    headers = [("watchkeeper-replay", replay_id.encode())]
    futures = [
        kafka.send(letter.topic, value=letter.payload, key=key_of(letter.payload), headers=headers)
        for letter in letters
    ]
    kafka.flush()
    for future in futures:
        future.get(timeout=60)


def _record(store: Any, letters: list[DeadLetter], replay_id: str, chunk: int) -> None:
    now = datetime.now(UTC)
    store.insert(
        REPLAYS.name,
        {
            "replayed_at": [now] * len(letters),
            "topic": [x.topic for x in letters],
            "partition": [x.partition for x in letters],
            "offset": [x.offset for x in letters],
            "event_index": [x.event_index for x in letters],
            "model": [x.model for x in letters],
            "replay_id": [replay_id] * len(letters),
        },
        token=f"replay:{replay_id}:{chunk}",
    )
