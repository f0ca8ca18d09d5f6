"""Appending to SQLite: all the appends of one group commit in a few statements.

Run on the writer thread, inside the batch's transaction. The streams of the whole batch are
read in one query and every append's expectation is checked against them in arrival order, so
a conflict is found before anything is written and fails only its own append. The events of
all the other appends then go in with one `executemany`, and the streams move on with
another. Python threads share one interpreter lock with the event loop, so statements saved
here are commands per second gained there.

If the database refuses the batch's rows (a constraint or trigger of its own), the batch is
undone and its appends are written one savepoint each, so that only the bad one fails.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..errors import EventActorsError, WriteRefused
from ..records import CommandRecord, EventEnvelope, EventRecord, IdentifierClaim
from ._common import check_stream_position, envelope_from_record
from ._sqlite_extras import INSERT_COMMAND, command_row, write_claim
from ._sqlite_worker import translate_error, undo

INSERT_EVENT = (
    "INSERT INTO ea_events (event_id, persistence_id, entity_type, entity_id, sequence_number, "
    "event_type, payload, timestamp, tags, metadata, command_id, correlation_id, event_version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_MOVE_STREAM = (
    "INSERT INTO ea_streams (persistence_id, entity_type, highest_sequence) VALUES (?, ?, ?) "
    "ON CONFLICT (persistence_id) DO UPDATE SET highest_sequence = excluded.highest_sequence"
)
_QUERY_CHUNK = 500  # streams per lookup, well under SQLite's limit on bound parameters

Outcome = tuple[bool, Any]  # (True, envelopes) or (False, the append's error)


class AppendJob:
    """One append, ready to be written: its rows are already encoded on the event loop."""

    __slots__ = (
        "claim",
        "command",
        "entity_type",
        "expected",
        "last",
        "persistence_id",
        "records",
        "rows",
        "store",
    )

    def __init__(
        self,
        persistence_id: str,
        expected: int,
        records: list[EventRecord],
        rows: list[tuple[Any, ...]],
        store: Any,
        command: CommandRecord | None = None,
        claim: IdentifierClaim | None = None,
    ) -> None:
        self.command = command
        self.claim = claim
        self.persistence_id = persistence_id
        self.expected = expected
        self.records = records
        self.rows = rows
        self.entity_type = records[0].entity_type if records else ""
        self.last = records[-1].sequence_number if records else expected
        self.store = store

    def __call__(self, connection: sqlite3.Connection) -> list[EventEnvelope]:
        """Writes this append alone."""
        ok, value = write_appends_together(connection, [self])[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def envelopes(self, first_position: int) -> list[EventEnvelope]:
        return [
            envelope_from_record(record, first_position + index, self.store)
            for index, record in enumerate(self.records)
        ]


def write_appends(
    connection: sqlite3.Connection, jobs: list[AppendJob], database: str
) -> list[Outcome]:
    """Every job's outcome, in order; the batch's writes are kept only for the successes."""
    if len(jobs) > 1:
        connection.execute("SAVEPOINT appends")
        try:
            outcomes = write_appends_together(connection, jobs)
        except Exception as exc:  # a refused or unbindable row: find it one append at a time
            undo(connection, "appends", exc, database)
        else:
            connection.execute("RELEASE appends")
            return outcomes
    return [_write_alone(connection, job, database) for job in jobs]


def write_appends_together(connection: sqlite3.Connection, jobs: list[AppendJob]) -> list[Outcome]:
    """Checks every job, then writes the ones that passed; raises only if a row could not be
    written, leaving the caller to undo the batch."""
    highest = _highest(connection, {job.persistence_id for job in jobs})
    outcomes: list[Outcome] = []
    accepted: list[tuple[int, AppendJob]] = []
    for job in jobs:
        try:
            check_stream_position(
                job.persistence_id, highest.get(job.persistence_id, 0), job.expected
            )
            if job.claim is not None:  # rare (a creation, a change of keys): written at once
                write_claim(connection, job.claim)
        except EventActorsError as conflict:
            outcomes.append((False, conflict))
            continue
        outcomes.append((True, []))
        if job.rows:
            highest[job.persistence_id] = job.last
            accepted.append((len(outcomes) - 1, job))
    commands = [  # refused appends' entries are left out with their events
        command_row(job.command)
        for job, (ok, _) in zip(jobs, outcomes, strict=True)
        if ok and job.command is not None
    ]
    if commands:
        connection.executemany(INSERT_COMMAND, commands)
    rows = [row for _, job in accepted for row in job.rows]
    if not rows:
        return outcomes
    if len(rows) == 1:
        cursor = connection.execute(INSERT_EVENT, rows[0])
        position: int = cursor.lastrowid or 0
    else:
        cursor = connection.executemany(INSERT_EVENT, rows)
    if cursor.rowcount != len(rows):  # a trigger's RAISE(IGNORE) skipped a row
        raise WriteRefused(
            f"the database silently skipped {len(rows) - cursor.rowcount} of {len(rows)} "
            "events (a trigger's RAISE(IGNORE)?); nothing of this append was written"
        )
    if len(rows) > 1:
        # One transaction holds the write lock, so AUTOINCREMENT numbered the rows in a run.
        position = connection.execute("SELECT last_insert_rowid()").fetchone()[0] - len(rows) + 1
    moved = {job.persistence_id: job.entity_type for _, job in accepted}
    connection.executemany(
        _MOVE_STREAM, [(name, kind, highest[name]) for name, kind in moved.items()]
    )
    for index, job in accepted:
        outcomes[index] = (True, job.envelopes(position))
        position += len(job.records)
    return outcomes


def _write_alone(connection: sqlite3.Connection, job: AppendJob, database: str) -> Outcome:
    connection.execute("SAVEPOINT append")
    try:
        outcome = write_appends_together(connection, [job])[0]
    except Exception as exc:
        undo(connection, "append", exc, database)
        return (False, translate_error(exc, database))
    connection.execute("RELEASE append")
    return outcome


def _highest(connection: sqlite3.Connection, persistence_ids: set[str]) -> dict[str, int]:
    names = list(persistence_ids)
    highest: dict[str, int] = {}
    for start in range(0, len(names), _QUERY_CHUNK):
        chunk = names[start : start + _QUERY_CHUNK]
        highest.update(
            connection.execute(
                "SELECT persistence_id, highest_sequence FROM ea_streams "
                f"WHERE persistence_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
        )
    return highest
