"""Group commit in the durable stores: appends that arrive while one transaction is being
written share the next one, and each still gets its own result or its own error.

Batching is made deterministic by holding the store's writer while the appends queue up:
on SQLite by a job that blocks the writer thread, on PostgreSQL by holding the advisory lock
every batch takes before it draws global positions. `write_statistics()` then shows how many
transactions carried them. Every test runs on a fresh SQLite file or PostgreSQL schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
import pytest_asyncio
from behaviors_for_tests import Add, tally_behavior
from durability_checks import Ack, check_recovered, kill_child_after
from postgres_support import DSN, drop_schema, new_schema_name

import eventactors as ea
from eventactors._ids import uuid7
from eventactors.stores._postgres_schema import lock_key

# -- records and statistics -------------------------------------------------------------------


class Note(msgspec.Struct, frozen=True):
    text: str


REFUSE = "refuse me"  # a note the test trigger makes the database itself refuse
TRIGGER_MESSAGE = "refused by the test trigger"


def pid(name: str) -> str:
    return f"note|{name}"


def note(store: ea.Store, name: str, sequence: int, text: str | None = None) -> ea.EventRecord:
    """A stored Note for `note|<name>` at `sequence`; its text defaults to name:sequence."""
    return record(
        store, name, sequence, store.serializer.encode(Note(text or f"{name}:{sequence}"))
    )


def record(store: ea.Store, name: str, sequence: int, payload: bytes) -> ea.EventRecord:
    return ea.EventRecord(
        event_id=uuid7(),
        persistence_id=pid(name),
        entity_type="note",
        entity_id=name,
        sequence_number=sequence,
        event_type=store.serializer.type_name(Note),
        payload=payload,
        timestamp=datetime.now(UTC),
    )


def sized_note(store: ea.Store, name: str, sequence: int, size: int) -> ea.EventRecord:
    """A note whose encoded payload is exactly `size` bytes."""
    text = "x" * (size - len(store.serializer.encode(Note(""))))
    made = note(store, name, sequence, text)
    assert len(made.payload) == size
    return made


@dataclass(frozen=True)
class Counts:
    transactions: int
    appends: int
    events: int

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.transactions - other.transactions,
            self.appends - other.appends,
            self.events - other.events,
        )


def counts(store: Any) -> Counts:
    """The store's cumulative write statistics, checked to be plain ints."""
    statistics = store.write_statistics()
    values = Counts(statistics.transactions, statistics.appends, statistics.events)
    for name, value in vars(values).items():
        assert type(value) is int, f"write_statistics().{name} is {value!r}, not an int"
    return values


def texts(envelopes: list[ea.EventEnvelope]) -> list[str]:
    return [envelope.event.text for envelope in envelopes]


def assert_consecutive(envelopes: list[ea.EventEnvelope]) -> None:
    """One append's events sit at consecutive global positions."""
    positions = [envelope.global_position for envelope in envelopes]
    assert positions == list(range(positions[0], positions[0] + len(positions))), positions


async def let_appends_reach_the_writer() -> None:
    """Appends started together (one gather) run up to the writer's queue without waiting on
    any I/O; a few turns of the event loop let every one of them get there."""
    for _ in range(100):
        await asyncio.sleep(0)


# -- the two durable stores, with a way to hold each one's writer ------------------------------


@dataclass
class Backend:
    kind: str
    path: Path
    schema: str
    stores: list[Any] = field(default_factory=list)

    def open(self, **options: Any) -> Any:
        """A store on this test's database whose serializer knows Note."""
        if self.kind == "sqlite":
            store: Any = ea.SQLiteStore(self.path, **options)
        else:
            store = ea.PostgresStore(DSN, schema=self.schema, **options)
        store.serializer.register(Note)
        self.stores.append(store)
        return store

    @contextlib.asynccontextmanager
    async def held_writer(self, store: Any) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """Holds the store's writer until the block ends. Yields `queued()`, to await after
        starting the appends: it returns once they wait behind the hold."""
        if self.kind == "sqlite":
            async with _held_sqlite_writer(store) as queued:
                yield queued
        else:
            async with _held_positions_lock(self.schema) as queued:
                yield queued

    async def track_transactions(self) -> None:
        """On PostgreSQL, see `track_transactions` below."""
        if self.kind == "postgres":  # SQLite: one transaction per writer batch, by design
            await track_transactions(self.schema)

    async def committed_transactions(self, envelopes: list[ea.EventEnvelope]) -> int | None:
        """How many committed transactions inserted these events, by the database's own
        record (see `track_transactions`); None on SQLite, which keeps no such record."""
        if self.kind == "sqlite":
            return None
        positions = [envelope.global_position for envelope in envelopes]
        inserted_by = await inserting_transactions(self.schema, positions)
        assert len(inserted_by) == len(envelopes), "acknowledged events were never inserted"
        return len(set(inserted_by.values()))

    async def refuse_marked_notes(self) -> None:
        """Installs a trigger with which the database refuses any note whose text is REFUSE:
        a failure that only the database can report, in the middle of a batch."""
        if self.kind == "sqlite":
            with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as db:
                db.execute(
                    "CREATE TRIGGER refuse_marked BEFORE INSERT ON ea_events "
                    f"WHEN NEW.payload LIKE '%{REFUSE}%' "
                    f"BEGIN SELECT RAISE(ABORT, '{TRIGGER_MESSAGE}'); END"
                )
            return
        await run_sql(
            f'CREATE FUNCTION "{self.schema}".refuse_marked() RETURNS trigger '
            "LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.payload_json ->> 'text' = '{REFUSE}' THEN "
            f"RAISE EXCEPTION '{TRIGGER_MESSAGE}'; END IF; RETURN NEW; END $$",
            f'CREATE TRIGGER refuse_marked BEFORE INSERT ON "{self.schema}".ea_events '
            f'FOR EACH ROW EXECUTE FUNCTION "{self.schema}".refuse_marked()',
        )


async def run_sql(*statements: str) -> None:
    connection = await asyncpg.connect(DSN)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def track_transactions(schema: str) -> None:
    """From now on, a trigger records which top-level transaction inserted each event row in
    `schema` (`pg_current_xact_id()` is the top-level one even inside a savepoint): the
    database's own account of how many transactions carried a batch."""
    await run_sql(
        f'CREATE TABLE "{schema}".test_inserted_by '
        "(global_position bigint PRIMARY KEY, xact text NOT NULL)",
        f'CREATE FUNCTION "{schema}".test_record_inserter() RETURNS trigger '
        f'LANGUAGE plpgsql AS $$ BEGIN INSERT INTO "{schema}".test_inserted_by '
        "VALUES (NEW.global_position, pg_current_xact_id()::text); RETURN NEW; END $$",
        f'CREATE TRIGGER test_record_inserter AFTER INSERT ON "{schema}".ea_events '
        f'FOR EACH ROW EXECUTE FUNCTION "{schema}".test_record_inserter()',
    )


async def inserting_transactions(schema: str, positions: list[int]) -> dict[int, str]:
    """The committed transaction that inserted each of these positions (see above)."""
    connection = await asyncpg.connect(DSN)
    try:
        rows = await connection.fetch(
            f'SELECT global_position, xact FROM "{schema}".test_inserted_by '
            "WHERE global_position = ANY($1::bigint[])",
            positions,
        )
    finally:
        await connection.close()
    return {row["global_position"]: row["xact"] for row in rows}


@contextlib.asynccontextmanager
async def _held_sqlite_writer(store: Any) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """The writer thread runs a job that waits for the release: everything queued meanwhile
    is taken by the writer together once the job returns."""
    started, release = threading.Event(), threading.Event()

    def hold(connection: sqlite3.Connection) -> bool:
        started.set()
        return release.wait(30)

    holder = asyncio.ensure_future(store._write(hold))
    try:
        assert await asyncio.to_thread(started.wait, 10), "the writer never ran the hold"
        yield let_appends_reach_the_writer
    finally:
        release.set()
        held = await asyncio.wait_for(holder, 30)
    assert held is True, "the hold outlived its own timeout: the test took too long"


@contextlib.asynccontextmanager
async def _held_positions_lock(schema: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Another connection holds the lock each batch takes before drawing positions: the first
    batch waits for it, and every append after it queues behind that batch."""
    key = lock_key(schema, "positions")
    blocker = await asyncpg.connect(DSN)
    try:
        await blocker.execute("SELECT pg_advisory_lock($1)", key)

        async def queued() -> None:
            deadline = time.monotonic() + 10
            while not await blocker.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                blocker.get_server_pid(),
            ):
                assert time.monotonic() < deadline, "no writer ever waited for the positions lock"
                await asyncio.sleep(0.005)
            await let_appends_reach_the_writer()

        yield queued
    finally:
        try:
            await blocker.execute("SELECT pg_advisory_unlock($1)", key)
        finally:
            await blocker.close()


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    opened = Backend(request.param, tmp_path / "group.db", new_schema_name())
    try:
        yield opened
    finally:
        try:
            for store in opened.stores:
                await store.close()
        finally:
            if opened.kind == "postgres":
                await drop_schema(opened.schema)


async def started_writer(backend: Backend, **options: Any) -> Any:
    """A store whose connections and writer are already open, so that no test measures the
    first connection; the warm-up append goes to a stream of its own."""
    store = backend.open(**options)
    await store.append(pid("warm-up"), [note(store, "warm-up", 1)], 0)
    return store


def most_transactions(backend: Backend, batches: int) -> int:
    """How many transactions `batches` full batches may take behind a held writer. SQLite's
    writer takes the whole queue at once; PostgreSQL's first batch may already have left with
    only the first append when the held lock stops it, and the rest follow it."""
    return batches if backend.kind == "sqlite" else batches + 1


# -- 1. concurrency is batched ----------------------------------------------------------------


async def test_concurrent_appends_to_distinct_streams_share_transactions(backend):
    store = await started_writer(backend)
    await backend.track_transactions()
    names = [f"s{index:03d}" for index in range(200)]
    sizes = {name: index % 3 + 1 for index, name in enumerate(names)}
    before = counts(store)
    results = await asyncio.gather(
        *(
            store.append(pid(name), [note(store, name, s) for s in range(1, sizes[name] + 1)], 0)
            for name in names
        )
    )
    delta = counts(store) - before

    positions: list[int] = []
    for name, envelopes in zip(names, results, strict=True):
        assert [(e.persistence_id, e.sequence_number) for e in envelopes] == [
            (pid(name), s) for s in range(1, sizes[name] + 1)
        ]
        assert_consecutive(envelopes)
        positions.extend(e.global_position for e in envelopes)
    assert len(set(positions)) == len(positions)

    stored = [e for e in await store.read_all(limit=10_000) if e.persistence_id != pid("warm-up")]
    assert [e.global_position for e in stored] == sorted(positions)
    by_position = {e.global_position: e for envelopes in results for e in envelopes}
    for envelope in stored:
        acknowledged = by_position[envelope.global_position]
        assert envelope.event_id == acknowledged.event_id
        assert envelope.event == Note(f"{envelope.entity_id}:{envelope.sequence_number}")
    for name in names:
        assert await store.highest_sequence_number(pid(name)) == sizes[name]

    assert delta.appends == 200
    assert delta.events == sum(sizes.values())
    assert 1 <= delta.transactions < 200, f"200 appends took {delta.transactions} transactions"
    real = await backend.committed_transactions([e for envelopes in results for e in envelopes])
    assert real in (None, delta.transactions), f"the database saw {real} transactions: {delta}"


# -- 2. per-entity order through the engine ---------------------------------------------------


async def test_each_entity_keeps_the_order_of_every_clients_commands(backend):
    """50 entities, 4 clients each sending 5 numbered commands to every entity: two clients
    wait for each reply, two pipeline their commands. Each stream must hold every command once,
    gap-free, with each client's commands in the order that client sent them."""
    entities = [f"e{index:02d}" for index in range(50)]
    clients, per_client = 4, 5
    engine = ea.Engine(store=backend.open())
    engine.register("tally", tally_behavior())
    pipelined_revisions: dict[tuple[int, str], list[int]] = {}

    async def client(number: int, entity: str) -> None:
        numbers = [number * 100 + k for k in range(per_client)]
        if number % 2 == 0:
            for n in numbers:
                await engine.send("tally", entity, Add(n), timeout=60)
        else:
            replies = await asyncio.gather(
                *(engine.send("tally", entity, Add(n), timeout=60) for n in numbers)
            )
            pipelined_revisions[number, entity] = [reply.revision for reply in replies]

    async with engine:
        await asyncio.gather(
            *(client(number, entity) for number in range(clients) for entity in entities)
        )
        total = clients * per_client
        for entity in entities:
            stream = await engine.store.read_stream(f"tally|{entity}")
            assert [e.sequence_number for e in stream] == list(range(1, total + 1)), entity
            positions = [e.global_position for e in stream]
            assert positions == sorted(set(positions)), entity
            numbers = [e.event.n for e in stream]
            assert sorted(numbers) == sorted(
                number * 100 + k for number in range(clients) for k in range(per_client)
            ), entity
            for number in range(clients):
                sent = [n for n in numbers if n // 100 == number]
                assert sent == [number * 100 + k for k in range(per_client)], (entity, number)
            state, revision = await engine.get_state("tally", entity)
            assert (list(state.items), revision) == (numbers, total), entity
        # The engine's appends went through the group commit too.
        statistics = counts(engine.store)
    for key, revisions in pipelined_revisions.items():
        assert revisions == sorted(set(revisions)), key
    assert statistics.appends == len(entities) * total, statistics
    assert statistics.transactions < statistics.appends, statistics


# -- 3. failures stay inside their own append ---------------------------------------------------


async def test_a_conflict_and_refused_records_fail_only_their_own_appends(backend):
    store = await started_writer(backend)
    names = [f"n{index:02d}" for index in range(40)]
    await asyncio.gather(*(store.append(pid(name), [note(store, name, 1)], 0) for name in names))
    await backend.refuse_marked_notes()
    await backend.track_transactions()
    stale, refused, invalid_json = "n05", "n17", "n29"
    failing = {stale, refused}
    if backend.kind == "postgres":
        failing.add(invalid_json)  # jsonb refuses it; SQLite keeps any text

    def append(name: str) -> Coroutine[Any, Any, list[ea.EventEnvelope]]:
        if name == stale:  # believes the stream is still empty
            return store.append(pid(name), [note(store, name, 1, "stale")], 0)
        if name == refused:
            return store.append(pid(name), [note(store, name, 2, REFUSE)], 1)
        if name in failing:
            return store.append(pid(name), [record(store, name, 2, b"{not json")], 1)
        return store.append(pid(name), [note(store, name, 2), note(store, name, 3)], 1)

    before = counts(store)
    async with backend.held_writer(store) as queued:
        pending = asyncio.gather(*(append(name) for name in names), return_exceptions=True)
        await queued()
    results = await pending
    delta = counts(store) - before

    failure = dict(zip(names, results, strict=True))
    failed = {name for name, result in failure.items() if isinstance(result, BaseException)}
    assert failed == failing, {name: failure[name] for name in failed ^ failing}

    # Every other append landed whole, in arrival order, each on consecutive positions.
    landed = [(n, result) for n, result in zip(names, results, strict=True) if n not in failing]
    for name, envelopes in landed:
        assert [(e.persistence_id, e.sequence_number) for e in envelopes] == [
            (pid(name), 2),
            (pid(name), 3),
        ]
        assert_consecutive(envelopes)
    positions = [e.global_position for _, envelopes in landed for e in envelopes]
    assert positions == sorted(set(positions)), "a batch's appends are in arrival order"

    for name in names:
        stream = await store.read_stream(pid(name))
        if name in failing:
            assert texts(stream) == [f"{name}:1"], name
            assert await store.highest_sequence_number(pid(name)) == 1, name
        else:
            assert texts(stream) == [f"{name}:1", f"{name}:2", f"{name}:3"], name
            assert await store.highest_sequence_number(pid(name)) == 3, name
    log = await store.read_all(limit=10_000)
    assert len(log) == 1 + 40 + 2 * (40 - len(failing))
    assert [e.global_position for e in log] == sorted({e.global_position for e in log})

    # The failed streams are not stuck: their next append, a valid one, lands.
    for name in sorted(failing):
        (envelope,) = await store.append(pid(name), [note(store, name, 2)], 1)
        assert envelope.sequence_number == 2
        assert texts(await store.read_stream(pid(name))) == [f"{name}:1", f"{name}:2"]

    # Each failure says what went wrong, and where.
    assert isinstance(failure[stale], ea.ConcurrencyError), failure[stale]
    assert TRIGGER_MESSAGE in str(failure[refused]), failure[refused]
    if backend.kind == "postgres":
        assert isinstance(failure[invalid_json], ea.SerializationError), failure[invalid_json]
    unnamed = {name: failure[name] for name in failing if pid(name) not in str(failure[name])}
    assert not unnamed, f"errors that do not name their stream: {unnamed}"

    # Counted: every append attempted, only the events written.
    assert delta.appends == 40, delta
    assert delta.events == 2 * (40 - len(failing)), delta
    real = await backend.committed_transactions([e for _, envelopes in landed for e in envelopes])
    if real is None:  # SQLite: a savepoint per append, all in the one transaction
        assert delta.transactions == 1, delta
    else:  # however PostgreSQL isolates the refused rows, the count is the database's
        assert 1 <= real <= delta.transactions, f"the database saw {real} transactions: {delta}"


# -- 4. two appends to one stream in one batch --------------------------------------------------


async def test_appends_to_one_stream_in_one_batch_apply_in_arrival_order(backend):
    store = await started_writer(backend)
    await backend.track_transactions()
    for name in ("a", "b", "c"):
        await store.append(pid(name), [note(store, name, 1)], 0)
    before = counts(store)
    async with backend.held_writer(store) as queued:
        pending = asyncio.gather(
            # a: the second continues where the first leaves the stream; both land.
            store.append(pid("a"), [note(store, "a", 2)], 1),
            store.append(pid("a"), [note(store, "a", 3), note(store, "a", 4)], 2),
            # b: the second expected the stream before the first: it conflicts.
            store.append(pid("b"), [note(store, "b", 2, "first")], 1),
            store.append(pid("b"), [note(store, "b", 2, "second")], 1),
            # c: a stale first append does not stop the next one.
            store.append(pid("c"), [note(store, "c", 1, "stale")], 0),
            store.append(pid("c"), [note(store, "c", 2)], 1),
            return_exceptions=True,
        )
        await queued()
    a2, a34, b_first, b_second, c_stale, c2 = await pending
    delta = counts(store) - before

    assert isinstance(a2, list) and isinstance(a34, list), (a2, a34)
    assert [e.sequence_number for e in a2 + a34] == [2, 3, 4]
    assert a2[0].global_position < a34[0].global_position
    assert_consecutive(a34)
    assert texts(await store.read_stream(pid("a"))) == ["a:1", "a:2", "a:3", "a:4"]

    assert isinstance(b_first, list), b_first
    assert isinstance(b_second, ea.ConcurrencyError), b_second
    assert pid("b") in str(b_second)
    stream = await store.read_stream(pid("b"))
    assert texts(stream) == ["b:1", "first"]
    assert stream[1].event_id == b_first[0].event_id

    assert isinstance(c_stale, ea.ConcurrencyError), c_stale
    assert pid("c") in str(c_stale)
    assert isinstance(c2, list), c2
    assert texts(await store.read_stream(pid("c"))) == ["c:1", "c:2"]
    assert [await store.highest_sequence_number(pid(n)) for n in "abc"] == [4, 2, 2]

    assert delta.appends == 6, delta
    assert delta.events == 5, delta  # written: a2, a3, a4, b's first, c2
    assert 1 <= delta.transactions <= most_transactions(backend, 1), delta
    real = await backend.committed_transactions(a2 + a34 + b_first + c2)
    assert real in (None, delta.transactions), f"the database saw {real} transactions: {delta}"


# -- 5. the bounds of a batch -----------------------------------------------------------------


async def test_max_batch_bounds_the_appends_per_transaction(backend):
    store = await started_writer(backend, max_batch=5)
    names = [f"m{index:02d}" for index in range(20)]
    before = counts(store)
    async with backend.held_writer(store) as queued:
        pending = asyncio.gather(
            *(store.append(pid(name), [note(store, name, 1)], 0) for name in names)
        )
        await queued()
    results = await pending
    delta = counts(store) - before
    assert [e.persistence_id for envelopes in results for e in envelopes] == [
        pid(name) for name in names
    ]
    positions = [envelopes[0].global_position for envelopes in results]
    assert positions == sorted(set(positions))
    assert (delta.appends, delta.events) == (20, 20)
    assert 4 <= delta.transactions <= most_transactions(backend, 4), delta


async def test_max_batch_bytes_bounds_the_payload_per_transaction(backend):
    store = await started_writer(backend, max_batch_bytes=100)
    names = [f"b{index:02d}" for index in range(10)]
    before = counts(store)
    async with backend.held_writer(store) as queued:
        pending = asyncio.gather(
            *(store.append(pid(name), [sized_note(store, name, 1, 60)], 0) for name in names)
        )
        await queued()
    results = await pending
    delta = counts(store) - before
    assert [e.persistence_id for envelopes in results for e in envelopes] == [
        pid(name) for name in names
    ]
    assert (delta.appends, delta.events) == (10, 10)
    # Two 60-byte payloads already pass 100 bytes: at most two appends per transaction.
    assert delta.transactions >= 5, delta


async def test_an_append_larger_than_max_batch_bytes_still_goes_alone(backend):
    store = await started_writer(backend, max_batch_bytes=100)
    await backend.track_transactions()
    big = [sized_note(store, "big", 1, 700), sized_note(store, "big", 2, 700)]
    before = counts(store)
    async with backend.held_writer(store) as queued:
        pending = asyncio.gather(
            store.append(pid("small-1"), [sized_note(store, "small-1", 1, 30)], 0),
            store.append(pid("big"), big, 0),
            store.append(pid("small-2"), [sized_note(store, "small-2", 1, 30)], 0),
        )
        await queued()
    small_1, stored_big, small_2 = await pending
    delta = counts(store) - before
    assert [e.sequence_number for e in stored_big] == [1, 2]
    assert_consecutive(stored_big)
    assert small_1[0].global_position < stored_big[0].global_position < small_2[0].global_position
    assert [e.event for e in await store.read_stream(pid("big"))] == [
        msgspec.json.decode(r.payload, type=Note) for r in big
    ]
    assert (delta.appends, delta.events) == (3, 4)
    # The big append shares its transaction with nothing, and arrival order keeps the two
    # small ones apart: three transactions at least.
    assert delta.transactions >= 3, delta
    real = await backend.committed_transactions(small_1 + stored_big + small_2)
    assert real in (None, 3), f"the database saw {real} transactions"
    # Not held, and with nothing else to carry, it goes too.
    (alone,) = await store.append(pid("big-alone"), [sized_note(store, "big-alone", 1, 5000)], 0)
    assert (await store.read_stream(pid("big-alone")))[0].event_id == alone.event_id


# -- 6. the flush window, and the options' checks -----------------------------------------------


async def test_flush_window_gathers_appends_issued_together(backend):
    store = await started_writer(backend, flush_window=0.05)
    names = [f"w{index}" for index in range(6)]
    before = counts(store)
    # Queued within microseconds of each other, far inside the 50 ms window.
    await asyncio.gather(*(store.append(pid(name), [note(store, name, 1)], 0) for name in names))
    delta = counts(store) - before
    assert delta == Counts(transactions=1, appends=6, events=6)
    for name in names:
        assert texts(await store.read_stream(pid(name))) == [f"{name}:1"]


async def test_flush_window_gathers_appends_issued_a_few_ms_apart(backend):
    store = await started_writer(backend, flush_window=0.25)
    before = counts(store)
    appends = []
    for index in range(3):
        if index:
            await asyncio.sleep(0.005)  # spacing the appends, not waiting for anything
        name = f"late{index}"
        appends.append(asyncio.ensure_future(store.append(pid(name), [note(store, name, 1)], 0)))
    results = await asyncio.gather(*appends)
    # 10 ms of spacing inside a 250 ms window: one transaction.
    assert counts(store) - before == Counts(transactions=1, appends=3, events=3)
    positions = [envelopes[0].global_position for envelopes in results]
    assert positions == sorted(set(positions))


def open_unconnected(kind: str, tmp_path: Path, **options: Any) -> Any:
    if kind == "sqlite":
        return ea.SQLiteStore(tmp_path / "never.db", **options)
    return ea.PostgresStore(DSN, schema="never_connected", **options)


INVALID_OPTIONS = [
    ("max_batch", 0),
    ("max_batch", -5),
    ("max_batch", True),
    ("max_batch", "10"),
    ("max_batch", None),
    ("max_batch_bytes", 0),
    ("max_batch_bytes", -1),
    ("max_batch_bytes", False),
    ("max_batch_bytes", "4MB"),
    ("max_batch_bytes", None),
    ("flush_window", -0.001),
    ("flush_window", -1),
    ("flush_window", True),
    ("flush_window", "0.01"),
    ("flush_window", None),
]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
@pytest.mark.parametrize(("option", "value"), INVALID_OPTIONS)
def test_invalid_batch_options_are_refused_naming_the_option(kind, option, value, tmp_path):
    # "max_batch" must not pass merely because the message names max_batch_bytes.
    named = "max_batch(?!_bytes)" if option == "max_batch" else option
    with pytest.raises(ValueError, match=named):
        open_unconnected(kind, tmp_path, **{option: value})
    assert not (tmp_path / "never.db").exists()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_smallest_valid_batch_options_are_accepted(kind, tmp_path):
    open_unconnected(kind, tmp_path, max_batch=1, max_batch_bytes=1, flush_window=0)
    open_unconnected(kind, tmp_path, max_batch=10_000, max_batch_bytes=2**30, flush_window=1)
    open_unconnected(kind, tmp_path, flush_window=0.25)
    assert not (tmp_path / "never.db").exists()


# -- write statistics ---------------------------------------------------------------------------


async def test_write_statistics_count_appends_and_their_events_only(backend):
    store = backend.open()
    assert counts(store) == Counts(0, 0, 0)  # before anything, without connecting
    await store.save_offset("projection", 7)
    await store.save_snapshot(ea.Snapshot(pid("s"), 1, "Note", Note("x"), datetime.now(UTC)))
    await store.read_all()
    assert counts(store) == Counts(0, 0, 0)  # other writes are no appends
    await store.append(pid("s"), [note(store, "s", 1), note(store, "s", 2)], 0)
    assert counts(store) == Counts(1, 1, 2)
    await store.append(pid("t"), [note(store, "t", 1)], 0)
    assert counts(store) == Counts(2, 2, 3)


async def test_a_refused_append_counts_as_attempted_but_writes_no_events(backend):
    store = await started_writer(backend)
    before = counts(store)
    with pytest.raises(ea.ConcurrencyError):
        await store.append(pid("warm-up"), [note(store, "warm-up", 1)], 0)
    delta = counts(store) - before
    assert (delta.appends, delta.events) == (1, 0), delta


async def test_write_statistics_are_cumulative_across_close(backend):
    store = await started_writer(backend)
    before = counts(store)
    assert before == Counts(1, 1, 1)
    # Closing the store (as an engine's stop does) resets nothing; reopening counts on.
    await store.close()
    assert counts(store) == before
    await store.append(pid("later"), [note(store, "later", 1)], 0)
    assert counts(store) == Counts(2, 2, 2)


async def test_memory_store_counts_every_append_as_its_own_transaction():
    store = ea.MemoryStore()
    store.serializer.register(Note)
    assert counts(store) == Counts(0, 0, 0)
    await asyncio.gather(
        *(
            store.append(pid(name), [note(store, name, s) for s in range(1, size + 1)], 0)
            for name, size in (("x", 1), ("y", 2), ("z", 3))
        )
    )
    assert counts(store) == Counts(3, 3, 6)
    with pytest.raises(ea.ConcurrencyError):
        await store.append(pid("x"), [note(store, "x", 1)], 0)
    after_conflict = counts(store)
    assert after_conflict.events == 6
    assert after_conflict.transactions == after_conflict.appends >= 3


# -- 7. durability under SIGKILL on PostgreSQL --------------------------------------------------

CHILD = Path(__file__).with_name("group_commit_child.py")


def run_child_until_killed(
    schema: str, seed: int, accounts: list[str], kill_after: int, log: Path
) -> list[Ack]:
    """The depositing child on `schema`, with 32 clients, killed after `kill_after` acks."""
    command = [sys.executable, str(CHILD), DSN, schema, str(seed), ",".join(accounts), "32"]
    return kill_child_after(command, kill_after, log, seconds=15)


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
async def test_no_acknowledged_event_is_lost_when_a_postgres_writer_is_killed(pg_schema, tmp_path):
    log = tmp_path / "child-stderr.log"
    accounts = [f"acct{index}" for index in range(24)]
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    every_ack: list[Ack] = []
    stored_before = 0
    schema_maker = ea.PostgresStore(DSN, schema=pg_schema)
    await schema_maker.read_all()  # creates the schema, to put the tracking trigger on it
    await schema_maker.close()
    await track_transactions(pg_schema)
    for cycle in range(2):
        kill_after = rng.randint(500, 4000)
        try:
            acks = run_child_until_killed(pg_schema, seed + cycle, accounts, kill_after, log)
            assert len(acks) >= kill_after
            every_ack.extend(acks)
            stored = await check_recovered(
                lambda: ea.PostgresStore(DSN, schema=pg_schema), accounts, every_ack
            )
            # Each run resumed the recovered accounts and added at least what it acknowledged.
            assert stored >= stored_before + len(acks)
        except AssertionError as failure:
            raise AssertionError(f"seed {seed}, cycle {cycle}: {failure}") from failure
        stored_before = stored
    # The bursts were group-committed: far fewer transactions than acknowledged deposits.
    positions = await store_positions(pg_schema)
    inserted_by = await inserting_transactions(pg_schema, positions)
    assert len(inserted_by) == len(positions)
    assert len(set(inserted_by.values())) < len(positions) / 2, (
        f"seed {seed}: {len(positions)} events took {len(set(inserted_by.values()))} transactions"
    )


async def store_positions(schema: str) -> list[int]:
    store = ea.PostgresStore(DSN, schema=schema)
    try:
        return [envelope.global_position for envelope in await store.read_all(limit=1_000_000)]
    finally:
        await store.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_writes_queued_in_one_batch_keep_their_order(backend):
    """An append, then a deletion of what it wrote, then another append, all in one SQLite
    batch: the deletion sees the first append and not the second. (On PostgreSQL only the
    appends share a queue; other writes go straight to a pooled connection, so writes issued
    concurrently without awaiting have no order there.)"""
    store = await started_writer(backend)
    name = "ordered"
    try:
        async with backend.held_writer(store) as queued:
            pending = asyncio.gather(
                store.append(pid(name), [note(store, name, 1), note(store, name, 2)], 0),
                store.delete_events_to(pid(name), 2),
                store.append(pid(name), [note(store, name, 3)], 2),
            )
            await queued()
        await pending
        assert [e.sequence_number for e in await store.read_stream(pid(name))] == [3]
        assert await store.highest_sequence_number(pid(name)) == 3
    finally:
        await store.close()
