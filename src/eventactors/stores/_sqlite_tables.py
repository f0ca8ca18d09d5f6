"""Snapshots, durable state and projection offsets in SQLite: the tables beside the event log.

`SQLiteStore` inherits these; they reach the database through its `_read` and `_write`, so
writes here join the same group commit as appends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from ..errors import SerializationError
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
from ._sqlite_extras import write_extras
from ._sqlite_rows import format_timestamp, readable_text, row_integer, row_timestamp
from ._sqlite_worker import HandlerFailed

T = TypeVar("T")


class SQLiteTables:
    serializer: Serializer
    path: str

    async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    # -- snapshots ------------------------------------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot[Any]) -> None:
        payload = self._stored(
            encode_state(self.serializer, snapshot.state, snapshot.persistence_id)
        )
        await self._write(
            lambda connection: connection.execute(
                "INSERT OR REPLACE INTO ea_snapshots "
                "(persistence_id, sequence_number, state_type, payload, timestamp) "
                "VALUES (?, ?, ?, ?, ?)",
                (snapshot.persistence_id, snapshot.sequence_number, snapshot.state_type,
                 payload, format_timestamp(snapshot.timestamp)),
            )
        )  # fmt: skip

    async def load_snapshot(
        self, persistence_id: str, max_sequence: int | None = None
    ) -> Snapshot[Any] | None:
        upper = max_sequence if max_sequence is not None else 2**62
        where = f"snapshot of stream {persistence_id!r} in {self.path}"

        def query(connection: sqlite3.Connection) -> Any:
            with readable_text(where):
                return connection.execute(
                    "SELECT sequence_number, state_type, payload, timestamp FROM ea_snapshots "
                    "WHERE persistence_id = ? AND sequence_number <= ? "
                    "ORDER BY sequence_number DESC LIMIT 1",
                    (persistence_id, upper),
                ).fetchone()

        row = await self._read(query)
        if row is None:
            return None
        sequence, state_type, payload, timestamp = row
        where = f"snapshot of stream {persistence_id!r} at sequence {sequence} in {self.path}"
        sequence = row_integer(sequence, where)
        state = self._decode_state_row(state_type, payload, where)
        return Snapshot(
            persistence_id, sequence, state_type, state, row_timestamp(timestamp, where)
        )

    async def delete_snapshots_to(self, persistence_id: str, to_sequence: int) -> None:
        await self._write(
            lambda connection: connection.execute(
                "DELETE FROM ea_snapshots WHERE persistence_id = ? AND sequence_number <= ?",
                (persistence_id, to_sequence),
            )
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
        payload = self._stored(encode_state(self.serializer, state_record.state, persistence_id))
        row = (persistence_id, revision, state_record.state_type, payload,
               format_timestamp(state_record.timestamp))  # fmt: skip

        def write(connection: sqlite3.Connection) -> None:
            stored = _state_revision(connection, persistence_id)
            check_state_revision(persistence_id, stored, revision, deleting=False)
            connection.execute(
                "INSERT OR REPLACE INTO ea_durable_state "
                "(persistence_id, revision, state_type, payload, timestamp) VALUES (?, ?, ?, ?, ?)",
                row,
            )
            write_extras(connection, command, claim)

        await self._write(write)

    async def get_state(self, persistence_id: str) -> StateRecord[Any] | None:
        where = f"state of stream {persistence_id!r} in {self.path}"

        def query(connection: sqlite3.Connection) -> Any:
            with readable_text(where):
                return connection.execute(
                    "SELECT revision, state_type, payload, timestamp FROM ea_durable_state "
                    "WHERE persistence_id = ?",
                    (persistence_id,),
                ).fetchone()

        row = await self._read(query)
        if row is None:
            return None
        revision, state_type, payload, timestamp = row
        where = f"state of stream {persistence_id!r} at revision {revision!r} in {self.path}"
        revision = row_integer(revision, where)
        state = self._decode_state_row(state_type, payload, where)
        return StateRecord(
            persistence_id, revision, state_type, state, row_timestamp(timestamp, where)
        )

    async def delete_state(self, persistence_id: str, revision: int) -> None:
        def write(connection: sqlite3.Connection) -> None:
            stored = _state_revision(connection, persistence_id)
            check_state_revision(persistence_id, stored, revision, deleting=True)
            connection.execute(
                "DELETE FROM ea_durable_state WHERE persistence_id = ?", (persistence_id,)
            )

        await self._write(write)

    # -- offsets --------------------------------------------------------------------------

    async def get_offset(self, projection: str) -> int | None:
        row = await self._read(
            lambda connection: connection.execute(
                "SELECT position FROM ea_offsets WHERE projection = ?", (projection,)
            ).fetchone()
        )
        return None if row is None else row_integer(row[0], f"offset of {projection!r}")

    async def list_offsets(self) -> dict[str, int]:
        rows = await self._read(
            lambda connection: connection.execute(
                "SELECT projection, position FROM ea_offsets ORDER BY projection"
            ).fetchall()
        )
        return {str(name): row_integer(position, f"offset of {name!r}") for name, position in rows}

    async def save_offset(self, projection: str, position: int) -> None:
        check_position(position)
        now = format_timestamp(datetime.now(UTC))
        await self._write(
            lambda connection: connection.execute(
                "INSERT OR REPLACE INTO ea_offsets (projection, position, updated_at) "
                "VALUES (?, ?, ?)",
                (projection, position, now),
            )
        )

    async def reset_offset(self, projection: str, position: int = 0) -> None:
        await self.save_offset(projection, position)

    async def commit_with_offset(
        self, projection: str, position: int, work: Callable[[sqlite3.Connection], Any]
    ) -> Any:
        """Runs `work(connection)` on the writer thread and saves the offset, in one
        transaction: a crash or an exception leaves neither the work nor the offset."""
        check_position(position)
        now = format_timestamp(datetime.now(UTC))

        def write(connection: sqlite3.Connection) -> Any:
            try:
                result = work(connection)
            except Exception as exc:  # the handler's failure (its SQL too), not the store's
                raise HandlerFailed(exc) from exc
            connection.execute(
                "INSERT OR REPLACE INTO ea_offsets (projection, position, updated_at) "
                "VALUES (?, ?, ?)",
                (projection, position, now),
            )
            return result

        try:
            return await self._write(write)
        except HandlerFailed as failed:
            raise failed.error from None

    # -- helpers --------------------------------------------------------------------------

    def _stored(self, payload: bytes) -> bytes | str:
        """JSON goes in as text so that a person can read it in the database."""
        return payload.decode("utf-8") if self.serializer.is_text else payload

    def _decode_state_row(self, state_type: Any, payload: Any, where: str) -> Any:
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        if not isinstance(state_type, str) or not isinstance(payload, bytes):
            raise SerializationError(
                f"corrupt row: {where}: state_type is {type(state_type).__name__} and payload "
                f"{type(payload).__name__}, not text and text or blob"
            )
        return decode_state(self.serializer, state_type, payload, where)


def _state_revision(connection: sqlite3.Connection, persistence_id: str) -> int:
    row = connection.execute(
        "SELECT revision FROM ea_durable_state WHERE persistence_id = ?", (persistence_id,)
    ).fetchone()
    return row_integer(row[0], f"revision of state {persistence_id!r}") if row else 0
