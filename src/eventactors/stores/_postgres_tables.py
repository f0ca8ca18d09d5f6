"""Snapshots, durable state and projection offsets in PostgreSQL: the tables beside the log.

`PostgresStore` inherits these; they run on its connection pool (`_db`), in its schema.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from asyncpg import Connection

from ..errors import ConcurrencyError, EventActorsError
from ..records import CommandRecord, IdentifierClaim, Snapshot, StateRecord
from ..serialization import Serializer
from ._common import (
    check_extras,
    check_position,
    check_state_record,
    check_state_revision,
    decode_state,
    encode_state,
)
from ._postgres_commands import ExtrasWriter, command_row
from ._postgres_connections import PostgresConnections
from ._postgres_rows import aware, representable, row_payload, row_time


class PostgresTables:
    serializer: Serializer
    _db: PostgresConnections
    _table: dict[str, str]
    _where: str
    _extras: ExtrasWriter

    # -- snapshots ------------------------------------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot[Any]) -> None:
        encoded = encode_state(self.serializer, snapshot.state, snapshot.persistence_id)
        as_json, as_bytes = self._payload_columns(encoded)
        await self._db.run(
            lambda connection: connection.execute(
                f"INSERT INTO {self._table['snapshots']} (persistence_id, sequence_number, "
                "state_type, payload_json, payload_bytes, timestamp) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (persistence_id, sequence_number) "
                "DO UPDATE SET state_type = excluded.state_type, "
                "payload_json = excluded.payload_json, payload_bytes = excluded.payload_bytes, "
                "timestamp = excluded.timestamp",
                snapshot.persistence_id, snapshot.sequence_number, snapshot.state_type,
                as_json, as_bytes, aware(snapshot.timestamp),
            ),
            write=True,
        )  # fmt: skip

    async def load_snapshot(
        self, persistence_id: str, max_sequence: int | None = None
    ) -> Snapshot[Any] | None:
        with representable(f"snapshot of stream {persistence_id!r} in {self._where}"):
            row = await self._db.run(
                lambda connection: connection.fetchrow(
                    "SELECT sequence_number, state_type, payload_json, payload_bytes, timestamp "
                    f"FROM {self._table['snapshots']} "
                    "WHERE persistence_id = $1 AND sequence_number <= $2 "
                    "ORDER BY sequence_number DESC LIMIT 1",
                    persistence_id,
                    max_sequence if max_sequence is not None else 2**62,
                ),
                write=False,
            )
        if row is None:
            return None
        sequence = row["sequence_number"]
        where = f"snapshot of stream {persistence_id!r} at sequence {sequence} in {self._where}"
        state = decode_state(self.serializer, row["state_type"], row_payload(row, where), where)
        timestamp = row_time(row["timestamp"], where)
        return Snapshot(persistence_id, sequence, row["state_type"], state, timestamp)

    async def delete_snapshots_to(self, persistence_id: str, to_sequence: int) -> None:
        await self._db.run(
            lambda connection: connection.execute(
                f"DELETE FROM {self._table['snapshots']} "
                "WHERE persistence_id = $1 AND sequence_number <= $2",
                persistence_id,
                to_sequence,
            ),
            write=True,
        )

    # -- durable state --------------------------------------------------------------------

    async def upsert_state(
        self,
        persistence_id: str,
        revision: int,
        state_record: StateRecord[Any],
        *,
        command: CommandRecord | None = None,
        claim: IdentifierClaim | None = None,
    ) -> None:
        check_state_record(persistence_id, revision, state_record)
        check_extras(persistence_id, command, claim)
        commands = [] if command is None else [command_row(command)]
        encoded = encode_state(self.serializer, state_record.state, persistence_id)
        as_json, as_bytes = self._payload_columns(encoded)
        table = self._table["durable_state"]

        insert = (
            f"INSERT INTO {table} (persistence_id, revision, state_type, payload_json, "
            "payload_bytes, timestamp) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT (persistence_id) DO NOTHING"
        )
        update = (
            f"UPDATE {table} SET revision = $2, state_type = $3, payload_json = $4, "
            "payload_bytes = $5, timestamp = $6 WHERE persistence_id = $1 AND revision = $2 - 1"
        )
        values = (persistence_id, revision, state_record.state_type, as_json, as_bytes,
                  aware(state_record.timestamp))  # fmt: skip

        async def write(connection: Connection) -> None:
            # Revision 1 inserts (a racing first writer meets the primary key); later revisions
            # update only the row at the previous revision. Neither can succeed silently.
            status = await connection.execute(insert if revision == 1 else update, *values)
            if status.endswith(" 0"):  # "INSERT 0 0" or "UPDATE 0": someone else got there
                stored = await connection.fetchval(
                    f"SELECT revision FROM {table} WHERE persistence_id = $1", persistence_id
                )
                check_state_revision(persistence_id, stored or 0, revision, deleting=False)
                raise ConcurrencyError(f"state {persistence_id!r} changed during the write")
            # The state row is locked now, so the claim lock comes after a row lock, as for
            # appends; a refused claim rolls the state back with it.
            if claim is not None:
                await self._extras.lock_types(connection, [claim.entity_type])
                await self._extras.claim(connection, claim)
            await self._extras.record(connection, commands)

        try:
            await self._db.run(write, write=True)
        except EventActorsError as exc:
            error = await self._extras.explained(exc)
            if error is exc:
                raise
            raise error from exc.__cause__

    async def get_state(self, persistence_id: str) -> StateRecord[Any] | None:
        with representable(f"state of stream {persistence_id!r} in {self._where}"):
            row = await self._db.run(
                lambda connection: connection.fetchrow(
                    "SELECT revision, state_type, payload_json, payload_bytes, timestamp "
                    f"FROM {self._table['durable_state']} WHERE persistence_id = $1",
                    persistence_id,
                ),
                write=False,
            )
        if row is None:
            return None
        revision = row["revision"]
        where = f"state of stream {persistence_id!r} at revision {revision} in {self._where}"
        state = decode_state(self.serializer, row["state_type"], row_payload(row, where), where)
        timestamp = row_time(row["timestamp"], where)
        return StateRecord(persistence_id, revision, row["state_type"], state, timestamp)

    async def delete_state(self, persistence_id: str, revision: int) -> None:
        table = self._table["durable_state"]

        async def write(connection: Connection) -> None:
            stored = await connection.fetchval(
                f"SELECT revision FROM {table} WHERE persistence_id = $1 FOR UPDATE",
                persistence_id,
            )
            check_state_revision(persistence_id, stored or 0, revision, deleting=True)
            await connection.execute(
                f"DELETE FROM {table} WHERE persistence_id = $1", persistence_id
            )

        await self._db.run(write, write=True)

    # -- offsets --------------------------------------------------------------------------

    async def get_offset(self, projection: str) -> int | None:
        position = await self._db.run(
            lambda connection: connection.fetchval(
                f"SELECT position FROM {self._table['offsets']} WHERE projection = $1", projection
            ),
            write=False,
        )
        return None if position is None else int(position)

    async def list_offsets(self) -> dict[str, int]:
        rows = await self._db.run(
            lambda connection: connection.fetch(
                f"SELECT projection, position FROM {self._table['offsets']} ORDER BY projection"
            ),
            write=False,
        )
        return {str(row["projection"]): int(row["position"]) for row in rows}

    async def save_offset(self, projection: str, position: int) -> None:
        check_position(position)
        await self._db.run(
            lambda connection: connection.execute(
                f"INSERT INTO {self._table['offsets']} (projection, position, updated_at) "
                "VALUES ($1, $2, now()) ON CONFLICT (projection) "
                "DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                projection,
                position,
            ),
            write=True,
        )

    async def reset_offset(self, projection: str, position: int = 0) -> None:
        await self.save_offset(projection, position)

    async def commit_with_offset(
        self, projection: str, position: int, work: Callable[[Connection], Any]
    ) -> Any:
        """Runs `work(connection)` (awaiting it if it is async) and saves the offset in one
        transaction: both or neither."""
        check_position(position)

        async def write(connection: Connection) -> Any:
            result = work(connection)
            if inspect.isawaitable(result):
                result = await result
            await connection.execute(
                f"INSERT INTO {self._table['offsets']} (projection, position, updated_at) "
                "VALUES ($1, $2, now()) ON CONFLICT (projection) "
                "DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                projection,
                position,
            )
            return result

        return await self._db.run(write, write=True)

    # -- helpers --------------------------------------------------------------------------

    def _payload_columns(self, payload: bytes) -> tuple[str | None, bytes | None]:
        """JSON goes to the jsonb column, where it can be queried; anything else to bytea."""
        if self.serializer.is_text:
            return payload.decode("utf-8"), None
        return None, payload
