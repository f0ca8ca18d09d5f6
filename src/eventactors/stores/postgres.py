"""The PostgreSQL store: every store protocol in one schema, through an asyncpg pool.

Gap-free global order. A plain sequence is not enough: two transactions can draw positions
10 and 11, and 11 can commit first, so a reader that has seen 11 moves past 10 for good.
Here every append takes one transaction-scoped advisory lock (per schema) just before it draws
positions, and holds it until commit. PostgreSQL makes a transaction visible before it releases
its locks, so the next writer can only draw higher positions after every lower one is visible:
positions become visible in increasing order, and a reader following `read_all` never skips.
Rolled-back transactions leave holes in the numbering, never an event out of order.

Appends are group-committed: while one transaction is written, appends from other entities
queue, and the next transaction carries all of them (`_postgres_append` has the details). The
lock is taken after the stream checks and only around drawing positions, inserting and
notifying, so its hold time is one batch's insert plus the commit.

A command-log entry and an identifier claim go in the transaction of their append
(`_postgres_commands` has how claims are serialized).

Each commit also sends NOTIFY on the schema's channel with the highest position it wrote;
`wait_for_events` uses it (with a slow poll as the fallback) to wake readers at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from asyncpg import Record

from ..errors import EventActorsError, SerializationError
from ..records import CommandRecord, EventEnvelope, EventRecord, IdentifierClaim, PayloadRow
from ..serialization import JsonSerializer, Serializer
from ._common import (
    check_append,
    check_at_time,
    check_extras,
    check_filter,
    check_range,
    decode_event,
    naming_stream,
    reopen_store,
)
from ._group_queue import GroupCommitQueue
from ._postgres_append import EVENT_COLUMNS, AppendRequest, PostgresAppender
from ._postgres_commands import ExtrasWriter, PostgresIdentifiersAndCommands, command_row
from ._postgres_connections import PostgresConnections
from ._postgres_keys import PostgresKeys
from ._postgres_listener import Listener
from ._postgres_rows import aware, describe, event_row, metadata_decoder, out_of_range_event
from ._postgres_schema import check_schema_name, lock_key
from ._postgres_tables import PostgresTables
from .group_commit import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BATCH_BYTES,
    WriteCounter,
    WriteStatistics,
    check_batch_limits,
)

T = TypeVar("T")


class PostgresStore(PostgresTables, PostgresIdentifiersAndCommands, PostgresKeys):
    """Every store protocol in one PostgreSQL schema.

    `connect_timeout` bounds every attempt to reach the server, so a wrong address fails with
    `StoreUnavailable` instead of hanging; `command_timeout` bounds each statement.
    `max_batch`, `max_batch_bytes` and `flush_window` bound the group commit (see
    `eventactors.stores.group_commit`).

    `read_only=True` opens the schema for reading only, for tools beside a running
    application: nothing is created or migrated, every write method raises `WriteRefused`,
    and the server itself refuses writes on these connections. The schema must hold an event
    log, at a version this release reads (see `check_readable`).
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "eventactors",
        serializer: Serializer | None = None,
        min_connections: int = 1,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        command_timeout: float | None = 60.0,
        poll_interval: float = 1.0,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        flush_window: float = 0.0,
        read_only: bool = False,
    ) -> None:
        check_batch_limits(max_batch, max_batch_bytes, flush_window)
        self._options: dict[str, Any] = {
            "schema": schema, "min_connections": min_connections,
            "max_connections": max_connections, "connect_timeout": connect_timeout,
            "command_timeout": command_timeout, "poll_interval": poll_interval,
            "max_batch": max_batch, "max_batch_bytes": max_batch_bytes,
            "flush_window": flush_window, "read_only": read_only,
        }  # fmt: skip
        self.dsn = dsn
        self.schema = check_schema_name(schema)
        self.serializer: Serializer = serializer or JsonSerializer()
        self._poll_interval = poll_interval
        self._where = describe(dsn, schema)
        self._db = PostgresConnections(
            dsn,
            self.schema,
            self._where,
            min_connections=min_connections,
            max_connections=max_connections,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            read_only=bool(read_only),
        )
        self.read_only = bool(read_only)
        self._append_lock = lock_key(schema, "positions")
        self._channel = f"eventactors_{schema}"
        self._listener: Listener | None = None
        self._table = {name: f'"{schema}".ea_{name}' for name in (
            "events", "streams", "snapshots", "durable_state", "offsets", "global_position",
            "identifiers", "commands",
        )}  # fmt: skip
        self._counter = WriteCounter()
        self._extras = ExtrasWriter(self._db, self._table, self.schema)
        appender = PostgresAppender(
            self._db, self._table, self._append_lock, self._channel, self, self._counter,
            self._extras,
        )  # fmt: skip
        self._appends = GroupCommitQueue(
            appender.write_batch,
            max_batch=max_batch,
            max_batch_bytes=max_batch_bytes,
            flush_window=float(flush_window),
        )

    def __repr__(self) -> str:
        return f"PostgresStore({self._where})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as its configuration: see `reopen_store`."""
        return (reopen_store, (type(self), (self.dsn,), self._options, type(self.serializer)))

    async def close(self) -> None:
        """Writes the appends still queued, then closes the pool and the listener; a later
        call reconnects."""
        await self._appends.drain()
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        await self._db.close()

    async def drop_schema(self) -> None:
        """Deletes the schema and everything in it: for tools and tests, never called implicitly."""
        await self.close()
        await self._db.execute_once(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    def decode_event(self, envelope: EventEnvelope) -> Any:
        return decode_event(self.serializer, envelope)

    # -- events ---------------------------------------------------------------------------

    async def append(
        self,
        persistence_id: str,
        records: Sequence[EventRecord],
        expected_sequence_number: int,
        *,
        command: CommandRecord | None = None,
        claim: IdentifierClaim | None = None,
    ) -> list[EventEnvelope]:
        check_append(persistence_id, records, expected_sequence_number)
        check_extras(persistence_id, command, claim)
        records = list(records)
        size = sum(len(record.payload) for record in records)
        try:
            result: list[EventEnvelope] = await self._appends.submit(
                AppendRequest(
                    persistence_id,
                    records,
                    expected_sequence_number,
                    [event_row(record, self.serializer.is_text) for record in records],
                    None if command is None else command_row(command),
                    claim,
                ),
                size=size if command is None else size + len(command.payload),
            )
        except EventActorsError as exc:
            raise naming_stream(exc, persistence_id) from exc.__cause__
        return result

    def write_statistics(self) -> WriteStatistics:
        """Transactions, appends and events this store object has written."""
        return self._counter.snapshot()

    async def read_stream(
        self,
        persistence_id: str,
        from_sequence: int = 1,
        to_sequence: int | None = None,
        limit: int | None = None,
    ) -> list[EventEnvelope]:
        check_range(from_sequence, to_sequence, limit)
        conditions = "persistence_id = $1 AND sequence_number BETWEEN $2 AND $3"
        parameters = (
            persistence_id,
            from_sequence,
            to_sequence if to_sequence is not None else 2**62,
            limit,
        )
        try:
            rows = await self._db.run(
                lambda connection: connection.fetch(
                    f"SELECT {EVENT_COLUMNS} FROM {self._table['events']} WHERE {conditions} "
                    "ORDER BY sequence_number LIMIT $4",
                    *parameters,
                ),
                write=False,
            )
        except OverflowError as exc:  # a timestamp Python cannot hold: name its row
            raise await out_of_range_event(
                self._db, self._table["events"], conditions, "LIMIT $4", parameters, exc
            ) from exc
        return [self._envelope(row) for row in rows]

    async def read_stream_payloads(
        self, persistence_id: str, from_sequence: int = 1, limit: int | None = None
    ) -> list[PayloadRow]:
        check_range(from_sequence, None, limit)
        rows = await self._db.run(
            lambda connection: connection.fetch(
                "SELECT sequence_number, event_type, "
                "coalesce(convert_to(payload_json::text, 'UTF8'), payload_bytes), event_version "
                f"FROM {self._table['events']} "
                "WHERE persistence_id = $1 AND sequence_number >= $2 "
                "ORDER BY sequence_number LIMIT $3",
                persistence_id,
                from_sequence,
                limit,
            ),
            write=False,
        )
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    async def highest_sequence_number(self, persistence_id: str) -> int:
        highest = await self._db.run(
            lambda connection: connection.fetchval(
                f"SELECT highest_sequence FROM {self._table['streams']} WHERE persistence_id = $1",
                persistence_id,
            ),
            write=False,
        )
        return int(highest or 0)

    async def sequence_at(self, persistence_id: str, at_time: datetime) -> int:
        at = aware(check_at_time(at_time))
        sequence = await self._db.run(
            lambda connection: connection.fetchval(
                "SELECT coalesce("
                f"(SELECT min(sequence_number) - 1 FROM {self._table['events']} "
                "WHERE persistence_id = $1 AND timestamp > $2), "
                f"(SELECT highest_sequence FROM {self._table['streams']} "
                "WHERE persistence_id = $1), 0)",
                persistence_id,
                at,
            ),
            write=False,
        )
        return int(sequence)

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        entity_types: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> list[EventEnvelope]:
        check_range(0, None, limit)
        conditions = ["global_position > $1"]
        parameters: list[Any] = [after_position, limit]
        for condition, values in (
            ("entity_type = ANY(${})", check_filter(entity_types, "entity_types")),
            ("event_type = ANY(${})", check_filter(event_types, "event_types")),
            ("tags && ${}::text[]", check_filter(tags, "tags")),
        ):
            if values is not None:
                parameters.append(list(values))
                conditions.append(condition.format(len(parameters)))
        query = (
            f"SELECT {EVENT_COLUMNS} FROM {self._table['events']} "
            f"WHERE {' AND '.join(conditions)} ORDER BY global_position LIMIT $2"
        )
        try:
            rows = await self._db.run(lambda c: c.fetch(query, *parameters), write=False)
        except OverflowError as exc:  # a timestamp Python cannot hold: name its row
            raise await out_of_range_event(
                self._db, self._table["events"], " AND ".join(conditions), "LIMIT $2",
                parameters, exc,
            ) from exc  # fmt: skip
        return [self._envelope(row) for row in rows]

    async def delete_events_to(self, persistence_id: str, to_sequence: int) -> None:
        await self._db.run(
            lambda connection: connection.execute(
                f"DELETE FROM {self._table['events']} "
                "WHERE persistence_id = $1 AND sequence_number <= $2",
                persistence_id,
                to_sequence,
            ),
            write=True,
        )

    async def persistence_ids(self) -> list[str]:
        rows = await self._db.run(
            lambda connection: connection.fetch(
                f"SELECT persistence_id FROM {self._table['streams']} ORDER BY persistence_id"
            ),
            write=False,
        )
        return [row[0] for row in rows]

    async def wait_for_events(self, after_position: int, timeout: float) -> bool:
        """Waits until an event past `after_position` is committed by anyone (True), or until
        `timeout` (False). Woken by NOTIFY; polls every `poll_interval` in case one is lost."""
        if self._listener is None:
            self._listener = Listener(
                self._db.connect, self._channel, self.head_position, self._poll_interval
            )
        return await self._listener.wait(after_position, timeout)

    async def head_position(self) -> int:
        head = await self._db.run(
            lambda connection: connection.fetchval(
                f"SELECT coalesce(max(global_position), 0) FROM {self._table['events']}"
            ),
            write=False,
        )
        return int(head)

    def _envelope(self, row: Record) -> EventEnvelope:
        # By index, in _EVENT_COLUMNS order: a lookup by name costs a dict probe per field.
        (position, event_id, persistence_id, entity_type, entity_id, sequence_number,
         event_type, payload_json, payload_bytes, timestamp, tags, metadata, command_id,
         correlation_id, event_version) = row  # fmt: skip
        try:  # a row written behind the store's back may not fit: refused, never passed on
            if timestamp.tzinfo is None or sequence_number < 1 or event_version < 1:
                raise ValueError(  # 'infinity' timestamps come back naive
                    f"timestamp {timestamp}, sequence number {sequence_number}, "
                    f"event version {event_version}"
                )
            if tags:
                tags = tuple(tags)
                "".join(tags)  # TypeError for a NULL or a nested array: the fastest check
            return EventEnvelope(
                str(event_id), persistence_id, entity_type, entity_id, sequence_number,
                position, event_type, timestamp, tags or (),
                {} if metadata == "{}" else metadata_decoder.decode(metadata), command_id,
                correlation_id,
                payload_bytes if payload_json is None else payload_json.encode("utf-8"),
                self.decode_event, event_version=event_version,
            )  # fmt: skip
        except (TypeError, ValueError, msgspec.DecodeError) as exc:
            raise SerializationError(
                f"corrupt event row in {self._where}: stream {persistence_id!r}, sequence "
                f"{sequence_number!r}, global position {position}: {exc}"
            ) from exc
