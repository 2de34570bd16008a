"""The asyncio variant: the same client, with flush and close that do not block the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from watchkeeper_client._publisher import Headers, Publisher


class AsyncPublisher:
    """A :class:`Publisher` for asyncio code.

    ``prediction()`` and ``outcome()`` are plain methods, called without ``await``:
    they only append to a bounded buffer and never wait (the buffer always drops
    its oldest event when full here, never blocks), so they are safe inside the
    event loop and an ``async def`` would only add an await to every call.
    ``flush()`` and ``aclose()`` are coroutines: their waiting happens in a
    worker thread, off the loop.

    Examples
    --------
    >>> async def main() -> dict:
    ...     async with AsyncPublisher("127.0.0.1:1", capacity=10) as wk:
    ...         wk.prediction(model="m", prediction=0.5, prediction_id="a")
    ...         await wk.aclose(timeout=0)
    ...         return wk.stats()
    >>> s = asyncio.run(main())
    >>> s["enqueued"], s["dropped"] + s["sent"] + s["buffered"]
    (1, 1)
    """

    def __init__(self, bootstrap_servers: str | list[str] = "127.0.0.1:9092", **options: Any) -> None:
        if options.get("when_full", "drop_oldest") != "drop_oldest":
            raise ValueError("AsyncPublisher never blocks the event loop: when_full must be 'drop_oldest'")
        self.sync = Publisher(bootstrap_servers, **options)

    def prediction(self, **event: Any) -> str:
        """Log one prediction (see :meth:`Publisher.prediction`); returns its ``prediction_id``."""
        return self.sync.prediction(**event)

    def outcome(self, **event: Any) -> None:
        """Log the true outcome of an earlier prediction (see :meth:`Publisher.outcome`)."""
        self.sync.outcome(**event)

    def send(self, kind: str, event: Mapping[str, Any], headers: Headers | None = None) -> None:
        self.sync.send(kind, event, headers)

    def stats(self) -> dict[str, Any]:
        return self.sync.stats()

    async def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait (off the loop) until what was enqueued before is acknowledged; see :meth:`Publisher.flush`."""
        return await asyncio.to_thread(self.sync.flush, timeout)

    async def aclose(self, timeout: float | None = 10.0) -> None:
        """Deliver what is buffered (at most ``timeout`` seconds) and stop, off the loop."""
        await asyncio.to_thread(self.sync.close, timeout)

    @property
    def closed(self) -> bool:
        return self.sync.closed

    async def __aenter__(self) -> AsyncPublisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["AsyncPublisher"]
