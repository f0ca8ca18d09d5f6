"""The embedded SQLite store: one file, WAL mode, full durability by default.

Writes go through one writer thread that commits whatever has queued up in one transaction
(group commit); reads go through a second connection on its own thread, which WAL lets run
beside the writer. Global positions come from an AUTOINCREMENT key: SQLite admits one write
transaction at a time, so positions commit in increasing order and a reader following
`read_all` can never skip an event.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from ..errors import EventActorsError, StoreUnavailable, WriteRefused
from ..records import CommandRecord, EventEnvelope, EventRecord, IdentifierClaim, PayloadRow
from ..serialization import JsonSerializer, Serializer
from ._common import (
    check_append,
    check_extras,
    check_filter,
    check_range,
    decode_event,
    naming_stream,
    reopen_store,
)
from ._notify import AppendSignal
from ._sqlite_append import AppendJob, write_appends
from ._sqlite_extras import SQLiteExtras
from ._sqlite_keys import SQLiteKeys
from ._sqlite_rows import envelope_from_row, event_row, payload_row, readable_events, row_integer
from ._sqlite_schema import connect_read_only, ensure_schema
from ._sqlite_tables import SQLiteTables
from ._sqlite_worker import SQLiteWorker
from .group_commit import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BATCH_BYTES,
    WriteCounter,
    WriteStatistics,
    check_batch_limits,
)

T = TypeVar("T")
Synchronous = Literal["FULL", "NORMAL", "EXTRA"]

_EVENT_COLUMNS = (
    "global_position, event_id, persistence_id, entity_type, entity_id, sequence_number, "
    "event_type, payload, timestamp, tags, metadata, command_id, correlation_id, event_version"
)


class SQLiteStore(SQLiteTables, SQLiteExtras, SQLiteKeys):
    """Every store protocol in one SQLite file.

    `synchronous="FULL"` (the default) makes every acknowledged write survive power loss;
    `"NORMAL"` keeps the database consistent but may lose the last commits on power loss
    (not on a process crash), for a higher write rate. `max_batch`, `max_batch_bytes` and
    `flush_window` bound the group commit (see `eventactors.stores.group_commit`).

    `read_only=True` opens the file for reading only, for tools beside a running
    application: no writer thread, no schema created or migrated, no switch to WAL, and
    SQLite itself refuses writes (`mode=ro`); every write method raises `WriteRefused`. The
    file must hold an event log, at a schema version this release reads (see
    `connect_read_only`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        serializer: Serializer | None = None,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 5.0,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        flush_window: float = 0.0,
        poll_interval: float = 1.0,
        read_only: bool = False,
    ) -> None:
        self._options: dict[str, Any] = {
            "synchronous": synchronous, "busy_timeout": busy_timeout, "max_batch": max_batch,
            "max_batch_bytes": max_batch_bytes, "flush_window": flush_window,
            "poll_interval": poll_interval, "read_only": read_only,
        }  # fmt: skip
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}")
        check_batch_limits(max_batch, max_batch_bytes, flush_window)
        self.path = str(path)
        if self.path in ("", ":memory:") or self.path.startswith("file::memory:"):
            raise ValueError(
                "SQLiteStore needs a file: its writer and reader connections would each get a "
                "private in-memory database. Use ea.MemoryStore() for an in-memory store."
            )
        self.serializer: Serializer = serializer or JsonSerializer()
        self.read_only = bool(read_only)
        self._synchronous = synchronous
        self._busy_timeout_ms = int(busy_timeout * 1000)
        self._batch_limits = (max_batch, max_batch_bytes, float(flush_window))
        self._counter = WriteCounter()
        self._writer: SQLiteWorker | None = None
        self._reader: SQLiteWorker | None = None
        self._opening = asyncio.Lock()
        # Other processes may write the same file: their appends are seen by polling.
        self._signal = AppendSignal(self.head_position, poll_interval)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}{', read_only=True' if self.read_only else ''})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as its configuration: see `reopen_store`."""
        return (reopen_store, (type(self), (self.path,), self._options, type(self.serializer)))

    # -- connections ----------------------------------------------------------------------

    def _connect(self, *, create_schema: bool) -> sqlite3.Connection:
        if self.read_only:
            return connect_read_only(self.path, self._busy_timeout_ms)
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        try:
            connection.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            if create_schema:
                self._prepare(connection)
            connection.execute(f"PRAGMA synchronous = {self._synchronous}")
        except BaseException:
            connection.close()
            raise
        return connection

    def _prepare(self, connection: sqlite3.Connection) -> None:
        """Switches the file to WAL and creates the schema. While another connection is
        switching a new file to WAL, SQLite can report it locked without waiting for the busy
        timeout; so this retries, for up to that timeout, before giving up."""
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        delay = 0.005
        while True:
            try:
                mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreUnavailable(
                        f"{self.path}: SQLite refused WAL mode (journal_mode is {mode}); "
                        "the store needs WAL for a reader beside its writer"
                    )
                ensure_schema(connection, self.path)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                    raise
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                time.sleep(delay)  # on the worker thread, never the event loop
                delay = min(delay * 2, 0.1)

    async def _workers(self) -> tuple[SQLiteWorker | None, SQLiteWorker]:
        """The writer (None when read-only) and the reader, started on first use."""
        if self._reader is None:
            async with self._opening:
                if self._reader is None:
                    if not self.read_only:
                        self._writer = await self._start_writer()
                    self._reader = SQLiteWorker(
                        "eventactors-sqlite-reader",
                        self.path,
                        lambda: self._connect(create_schema=False),
                        transactional=False,
                        busy_timeout=self._busy_timeout_ms / 1000,
                    )
        return self._writer, self._reader

    async def _start_writer(self) -> SQLiteWorker:
        writer = SQLiteWorker(
            "eventactors-sqlite-writer",
            self.path,
            lambda: self._connect(create_schema=True),
            transactional=True,
            max_batch=self._batch_limits[0],
            max_batch_bytes=self._batch_limits[1],
            flush_window=self._batch_limits[2],
            counter=self._counter,
            write_appends=write_appends,
            busy_timeout=self._busy_timeout_ms / 1000,
        )
        try:
            await writer.submit(lambda connection: None)  # schema exists after this
        except BaseException:
            await writer.stop()
            raise
        return writer

    async def _write(
        self, job: Callable[[sqlite3.Connection], T], *, size: int = 0, events: int = -1
    ) -> T:
        if self.read_only:
            raise WriteRefused(
                f"SQLite {self.path} is open read-only (read_only=True): nothing was written"
            )
        writer, _ = await self._workers()
        assert writer is not None
        return await writer.submit(job, size=size, events=events)

    async def _read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        _, reader = await self._workers()
        return await reader.submit(job)

    def write_statistics(self) -> WriteStatistics:
        """Transactions, appends and events this store object has written."""
        return self._counter.snapshot()

    async def close(self) -> None:
        """Waits for queued writes, then closes both connections; a later call reopens."""
        async with self._opening:  # an open in progress finishes first, then is closed
            writer, reader = self._writer, self._reader
            self._writer = self._reader = None
        for worker in (writer, reader):
            if worker is not None:
                await worker.stop()

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
        text = self.serializer.is_text
        job = AppendJob(
            persistence_id,
            expected_sequence_number,
            records,
            [event_row(record, text) for record in records],
            self,
            command,
            claim,
        )
        size = sum(len(record.payload) for record in records)
        try:
            envelopes = await self._write(job, size=size, events=len(records))
        except EventActorsError as exc:
            raise naming_stream(exc, persistence_id) from exc.__cause__
        if envelopes:
            self._signal.notify()
        return envelopes

    async def read_stream(
        self,
        persistence_id: str,
        from_sequence: int = 1,
        to_sequence: int | None = None,
        limit: int | None = None,
    ) -> list[EventEnvelope]:
        check_range(from_sequence, to_sequence, limit)
        upper = to_sequence if to_sequence is not None else 2**62
        row_limit = limit if limit is not None else -1
        return await self._read(
            lambda connection: self._envelopes(
                connection,
                f"SELECT {_EVENT_COLUMNS} FROM ea_events WHERE persistence_id = ? "
                "AND sequence_number BETWEEN ? AND ? UNION ALL "
                # A text or blob sequence number (a corrupt row) sorts after every number:
                # selected too, from the end of the index, so that it fails loudly instead of
                # vanishing. (An OR here would cost the index range scan.)
                f"SELECT {_EVENT_COLUMNS} FROM ea_events WHERE persistence_id = ? "
                f"AND sequence_number > {2**63 - 1} ORDER BY sequence_number LIMIT ?",
                (persistence_id, from_sequence, upper, persistence_id, row_limit),
                ("persistence_id = ?", (persistence_id,)),
            )
        )

    async def read_stream_payloads(
        self, persistence_id: str, from_sequence: int = 1, limit: int | None = None
    ) -> list[PayloadRow]:
        check_range(from_sequence, None, limit)
        path = self.path

        def query(connection: sqlite3.Connection) -> list[PayloadRow]:
            with readable_events(connection, path, "persistence_id = ?", (persistence_id,)):
                rows = connection.execute(
                    "SELECT sequence_number, event_type, payload, event_version FROM ea_events "
                    # No upper bound: a text or blob sequence number (a corrupt row) sorts
                    # after every number, so it is selected too, and refused by payload_row.
                    "WHERE persistence_id = ? AND sequence_number >= ? "
                    "ORDER BY sequence_number LIMIT ?",
                    (persistence_id, from_sequence, limit if limit is not None else -1),
                ).fetchall()
            return [payload_row(row, persistence_id, path) for row in rows]

        return await self._read(query)

    async def highest_sequence_number(self, persistence_id: str) -> int:
        return await self._read(lambda connection: _highest(connection, persistence_id))

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
        conditions = ["global_position > ?"]
        parameters: list[Any] = [after_position]
        for column, values in (
            ("entity_type", check_filter(entity_types, "entity_types")),
            ("event_type", check_filter(event_types, "event_types")),
        ):
            if values is not None:
                conditions.append(f"{column} IN ({', '.join('?' * len(values))})")
                parameters.extend(values)
        scope = (" AND ".join(conditions), tuple(parameters))  # to name a corrupt row
        selected_tags = check_filter(tags, "tags")
        if selected_tags is not None:
            conditions.append(
                "EXISTS (SELECT 1 FROM json_each(ea_events.tags) WHERE json_each.value IN "
                f"({', '.join('?' * len(selected_tags))}))"
            )
            parameters.extend(selected_tags)
        query = (
            f"SELECT {_EVENT_COLUMNS} FROM ea_events WHERE {' AND '.join(conditions)} "
            "ORDER BY global_position LIMIT ?"
        )
        return await self._read(
            lambda connection: self._envelopes(connection, query, (*parameters, limit), scope)
        )

    async def head_position(self) -> int:
        return await self._read(
            lambda connection: int(
                connection.execute(
                    "SELECT coalesce(max(global_position), 0) FROM ea_events"
                ).fetchone()[0]
            )
        )

    async def wait_for_events(self, after_position: int, timeout: float) -> bool:
        return await self._signal.wait(after_position, timeout)

    async def delete_events_to(self, persistence_id: str, to_sequence: int) -> None:
        await self._write(
            lambda connection: connection.execute(
                "DELETE FROM ea_events WHERE persistence_id = ? AND sequence_number <= ?",
                (persistence_id, to_sequence),
            )
        )

    async def persistence_ids(self) -> list[str]:
        return await self._read(
            lambda connection: [
                row[0]
                for row in connection.execute(
                    "SELECT persistence_id FROM ea_streams ORDER BY persistence_id"
                )
            ]
        )

    def _envelopes(
        self,
        connection: sqlite3.Connection,
        query: str,
        parameters: tuple[Any, ...],
        scope: tuple[str, tuple[Any, ...]],
    ) -> list[EventEnvelope]:
        """The envelopes of the rows `query` selects; `scope` (conditions and parameters)
        selects at least those rows, to find a corrupt one that cannot even be fetched."""
        with readable_events(connection, self.path, *scope):
            rows = connection.execute(query, parameters)
            try:
                return [envelope_from_row(row, self.decode_event, self.path) for row in rows]
            except BaseException:
                # A cursor left unfinished keeps its read transaction open for as long as the
                # error (and its traceback) lives: the reader would see the file as it was.
                rows.close()
                raise


def _highest(connection: sqlite3.Connection, persistence_id: str) -> int:
    row = connection.execute(
        "SELECT highest_sequence FROM ea_streams WHERE persistence_id = ?", (persistence_id,)
    ).fetchone()
    return row_integer(row[0], f"highest sequence of stream {persistence_id!r}") if row else 0
