"""PostgreSQL faults and bad input: clear errors, quickly, and nothing lost or written twice."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import time

import asyncpg
import msgspec
import pytest
from behaviors_for_tests import Tally
from eventactors_examples.bank.domain import AccountBehavior, Deposit, Open
from postgres_support import DSN

import eventactors as ea

pytestmark = pytest.mark.timeout(90)


async def test_a_refused_connection_fails_fast_naming_the_server_but_not_the_password():
    store = ea.PostgresStore("postgresql://ann:s3cret@127.0.0.1:1/nowhere", connect_timeout=5)
    started = time.monotonic()
    with pytest.raises(ea.StoreUnavailable) as raised:
        await store.read_all()
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert "127.0.0.1:1/nowhere" in message and "s3cret" not in message
    with pytest.raises(ea.StoreUnavailable):  # and again, rather than a half-open store
        await store.append("a|b", [], 0)
    await store.close()


async def test_a_server_that_never_answers_times_out_instead_of_hanging():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never says a word
    port = silent.getsockname()[1]
    try:
        store = ea.PostgresStore(f"postgresql://postgres@127.0.0.1:{port}/test", connect_timeout=1)
        started = time.monotonic()
        with pytest.raises(ea.StoreUnavailable, match=f"127.0.0.1:{port}"):
            await store.highest_sequence_number("a|b")
        assert time.monotonic() - started < 4
        await store.close()
    finally:
        silent.close()


def test_schema_names_are_checked():
    for bad in ("", "Upper", "has space", 'q"uote', "x;drop", "1starts_with_digit", "a" * 49):
        with pytest.raises(ValueError, match="schema must be"):
            ea.PostgresStore(DSN, schema=bad)


async def test_a_schema_written_by_a_newer_version_is_refused(pg_schema):
    connection = await asyncpg.connect(DSN)
    await connection.execute(f'CREATE SCHEMA "{pg_schema}"')
    await connection.execute(f'CREATE TABLE "{pg_schema}".ea_schema_version (version integer)')
    await connection.execute(f'INSERT INTO "{pg_schema}".ea_schema_version VALUES (7)')
    await connection.close()
    store = ea.PostgresStore(DSN, schema=pg_schema)
    with pytest.raises(ea.StoreUnavailable, match="schema version 7"):
        await store.read_all()
    await store.close()


async def test_notify_wakes_a_waiting_reader_at_once(pg_schema):
    writer = ea.PostgresStore(DSN, schema=pg_schema)
    reader = ea.PostgresStore(DSN, schema=pg_schema, poll_interval=30)  # no polling in time
    assert not await reader.wait_for_events(0, timeout=0.2)  # nothing yet; starts listening
    engine = ea.Engine(store=writer)
    engine.register("account", AccountBehavior)
    waiting = asyncio.create_task(reader.wait_for_events(0, timeout=20))
    await asyncio.sleep(0.05)
    async with engine:
        started = time.monotonic()
        await engine.send("account", "a", Open("ann"))
        assert await waiting
        assert time.monotonic() - started < 2  # the notification, not the 30 s poll
    assert reader._listener is not None and reader._listener.notifications >= 1
    await reader.close()


async def test_a_lost_notification_is_covered_by_the_poll(pg_schema):
    store = ea.PostgresStore(DSN, schema=pg_schema, poll_interval=0.1)
    await store.read_all()
    connection = await asyncpg.connect(DSN)
    # An event written without NOTIFY, as if the notification had been lost.
    await connection.execute(
        f'INSERT INTO "{pg_schema}".ea_events (global_position, persistence_id, sequence_number, '
        "event_id, entity_type, entity_id, event_type, payload_json, timestamp) VALUES "
        "(1, 'a|b', 1, gen_random_uuid(), 'a', 'b', 'X', '{}', now())"
    )
    await connection.close()
    assert await store.wait_for_events(0, timeout=5)
    await store.close()


class Note(msgspec.Struct, frozen=True):
    text: str


class Noting(ea.EventSourcedBehavior[Tally]):
    events = (Note,)

    def initial_state(self) -> Tally:
        return Tally()

    def handle_command(self, state: Tally, command: str) -> Note:
        return Note(command)

    def handle_event(self, state: Tally, event: Note) -> Tally:
        return Tally((*state.items, len(event.text)), state.total + 1)


async def test_a_payload_jsonb_refuses_fails_that_command_only(pg_schema):
    engine = ea.Engine(store=ea.PostgresStore(DSN, schema=pg_schema))
    engine.register("n", Noting)
    async with engine:
        await engine.send("n", "x", "fine")
        with pytest.raises(ea.SerializationError, match="refused the data"):
            await engine.send("n", "x", "nul \x00 inside")  # jsonb has no \u0000
        reply = await engine.send("n", "x", "fine again")
        assert reply.revision == 2
        assert [e.event.text for e in await engine.store.read_stream("n|x")] == [
            "fine",
            "fine again",
        ]


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    import eventactors as ea
    from eventactors_examples.bank.domain import AccountBehavior, Deposit

    async def main(dsn, schema):
        engine = ea.Engine(store=ea.PostgresStore(dsn, schema=schema))
        engine.register("account", AccountBehavior)
        async with engine:
            _, revision = await engine.get_state("account", "shared")
            print(f"loaded {revision}", flush=True)
            sys.stdin.readline()
            try:
                await engine.send("account", "shared", Deposit(5))
                print("no conflict", flush=True)
            except ea.ConcurrencyError:
                print("conflict", flush=True)
            reply = await engine.send("account", "shared", Deposit(5))
            print(f"retried {reply.revision} {reply.state.balance}", flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_two_engines_in_two_processes_on_one_entity_conflict_then_recover(pg_schema):
    engine = ea.Engine(store=ea.PostgresStore(DSN, schema=pg_schema))
    engine.register("account", AccountBehavior)
    async with engine:
        await engine.send("account", "shared", Open("ann"))
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, DSN, pg_schema,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert child.stdin is not None and child.stdout is not None
        try:
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            assert line.decode().strip() == "loaded 1"  # both engines now hold revision 1
            assert (await engine.send("account", "shared", Deposit(10))).revision == 2
            child.stdin.write(b"go\n")
            await child.stdin.drain()
            outcome = await asyncio.wait_for(child.stdout.read(), 30)
        finally:
            if child.returncode is None:
                child.kill()
            await child.wait()
        assert outcome.decode().split("\n")[:2] == ["conflict", "retried 3 15"]
        # This engine is now behind the other: it conflicts, recovers, and its retry lands.
        with pytest.raises(ea.ConcurrencyError):
            await engine.send("account", "shared", Deposit(1))
        reply = await engine.send("account", "shared", Deposit(1))
        assert (reply.revision, reply.state.balance) == (4, 16)
        stream = await engine.store.read_stream("account|shared")
        assert [e.sequence_number for e in stream] == [1, 2, 3, 4]
        assert [type(e.event).__name__ for e in stream] == [
            "Opened", "Deposited", "Deposited", "Deposited",
        ]  # fmt: skip
        assert [e.event.amount for e in stream[1:]] == [10, 5, 1]


async def test_schema_setup_blocked_by_a_lock_fails_within_the_timeout(pg_schema):
    from eventactors.stores._postgres_schema import lock_key

    blocker = await asyncpg.connect(DSN)
    transaction = blocker.transaction()
    await transaction.start()
    await blocker.execute("SELECT pg_advisory_xact_lock($1)", lock_key(pg_schema, "schema"))
    store = ea.PostgresStore(DSN, schema=pg_schema, connect_timeout=1, command_timeout=2)
    try:
        started = time.monotonic()
        with pytest.raises(ea.StoreUnavailable, match="lock"):
            await store.read_all()
        assert time.monotonic() - started < 4
        closing = time.monotonic()
        await store.close()
        assert time.monotonic() - closing < 2
    finally:
        await transaction.rollback()
        await blocker.close()
    try:
        assert await store.read_all() == []  # once the lock is gone, the same store works
    finally:
        await store.close()


async def test_a_read_only_server_can_be_read_but_refuses_writes_clearly(pg_schema):
    writable = ea.PostgresStore(DSN, schema=pg_schema)
    engine = ea.Engine(store=writable)
    engine.register("account", AccountBehavior)
    async with engine:
        await engine.send("account", "a", Open("ann"))
    read_only = ea.PostgresStore(f"{DSN}?default_transaction_read_only=on", schema=pg_schema)
    read_only.serializer = writable.serializer
    try:
        (envelope,) = await read_only.read_all()
        assert envelope.event_type == "Opened" and envelope.event.owner == "ann"
        with pytest.raises(ea.StoreUnavailable, match="read-only"):
            await read_only.save_offset("p", 1)
    finally:
        await read_only.close()


async def test_wait_for_events_sees_events_committed_before_it_was_called(pg_schema):
    writer = ea.PostgresStore(DSN, schema=pg_schema)
    engine = ea.Engine(store=writer)
    engine.register("account", AccountBehavior)
    async with engine:
        await engine.send("account", "a", Open("ann"))
    reader = ea.PostgresStore(DSN, schema=pg_schema, poll_interval=30)
    started = time.monotonic()
    assert await reader.wait_for_events(0, timeout=0)
    assert time.monotonic() - started < 2
    assert not await reader.wait_for_events(1, timeout=0)
    await reader.close()


async def listening_connections(channel: str) -> int:
    connection = await asyncpg.connect(DSN)
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query = $1", f'LISTEN "{channel}"'
            )
        )
    finally:
        await connection.close()


async def test_closing_the_store_ends_waits_and_leaves_no_listening_connection(pg_schema):
    reader = ea.PostgresStore(DSN, schema=pg_schema, poll_interval=30)
    await reader.read_all()
    waits = [asyncio.create_task(reader.wait_for_events(0, timeout=30)) for _ in range(4)]
    channel = f"eventactors_{pg_schema}"
    deadline = time.monotonic() + 5
    while await listening_connections(channel) < 1:
        assert time.monotonic() < deadline, "the waits never started listening"
    assert await listening_connections(channel) == 1  # one connection for every waiter
    await reader.close()
    assert await asyncio.wait_for(asyncio.gather(*waits), 5) == [False] * 4
    assert await listening_connections(channel) == 0
