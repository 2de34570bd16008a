"""The join stage's write side: decoded events become columnar rows in the store.

Predictions and outcomes are kept raw in ClickHouse and joined there (see
``streams/windows.py``): DESIGN.md measured Faust table writes at ~3k/s per
worker, so per-prediction pending state in Faust tables would cap the service.
The store holds the pending joins instead, so a restarted worker loses nothing
and a late label simply updates its window.

Rows are buffered per topic and written in one columnar insert per table about
once a second; the Kafka messages behind them are acked only after the write
succeeded, so no offset is committed past unwritten rows.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from streams.events import Outcome, Prediction, Rejected, decode_message

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SourceMessage:
    """Where a message came from; enough to dead-letter it and to derive tokens."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp: float | None = None  # broker time, seconds


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


PREDICTION_COLUMNS = (
    "ts model version prediction_id event_id prediction prediction_class scores features features_cat "
    "segments latency_ms fallback baseline baseline_class src_partition src_offset"
).split()
OUTCOME_COLUMNS = "ts model prediction_id event_id outcome outcome_class src_partition src_offset".split()
DEAD_LETTER_COLUMNS = "ts topic partition offset event_index model error payload".split()


@dataclass
class Batch:
    """Columnar rows accumulated from a run of Kafka messages."""

    predictions: dict[str, list[Any]] = field(default_factory=lambda: {c: [] for c in PREDICTION_COLUMNS})
    outcomes: dict[str, list[Any]] = field(default_factory=lambda: {c: [] for c in OUTCOME_COLUMNS})
    dead_letters: dict[str, list[Any]] = field(default_factory=lambda: {c: [] for c in DEAD_LETTER_COLUMNS})
    dead_letter_messages: list[bytes] = field(default_factory=list)
    offsets: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    messages: int = 0
    # Offsets alone are not an identity: a memory-only broker restarts them at 0.
    digest: Any = field(default_factory=lambda: hashlib.blake2b(digest_size=16))

    @property
    def rows(self) -> int:
        return len(self.predictions["ts"]) + len(self.outcomes["ts"]) + len(self.dead_letters["ts"])

    def token(self, table: str) -> str:
        """A deduplication token from the source messages: a replay of the same batch inserts nothing."""
        spans = ",".join(f"{t}/{p}/{lo}-{hi}" for (t, p), (lo, hi) in sorted(self.offsets.items()))
        return f"{table}:{spans}:{self.digest.hexdigest()}"

    # Adding messages ------------------------------------------------------
    def add(
        self, msg: SourceMessage, kind: type[Prediction] | type[Outcome], max_bytes: int, min_ts: float = 0.0
    ) -> None:
        """Decode one message into rows; events older than ``min_ts`` (the raw retention) are dead letters."""
        key = (msg.topic, msg.partition)
        lo, hi = self.offsets.get(key, (msg.offset, msg.offset))
        self.offsets[key] = (min(lo, msg.offset), max(hi, msg.offset))
        self.messages += 1
        self.digest.update(f"{msg.topic}/{msg.partition}/{msg.offset}:".encode())
        self.digest.update(msg.value or b"")
        good, bad = decode_message(msg.value, kind, max_bytes)
        fallback_ts = msg.timestamp
        # ClickHouse drops rows past their TTL as it writes them: refuse them visibly instead.
        expired = [e for e in good if (e.ts if e.ts is not None else fallback_ts or min_ts) < min_ts]
        if expired:
            good = [e for e in good if e not in expired]
            for e in expired:
                bad.append(
                    Rejected(
                        "ts: older than the raw-data retention (raw_ttl_days)",
                        orjson.dumps(e.model_dump()),
                        -1,
                        e.model,
                    )
                )
        if kind is Prediction:
            self._add_predictions(good, msg, fallback_ts)
        else:
            self._add_outcomes(good, msg, fallback_ts)
        for rej in bad:
            self.add_dead_letter(msg, rej)

    def _event_ts(self, ts: float | None, fallback: float | None, msg: SourceMessage) -> float | None:
        if ts is not None:
            return ts
        return fallback

    def _add_predictions(self, events: Iterable[Prediction], msg: SourceMessage, fallback: float | None) -> None:
        c = self.predictions
        for e in events:
            ts = self._event_ts(e.ts, fallback, msg)
            if ts is None:
                self.add_dead_letter(msg, Rejected("ts: missing and the message has no broker time", b"", -1, e.model))
                continue
            num_features: dict[str, float] = {}
            cat_features: dict[str, str] = {}
            for k, v in e.features.items():
                if isinstance(v, str):
                    cat_features[k] = v
                else:
                    num_features[k] = float("nan") if v is None else v
            c["ts"].append(_dt(ts))
            c["model"].append(e.model)
            c["version"].append(e.version)
            c["prediction_id"].append(e.prediction_id)
            c["event_id"].append(e.event_id)
            if isinstance(e.prediction, str):
                c["prediction"].append(None)
                c["prediction_class"].append(e.prediction)
            else:
                c["prediction"].append(e.prediction)
                c["prediction_class"].append("")
            c["scores"].append(e.scores or {})
            c["features"].append(num_features)
            c["features_cat"].append(cat_features)
            c["segments"].append(e.segments)
            c["latency_ms"].append(e.latency_ms)
            c["fallback"].append(1 if e.fallback else 0)
            if isinstance(e.baseline, str):
                c["baseline"].append(None)
                c["baseline_class"].append(e.baseline)
            else:
                c["baseline"].append(e.baseline)
                c["baseline_class"].append("")
            c["src_partition"].append(msg.partition)
            c["src_offset"].append(msg.offset)

    def _add_outcomes(self, events: Iterable[Outcome], msg: SourceMessage, fallback: float | None) -> None:
        c = self.outcomes
        for e in events:
            ts = self._event_ts(e.ts, fallback, msg)
            if ts is None:
                self.add_dead_letter(msg, Rejected("ts: missing and the message has no broker time", b"", -1, e.model))
                continue
            c["ts"].append(_dt(ts))
            c["model"].append(e.model)
            c["prediction_id"].append(e.prediction_id)
            c["event_id"].append(e.event_id)
            if isinstance(e.outcome, str):
                c["outcome"].append(None)
                c["outcome_class"].append(e.outcome)
            else:
                c["outcome"].append(e.outcome)
                c["outcome_class"].append("")
            c["src_partition"].append(msg.partition)
            c["src_offset"].append(msg.offset)

    def add_dead_letter(self, msg: SourceMessage, rej: Rejected) -> None:
        payload = rej.payload if rej.payload else (msg.value or b"")
        c = self.dead_letters
        c["ts"].append(datetime.now(UTC))
        c["topic"].append(msg.topic)
        c["partition"].append(msg.partition)
        c["offset"].append(msg.offset)
        c["event_index"].append(rej.index)
        c["model"].append(rej.model)
        c["error"].append(rej.reason)
        c["payload"].append(payload)
        self.dead_letter_messages.append(dead_letter_record(msg, rej, payload))


def dead_letter_record(msg: SourceMessage, rej: Rejected, payload: bytes) -> bytes:
    """The JSON published to the dead-letters topic (raw bytes base64-encoded)."""
    return orjson.dumps(
        {
            "error": rej.reason,
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "event_index": rej.index,
            "model": rej.model,
            "payload_base64": base64.b64encode(payload).decode(),
        }
    )
