"""A database written before event versions existed (schema version 1) opens in this release:
read-only it is read as it is, writable it is upgraded in place, and its events read as
version 1 either way."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest
from behaviors_for_tests import Add, Added, TallyBehavior
from postgres_support import DSN

import eventactors as ea
from eventactors.upcasting import unregister_upcaster

pytestmark = pytest.mark.timeout(60)


class VersionedAdded(Added):
    """The same event type, now at version 2 (no upcaster needed for a test of storage)."""

    __type_name__ = "Added"
    __event_version__ = 2


async def write_two(store: ea.Store) -> None:
    engine = ea.Engine(store=store)
    engine.register("tally", TallyBehavior)
    async with engine:
        await engine.send("tally", "t", Add(1))
        await engine.send("tally", "t", Add(2))


def downgrade_sqlite(path: Path) -> None:
    """The file as release 1 left it: no event_version column, schema version 1."""
    with sqlite3.connect(path) as connection:
        connection.execute("ALTER TABLE ea_events DROP COLUMN event_version")
        connection.execute("UPDATE ea_schema_version SET version = 1")


async def test_a_version_1_sqlite_file_is_read_as_it_is_then_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    await write_two(ea.SQLiteStore(path))
    downgrade_sqlite(path)
    reader = ea.SQLiteStore(path, read_only=True)
    try:
        envelopes = await reader.read_all(0, limit=10)
        payloads = await reader.read_stream_payloads("tally|t")
    finally:
        await reader.close()
    assert [(e.sequence_number, e.event_version) for e in envelopes] == [(1, 1), (2, 1)]
    assert [row[3] for row in payloads] == [1, 1]
    with sqlite3.connect(path) as connection:  # reading changed nothing
        assert connection.execute("SELECT version FROM ea_schema_version").fetchall() == [(1,)]

    await write_two(ea.SQLiteStore(path))  # a writable store upgrades the file
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version FROM ea_schema_version").fetchall() == [(2,)]
        versions = connection.execute(
            "SELECT sequence_number, event_version FROM ea_events ORDER BY global_position"
        ).fetchall()
    assert versions == [(1, 1), (2, 1), (3, 1), (4, 1)]


async def test_a_new_event_version_is_written_beside_old_ones(tmp_path: Path) -> None:
    path = tmp_path / "mixed.db"
    await write_two(ea.SQLiteStore(path))

    class NewTally(TallyBehavior):
        events = (VersionedAdded,)

        def handle_command(self, state, command):  # type: ignore[no-untyped-def]
            return VersionedAdded(command.n)

    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("tally", NewTally)
    ea.upcaster("Added", from_version=1)(_unchanged)
    try:
        async with engine:
            reply = await engine.send("tally", "t", Add(3))
            envelopes = [e async for e in engine.events("tally", "t")]
            numbers = [e.event.n for e in envelopes]  # decoded while the upcaster is there
    finally:
        unregister_upcaster("Added", 1)
    assert reply.events[0].event_version == 2
    assert [e.event_version for e in envelopes] == [1, 1, 2]
    assert numbers == [1, 2, 3]


def _unchanged(payload: object) -> object:
    return payload


async def test_a_version_1_postgres_schema_is_upgraded_by_a_writable_store(
    pg_schema: str,
) -> None:
    await write_two(ea.PostgresStore(DSN, schema=pg_schema))
    connection = await asyncpg.connect(DSN)
    try:
        await connection.execute(f'ALTER TABLE "{pg_schema}".ea_events DROP COLUMN event_version')
        await connection.execute(f'UPDATE "{pg_schema}".ea_schema_version SET version = 1')
    finally:
        await connection.close()

    reader = ea.PostgresStore(DSN, schema=pg_schema, read_only=True)
    with pytest.raises(ea.StoreUnavailable, match="open it once with a writable store"):
        await reader.read_all(0, limit=10)
    await reader.close()

    await write_two(ea.PostgresStore(DSN, schema=pg_schema))
    store = ea.PostgresStore(DSN, schema=pg_schema, read_only=True)
    try:
        envelopes = await store.read_all(0, limit=10)
    finally:
        await store.close()
    assert [(e.sequence_number, e.event_version) for e in envelopes] == [
        (1, 1), (2, 1), (3, 1), (4, 1),
    ]  # fmt: skip
    connection = await asyncpg.connect(DSN)
    try:
        version = await connection.fetchval(f'SELECT version FROM "{pg_schema}".ea_schema_version')
    finally:
        await connection.close()
    assert version == 2
