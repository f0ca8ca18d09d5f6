"""The PostgreSQL schema, created on first use under a configurable schema name."""

from __future__ import annotations

import hashlib
import re

import asyncpg

from ..errors import StoreUnavailable

SCHEMA_VERSION = 2  # 2 added ea_events.event_version
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,47}")

_DDL = """
CREATE TABLE IF NOT EXISTS {s}.ea_schema_version (
    version integer NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS {s}.ea_global_position;
CREATE TABLE IF NOT EXISTS {s}.ea_events (
    global_position bigint      PRIMARY KEY,
    persistence_id  text        NOT NULL,
    sequence_number bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    entity_type     text        NOT NULL,
    entity_id       text        NOT NULL,
    event_type      text        NOT NULL,
    payload_json    jsonb,                  -- for serializers that produce JSON
    payload_bytes   bytea,                  -- for the others (protobuf)
    timestamp       timestamptz NOT NULL,
    tags            text[]      NOT NULL DEFAULT '{{}}',
    metadata        jsonb       NOT NULL DEFAULT '{{}}',
    command_id      text        NOT NULL DEFAULT '',
    correlation_id  text        NOT NULL DEFAULT '',
    event_version   integer     NOT NULL DEFAULT 1,
    CONSTRAINT ea_events_stream_sequence UNIQUE (persistence_id, sequence_number),
    CONSTRAINT ea_events_one_payload CHECK ((payload_json IS NULL) <> (payload_bytes IS NULL))
);
CREATE INDEX IF NOT EXISTS ea_events_by_entity_type ON {s}.ea_events (entity_type, global_position);
CREATE TABLE IF NOT EXISTS {s}.ea_streams (
    persistence_id   text   PRIMARY KEY,
    entity_type      text   NOT NULL,
    highest_sequence bigint NOT NULL  -- survives deletion of the events themselves
);
CREATE TABLE IF NOT EXISTS {s}.ea_snapshots (
    persistence_id  text        NOT NULL,
    sequence_number bigint      NOT NULL,
    state_type      text        NOT NULL,
    payload_json    jsonb,
    payload_bytes   bytea,
    timestamp       timestamptz NOT NULL,
    PRIMARY KEY (persistence_id, sequence_number)
);
CREATE TABLE IF NOT EXISTS {s}.ea_durable_state (
    persistence_id text        PRIMARY KEY,
    revision       bigint      NOT NULL,
    state_type     text        NOT NULL,
    payload_json   jsonb,
    payload_bytes  bytea,
    timestamp      timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.ea_offsets (
    projection text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.ea_identifiers (
    entity_type text NOT NULL,
    entity_id   text NOT NULL,
    identifiers text NOT NULL,  -- the canonical key set: JSON, keys sorted
    PRIMARY KEY (entity_type, entity_id),  -- one key set per entity
    CONSTRAINT ea_identifiers_taken UNIQUE (entity_type, identifiers)  -- one entity per key set
);
CREATE TABLE IF NOT EXISTS {s}.ea_commands (
    entry          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- the write order
    command_id     text        NOT NULL,
    persistence_id text        NOT NULL,
    entity_type    text        NOT NULL,
    entity_id      text        NOT NULL,
    command_type   text        NOT NULL,
    payload        bytea       NOT NULL,
    timestamp      timestamptz NOT NULL,
    outcome        text        NOT NULL,
    reason         text        NOT NULL DEFAULT '',
    event_ids      text[]      NOT NULL DEFAULT '{{}}',
    revision       bigint      NOT NULL,
    correlation_id text        NOT NULL DEFAULT '',
    metadata       jsonb       NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS ea_commands_by_stream ON {s}.ea_commands (persistence_id, entry);
-- Version 2: events written before versions existed are version 1 (a catalog-only change).
ALTER TABLE {s}.ea_events ADD COLUMN IF NOT EXISTS event_version integer NOT NULL DEFAULT 1;
"""
# Every table the DDL creates: a schema missing one (made by an earlier release, which had
# fewer) is completed by running the DDL again, which also adds the columns of later versions.
_TABLES = (
    "ea_schema_version", "ea_events", "ea_streams", "ea_snapshots", "ea_durable_state",
    "ea_offsets", "ea_identifiers", "ea_commands",
)  # fmt: skip


def check_schema_name(name: str) -> str:
    """Schema names are plain lower-case identifiers, so they can be quoted without surprises."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"schema must be a lower-case identifier of at most 48 characters "
            f"(letters, digits, underscores, not starting with a digit), got {name!r}"
        )
    return name


def lock_key(schema: str, purpose: str) -> int:
    """A stable 64-bit advisory-lock key for one purpose within one schema."""
    digest = hashlib.blake2b(f"eventactors:{schema}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def ensure_schema(
    connection: asyncpg.Connection, schema: str, where: str, lock_timeout: float
) -> None:
    """Creates the schema and its tables if missing (adding the tables of later releases to an
    existing schema); refuses one written by a newer version.

    A complete schema at this version is only read, so a read-only server (a standby) can be
    opened for reading. Creation runs under an advisory lock, so that engines starting together
    do not race, and waits for it at most `lock_timeout` seconds.
    """
    quoted = f'"{schema}"'
    async with connection.transaction():
        await connection.execute(f"SET LOCAL lock_timeout = {int(lock_timeout * 1000)}")
        version = await _stored_version(connection, schema, quoted)
        if version == SCHEMA_VERSION and await _complete(connection, schema):
            return
        await connection.execute("SELECT pg_advisory_xact_lock($1)", lock_key(schema, "schema"))
        version = await _stored_version(connection, schema, quoted)
        if version == SCHEMA_VERSION and await _complete(connection, schema):
            # Completed by whoever held the lock before. Running the DDL again would take
            # share locks on busy tables (CREATE INDEX IF NOT EXISTS), one after the other,
            # and could deadlock with the writes of the stores already open.
            return
        if version is not None and version > SCHEMA_VERSION:
            raise _too_new(where, schema, version)
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        await connection.execute(_DDL.format(s=quoted))
        await connection.execute(f"DELETE FROM {quoted}.ea_schema_version")
        await connection.execute(
            f"INSERT INTO {quoted}.ea_schema_version (version) VALUES ($1)", SCHEMA_VERSION
        )


async def _complete(connection: asyncpg.Connection, schema: str) -> bool:
    present = await connection.fetchval(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = $1 AND table_name = ANY($2::text[])",
        schema,
        list(_TABLES),
    )
    return bool(present == len(_TABLES))


async def _stored_version(connection: asyncpg.Connection, schema: str, quoted: str) -> int | None:
    exists = await connection.fetchval(
        "SELECT 1 FROM information_schema.tables "
        "WHERE table_schema = $1 AND table_name = 'ea_schema_version'",
        schema,
    )
    if not exists:
        return None
    version: int | None = await connection.fetchval(
        f"SELECT max(version) FROM {quoted}.ea_schema_version"
    )
    return version


def _too_new(where: str, schema: str, version: int) -> StoreUnavailable:
    return StoreUnavailable(
        f"{where} schema {schema!r} has eventactors schema version {version}; this "
        f"version of eventactors understands up to {SCHEMA_VERSION}: upgrade it"
    )


async def check_readable(connection: asyncpg.Connection, schema: str, where: str) -> None:
    """What a read-only store checks instead of `ensure_schema`, creating nothing: the schema
    must hold an event log, at a version this release reads. A newer one is refused; an older
    one (fewer tables) is read as it is, and a read of a table it lacks fails."""
    found = await connection.fetchval("SELECT to_regclass($1)", f'"{schema}".ea_events')
    if found is None:
        raise StoreUnavailable(f"no such store: {where} holds no eventactors event log")
    version = await _stored_version(connection, schema, f'"{schema}"')
    if version is not None and version > SCHEMA_VERSION:
        raise _too_new(where, schema, version)
    has_event_version = await connection.fetchval(
        "SELECT 1 FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name = 'ea_events' AND column_name = 'event_version'",
        schema,
    )
    if not has_event_version:
        raise StoreUnavailable(
            f"{where} schema {schema!r} was written by an earlier eventactors (schema version "
            f"{version or 1}) and has no event versions: open it once with a writable store "
            "to upgrade it, then read it"
        )
