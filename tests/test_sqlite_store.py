"""Behaviour specific to the SQLite backend: file format, durability settings, schema
versioning, group commit, crash safety under SIGKILL and corrupt rows.

The store contract shared with every backend lives in tests/conformance/; this module checks
what only a real SQLite file can show, by looking at the file with the plain sqlite3 module.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from durability_checks import Ack, check_recovered, kill_child_after
from eventactors_examples.bank.domain import (
    Account,
    AccountBehavior,
    Deposit,
    Deposited,
    Open,
    Opened,
)

import eventactors as ea
from eventactors._ids import uuid7

# -- helpers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection on the file, closed afterwards (autocommit mode)."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def bank_store(path: Path, **options: Any) -> ea.SQLiteStore:
    """A store whose serializer knows the bank's events and state."""
    store = ea.SQLiteStore(path, **options)
    for cls in (Opened, Deposited, Account):
        store.serializer.register(cls)
    return store


def deposit_record(store: ea.SQLiteStore, account: str, sequence: int) -> ea.EventRecord:
    """A stored Deposited event for `account|<account>` at `sequence`, amount = sequence."""
    return ea.EventRecord(
        event_id=uuid7(),
        persistence_id=f"account|{account}",
        entity_type="account",
        entity_id=account,
        sequence_number=sequence,
        event_type=store.serializer.type_name(Deposited),
        payload=store.serializer.encode(Deposited(sequence)),
        timestamp=datetime.now(UTC),
    )


def writer_batches(store: ea.SQLiteStore) -> int:
    assert store._writer is not None, "the store has not opened its writer yet"
    return store._writer.batches


def writer_jobs(store: ea.SQLiteStore) -> int:
    assert store._writer is not None, "the store has not opened its writer yet"
    return store._writer.jobs_done


def table_contents(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: a picture of the file's logical content."""
    with raw(path) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {
            table: sorted(connection.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
            for table in tables
        }


# -- file format and connection settings ------------------------------------------------------


async def test_file_is_in_wal_mode_after_first_write(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    store = bank_store(path)
    try:
        await store.append("account|a", [deposit_record(store, "a", 1)], 0)
        with raw(path) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        await store.close()
    # WAL is a property of the file: it stays after the store is closed.
    with raw(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_writer_runs_with_synchronous_full_by_default(tmp_path: Path) -> None:
    store = bank_store(tmp_path / "full.db")
    try:
        await store.append("account|a", [deposit_record(store, "a", 1)], 0)
        assert await store._write(lambda c: c.execute("PRAGMA synchronous").fetchone()) == (2,)
    finally:
        await store.close()


async def test_writer_runs_with_synchronous_normal_when_asked(tmp_path: Path) -> None:
    store = bank_store(tmp_path / "normal.db", synchronous="NORMAL")
    try:
        await store.append("account|a", [deposit_record(store, "a", 1)], 0)
        assert await store._write(lambda c: c.execute("PRAGMA synchronous").fetchone()) == (1,)
    finally:
        await store.close()


@pytest.mark.parametrize("value", ["OFF", "full", "", "FAST", 2, None])
def test_invalid_synchronous_value_is_refused(tmp_path: Path, value: Any) -> None:
    path = tmp_path / "never.db"
    with pytest.raises(ValueError, match="synchronous"):
        ea.SQLiteStore(path, synchronous=value)
    assert not path.exists()


# -- schema -----------------------------------------------------------------------------------


async def test_schema_is_created_on_first_use_at_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "schema.db"
    store = bank_store(path)
    assert not path.exists(), "the store must connect lazily, not in its constructor"
    try:
        assert await store.highest_sequence_number("account|nobody") == 0
        with raw(path) as connection:
            assert connection.execute("SELECT version FROM ea_schema_version").fetchall() == [(2,)]
            tables = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        assert {
            "ea_schema_version",
            "ea_events",
            "ea_streams",
            "ea_snapshots",
            "ea_durable_state",
            "ea_offsets",
        } <= tables
    finally:
        await store.close()
    # Opening the file again does not add a second version row.
    store = bank_store(path)
    try:
        await store.append("account|a", [deposit_record(store, "a", 1)], 0)
    finally:
        await store.close()
    with raw(path) as connection:
        assert connection.execute("SELECT version FROM ea_schema_version").fetchall() == [(2,)]


async def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with raw(path) as connection:
        connection.execute("CREATE TABLE ea_schema_version (version INTEGER NOT NULL)")
        connection.execute("INSERT INTO ea_schema_version (version) VALUES (99)")
    store = bank_store(path)
    try:
        with pytest.raises(ea.StoreUnavailable, match="99") as first:
            await store.highest_sequence_number("account|a")
        assert str(path) in str(first.value)
        # The store does not stay half-open: the next call is refused the same way.
        with pytest.raises(ea.StoreUnavailable, match="99"):
            await store.append("account|a", [deposit_record(store, "a", 1)], 0)
    finally:
        await store.close()
    with raw(path) as connection:
        assert connection.execute("SELECT version FROM ea_schema_version").fetchall() == [(99,)]
        # Refused before anything was created: the newer schema's file is left as it was.
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        assert [name for (name,) in tables] == ["ea_schema_version"]


NOT_A_DATABASE = "this is a shopping list, not a database\n" * 200


async def test_text_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(NOT_A_DATABASE)
    store = bank_store(path)
    try:
        with pytest.raises(ea.StoreUnavailable):
            await store.highest_sequence_number("account|a")
        with pytest.raises(ea.StoreUnavailable):
            await store.append("account|a", [deposit_record(store, "a", 1)], 0)
    finally:
        await store.close()
    assert path.read_text() == NOT_A_DATABASE


async def test_text_file_error_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(NOT_A_DATABASE)
    store = bank_store(path)
    try:
        with pytest.raises(ea.StoreUnavailable) as refused:
            await store.highest_sequence_number("account|a")
    finally:
        await store.close()
    assert str(path) in str(refused.value)


async def test_two_store_objects_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    first, second = bank_store(path), bank_store(path)
    try:
        await first.append("account|a", [deposit_record(first, "a", 1)], 0)
        assert await second.highest_sequence_number("account|a") == 1
        # The second store continues the stream the first one started.
        await second.append("account|a", [deposit_record(second, "a", 2)], 1)
        await second.append("account|b", [deposit_record(second, "b", 1)], 0)
        assert await first.highest_sequence_number("account|a") == 2
        assert [e.sequence_number for e in await first.read_stream("account|a")] == [1, 2]
        assert [e.event for e in await first.read_stream("account|a")] == [
            Deposited(1),
            Deposited(2),
        ]
        assert await first.persistence_ids() == ["account|a", "account|b"]
        # A stale writer is refused: the first store still believes the stream is at 1.
        with pytest.raises(ea.ConcurrencyError):
            await first.append("account|a", [deposit_record(first, "a", 2)], 1)
        everything = await second.read_all()
        assert [(e.persistence_id, e.sequence_number) for e in everything] == [
            ("account|a", 1),
            ("account|a", 2),
            ("account|b", 1),
        ]
        positions = [e.global_position for e in everything]
        assert positions == sorted(set(positions))
    finally:
        await first.close()
        await second.close()


async def test_json_events_are_stored_as_readable_text(tmp_path: Path) -> None:
    path = tmp_path / "readable.db"
    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("account", AccountBehavior)
    async with engine:
        await engine.send("account", "a1", Open("ann"), timeout=5)
        await engine.send("account", "a1", Deposit(250), timeout=5)
    with raw(path) as connection:
        rows = connection.execute(
            "SELECT event_type, payload, typeof(payload) FROM ea_events "
            "WHERE persistence_id = 'account|a1' ORDER BY sequence_number"
        ).fetchall()
    assert rows == [
        ("Opened", '{"owner":"ann"}', "text"),
        ("Deposited", '{"amount":250}', "text"),
    ]
    assert all(isinstance(payload, str) for _, payload, _ in rows)


# -- group commit -----------------------------------------------------------------------------


async def test_concurrent_appends_share_transactions(tmp_path: Path) -> None:
    path = tmp_path / "group.db"
    store = bank_store(path)
    try:
        await store.highest_sequence_number("account|warm-up")  # open the writer first
        batches_before, jobs_before = writer_batches(store), writer_jobs(store)
        streams = [f"s{index:03d}" for index in range(200)]
        results = await asyncio.gather(
            *(
                store.append(f"account|{name}", [deposit_record(store, name, 1)], 0)
                for name in streams
            )
        )
        jobs = writer_jobs(store) - jobs_before
        batches = writer_batches(store) - batches_before
        assert jobs == 200
        assert batches < jobs, f"{jobs} appends took {batches} transactions: no group commit"
        for name, envelopes in zip(streams, results, strict=True):
            assert [(e.persistence_id, e.sequence_number) for e in envelopes] == [
                (f"account|{name}", 1)
            ]
        positions = [envelopes[0].global_position for envelopes in results]
        assert len(set(positions)) == 200
        stored = await store.read_all(limit=1000)
        assert sorted(e.persistence_id for e in stored) == sorted(f"account|{n}" for n in streams)
        assert {e.global_position for e in stored} == set(positions)
    finally:
        await store.close()


async def test_one_conflict_does_not_fail_the_rest_of_its_batch(tmp_path: Path) -> None:
    path = tmp_path / "conflict.db"
    store = bank_store(path)
    names = [f"c{index:02d}" for index in range(40)]
    stale = "c17"
    try:
        for name in names:
            await store.append(f"account|{name}", [deposit_record(store, name, 1)], 0)
        assert store._writer is not None
        # Hold the writer thread inside a job, queue every append behind it, then let go:
        # the appends are then all taken by the writer as one batch.
        started, release = threading.Event(), threading.Event()

        def hold(connection: sqlite3.Connection) -> bool:
            started.set()
            return release.wait(10)

        holder = asyncio.ensure_future(store._write(hold))
        assert await asyncio.to_thread(started.wait, 10)
        batches_before = writer_batches(store)

        def append(name: str) -> Any:
            if name == stale:  # believes the stream is still empty
                return store.append(f"account|{name}", [deposit_record(store, name, 1)], 0)
            return store.append(f"account|{name}", [deposit_record(store, name, 2)], 1)

        pending = asyncio.gather(*(append(name) for name in names), return_exceptions=True)
        deadline = time.monotonic() + 10
        while store._writer._jobs.qsize() < len(names):
            assert time.monotonic() < deadline, "the appends never reached the writer's queue"
            await asyncio.sleep(0.001)
        release.set()
        assert await holder is True
        results = await pending
        # The holder's own batch, then exactly one batch for all the appends.
        assert writer_batches(store) - batches_before == 2

        for name, result in zip(names, results, strict=True):
            if name == stale:
                assert isinstance(result, ea.ConcurrencyError), result
                assert f"account|{stale}" in str(result)
            else:
                assert isinstance(result, list), result
                assert [(e.persistence_id, e.sequence_number) for e in result] == [
                    (f"account|{name}", 2)
                ]
        for name in names:
            expected = [1] if name == stale else [1, 2]
            stream = await store.read_stream(f"account|{name}")
            assert [e.sequence_number for e in stream] == expected, name
            assert await store.highest_sequence_number(f"account|{name}") == expected[-1]
    finally:
        await store.close()


# -- durability under SIGKILL -----------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import asyncio
    import random
    import sys

    import eventactors as ea
    from eventactors_examples.bank.domain import Deposit, Open, register


    async def main(path, seed, accounts, clients):
        engine = ea.Engine(store=ea.SQLiteStore(path))
        register(engine)
        out = sys.stdout
        async with engine:
            for account in accounts:
                state, _ = await engine.get_state("account", account, timeout=30)
                if not state.is_open:
                    await engine.send("account", account, Open("owner-" + account), timeout=30)
            out.write("ready\\n")
            out.flush()

            async def client(number):
                rng = random.Random(seed * 1000 + number)
                while True:
                    account = rng.choice(accounts)
                    amount = rng.randint(1, 1000)
                    reply = await engine.send("account", account, Deposit(amount), timeout=30)
                    (envelope,) = reply.events
                    out.write(
                        f"ack {account} {reply.revision} {envelope.event_id} {amount}\\n"
                    )
                    out.flush()

            await asyncio.gather(*(client(number) for number in range(clients)))


    path, seed = sys.argv[1], int(sys.argv[2])
    accounts = sys.argv[3].split(",")
    asyncio.run(main(path, seed, accounts, clients=int(sys.argv[4])))
    """
)


def run_child_until_killed(
    script: Path, db: Path, seed: int, accounts: list[str], kill_after: int, log: Path
) -> list[Ack]:
    """The depositing child on `db`, with 24 clients, killed after `kill_after` acks."""
    command = [sys.executable, str(script), str(db), str(seed), ",".join(accounts), "24"]
    return kill_child_after(command, kill_after, log, seconds=10)


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
async def test_no_acknowledged_event_is_lost_when_the_process_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "depositor.py"
    script.write_text(CHILD)
    db = tmp_path / "killed.db"
    log = tmp_path / "child-stderr.log"
    accounts = [f"acct{index}" for index in range(6)]
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    every_ack: list[Ack] = []
    stored_before = 0
    for cycle in range(3):
        kill_after = rng.randint(50, 400)
        acks = run_child_until_killed(script, db, seed + cycle, accounts, kill_after, log)
        assert len(acks) >= kill_after
        every_ack.extend(acks)
        try:
            stored = await check_recovered(lambda: ea.SQLiteStore(db), accounts, every_ack)
        except AssertionError as failure:
            raise AssertionError(f"seed {seed}, cycle {cycle}: {failure}") from failure
        # Each run resumed the recovered accounts and added at least what it acknowledged.
        assert stored >= stored_before + len(acks), f"seed {seed}, cycle {cycle}"
        stored_before = stored


# -- corrupt rows -----------------------------------------------------------------------------


@pytest_asyncio.fixture
async def corrupt_db(tmp_path: Path) -> tuple[Path, int, int]:
    """A bank file where a1's sequence 2 has a broken payload and a2's sequence 2 a text
    sequence number; yields (path, bad payload's global position, bad sequence's position)."""
    path = tmp_path / "corrupt.db"

    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("account", AccountBehavior)
    async with engine:
        for account in ("a1", "a2", "a3"):
            await engine.send("account", account, Open("owner-" + account), timeout=5)
            for amount in (10, 20, 30):
                await engine.send("account", account, Deposit(amount), timeout=5)
    with raw(path) as connection:
        bad_payload = connection.execute(
            "SELECT global_position FROM ea_events "
            "WHERE persistence_id = 'account|a1' AND sequence_number = 2"
        ).fetchone()[0]
        bad_sequence = connection.execute(
            "SELECT global_position FROM ea_events "
            "WHERE persistence_id = 'account|a2' AND sequence_number = 2"
        ).fetchone()[0]
        connection.execute(
            "UPDATE ea_events SET payload = 'not json{' WHERE global_position = ?", (bad_payload,)
        )
        connection.execute(
            "UPDATE ea_events SET sequence_number = 'x' WHERE global_position = ?",
            (bad_sequence,),
        )
        assert connection.execute(
            "SELECT typeof(sequence_number) FROM ea_events WHERE global_position = ?",
            (bad_sequence,),
        ).fetchone() == ("text",)
    return path, bad_payload, bad_sequence


async def test_corrupt_payload_fails_at_event_access_naming_stream_and_position(
    corrupt_db: tuple[Path, int, int],
) -> None:
    path, bad_payload, _ = corrupt_db
    before = table_contents(path)
    store = bank_store(path)
    try:
        stream = await store.read_stream("account|a1")
        assert [e.sequence_number for e in stream] == [1, 2, 3, 4]
        assert stream[1].global_position == bad_payload
        with pytest.raises(ea.SerializationError) as failure:
            _ = stream[1].event
        message = str(failure.value)
        assert "'account|a1'" in message
        assert f"global position {bad_payload}" in message
        assert "Deposited" in message
        # Its neighbours decode normally.
        assert [stream[0].event, stream[2].event, stream[3].event] == [
            Opened("owner-a1"),
            Deposited(20),
            Deposited(30),
        ]
    finally:
        await store.close()
    assert table_contents(path) == before


async def test_corrupt_sequence_number_fails_read_all_naming_stream_and_position(
    corrupt_db: tuple[Path, int, int],
) -> None:
    path, _, bad_sequence = corrupt_db
    before = table_contents(path)
    store = bank_store(path)
    try:
        with pytest.raises(ea.SerializationError) as failure:
            await store.read_all()
        message = str(failure.value)
        assert "'account|a2'" in message
        assert f"global position {bad_sequence}" in message
        # The log on either side of the broken row still reads.
        head = await store.read_all(after_position=0, limit=bad_sequence - 1)
        assert [e.global_position for e in head] == list(range(1, bad_sequence))
        tail = await store.read_all(after_position=bad_sequence)
        assert [e.global_position for e in tail] == list(range(bad_sequence + 1, 13))
    finally:
        await store.close()
    assert table_contents(path) == before


async def test_corrupt_sequence_number_fails_read_stream_naming_stream_and_position(
    corrupt_db: tuple[Path, int, int],
) -> None:
    path, _, bad_sequence = corrupt_db
    store = bank_store(path)
    try:
        with pytest.raises(ea.SerializationError) as failure:
            await store.read_stream("account|a2")
    finally:
        await store.close()
    assert "'account|a2'" in str(failure.value)
    assert f"global position {bad_sequence}" in str(failure.value)


async def test_corrupt_rows_leave_other_streams_readable_and_the_file_unchanged(
    corrupt_db: tuple[Path, int, int],
) -> None:
    path, _, _ = corrupt_db
    before = table_contents(path)
    store = bank_store(path)
    try:
        stream = await store.read_stream("account|a3")
        assert [e.sequence_number for e in stream] == [1, 2, 3, 4]
        assert [e.event for e in stream] == [
            Opened("owner-a3"),
            Deposited(10),
            Deposited(20),
            Deposited(30),
        ]
        assert await store.highest_sequence_number("account|a1") == 4
        assert await store.highest_sequence_number("account|a2") == 4
        assert await store.persistence_ids() == ["account|a1", "account|a2", "account|a3"]
    finally:
        await store.close()

    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("account", AccountBehavior)
    async with engine:
        assert await engine.get_state("account", "a3", timeout=5) == (
            Account(owner="owner-a3", balance=60, is_open=True),
            4,
        )
        # Recovering a damaged stream is an error naming it, never a silent skip.
        with pytest.raises(ea.SerializationError, match="account\\|a1"):
            await engine.get_state("account", "a1", timeout=5)
        with pytest.raises(ea.EventActorsError, match="account\\|a2"):
            await engine.get_state("account", "a2", timeout=5)
    assert table_contents(path) == before


async def test_many_stores_opening_one_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    """Engines starting together on a new file: while one connection switches it to WAL,
    SQLite can say "locked" without waiting for the busy timeout; the store must wait it out."""
    for round_ in range(15):
        path = tmp_path / f"together-{round_}.db"
        stores = [ea.SQLiteStore(path) for _ in range(8)]
        try:
            results = await asyncio.gather(
                *(store.save_offset(f"p{n}", n) for n, store in enumerate(stores)),
                return_exceptions=True,
            )
            assert [r for r in results if r is not None] == []
            assert [await stores[0].get_offset(f"p{n}") for n in range(8)] == list(range(8))
        finally:
            for store in stores:
                await store.close()
