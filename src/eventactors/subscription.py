"""In-process live subscriptions: every event persisted after `subscribe()` returns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from types import TracebackType

from .records import EventEnvelope

_END = object()


class Subscription:
    """An async iterator of `EventEnvelope`s, in the order the store committed them.

    It ends when the engine stops or when `close()` is called. Its buffer is unbounded:
    a consumer that falls far behind holds the events it has not read in memory.
    """

    def __init__(self, on_close: Callable[[Subscription], None]) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._on_close = on_close
        self._closed = False

    def push(self, envelopes: Iterable[EventEnvelope]) -> None:
        if not self._closed:
            for envelope in envelopes:
                self._queue.put_nowait(envelope)

    def end(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_END)

    def close(self) -> None:
        """Stops the subscription; events already buffered are still delivered."""
        self._on_close(self)
        self.end()

    @property
    def pending(self) -> int:
        """Events buffered and not yet read."""
        return self._queue.qsize()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> EventEnvelope:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # keep ending for any further reads
            raise StopAsyncIteration
        assert isinstance(item, EventEnvelope)
        return item

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
