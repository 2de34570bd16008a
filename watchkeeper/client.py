"""The publisher client, as the service's own commands use it (``publish``, ``demo``, the bench).

The client itself is the light ``watchkeeper-client`` distribution
(``clients/python``, import ``watchkeeper_client``): a serving process installs
that alone. This module re-exports it and keeps the service's bulk-loading
behaviour: a full buffer makes the caller wait instead of dropping (a file is
published whole), ``flush()`` and ``close()`` wait for the broker without a
time bound, and misuse (an event that cannot be encoded, a send after close)
raises.

Example:

    from watchkeeper.client import Publisher
    with Publisher("127.0.0.1:9092") as pub:
        pub.prediction(model="fraud", prediction=0.93, prediction_id="r1", features={"amount": 12.5})
"""

from __future__ import annotations

from typing import Any

from watchkeeper_client import AsyncPublisher, encode, features_dict
from watchkeeper_client import Publisher as LightPublisher

__all__ = ["AsyncPublisher", "LightPublisher", "Publisher", "encode", "features_dict"]


class Publisher(LightPublisher):
    """The light client set for bulk loading: back-pressure instead of drops, unbounded flush and close."""

    def __init__(
        self,
        bootstrap_servers: str | list[str] = "127.0.0.1:9092",
        *,
        predictions_topic: str = "predictions",
        outcomes_topic: str = "outcomes",
        max_batch: int = 500,
        linger: float = 0.2,
        compression: str | None = "gzip",
        capacity: int = 100_000,
        **options: Any,
    ) -> None:
        options.setdefault("when_full", "block")
        options.setdefault("strict", True)
        super().__init__(
            bootstrap_servers,
            predictions_topic=predictions_topic,
            outcomes_topic=outcomes_topic,
            max_batch=max_batch,
            linger=linger,
            compression=compression,
            capacity=capacity,
            **options,
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything buffered and wait for the broker to acknowledge it."""
        return super().flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Deliver everything buffered, then stop."""
        super().close(timeout)

    @property
    def sent_events(self) -> int:
        """Events (and as-is messages) acknowledged by the broker."""
        return int(self.stats()["sent"])

    @property
    def sent_messages(self) -> int:
        """Kafka messages acknowledged by the broker."""
        return int(self.stats()["messages"])
