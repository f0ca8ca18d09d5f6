"""Waking readers of the log: a local signal on every append, and a poll as the fallback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from .protocols import EventStore


class AppendSignal:
    """Readers wait here; the store calls `notify()` after each of its own appends commits.

    Appends by other processes are seen by polling `head` every `poll_interval` seconds
    (None: this store object is the only writer, so there is nothing to poll for).
    """

    def __init__(self, head: Callable[[], Awaitable[int]], poll_interval: float | None) -> None:
        self._head = head
        self._poll_interval = poll_interval
        self._event: asyncio.Event | None = None

    def notify(self) -> None:
        event, self._event = self._event, None
        if event is not None:
            event.set()

    async def wait(self, after_position: int, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            # Take the event before looking at the head: an append that lands while we look
            # sets it, so its signal is never lost.
            if self._event is None:
                self._event = asyncio.Event()
            event = self._event
            if await self._head() > after_position:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            step = remaining if self._poll_interval is None else min(remaining, self._poll_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), step)


async def wait_for_events_unless(
    store: EventStore, after_position: int, timeout: float, stop: asyncio.Event
) -> None:
    """Waits for an event past `after_position`, for `timeout`, or for `stop`, whichever first:
    how log followers (projections, subscriptions) idle once they have caught up."""
    arrived = asyncio.ensure_future(store.wait_for_events(after_position, timeout))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({arrived, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (arrived, stopped):
            waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await arrived
