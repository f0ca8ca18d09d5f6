"""The encryption tests' backends: the same data opened plain or encrypted, on a
MemoryStore, an SQLite file or a PostgreSQL schema of the test's own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from postgres_support import DSN

import eventactors as ea

KEY = bytes(range(32))  # a fixed master key, so that a second store object can open the data
OTHER_KEY = bytes(range(100, 132))


class Backend:
    """Opens store objects on one test's data; closes every one of them afterwards."""

    def __init__(self, name: str, open_plain: Callable[[], ea.Store], where: Any) -> None:
        self.name = name
        self._open_plain = open_plain
        self.where = where  # the SQLite path, or the PostgreSQL schema name
        self._opened: list[ea.Store] = []
        self._memory: ea.EncryptedStore | None = None

    @property
    def durable(self) -> bool:
        """Whether separate store objects on the same data exist (not for memory)."""
        return self.name != "memory"

    def plain(self) -> ea.Store:
        """A store without encryption on this data (memory: its one store, unwrapped)."""
        store = self._open_plain()
        self._opened.append(store)
        return store

    def encrypted(self, master_key: bytes = KEY, **options: Any) -> ea.EncryptedStore:
        """A new EncryptedStore on this data; for memory, the one wrapper of its one store."""
        if not self.durable:
            if self._memory is None:
                self._memory = ea.EncryptedStore(self._open_plain(), master_key, **options)
            assert master_key == KEY, "a MemoryStore can be wrapped once only"
            return self._memory
        store = ea.EncryptedStore(self._open_plain(), master_key, **options)
        self._opened.append(store)
        return store

    async def close_all(self) -> None:
        for store in reversed(self._opened):
            await store.close()
        if self._memory is not None:
            await self._memory.close()

    async def raw_text(self) -> str:
        """Everything the database holds, as text a person could search: the SQLite file and
        its WAL (bytes decoded leniently), or every row of every table of the schema."""
        if self.name == "sqlite":
            path = Path(self.where)
            files = [path, Path(f"{path}-wal")]
            return "".join(file.read_bytes().decode("latin-1") for file in files if file.exists())
        assert self.name == "postgres"
        connection = await asyncpg.connect(DSN, timeout=10)
        try:
            tables = await connection.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                self.where,
            )
            parts = []
            for (table,) in tables:
                rows = await connection.fetch(f'SELECT t::text FROM "{self.where}"."{table}" t')
                parts.extend(row[0] for row in rows)
            return "\n".join(parts)
        finally:
            await connection.close()
