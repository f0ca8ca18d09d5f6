"""The data-key table of `PostgresStore` (see `KeyStore`), in the store's schema.

The table is created on the first key written (not by the store's schema: only encrypted
stores need it), under an advisory lock, since two sessions creating one table at once can
collide in the catalog. Reads of a schema without it find no keys.

Erasure sets the wrapped key to NULL; the old row version stays on disk until VACUUM reuses
its space, and in WAL archives and backups: see docs/encryption.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from asyncpg import Connection

from ..errors import SerializationError
from ._key_checks import check_persistence_id, check_persistence_ids, check_wrapped_key
from ._postgres_connections import PostgresConnections
from ._postgres_schema import lock_key

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    persistence_id text        PRIMARY KEY,
    wrapped_key    bytea,                 -- the data key under the master key; NULL once erased
    created_at     timestamptz NOT NULL DEFAULT now(),
    erased_at      timestamptz            -- set by erasure, never cleared
)
"""


class PostgresKeys:
    """Mixed into `PostgresStore`."""

    schema: str
    _db: PostgresConnections
    _where: str
    _listener: Any
    _data_key_table_ready: bool = False

    @property
    def _data_keys(self) -> str:
        return f'"{self.schema}".ea_data_keys'

    async def load_data_keys(self, persistence_ids: Sequence[str]) -> dict[str, bytes | None]:
        names = check_persistence_ids(persistence_ids)
        if not names:
            return {}
        table = self._data_keys

        async def query(connection: Connection) -> list[Any]:
            try:
                rows: list[Any] = await connection.fetch(
                    f"SELECT persistence_id, wrapped_key FROM {table} "
                    "WHERE persistence_id = ANY($1::text[])",
                    names,
                )
            except asyncpg.UndefinedTableError:
                return []  # no key was ever written to this schema
            return rows

        rows = await self._db.run(query, write=False)
        return {row[0]: _wrapped(row[1], row[0], self._where) for row in rows}

    async def create_data_key(self, persistence_id: str, wrapped_key: bytes) -> bytes | None:
        check_wrapped_key(persistence_id, wrapped_key)
        table = self._data_keys

        async def write(connection: Connection) -> Any:
            # Two statements, so that the SELECT sees a row another transaction committed
            # while the INSERT waited for it (READ COMMITTED: a snapshot per statement).
            await connection.execute(
                f"INSERT INTO {table} (persistence_id, wrapped_key) VALUES ($1, $2) "
                "ON CONFLICT (persistence_id) DO NOTHING",
                persistence_id,
                wrapped_key,
            )
            return await connection.fetchval(
                f"SELECT wrapped_key FROM {table} WHERE persistence_id = $1", persistence_id
            )

        stored = await self._run_on_key_table(write)
        return _wrapped(stored, persistence_id, self._where)

    async def erase_data_key(self, persistence_id: str) -> None:
        check_persistence_id(persistence_id)
        table = self._data_keys

        async def write(connection: Connection) -> None:
            await connection.execute(
                f"INSERT INTO {table} AS stored (persistence_id, wrapped_key, erased_at) "
                "VALUES ($1, NULL, now()) ON CONFLICT (persistence_id) DO UPDATE "
                "SET wrapped_key = NULL, erased_at = coalesce(stored.erased_at, now())",
                persistence_id,
            )

        await self._run_on_key_table(write)

    async def _run_on_key_table(self, job: Any) -> Any:
        """Runs a key write, creating the table first if this store has not yet."""
        if not self._data_key_table_ready:
            await self._create_key_table()
        try:
            return await self._db.run(job, write=True)
        except asyncpg.UndefinedTableError:
            pass
        await self._create_key_table()  # the schema was dropped and made again since
        return await self._db.run(job, write=True)

    async def _create_key_table(self) -> None:
        statement = _CREATE_TABLE.format(table=self._data_keys)
        key = lock_key(self.schema, "data keys")

        async def create(connection: Connection) -> None:
            await connection.execute("SELECT pg_advisory_xact_lock($1)", key)
            await connection.execute(statement)

        await self._db.run(create, write=True)
        self._data_key_table_ready = True

    def _connections_open(self) -> bool:
        return self._db._pool is not None or self._listener is not None


def _wrapped(value: Any, persistence_id: str, where: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    raise SerializationError(  # pragma: no cover - bytea always comes back as bytes
        f"corrupt data-key row in {where}: stream {persistence_id!r} has a "
        f"{type(value).__name__} key"
    )
