"""LISTEN/NOTIFY for a store: wakes readers as soon as another transaction commits events.

Every append notifies the channel in its own transaction, so the notification arrives at commit.
A notification can be lost (the listening connection drops, the server restarts), so waiters
also poll the log's head at a slow interval: a lost notification delays a reader, never stalls it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

_UNREACHABLE = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class Listener:
    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        channel: str,
        head: Callable[[], Awaitable[int]],
        poll_interval: float,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._head = head
        self._poll_interval = poll_interval
        self._connection: asyncpg.Connection | None = None
        self._connecting = asyncio.Lock()
        self._closed = False
        self._latest = 0
        self._wakeup = asyncio.Event()
        self.notifications = 0

    async def wait(self, after_position: int, timeout: float) -> bool:
        """True once an event past `after_position` is committed, False after `timeout` or
        when the listener is closed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self._ensure_listening()
        if self._latest <= after_position:  # events committed before we listened
            self._latest = max(self._latest, await self._head())
        while not self._closed:
            if self._latest > after_position:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            wakeup = self._wakeup
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), min(remaining, self._poll_interval))
            if self._latest <= after_position and not self._closed:
                self._latest = max(self._latest, await self._head())  # the fallback poll
                await self._ensure_listening()
        return False

    async def _ensure_listening(self) -> None:
        async with self._connecting:  # one listening connection, however many waiters
            if self._closed or (self._connection is not None and not self._connection.is_closed()):
                return
            self._connection = None
            try:
                connection = await self._connect()
            except _UNREACHABLE:
                return  # the poll keeps readers going until the server is back
            try:
                await connection.add_listener(self._channel, self._on_notify)
            except BaseException as exc:  # including a cancellation: never leave it open
                connection.terminate()
                if isinstance(
                    exc, OSError | asyncpg.PostgresError | asyncpg.InterfaceError | TimeoutError
                ):
                    return
                raise
            self._connection = connection

    def _on_notify(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self.notifications += 1
        with contextlib.suppress(ValueError):
            self._latest = max(self._latest, int(payload))
        self._wake()

    def _wake(self) -> None:
        wakeup, self._wakeup = self._wakeup, asyncio.Event()
        wakeup.set()

    async def close(self) -> None:
        """Ends waits in flight (they return False) and closes the listening connection."""
        self._closed = True
        self._wake()
        async with self._connecting:
            connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await asyncio.wait_for(connection.close(), 2)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                connection.terminate()
