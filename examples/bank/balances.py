"""The account-balances read model: a table beside the events, kept exactly once.

The projection is transactional: each page of events updates the table in the store's own
transaction, together with the projection's offset, so a crash at any moment leaves either
both or neither, and no deposit is ever counted twice or missed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any

import eventactors as ea

from .domain import Closed, Deposited, Opened, Withdrawn

NAME = "balances"
Balance = tuple[str, int, bool, int]  # owner, balance, is_open, events applied

_SQLITE_TABLE = """CREATE TABLE IF NOT EXISTS bank_balances (
    account TEXT PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL,
    is_open INTEGER NOT NULL, events_applied INTEGER NOT NULL)"""


def _changes(envelope: ea.EventEnvelope) -> tuple[str, int, bool | None] | None:
    """(owner, amount, is_open) that an event applies; owner '' keeps the current one."""
    match envelope.event:
        case Opened(owner=owner):
            return owner, 0, True
        case Deposited(amount=amount):
            return "", amount, None
        case Withdrawn(amount=amount):
            return "", -amount, None
        case Closed():
            return "", 0, False
    return None


def apply_sqlite(envelopes: Sequence[ea.EventEnvelope], connection: sqlite3.Connection) -> None:
    """Runs on the SQLite store's writer thread, inside the offset's transaction."""
    connection.execute(_SQLITE_TABLE)
    for envelope in envelopes:
        change = _changes(envelope)
        if change is None:
            continue
        owner, amount, is_open = change
        connection.execute(
            "INSERT INTO bank_balances VALUES (?, ?, ?, ?, 1) ON CONFLICT (account) DO UPDATE SET "
            "owner = CASE WHEN excluded.owner = '' THEN owner ELSE excluded.owner END, "
            "balance = balance + excluded.balance, "
            "is_open = coalesce(?, is_open), events_applied = events_applied + 1",
            (envelope.entity_id, owner, amount, bool(is_open), is_open),
        )


def reset_sqlite(connection: sqlite3.Connection) -> None:
    connection.execute(_SQLITE_TABLE)
    connection.execute("DELETE FROM bank_balances")


def postgres_handlers(schema: str) -> tuple[Any, Any]:
    """The PostgreSQL handler and reset, for a table in the store's schema."""
    table = f'"{schema}".bank_balances'
    create = (
        f"CREATE TABLE IF NOT EXISTS {table} (account text PRIMARY KEY, owner text NOT NULL, "
        "balance bigint NOT NULL, is_open boolean NOT NULL, events_applied bigint NOT NULL)"
    )

    async def apply(envelopes: Sequence[ea.EventEnvelope], connection: Any) -> None:
        await connection.execute(create)
        rows = []
        for envelope in envelopes:
            change = _changes(envelope)
            if change is not None:
                owner, amount, is_open = change
                rows.append((envelope.entity_id, owner, amount, bool(is_open), is_open))
        await connection.executemany(
            f"INSERT INTO {table} AS b VALUES ($1, $2, $3, $4, 1) ON CONFLICT (account) DO UPDATE "
            "SET owner = CASE WHEN excluded.owner = '' THEN b.owner ELSE excluded.owner END, "
            "balance = b.balance + excluded.balance, "
            "is_open = coalesce($5::boolean, b.is_open), events_applied = b.events_applied + 1",
            rows,
        )

    async def reset(connection: Any) -> None:
        await connection.execute(create)
        await connection.execute(f"DELETE FROM {table}")

    return apply, reset


async def add_balances_projection(engine: ea.Engine, *, batch_size: int = 200) -> None:
    """Adds the exactly-once balances projection for the engine's store."""
    store = engine.store
    if isinstance(store, ea.PostgresStore):
        handler, reset = postgres_handlers(store.schema)
    elif isinstance(store, ea.SQLiteStore):
        handler, reset = apply_sqlite, reset_sqlite
    else:
        raise TypeError("the balances read model lives in a database: use SQLite or PostgreSQL")
    await engine.add_projection(
        NAME,
        handler,
        transactional=True,
        reset=reset,
        entity_types=["account"],
        batch_size=batch_size,
    )


async def read_balances(store: ea.Store) -> dict[str, Balance]:
    """The read model as it stands: account -> (owner, balance, is_open, events applied)."""
    if isinstance(store, ea.PostgresStore):
        import asyncpg  # the postgres extra

        connection = await asyncpg.connect(store.dsn)
        try:
            exists = await connection.fetchval(
                "SELECT to_regclass($1)", f'"{store.schema}".bank_balances'
            )
            rows = (
                await connection.fetch(f'SELECT * FROM "{store.schema}".bank_balances')
                if exists
                else []
            )
        finally:
            await connection.close()
        return {
            r["account"]: (r["owner"], r["balance"], r["is_open"], r["events_applied"])
            for r in rows
        }
    if isinstance(store, ea.SQLiteStore):
        return await asyncio.to_thread(_read_sqlite, store.path)
    raise TypeError(f"no balances read model on {type(store).__name__}")


def _read_sqlite(path: str) -> dict[str, Balance]:
    connection = sqlite3.connect(path)
    try:
        connection.execute(_SQLITE_TABLE)
        rows = connection.execute("SELECT * FROM bank_balances").fetchall()
    finally:
        connection.close()
    return {
        account: (owner, balance, bool(is_open), n) for account, owner, balance, is_open, n in rows
    }
