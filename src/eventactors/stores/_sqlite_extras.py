"""The command log and the natural-identifier map in SQLite: written with appends and
state upserts, in their transaction, and read back on the reader connection.

Every write runs on the single writer thread inside a `BEGIN IMMEDIATE` transaction, which
holds the file's write lock from its start: a claim checked here cannot be taken by another
process before it commits. The tables' unique keys stay as the last word all the same.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from ..errors import SerializationError
from ..records import CommandRecord, IdentifierClaim
from ._common import (
    check_at_time,
    check_command_record,
    check_range,
    identifier_taken,
    require_text,
)
from ._sqlite_rows import format_timestamp, parse_timestamp, readable_text, row_integer

T = TypeVar("T")

INSERT_COMMAND = (
    "INSERT INTO ea_commands (command_id, persistence_id, entity_type, entity_id, command_type, "
    "payload, timestamp, outcome, reason, event_ids, revision, correlation_id, metadata) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COMMAND_COLUMNS = (
    "command_id, persistence_id, entity_type, entity_id, command_type, payload, timestamp, "
    "outcome, reason, event_ids, revision, correlation_id, metadata"
)
_encoder = msgspec.json.Encoder()
_event_ids_decoder = msgspec.json.Decoder(tuple[str, ...])
_metadata_decoder = msgspec.json.Decoder(dict[str, str])


def command_row(command: CommandRecord) -> tuple[Any, ...]:
    return (
        command.command_id, command.persistence_id, command.entity_type, command.entity_id,
        command.command_type, command.payload, format_timestamp(command.timestamp),
        command.outcome, command.reason, _encoder.encode(list(command.event_ids)).decode(),
        command.revision, command.correlation_id, _encoder.encode(dict(command.metadata)).decode(),
    )  # fmt: skip


def write_claim(connection: sqlite3.Connection, claim: IdentifierClaim) -> None:
    """The entity's keys become the claimed ones, releasing its previous keys; raises
    `IdentifierTaken`, having written nothing, if another entity holds them. Written at once,
    so the next claim in the same transaction sees it."""
    if not claim.identifiers:  # a release
        connection.execute(
            "DELETE FROM ea_identifiers WHERE entity_type = ? AND entity_id = ?",
            (claim.entity_type, claim.entity_id),
        )
        return
    row = connection.execute(
        "SELECT entity_id FROM ea_identifiers WHERE entity_type = ? AND identifiers = ?",
        (claim.entity_type, claim.identifiers),
    ).fetchone()
    if row is not None:
        if row[0] != claim.entity_id:
            raise identifier_taken(claim, row[0])
        return  # the entity already holds them
    connection.execute(
        "DELETE FROM ea_identifiers WHERE entity_type = ? AND entity_id = ?",
        (claim.entity_type, claim.entity_id),
    )
    connection.execute(
        "INSERT INTO ea_identifiers (entity_type, identifiers, entity_id) VALUES (?, ?, ?)",
        (claim.entity_type, claim.identifiers, claim.entity_id),
    )


def write_extras(
    connection: sqlite3.Connection,
    command: CommandRecord | None,
    claim: IdentifierClaim | None,
) -> None:
    """For a write that goes alone (a state upsert): the claim, then the command entry."""
    if claim is not None:
        write_claim(connection, claim)
    if command is not None:
        connection.execute(INSERT_COMMAND, command_row(command))


def _identifiers_of(connection: sqlite3.Connection, entity_type: str, entity_id: str) -> Any:
    row = connection.execute(
        "SELECT identifiers FROM ea_identifiers WHERE entity_type = ? AND entity_id = ?",
        (entity_type, entity_id),
    ).fetchone()
    return row[0] if row else None


class SQLiteExtras:
    """The store methods for the command log, the identifier map and time travel."""

    path: str

    async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def find_entity(self, entity_type: str, identifiers: str) -> str | None:
        row = await self._read(
            lambda connection: connection.execute(
                "SELECT entity_id FROM ea_identifiers WHERE entity_type = ? AND identifiers = ?",
                (entity_type, identifiers),
            ).fetchone()
        )
        return None if row is None else str(row[0])

    async def identifiers_of(self, entity_type: str, entity_id: str) -> str | None:
        found = await self._read(
            lambda connection: _identifiers_of(connection, entity_type, entity_id)
        )
        return None if found is None else str(found)

    async def record_command(self, command: CommandRecord) -> None:
        check_command_record(command)
        row = command_row(command)
        await self._write(lambda connection: connection.execute(INSERT_COMMAND, row))

    async def read_commands(
        self, persistence_id: str, *, limit: int | None = None
    ) -> list[CommandRecord]:
        check_range(0, None, limit)

        def query(connection: sqlite3.Connection) -> list[Any]:
            with readable_text(f"command log of stream {persistence_id!r} in {self.path}"):
                return connection.execute(
                    f"SELECT {_COMMAND_COLUMNS} FROM ea_commands WHERE persistence_id = ? "
                    "ORDER BY position LIMIT ?",
                    (persistence_id, limit if limit is not None else -1),
                ).fetchall()

        return [self._command_from_row(row) for row in await self._read(query)]

    async def sequence_at(self, persistence_id: str, at_time: datetime) -> int:
        moment = format_timestamp(check_at_time(at_time))

        def query(connection: sqlite3.Connection) -> int:
            # The stream's rows in sequence order, stopping at the first one past `at_time`:
            # timestamps are UTC ISO text, which sorts as time does.
            row = connection.execute(
                "SELECT sequence_number FROM ea_events WHERE persistence_id = ? "
                "AND timestamp > ? ORDER BY sequence_number LIMIT 1",
                (persistence_id, moment),
            ).fetchone()
            where = f"stream {persistence_id!r} in {self.path}"
            if row is not None:
                return row_integer(row[0], f"a sequence number of {where}") - 1
            highest = connection.execute(
                "SELECT highest_sequence FROM ea_streams WHERE persistence_id = ?",
                (persistence_id,),
            ).fetchone()
            return row_integer(highest[0], f"the highest sequence of {where}") if highest else 0

        return await self._read(query)

    def _command_from_row(self, row: tuple[Any, ...]) -> CommandRecord:
        (command_id, persistence_id, entity_type, entity_id, command_type, payload, timestamp,
         outcome, reason, event_ids, revision, correlation_id, metadata) = row  # fmt: skip
        try:
            if isinstance(payload, str):
                payload = payload.encode("utf-8")
            require_text(
                command_id=command_id, persistence_id=persistence_id, entity_type=entity_type,
                entity_id=entity_id, command_type=command_type, outcome=outcome, reason=reason,
                correlation_id=correlation_id,
            )  # fmt: skip
            if type(payload) is not bytes or type(revision) is not int:
                raise TypeError(
                    f"payload is {type(payload).__name__} and revision {revision!r}, not a blob "
                    "and an integer"
                )
            return CommandRecord(
                command_id=command_id,
                persistence_id=persistence_id,
                entity_type=entity_type,
                entity_id=entity_id,
                command_type=command_type,
                payload=payload,
                timestamp=parse_timestamp(timestamp),
                outcome=outcome,
                reason=reason,
                event_ids=_event_ids_decoder.decode(event_ids),
                revision=revision,
                correlation_id=correlation_id,
                metadata=_metadata_decoder.decode(metadata),
            )
        except (TypeError, ValueError, msgspec.DecodeError) as exc:
            raise SerializationError(
                f"corrupt command-log row for command {command_id!r} of stream "
                f"{persistence_id!r} in {self.path}: {exc}"
            ) from exc
