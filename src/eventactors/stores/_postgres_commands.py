"""Natural identifiers and the command log in PostgreSQL: the writes that ride along with an
append or a state upsert, and their reads.

A claim (also a claim of '', which releases the entity's keys) is written under a
transaction-scoped advisory lock per entity type, taken after the write's row locks (stream
rows, or the durable-state row) and before the lock on global positions, so every lock is
taken in one order and claims cannot deadlock. Under it, the owner read before the write is
the committed owner: a claim on keys another entity holds fails with `IdentifierTaken` before
anything is written, and the transaction rolls back. The unique constraint on (entity_type,
identifiers) stays the last word: a violation, which only a writer that skipped the lock
could cause, is reported as `IdentifierTaken` too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg
import msgspec
from asyncpg import Connection, Record

from ..errors import EventActorsError, IdentifierTaken, SerializationError
from ..records import CommandRecord, IdentifierClaim
from ._common import check_command_record, check_range, identifier_taken, text_tuple
from ._postgres_connections import PostgresConnections
from ._postgres_rows import aware, metadata_decoder, representable
from ._postgres_schema import lock_key

COMMAND_COLUMNS = (
    "command_id, persistence_id, entity_type, entity_id, command_type, payload, timestamp, "
    "outcome, reason, event_ids, revision, correlation_id, metadata"
)
_TAKEN_CONSTRAINT = "ea_identifiers_taken"


def command_row(command: CommandRecord) -> tuple[Any, ...]:
    """The columns of a command-log entry (checked first), in COMMAND_COLUMNS order."""
    check_command_record(command)
    return (
        command.command_id, command.persistence_id, command.entity_type, command.entity_id,
        command.command_type, command.payload, aware(command.timestamp), command.outcome,
        command.reason, list(command.event_ids), command.revision, command.correlation_id,
        msgspec.json.encode(dict(command.metadata)).decode(),
    )  # fmt: skip


def command_from_row(row: Record, where: str) -> CommandRecord:
    """A command-log entry; a row written behind the store's back that does not fit (metadata
    that is not an object of strings, event ids with NULLs, an infinite timestamp) is refused
    with `SerializationError`, naming the command and the stream."""
    (command_id, persistence_id, entity_type, entity_id, command_type, payload, timestamp,
     outcome, reason, event_ids, revision, correlation_id, metadata) = row  # fmt: skip
    try:
        event_ids = text_tuple("event_ids", event_ids or ())
        if timestamp.tzinfo is None:  # 'infinity' comes back naive
            raise ValueError(f"timestamp {timestamp} is not a moment")
        return CommandRecord(
            command_id, persistence_id, entity_type, entity_id, command_type, bytes(payload),
            timestamp, outcome, reason, event_ids, revision, correlation_id,
            {} if metadata == "{}" else metadata_decoder.decode(metadata),
        )  # fmt: skip
    except (TypeError, ValueError, msgspec.DecodeError) as exc:
        raise SerializationError(
            f"corrupt command-log row for command {command_id!r} of stream "
            f"{persistence_id!r} in {where}: {exc}"
        ) from exc


class ClaimRaced(EventActorsError):
    """The unique constraint refused a claim; raised inside the transaction, and turned into
    `IdentifierTaken` (naming the owner, read again) once it has rolled back."""

    def __init__(self, claim: IdentifierClaim) -> None:
        super().__init__(f"identifier claim of {claim.entity_id!r} refused by the database")
        self.claim = claim


class ExtrasWriter:
    """Writes claims and command-log entries inside a caller's transaction, for one schema."""

    def __init__(self, db: PostgresConnections, tables: dict[str, str], schema: str) -> None:
        self._db = db
        self._schema = schema
        self._identifiers = tables["identifiers"]
        self._insert_command = (
            f"INSERT INTO {tables['commands']} ({COMMAND_COLUMNS}) VALUES "
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb)"
        )
        self._owner = (
            f"SELECT entity_id FROM {self._identifiers} WHERE entity_type = $1 AND identifiers = $2"
        )

    async def lock_types(self, connection: Connection, entity_types: Iterable[str]) -> None:
        """Takes the claim lock of each entity type, in one global order (of the keys)."""
        keys = sorted({lock_key(self._schema, f"identifiers:{name}") for name in entity_types})
        for key in keys:
            await connection.execute("SELECT pg_advisory_xact_lock($1)", key)

    async def claim(self, connection: Connection, claim: IdentifierClaim) -> None:
        """Gives the entity the claimed key set, replacing its old one (or releases it, for
        ''); `IdentifierTaken` if another entity holds it. The caller holds the claim lock of
        the entity type."""
        if not claim.identifiers:
            await connection.execute(
                f"DELETE FROM {self._identifiers} WHERE entity_type = $1 AND entity_id = $2",
                claim.entity_type,
                claim.entity_id,
            )
            return
        owner = await connection.fetchval(self._owner, claim.entity_type, claim.identifiers)
        if owner == claim.entity_id:
            return  # the keys it already holds
        if owner is not None:
            raise identifier_taken(claim, owner)
        try:
            await connection.execute(
                f"INSERT INTO {self._identifiers} (entity_type, entity_id, identifiers) "
                "VALUES ($1, $2, $3) ON CONFLICT (entity_type, entity_id) "
                "DO UPDATE SET identifiers = excluded.identifiers",
                claim.entity_type,
                claim.entity_id,
                claim.identifiers,
            )
        except asyncpg.UniqueViolationError as exc:
            if getattr(exc, "constraint_name", None) != _TAKEN_CONSTRAINT:
                raise
            raise ClaimRaced(claim) from exc

    async def record(self, connection: Connection, rows: list[tuple[Any, ...]]) -> None:
        if len(rows) == 1:
            await connection.execute(self._insert_command, *rows[0])
        elif rows:
            await connection.executemany(self._insert_command, rows)

    async def explained(self, error: BaseException) -> BaseException:
        """`error`, or for a claim the database refused, the `IdentifierTaken` naming the
        entity that holds the keys now."""
        if not isinstance(error, ClaimRaced):
            return error
        claim = error.claim
        owner = await self._db.run(
            lambda c: c.fetchval(self._owner, claim.entity_type, claim.identifiers), write=False
        )
        taken: IdentifierTaken = identifier_taken(claim, owner or "")  # "": released since
        taken.__cause__ = error.__cause__
        return taken


class PostgresIdentifiersAndCommands:
    """The read side of identifiers and the command log, and standalone entries;
    `PostgresStore` inherits it."""

    _db: PostgresConnections
    _table: dict[str, str]
    _extras: ExtrasWriter
    _where: str

    async def find_entity(self, entity_type: str, identifiers: str) -> str | None:
        owner: str | None = await self._db.run(
            lambda connection: connection.fetchval(
                f"SELECT entity_id FROM {self._table['identifiers']} "
                "WHERE entity_type = $1 AND identifiers = $2",
                entity_type,
                identifiers,
            ),
            write=False,
        )
        return owner

    async def identifiers_of(self, entity_type: str, entity_id: str) -> str | None:
        identifiers: str | None = await self._db.run(
            lambda connection: connection.fetchval(
                f"SELECT identifiers FROM {self._table['identifiers']} "
                "WHERE entity_type = $1 AND entity_id = $2",
                entity_type,
                entity_id,
            ),
            write=False,
        )
        return identifiers

    async def record_command(self, command: CommandRecord) -> None:
        row = command_row(command)
        await self._db.run(lambda connection: self._extras.record(connection, [row]), write=True)

    async def read_commands(
        self, persistence_id: str, *, limit: int | None = None
    ) -> list[CommandRecord]:
        check_range(0, None, limit)
        with representable(f"command log of stream {persistence_id!r} in {self._where}"):
            rows = await self._db.run(
                lambda connection: connection.fetch(
                    f"SELECT {COMMAND_COLUMNS} FROM {self._table['commands']} "
                    "WHERE persistence_id = $1 ORDER BY entry LIMIT $2",
                    persistence_id,
                    limit,
                ),
                write=False,
            )
        return [command_from_row(row, self._where) for row in rows]
