"""SASL OAUTHBEARER for the worker: Faust's consumer and producer (aiokafka) ask for tokens asynchronously.

The token comes from the same provider as kafka-python's (``watchkeeper_client.TokenProvider``: a
command's output or a file, set by ``WATCHKEEPER_KAFKA_OAUTH_TOKEN_COMMAND`` / ``_FILE``); reading it
runs in a thread, so a slow command never blocks the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.abc import AbstractTokenProvider


class AsyncTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """aiokafka's token provider over a synchronous one (anything with ``token() -> str``)."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider

    def __repr__(self) -> str:
        return f"AsyncTokenProvider({self.provider!r})"

    async def token(self) -> str:
        return str(await asyncio.to_thread(self.provider.token))
