"""The loans read model: who holds which copy, with its title, as tables beside the events.

One projection follows both entity types. Member events say who borrowed what (by member id);
book events give each copy's title and holder; a query joins them. On SQLite the tables live in
the store's own file and each page is applied in the store's transaction together with the
projection's offset: exactly once, whatever crashes. On any other store the same tables are
kept in an in-memory SQLite database, rebuilt from the log whenever the process starts.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

import eventactors as ea

from .domain import Borrowed, CopyAdded, Lent, Registered, Returned, TakenBack

NAME = "loans"

_TABLES = (
    "CREATE TABLE IF NOT EXISTS loans (member_id TEXT NOT NULL, isbn TEXT NOT NULL, "
    "copy INTEGER NOT NULL, since INTEGER NOT NULL, PRIMARY KEY (member_id, isbn, copy))",
    "CREATE TABLE IF NOT EXISTS loan_members (member_id TEXT PRIMARY KEY, email TEXT NOT NULL, "
    "name TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS loan_copies (book_id TEXT PRIMARY KEY, isbn TEXT NOT NULL, "
    "copy INTEGER NOT NULL, title TEXT NOT NULL, held_by TEXT NOT NULL)",
)

# A member's loans joined with the titles the book events gave, in the order they were made.
_LOANS = """SELECT m.email, m.name, l.isbn, l.copy, coalesce(c.title, '')
    FROM loans l JOIN loan_members m USING (member_id)
    LEFT JOIN loan_copies c ON c.isbn = l.isbn AND c.copy = l.copy"""


class LoanRow(NamedTuple):
    email: str
    name: str
    isbn: str
    copy: int
    title: str


def apply(envelopes: Sequence[ea.EventEnvelope], connection: sqlite3.Connection) -> None:
    """Applies a page of events; on SQLite, on the writer thread in the offset's transaction.

    Every statement is an upsert or a keyed delete, so a page delivered again (at-least-once
    on the in-memory variant) leaves the same tables.
    """
    _create(connection)
    for envelope in envelopes:
        entity_id, execute = envelope.entity_id, connection.execute
        match envelope.event:
            case Registered(email=email, name=name):
                execute(
                    "INSERT OR REPLACE INTO loan_members VALUES (?, ?, ?)", (entity_id, email, name)
                )
            case Borrowed(isbn=isbn, copy=copy):
                execute(
                    "INSERT OR IGNORE INTO loans VALUES (?, ?, ?, ?)",
                    (entity_id, isbn, copy, envelope.global_position),
                )
            case Returned(isbn=isbn, copy=copy):
                execute(
                    "DELETE FROM loans WHERE member_id = ? AND isbn = ? AND copy = ?",
                    (entity_id, isbn, copy),
                )
            case CopyAdded(isbn=isbn, copy=copy, title=title):
                execute(
                    "INSERT OR REPLACE INTO loan_copies VALUES (?, ?, ?, ?, '')",
                    (entity_id, isbn, copy, title),
                )
            case Lent(member_email=email):
                execute("UPDATE loan_copies SET held_by = ? WHERE book_id = ?", (email, entity_id))
            case TakenBack():
                execute("UPDATE loan_copies SET held_by = '' WHERE book_id = ?", (entity_id,))


def reset(connection: sqlite3.Connection) -> None:
    """Empties the tables before `rebuild_projection` replays the log."""
    _create(connection)
    for table in ("loans", "loan_members", "loan_copies"):
        connection.execute(f"DELETE FROM {table}")


def _create(connection: sqlite3.Connection) -> None:
    for statement in _TABLES:
        connection.execute(statement)


class LoansView:
    """Queries the read model wherever `add_loans_projection` put it."""

    def __init__(self, path: str | None = None, memory: sqlite3.Connection | None = None):
        self._path, self._memory = path, memory

    async def of(self, email: str) -> list[LoanRow]:
        """One member's loans, oldest first."""
        rows = await self._query(_LOANS + " WHERE m.email = ? ORDER BY l.since", (email,))
        return [LoanRow(*row) for row in rows]

    async def all(self) -> list[LoanRow]:
        """Every loan, by member, oldest first."""
        return [LoanRow(*row) for row in await self._query(_LOANS + " ORDER BY m.email, l.since")]

    async def lent_copies(self) -> dict[tuple[str, int], str]:
        """(isbn, copy) -> the member holding it, as the book events tell."""
        rows = await self._query("SELECT isbn, copy, held_by FROM loan_copies WHERE held_by != ''")
        return {(isbn, copy): holder for isbn, copy, holder in rows}

    async def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        if self._memory is not None:
            return _rows(self._memory, sql, params)
        assert self._path is not None
        return await asyncio.to_thread(_read_file, self._path, sql, params)


def _rows(
    connection: sqlite3.Connection, sql: str, params: tuple[object, ...]
) -> list[tuple[Any, ...]]:
    _create(connection)
    return connection.execute(sql, params).fetchall()


def _read_file(path: str, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path, timeout=30.0)
    try:
        with connection:
            return _rows(connection, sql, params)
    finally:
        connection.close()


async def add_loans_projection(engine: ea.Engine, *, batch_size: int = 500) -> LoansView:
    """Adds the `loans` projection over members and books; returns the view that reads it."""
    kinds = ["member", "book"]
    store = engine.store
    if isinstance(store, ea.SQLiteStore):
        await engine.add_projection(
            NAME, apply, transactional=True, reset=reset, entity_types=kinds, batch_size=batch_size
        )
        return LoansView(path=str(store.path))
    memory = sqlite3.connect(":memory:", check_same_thread=False)

    def apply_in_memory(envelopes: Sequence[ea.EventEnvelope]) -> None:
        with memory:  # one transaction per page
            apply(envelopes, memory)

    def reset_in_memory() -> None:
        with memory:
            reset(memory)

    # The offset lives beside the tables, in memory: both start over with the process.
    await engine.add_projection(
        NAME,
        apply_in_memory,
        batched=True,
        reset=reset_in_memory,
        entity_types=kinds,
        batch_size=batch_size,
        offset_store=ea.MemoryStore(),
    )
    return LoansView(memory=memory)
