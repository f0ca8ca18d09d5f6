"""PostgreSQL helpers: one-off statements, schemas, and measuring through a server restart.

The server is shared: another test suite on this machine may restart it mid-run (the store's
own tests do). A measurement on PostgreSQL therefore notes when the server started, and runs
again from scratch (schemas dropped and filled anew) if that changed or the server went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import asyncpg

import eventactors as ea

from .common import Context, log

R = TypeVar("R")

SERVER_GONE: tuple[type[BaseException], ...] = (
    ea.StoreUnavailable, OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
)  # fmt: skip
with contextlib.suppress(ImportError):
    import psycopg

    SERVER_GONE += (psycopg.OperationalError, psycopg.InterfaceError)
ATTEMPTS = 3


async def fetchval(dsn: str, statement: str) -> Any:
    """Runs one statement on a connection of its own; returns its first value."""
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(statement)
    finally:
        await connection.close()


async def drop_schemas(dsn: str, *schemas: str) -> None:
    for schema in schemas:
        await fetchval(dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def server_started(dsn: str) -> str:
    return str(await fetchval(dsn, "SELECT pg_postmaster_start_time()"))


async def wait_for_server(dsn: str, timeout: float = 120.0) -> None:
    deadline = time.perf_counter() + timeout
    while True:
        try:
            await fetchval(dsn, "SELECT 1")
            return
        except SERVER_GONE:
            if time.perf_counter() > deadline:
                raise
            await asyncio.sleep(1.0)


async def free_connections(dsn: str) -> int:
    """How many more connections the server admits now (max_connections minus those in use)."""
    limit = int(await fetchval(dsn, "SHOW max_connections"))
    in_use = int(await fetchval(dsn, "SELECT count(*) FROM pg_stat_activity"))
    return limit - in_use


def on_postgres(context: Context, label: str, unit: Callable[[], R]) -> R:
    """Runs `unit` (which must set up its own schemas from scratch) again if the server
    restarted during it or went away; other failures are the unit's own."""
    dsn = context.postgres
    assert dsn is not None
    for attempt in range(1, ATTEMPTS + 1):
        context.run(wait_for_server(dsn))
        started = context.run(server_started(dsn))
        try:
            result = unit()
        except SERVER_GONE as exc:
            if attempt == ATTEMPTS:
                raise
            log(f"{label}: the server went away ({type(exc).__name__}); measuring again")
            continue
        except Exception:
            if _restarted(context, dsn, started) and attempt < ATTEMPTS:
                log(f"{label}: the server restarted; measuring again")
                continue
            raise
        if not _restarted(context, dsn, started):
            return result
        log(f"{label}: the server restarted during the measurement; measuring again")
    raise RuntimeError(f"{label}: PostgreSQL restarted during {ATTEMPTS} attempts in a row")


def _restarted(context: Context, dsn: str, started: str) -> bool:
    try:
        context.run(wait_for_server(dsn))
        return context.run(server_started(dsn)) != started
    except SERVER_GONE:
        return True


def peer_environment(dsn: str, schema: str) -> dict[str, str]:
    """The `eventsourcing` library's settings for the same server, in a schema of its own."""
    parts = urlsplit(dsn)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_SCHEMA": schema,
    }
