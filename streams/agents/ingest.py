"""Agents of the join stage: predictions and outcomes in, raw rows and dead letters out.

Messages are taken in batches without automatic acks; each batch is written to
the store and only then acked, so Faust never commits an offset past rows that
are not written.
"""

from __future__ import annotations

import logging
from typing import Any

from streams import topics
from streams.app import app, settings
from streams.events import Outcome, Prediction
from streams.ingest import SourceMessage
from streams.service import Worker

log = logging.getLogger(__name__)
worker = Worker(settings)
TAKE_MESSAGES = 2000


def _source(event: Any) -> SourceMessage:
    m = event.message
    ts = m.timestamp if m.timestamp and m.timestamp > 0 else None
    return SourceMessage(m.topic, m.partition, m.offset, m.value, ts)


async def _consume(stream: Any, kind: type[Prediction] | type[Outcome]) -> None:
    async for events in stream.noack_take(TAKE_MESSAGES, within=settings.flush_interval):
        messages = [_source(e) for e in events]
        batch = worker.build_batch(messages, kind)
        await worker.flush(messages, batch, topics.dead_letters)
        for event in events:
            await stream.ack(event)


@app.agent(topics.predictions)
async def ingest_predictions(stream: Any) -> None:
    await _consume(stream, Prediction)


@app.agent(topics.outcomes)
async def ingest_outcomes(stream: Any) -> None:
    await _consume(stream, Outcome)
