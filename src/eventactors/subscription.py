"""Subscriptions: follow the global log from a position, then live, as an async iterator.

A subscription reads the store in pages after the last position it delivered, and waits on
the store (woken at once by appends, polling as a fallback) when it has caught up. It holds at
most one page in memory, so a slow subscriber never stalls the engine and never loses an
event: whatever it has not read yet stays in the store until it gets there.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType

from .records import EventEnvelope
from .stores._notify import wait_for_events_unless
from .stores.protocols import EventStore


class Subscription:
    """An async iterator of `EventEnvelope`s in global order, after `position`.

    It ends when the engine stops or when `close()` is called.
    """

    def __init__(
        self,
        store: EventStore,
        after_position: int,
        on_close: Callable[[Subscription], None],
        *,
        page_size: int = 500,
        poll_interval: float = 1.0,
    ) -> None:
        self._store = store
        self.position = after_position
        self._on_close = on_close
        self._page_size = page_size
        self._poll_interval = poll_interval
        self._page: deque[EventEnvelope] = deque()
        self._ended = asyncio.Event()

    def end(self) -> None:
        self._ended.set()

    def close(self) -> None:
        """Stops the subscription; a page already read is still delivered."""
        self._on_close(self)
        self.end()

    @property
    def pending(self) -> int:
        """Events read from the store and not yet delivered (at most one page)."""
        return len(self._page)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> EventEnvelope:
        while not self._page:
            if self._ended.is_set():
                raise StopAsyncIteration
            page = await self._store.read_all(self.position, self._page_size)
            if page:
                self._page.extend(page)
            else:
                await wait_for_events_unless(
                    self._store, self.position, self._poll_interval, self._ended
                )
        envelope = self._page.popleft()
        self.position = envelope.global_position
        return envelope

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
