"""`read_only=True` stores: they read what a running application wrote, and never change it.

On a real SQLite file and a real PostgreSQL schema: no schema created or migrated, no journal
mode switched, every write refused with `WriteRefused`, a newer schema version refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from eventactors_examples.bank.domain import Deposited, Opened
from postgres_support import DSN
from test_inspection import DAY, bank, write

import eventactors as ea
from eventactors.records import Snapshot


def fingerprint(path: Path) -> tuple[str, bytes]:
    """The bytes of the database and of its write-ahead log. (A reader of a WAL file leaves
    an empty log and a shared-memory index beside it, as any SQLite reader does: neither
    holds data.)"""
    wal = path.with_name(path.name + "-wal")
    return hashlib.sha256(path.read_bytes()).hexdigest(), wal.read_bytes() if wal.exists() else b""


@pytest_asyncio.fixture
async def bank_db(tmp_path) -> AsyncIterator[Path]:
    """The bank of `test_inspection.bank` in a closed SQLite file (6 events)."""
    path = tmp_path / "bank.db"
    store = ea.SQLiteStore(path)
    await bank(store)
    await store.save_offset("balances", 4)
    await store.close()
    yield path


async def writes(store: ea.Store) -> list[object]:
    """Every kind of write a store offers; each must be refused."""
    refused: list[object] = []
    attempts = [
        lambda: write(store, "account", "ann", Deposited(1)),
        lambda: store.save_offset("balances", 6),
        lambda: store.reset_offset("balances"),
        lambda: store.delete_events_to("account|ann", 3),
        lambda: store.save_snapshot(
            Snapshot("account|ann", 3, "Account", b'{"balance": 105}', DAY)
        ),
    ]
    for attempt in attempts:
        with pytest.raises(ea.WriteRefused, match="read-only") as refusal:
            await attempt()
        refused.append(refusal.value)
    return refused


# -- SQLite -------------------------------------------------------------------------------


async def test_sqlite_read_only_reads_everything_and_changes_no_byte(bank_db):
    before = fingerprint(bank_db)
    store = ea.SQLiteStore(bank_db, read_only=True)
    assert await store.head_position() == 6
    assert await store.persistence_ids() == ["account|ann", "account|bob", "loan|L-1"]
    assert [e.sequence_number for e in await store.read_stream("account|ann")] == [1, 2, 3]
    assert await store.list_offsets() == {"balances": 4}
    assert len(await writes(store)) == 5
    await store.close()
    assert fingerprint(bank_db) == before


async def test_sqlite_read_only_keeps_the_journal_mode_and_creates_no_table(tmp_path, bank_db):
    """A store file someone switched back to a rollback journal, missing a table of a later
    release: read-only, neither is changed (a writable store switches it to WAL and adds it)."""
    connection = sqlite3.connect(bank_db)
    connection.execute("PRAGMA journal_mode = DELETE")
    connection.execute("DROP TABLE ea_commands")
    connection.close()
    before = fingerprint(bank_db)
    store = ea.SQLiteStore(bank_db, read_only=True)
    assert await store.head_position() == 6
    await store.close()
    assert fingerprint(bank_db) == before
    connection = sqlite3.connect(bank_db)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert connection.execute(
        "SELECT count(*) FROM sqlite_master WHERE name = 'ea_commands'"
    ).fetchone() == (0,)
    connection.close()


async def test_sqlite_read_only_refuses_a_file_without_an_event_log(tmp_path):
    foreign = tmp_path / "foreign.db"
    connection = sqlite3.connect(foreign)
    connection.execute("CREATE TABLE notes (text TEXT)")
    connection.close()
    empty = tmp_path / "empty.db"
    empty.touch()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database, " * 100)
    cases = [
        (foreign, "no such store: .*foreign.db holds no eventactors event log"),
        (empty, "no such store: .*empty.db holds no eventactors event log"),
        (garbage, "cannot read .*garbage.db as an SQLite store: file is not a database"),
    ]
    for path, message in cases:
        before = fingerprint(path)
        store = ea.SQLiteStore(path, read_only=True)
        with pytest.raises(ea.StoreUnavailable, match=message):
            await store.head_position()
        await store.close()
        assert fingerprint(path) == before


async def test_sqlite_read_only_never_switches_a_foreign_ea_events_table_to_wal(tmp_path):
    foreign = tmp_path / "foreign.db"
    connection = sqlite3.connect(foreign)
    connection.execute("CREATE TABLE ea_events (something TEXT)")
    connection.close()
    before = fingerprint(foreign)
    store = ea.SQLiteStore(foreign, read_only=True)
    with pytest.raises(ea.StoreUnavailable, match="no such column"):
        await store.head_position()
    await store.close()
    assert fingerprint(foreign) == before


async def test_sqlite_read_only_refuses_a_newer_schema_version(bank_db):
    connection = sqlite3.connect(bank_db)
    connection.execute("UPDATE ea_schema_version SET version = 99")
    connection.commit()
    connection.close()
    store = ea.SQLiteStore(bank_db, read_only=True)
    with pytest.raises(ea.StoreUnavailable, match=r"schema version 99; .* up to 2"):
        await store.head_position()
    await store.close()


async def test_sqlite_read_only_sees_what_a_writer_appends_meanwhile(bank_db):
    reader = ea.SQLiteStore(bank_db, read_only=True, poll_interval=0.05)
    writer = ea.SQLiteStore(bank_db)
    try:
        assert await reader.head_position() == 6
        await write(writer, "loan", "L-2", Opened("cyd"))
        assert await reader.wait_for_events(6, 10)
        [latest] = await reader.read_all(6)
        assert latest.persistence_id == "loan|L-2"
    finally:
        await writer.close()
        await reader.close()


def test_sqlite_read_only_pickles_as_read_only(bank_db):
    store = pickle.loads(pickle.dumps(ea.SQLiteStore(bank_db, read_only=True)))
    assert store.read_only and repr(store) == f"SQLiteStore({str(bank_db)!r}, read_only=True)"


# -- PostgreSQL ---------------------------------------------------------------------------


async def tables_of(schema: str) -> list[str]:
    connection = await asyncpg.connect(DSN)
    try:
        rows = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 "
            "ORDER BY table_name",
            schema,
        )
    finally:
        await connection.close()
    return [row[0] for row in rows]


async def execute(statement: str) -> None:
    connection = await asyncpg.connect(DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def test_postgres_read_only_creates_no_schema(pg_schema):
    store = ea.PostgresStore(DSN, schema=pg_schema, read_only=True)
    with pytest.raises(ea.StoreUnavailable, match=f"no such store: .*'{pg_schema}'.* event log"):
        await store.head_position()
    await store.close()
    assert await tables_of(pg_schema) == []


async def test_postgres_read_only_reads_refuses_writes_and_recreates_nothing(pg_schema):
    writable = ea.PostgresStore(DSN, schema=pg_schema)
    await bank(writable)
    await writable.save_offset("balances", 4)
    await writable.close()
    await execute(f'DROP TABLE "{pg_schema}".ea_commands')
    tables = await tables_of(pg_schema)
    store = ea.PostgresStore(DSN, schema=pg_schema, read_only=True, poll_interval=0.05)
    try:
        assert await store.head_position() == 6
        assert await store.list_offsets() == {"balances": 4}
        assert [e.sequence_number for e in await store.read_stream("account|bob")] == [1, 2]
        assert len(await writes(store)) == 5
        # The server refuses a write that goes around the store's own refusal.
        with pytest.raises(ea.StoreUnavailable, match="read-only transaction"):
            await store._db.run(
                lambda c: c.execute(f'DELETE FROM "{pg_schema}".ea_offsets'), write=False
            )
        assert await tables_of(pg_schema) == tables  # ea_commands was not recreated
        # LISTEN works in a read-only session: a write elsewhere wakes the reader.
        waiting = asyncio.create_task(store.wait_for_events(6, 10))
        other = ea.PostgresStore(DSN, schema=pg_schema)
        await write(other, "loan", "L-2", Opened("cyd"))
        await other.close()
        assert await waiting
    finally:
        await store.close()


async def test_postgres_read_only_refuses_a_newer_schema_version(pg_schema):
    writable = ea.PostgresStore(DSN, schema=pg_schema)
    await writable.head_position()
    await writable.close()
    await execute(f'UPDATE "{pg_schema}".ea_schema_version SET version = 99')
    store = ea.PostgresStore(DSN, schema=pg_schema, read_only=True)
    with pytest.raises(ea.StoreUnavailable, match=r"schema version 99; .* up to 2"):
        await store.head_position()
    await store.close()
