"""The SQLite schema, created on first use, and its version check; and read-only opening,
which prepares nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import StoreUnavailable

SCHEMA_VERSION = 2  # 2 added ea_events.event_version

_TABLES = """
CREATE TABLE IF NOT EXISTS ea_schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ea_events (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    persistence_id  TEXT    NOT NULL,
    sequence_number INTEGER NOT NULL,
    event_id        TEXT    NOT NULL,
    entity_type     TEXT    NOT NULL,
    entity_id       TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    payload                 NOT NULL,  -- JSON text for text serializers, else a BLOB
    timestamp       TEXT    NOT NULL,  -- ISO 8601, UTC
    tags            TEXT    NOT NULL DEFAULT '[]',
    metadata        TEXT    NOT NULL DEFAULT '{}',
    command_id      TEXT    NOT NULL DEFAULT '',
    correlation_id  TEXT    NOT NULL DEFAULT '',
    event_version   INTEGER NOT NULL DEFAULT 1,
    UNIQUE (persistence_id, sequence_number)
);
CREATE INDEX IF NOT EXISTS ea_events_by_entity_type ON ea_events (entity_type, global_position);
CREATE TABLE IF NOT EXISTS ea_streams (
    persistence_id   TEXT PRIMARY KEY,
    entity_type      TEXT NOT NULL,
    highest_sequence INTEGER NOT NULL  -- survives deletion of the events themselves
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ea_snapshots (
    persistence_id  TEXT    NOT NULL,
    sequence_number INTEGER NOT NULL,
    state_type      TEXT    NOT NULL,
    payload                 NOT NULL,
    timestamp       TEXT    NOT NULL,
    PRIMARY KEY (persistence_id, sequence_number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ea_durable_state (
    persistence_id TEXT PRIMARY KEY,
    revision       INTEGER NOT NULL,
    state_type     TEXT    NOT NULL,
    payload                NOT NULL,
    timestamp      TEXT    NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ea_identifiers (
    entity_type TEXT NOT NULL,
    identifiers TEXT NOT NULL,  -- the canonical key set: JSON, keys sorted
    entity_id   TEXT NOT NULL,
    PRIMARY KEY (entity_type, identifiers),
    UNIQUE (entity_type, entity_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ea_commands (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    command_id     TEXT    NOT NULL,
    persistence_id TEXT    NOT NULL,
    entity_type    TEXT    NOT NULL,
    entity_id      TEXT    NOT NULL,
    command_type   TEXT    NOT NULL,
    payload        BLOB    NOT NULL,
    timestamp      TEXT    NOT NULL,  -- ISO 8601, UTC
    outcome        TEXT    NOT NULL,
    reason         TEXT    NOT NULL DEFAULT '',
    event_ids      TEXT    NOT NULL DEFAULT '[]',
    revision       INTEGER NOT NULL,
    correlation_id TEXT    NOT NULL DEFAULT '',
    metadata       TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS ea_commands_by_stream ON ea_commands (persistence_id, position);
CREATE TABLE IF NOT EXISTS ea_offsets (
    projection TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
) WITHOUT ROWID;
"""


def ensure_schema(connection: sqlite3.Connection, path: str) -> None:
    """Creates the tables if missing, in one transaction; refuses a newer schema's file
    before touching it."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        has_version_table = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ea_schema_version'"
        ).fetchone()
        if has_version_table:
            version = connection.execute("SELECT max(version) FROM ea_schema_version").fetchone()[0]
            if version is not None and version > SCHEMA_VERSION:
                raise _too_new(path, version)
        for statement in _TABLES.split(";"):
            if statement.strip():
                connection.execute(statement)
        if not _has_event_version(connection):  # a version 1 file: events written before
            connection.execute(  # versions existed are version 1
                "ALTER TABLE ea_events ADD COLUMN event_version INTEGER NOT NULL DEFAULT 1"
            )
        connection.execute("DELETE FROM ea_schema_version")
        connection.execute("INSERT INTO ea_schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _too_new(path: str, version: int) -> StoreUnavailable:
    return StoreUnavailable(
        f"{path} has eventactors schema version {version}; this version of "
        f"eventactors understands up to {SCHEMA_VERSION}: upgrade eventactors "
        "to open it"
    )


def connect_read_only(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection SQLite itself keeps from writing (`mode=ro`): the file's journal mode,
    tables and version row stay as they are, and a read-only file or directory can be read.

    The file must hold an event log at a version this release reads: a newer one is refused,
    as `ensure_schema` refuses it; an older one (fewer tables) is read as it is, and a read of
    a table it lacks fails with SQLite's "no such table", since nothing here migrates it."""
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=True)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot open {path} as an SQLite store: {exc}") from exc
    try:
        connection.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        check_readable(connection, path)
    except sqlite3.DatabaseError as exc:  # not a database, or not one SQLite can read
        connection.close()
        raise StoreUnavailable(f"cannot read {path} as an SQLite store: {exc}") from exc
    except BaseException:
        connection.close()
        raise
    return connection


def check_readable(connection: sqlite3.Connection, path: str) -> None:
    """Refuses a file without an event log, or with a newer schema than this release's."""
    tables = {
        name
        for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    if "ea_events" not in tables:
        raise StoreUnavailable(f"no such store: {path} holds no eventactors event log")
    if "ea_schema_version" in tables:
        version = connection.execute("SELECT max(version) FROM ea_schema_version").fetchone()[0]
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise _too_new(path, version)
    if not _has_event_version(connection):
        # A version 1 file, which a read-only connection must not migrate: a temporary view
        # (in memory, shadowing the table for this connection only) reads its events as
        # version 1, as migrating would.
        connection.execute(
            "CREATE TEMP VIEW ea_events AS SELECT *, 1 AS event_version FROM main.ea_events"
        )


def _has_event_version(connection: sqlite3.Connection) -> bool:
    columns = connection.execute("SELECT name FROM pragma_table_info('ea_events')").fetchall()
    return ("event_version",) in columns
