"""A real store behind injected latency, for the slow-store fault."""

from __future__ import annotations

import asyncio
from typing import Any

import eventactors as ea


class SlowStore:
    """Delegates everything to a real store; `append` first waits `latency` seconds and the
    replay reads `read_latency`, both changeable at any moment. It counts appends so that a
    test can wait for the ones still under way."""

    def __init__(self, inner: ea.Store) -> None:
        self.inner = inner
        self.latency = 0.0
        self.read_latency = 0.0
        self.appends_started = 0
        self.appends_finished = 0

    @property
    def appends_in_flight(self) -> int:
        return self.appends_started - self.appends_finished

    async def append(self, *args: Any, **kwargs: Any) -> list[ea.EventEnvelope]:
        self.appends_started += 1
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            return await self.inner.append(*args, **kwargs)
        finally:
            self.appends_finished += 1

    async def read_stream_payloads(self, *args: Any, **kwargs: Any) -> Any:
        if self.read_latency:
            await asyncio.sleep(self.read_latency)
        return await self.inner.read_stream_payloads(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
