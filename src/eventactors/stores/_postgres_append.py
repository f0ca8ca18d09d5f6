"""Appending to PostgreSQL: many entities' appends in one transaction, gap-free.

A batch first locks the rows of all its streams, in sorted order (creating the rows of new
streams), and checks each append's expectation against them in arrival order; an append that
expected another sequence gets its own `ConcurrencyError` and leaves the batch. Only then does
it take the schema's advisory lock, draw one range of global positions for every remaining
event, insert them and move the streams on, and notify listeners. Row locks always come before
the advisory lock and in one order, so batches from several processes cannot deadlock.

An append may carry a command-log entry and an identifier claim, written in the same
transaction. If any append of the batch claims, the claim locks of those entity types are
taken after the stream rows (see `_postgres_commands`), and each claim is written right after
its append's check: a claim on keys another entity holds fails that append alone, with
`IdentifierTaken`, and the appends after it see the stream as that append left it (unmoved).
The command-log entries of the accepted appends are inserted together before the positions are
drawn. Appends without either run exactly as before.

If the database refuses the batch's rows (say, a payload that is not valid JSON), the batch is
rolled back and its appends are written one transaction each, so that only the bad one fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asyncpg import Connection

from ..errors import EventActorsError, StoreUnavailable
from ..records import EventEnvelope, EventRecord, IdentifierClaim
from ._common import check_stream_position, envelope_from_record
from ._group_queue import Pending
from ._postgres_commands import ClaimRaced, ExtrasWriter
from ._postgres_connections import PostgresConnections
from .group_commit import WriteCounter

EVENT_COLUMNS = (
    "global_position, event_id, persistence_id, entity_type, entity_id, sequence_number, "
    "event_type, payload_json, payload_bytes, timestamp, tags, metadata, command_id, "
    "correlation_id, event_version"
)


@dataclass(frozen=True, slots=True)
class AppendRequest:
    persistence_id: str
    records: list[EventRecord]
    expected: int
    rows: list[tuple[Any, ...]]  # encoded by the caller, so a bad record fails only itself
    command: tuple[Any, ...] | None = None  # the command-log entry's row, likewise
    claim: IdentifierClaim | None = None


class PostgresAppender:
    """Writes batches of appends for one store (its schema, lock key and channel)."""

    def __init__(
        self,
        db: PostgresConnections,
        tables: dict[str, str],
        lock: int,
        channel: str,
        store: Any,
        counter: WriteCounter,
        extras: ExtrasWriter,
    ) -> None:
        self._counter = counter
        self._extras = extras
        self._db = db
        self._events = tables["events"]
        self._streams = tables["streams"]
        self._positions = tables["global_position"]
        self._lock = lock
        self._channel = channel
        self._store = store  # decodes the envelopes it returns
        self._insert = (
            f"INSERT INTO {self._events} ({EVENT_COLUMNS}) VALUES "
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        )

    async def write_batch(self, batch: Sequence[Pending]) -> list[Any]:
        requests: list[AppendRequest] = [pending.request for pending in batch]
        try:
            return await self._write_counted(requests)
        except Exception as exc:
            if len(requests) == 1 or isinstance(exc, StoreUnavailable):
                self._counter.count(0, len(requests), 0)
                error = await self._extras.explained(exc)
                if error is exc:
                    raise
                raise error from exc.__cause__
        # The database refused something in the batch: one transaction per append finds it.
        outcomes: list[Any] = []
        for request in requests:
            try:
                outcomes.extend(await self._write_counted([request]))
            except Exception as exc:
                self._counter.count(0, 1, 0)
                outcomes.append(await self._extras.explained(exc))
        return outcomes

    async def _write_counted(self, requests: list[AppendRequest]) -> list[Any]:
        """Writes in one transaction and counts it once committed."""
        outcomes = await self._db.run(lambda c: self._write(c, requests), write=True)
        written = sum(len(outcome) for outcome in outcomes if isinstance(outcome, list))
        self._counter.count(1, len(requests), written)
        return outcomes

    async def _write(self, connection: Connection, requests: list[AppendRequest]) -> list[Any]:
        highest = await self._lock_streams(connection, requests)
        claimed = [request.claim.entity_type for request in requests if request.claim is not None]
        if claimed:
            await self._extras.lock_types(connection, claimed)
        outcomes: list[Any] = []
        accepted: list[tuple[int, AppendRequest]] = []
        commands: list[tuple[Any, ...]] = []
        for index, request in enumerate(requests):
            current = highest[request.persistence_id]
            try:
                check_stream_position(request.persistence_id, current, request.expected)
                if request.claim is not None:
                    await self._extras.claim(connection, request.claim)
            except ClaimRaced:
                raise  # the transaction is aborted: the batch fails, each append retries alone
            except EventActorsError as conflict:
                outcomes.append(conflict)
                continue
            outcomes.append([])
            if request.command is not None:
                commands.append(request.command)
            if request.records:
                highest[request.persistence_id] = request.records[-1].sequence_number
                accepted.append((index, request))
        empty = [name for name, sequence in highest.items() if sequence == 0]
        if empty:  # rows made by _lock_streams for streams whose appends were all refused
            await connection.execute(
                f"DELETE FROM {self._streams} "
                "WHERE persistence_id = ANY($1::text[]) AND highest_sequence = 0",
                empty,
            )
        if commands:
            await self._extras.record(connection, commands)
        count = sum(len(request.records) for _, request in accepted)
        if not count:
            return outcomes
        # From here to commit, this transaction alone draws global positions.
        await connection.execute("SELECT pg_advisory_xact_lock($1)", self._lock)
        last = await connection.fetchval(
            f"SELECT setval('{self._positions}', nextval('{self._positions}') + $1 - 1)", count
        )
        position = last - count + 1
        rows = []
        for index, request in accepted:
            envelopes: list[EventEnvelope] = []
            for record, row in zip(request.records, request.rows, strict=True):
                rows.append((position, *row))
                envelopes.append(envelope_from_record(record, position, self._store))
                position += 1
            outcomes[index] = envelopes
        await connection.executemany(self._insert, rows)
        moved = {request.persistence_id: highest[request.persistence_id] for _, request in accepted}
        await connection.execute(
            f"UPDATE {self._streams} AS s SET highest_sequence = u.highest "
            "FROM unnest($1::text[], $2::bigint[]) AS u(persistence_id, highest) "
            "WHERE s.persistence_id = u.persistence_id",
            list(moved),
            list(moved.values()),
        )
        await connection.execute("SELECT pg_notify($1, $2)", self._channel, str(last))
        return outcomes

    async def _lock_streams(
        self, connection: Connection, requests: list[AppendRequest]
    ) -> dict[str, int]:
        """Locks every stream row of the batch (creating new ones) in sorted order, so that
        each check holds until commit; returns each stream's highest sequence number."""
        entity_types = {
            request.persistence_id: request.records[0].entity_type
            for request in requests
            if request.records
        }
        if entity_types:
            names = sorted(entity_types)
            await connection.execute(
                f"INSERT INTO {self._streams} (persistence_id, entity_type, highest_sequence) "
                "SELECT persistence_id, entity_type, 0 FROM unnest($1::text[], $2::text[]) "
                "AS u(persistence_id, entity_type) ORDER BY persistence_id "
                "ON CONFLICT (persistence_id) DO NOTHING",
                names,
                [entity_types[name] for name in names],
            )
        rows = await connection.fetch(
            f"SELECT persistence_id, highest_sequence FROM {self._streams} "
            "WHERE persistence_id = ANY($1::text[]) ORDER BY persistence_id FOR UPDATE",
            sorted({request.persistence_id for request in requests}),
        )
        highest = {request.persistence_id: 0 for request in requests}
        highest.update((row[0], row[1]) for row in rows)
        return highest
