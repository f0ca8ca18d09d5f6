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
        self._latest = 0
        self._wakeup = asyncio.Event()
        self.notifications = 0

    async def wait(self, after_position: int, timeout: float) -> bool:
        """True once an event past `after_position` is committed, False after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await self._ensure_listening()
            if self._latest > after_position:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            wakeup = self._wakeup
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), min(remaining, self._poll_interval))
            if self._latest <= after_position:  # no word: ask the log itself (the fallback)
                self._latest = max(self._latest, await self._head())

    async def _ensure_listening(self) -> None:
        if self._connection is not None and not self._connection.is_closed():
            return
        self._connection = None
        try:
            connection = await self._connect()
            await connection.add_listener(self._channel, self._on_notify)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return  # the poll keeps readers going until the server is back
        self._connection = connection

    def _on_notify(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self.notifications += 1
        with contextlib.suppress(ValueError):
            self._latest = max(self._latest, int(payload))
        wakeup, self._wakeup = self._wakeup, asyncio.Event()
        wakeup.set()

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)
