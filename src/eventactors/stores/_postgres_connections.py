"""Reaching the server: a lazily opened asyncpg pool, with every wait bounded by a timeout.

The first use creates the schema (under an advisory lock) before the pool opens. Any failure
to reach the server becomes `StoreUnavailable`, and the next call simply tries again, so an
engine outlives a server restart without being restarted itself.

Read-only, the first use only checks the schema (`check_readable`), writes are refused before
they reach the server, and every connection runs with `default_transaction_read_only`, so the
server refuses any write that would slip past.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from asyncpg import Connection, Pool

from ..errors import WriteRefused
from ._postgres_errors import CONNECTION_BROKEN, translate_error
from ._postgres_schema import check_readable, ensure_schema

T = TypeVar("T")


class PostgresConnections:
    def __init__(
        self,
        dsn: str,
        schema: str,
        where: str,
        *,
        min_connections: int,
        max_connections: int,
        connect_timeout: float,
        command_timeout: float | None,
        read_only: bool = False,
    ) -> None:
        self._dsn = dsn
        self.read_only = read_only
        # The server refuses every write in a read-only session, whatever the client sends.
        self._settings = {"default_transaction_read_only": "on"} if read_only else None
        self._schema = schema
        self.where = where
        self._sizes = (min_connections, max_connections)
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._pool: Pool | None = None
        self._opening = asyncio.Lock()

    async def connect(self) -> Connection:
        """A standalone connection (for LISTEN and maintenance), with the pool's timeouts."""
        connection: Connection = await asyncio.wait_for(
            asyncpg.connect(
                self._dsn,
                timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                server_settings=self._settings,
            ),
            self._connect_timeout + 1,
        )
        return connection

    async def run(self, job: Callable[[Connection], Awaitable[T]], *, write: bool) -> T:
        """Runs `job` on a pooled connection, in a transaction when it writes."""
        if write:
            self._refuse_write()
        pool = await self._get_pool()
        try:
            async with pool.acquire(timeout=self._connect_timeout) as connection:
                try:
                    if not write:
                        return await job(connection)
                    async with connection.transaction():
                        return await job(connection)
                except CONNECTION_BROKEN:
                    # Never hand a connection with a broken protocol state back to the pool
                    # (asyncpg issue 784): the pool replaces a terminated one.
                    connection.terminate()
                    raise
        except BaseException as exc:
            raise translate_error(exc, self.where) from exc

    async def execute_once(self, statement: str) -> None:
        """Runs one statement on a connection of its own, outside the pool."""
        self._refuse_write()
        try:
            connection = await self.connect()
            try:
                await connection.execute(statement)
            finally:
                await connection.close()
        except BaseException as exc:
            raise translate_error(exc, self.where) from exc

    async def _get_pool(self) -> Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await self._open_pool()
        return self._pool

    async def _open_pool(self) -> Pool:
        try:
            setup = await self.connect()
            try:
                if self.read_only:
                    await check_readable(setup, self._schema, self.where)
                else:
                    await ensure_schema(setup, self._schema, self.where, self._connect_timeout)
            finally:
                await setup.close()
            pool: Pool = await asyncio.wait_for(
                asyncpg.create_pool(
                    self._dsn,
                    min_size=self._sizes[0],
                    max_size=self._sizes[1],
                    timeout=self._connect_timeout,
                    command_timeout=self._command_timeout,
                    server_settings=self._settings,
                ),
                self._connect_timeout + 1,
            )
        except BaseException as exc:
            raise translate_error(exc, self.where) from exc
        return pool

    def _refuse_write(self) -> None:
        if self.read_only:
            raise WriteRefused(
                f"{self.where} is open read-only (read_only=True): nothing was written"
            )

    async def close(self) -> None:
        """Closes the pool, waiting for an open in progress; a later call reopens it."""
        async with self._opening:
            pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self._connect_timeout)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()
