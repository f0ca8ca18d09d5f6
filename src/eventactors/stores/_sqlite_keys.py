"""The data-key table of `SQLiteStore` (see `KeyStore`), in the same file as the events.

The table is created on the first key written (not by the store's schema: only encrypted
stores need it). Reads of a file without it find no keys. Key writes run on the writer
thread, in the group commit, so a key is durable before any event sealed with it.

Erasure overwrites the wrapped key with `secure_delete` on, so that SQLite zeroes the bytes
it frees in the page. Earlier copies may survive in the WAL file until it is checkpointed
and rewritten, and in backups: see docs/encryption.md.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from ..errors import SerializationError
from ._key_checks import check_persistence_id, check_persistence_ids, check_wrapped_key
from ._sqlite_rows import format_timestamp
from ._sqlite_worker import SQLiteWorker

T = TypeVar("T")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS ea_data_keys (
    persistence_id TEXT PRIMARY KEY,
    wrapped_key    BLOB,           -- the data key under the master key; NULL once erased
    created_at     TEXT NOT NULL,  -- ISO 8601, UTC
    erased_at      TEXT            -- set by erasure, never cleared
) WITHOUT ROWID
"""
_QUERY_CHUNK = 500  # streams per lookup, well under SQLite's limit on bound parameters


class SQLiteKeys:
    """Mixed into `SQLiteStore`."""

    path: str
    _reader: SQLiteWorker | None
    _writer: SQLiteWorker | None

    async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def load_data_keys(self, persistence_ids: Sequence[str]) -> dict[str, bytes | None]:
        names = check_persistence_ids(persistence_ids)
        path = self.path

        def query(connection: sqlite3.Connection) -> dict[str, bytes | None]:
            found: dict[str, bytes | None] = {}
            for start in range(0, len(names), _QUERY_CHUNK):
                chunk = names[start : start + _QUERY_CHUNK]
                try:
                    rows = connection.execute(
                        "SELECT persistence_id, wrapped_key FROM ea_data_keys "
                        f"WHERE persistence_id IN ({', '.join('?' * len(chunk))})",
                        chunk,
                    ).fetchall()
                except sqlite3.OperationalError as exc:
                    if "no such table" in str(exc):
                        return {}  # no key was ever written to this file
                    raise
                for name, wrapped in rows:
                    found[name] = _wrapped(wrapped, name, path)
            return found

        return await self._read(query) if names else {}

    async def create_data_key(self, persistence_id: str, wrapped_key: bytes) -> bytes | None:
        check_wrapped_key(persistence_id, wrapped_key)
        now = format_timestamp(datetime.now(UTC))
        path = self.path

        def write(connection: sqlite3.Connection) -> bytes | None:
            connection.execute(_CREATE_TABLE)
            connection.execute(
                "INSERT INTO ea_data_keys (persistence_id, wrapped_key, created_at) "
                "VALUES (?, ?, ?) ON CONFLICT (persistence_id) DO NOTHING",
                (persistence_id, wrapped_key, now),
            )
            row = connection.execute(
                "SELECT wrapped_key FROM ea_data_keys WHERE persistence_id = ?",
                (persistence_id,),
            ).fetchone()
            return _wrapped(row[0], persistence_id, path)

        return await self._write(write)

    async def erase_data_key(self, persistence_id: str) -> None:
        check_persistence_id(persistence_id)
        now = format_timestamp(datetime.now(UTC))

        def write(connection: sqlite3.Connection) -> None:
            connection.execute(_CREATE_TABLE)
            (secure_delete,) = connection.execute("PRAGMA secure_delete").fetchone()
            connection.execute("PRAGMA secure_delete = 1")
            try:
                connection.execute(
                    "INSERT INTO ea_data_keys (persistence_id, wrapped_key, created_at, "
                    "erased_at) VALUES (?, NULL, ?, ?) ON CONFLICT (persistence_id) DO UPDATE "
                    "SET wrapped_key = NULL, erased_at = coalesce(erased_at, excluded.erased_at)",
                    (persistence_id, now, now),
                )
            finally:
                connection.execute(f"PRAGMA secure_delete = {int(secure_delete)}")

        await self._write(write)

    def _connections_open(self) -> bool:
        return self._reader is not None or self._writer is not None


def _wrapped(value: Any, persistence_id: str, path: str) -> bytes | None:
    if value is None or type(value) is bytes:
        return value
    raise SerializationError(
        f"corrupt data-key row in {path}: stream {persistence_id!r} has a "
        f"{type(value).__name__} key, not a blob"
    )
