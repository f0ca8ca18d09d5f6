"""eventactors.inspection on every store: a memory store, an SQLite file, a PostgreSQL schema."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest
import pytest_asyncio
from eventactors_examples.bank.domain import Deposited, Opened
from postgres_support import DSN, drop_schema, new_schema_name
from waits import wait_until

import eventactors as ea
from eventactors import inspection
from eventactors._ids import uuid7
from eventactors.inspection import InspectionError, ProjectionOffset, StreamSummary
from eventactors.records import EventRecord, persistence_id_of

DAY = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[ea.Store]:
    if request.param == "memory":
        opened: ea.Store = ea.MemoryStore()
        yield opened
        return
    if request.param == "sqlite":
        opened = ea.SQLiteStore(tmp_path / "inspect.db")
        yield opened
        await opened.close()
        return
    schema = new_schema_name()
    opened = ea.PostgresStore(DSN, schema=schema)
    try:
        yield opened
    finally:
        await opened.close()
        await drop_schema(schema)


async def write(
    store: ea.Store, entity_type: str, entity_id: str, *events: object, at: datetime = DAY
) -> list[ea.EventEnvelope]:
    """Appends events to a stream with chosen timestamps, one second apart from `at`."""
    persistence_id = persistence_id_of(entity_type, entity_id)
    highest = await store.highest_sequence_number(persistence_id)
    records = [
        EventRecord(
            event_id=uuid7(),
            persistence_id=persistence_id,
            entity_type=entity_type,
            entity_id=entity_id,
            sequence_number=highest + n,
            event_type=type(event).__name__,
            payload=msgspec.json.encode(event),
            timestamp=at + timedelta(seconds=n),
        )
        for n, event in enumerate(events, start=1)
    ]
    return await store.append(persistence_id, records, highest)


async def bank(store: ea.Store) -> None:
    """ann on 1 May (3 events), bob on 1 and 2 May (2 events), a loan on 3 May (1 event)."""
    await write(store, "account", "ann", Opened("ann"), Deposited(100), Deposited(5))
    await write(store, "account", "bob", Opened("bob"))
    await write(store, "account", "bob", Deposited(7), at=DAY + timedelta(days=1))
    await write(store, "loan", "L-1", Opened("ann"), at=DAY + timedelta(days=2))


async def test_list_streams_counts_filters_and_limits(store):
    await bank(store)
    streams = await inspection.list_streams(store)
    assert streams == [
        StreamSummary("account|ann", "account", "ann", 3, 3, DAY + timedelta(seconds=3)),
        StreamSummary("account|bob", "account", "bob", 2, 2, DAY + timedelta(days=1, seconds=1)),
        StreamSummary("loan|L-1", "loan", "L-1", 1, 1, DAY + timedelta(days=2, seconds=1)),
    ]
    assert [s.entity_id for s in await inspection.list_streams(store, entity_type="loan")] == [
        "L-1"
    ]
    assert [s.entity_id for s in await inspection.list_streams(store, search="BO")] == ["bob"]
    assert len(await inspection.list_streams(store, limit=2)) == 2
    assert await inspection.list_streams(store, entity_type="nope") == []


async def test_list_streams_tells_the_highest_sequence_from_the_events_held(store):
    await bank(store)
    await store.delete_events_to("account|ann", 2)
    await store.delete_events_to("loan|L-1", 1)
    ann, _, loan = await inspection.list_streams(store)
    assert (ann.highest_sequence, ann.events, ann.last_timestamp) == (
        3, 1, DAY + timedelta(seconds=3),
    )  # fmt: skip
    assert (loan.highest_sequence, loan.events, loan.last_timestamp) == (1, 0, None)


async def test_list_streams_skips_an_offset_without_reading_the_skipped(store):
    await bank(store)
    counting = CountingReads(store)
    later = await inspection.list_streams(counting, offset=1, limit=1)
    assert [s.persistence_id for s in later] == ["account|bob"]
    assert counting.streams_read == ["account|bob"]
    found = await inspection.list_streams(store, search="account", offset=1)
    assert [s.persistence_id for s in found] == ["account|bob"]
    assert await inspection.list_streams(store, offset=3) == []
    with pytest.raises(ValueError, match="offset must be 0 or more"):
        await inspection.list_streams(store, offset=-1)


async def test_stream_events_reads_a_range(store):
    await bank(store)
    events = await inspection.stream_events(store, "account|ann", from_sequence=2)
    assert [e.sequence_number for e in events] == [2, 3]
    assert [
        e.sequence_number
        for e in await inspection.stream_events(store, "account|ann", to_sequence=2, limit=1)
    ] == [1]
    assert await inspection.stream_events(store, "account|nobody") == []


async def test_find_events_by_type_and_search_in_log_order(store):
    await bank(store)
    deposits = await inspection.find_events(store, event_type="Deposited")
    assert [(e.entity_id, e.sequence_number) for e in deposits] == [
        ("ann", 2),
        ("ann", 3),
        ("bob", 2),
    ]
    ann = await inspection.find_events(store, search='"ANN"')  # the payload text
    assert [e.persistence_id for e in ann] == ["account|ann", "loan|L-1"]
    assert [e.persistence_id for e in await inspection.find_events(store, search="loan|")] == [
        "loan|L-1"
    ]
    after = await inspection.find_events(store, after_position=deposits[1].global_position, limit=2)
    assert [e.global_position for e in after] == [
        deposits[1].global_position + 1,
        deposits[1].global_position + 2,
    ]
    fourth = await inspection.event_by_position(store, after[0].global_position)
    assert fourth == after[0]
    assert await inspection.event_by_position(store, 10_000) is None
    assert await inspection.event_by_position(store, 0) is None


async def test_count_events_by_type_day_and_entity_type(store):
    await bank(store)
    counts = await inspection.count_events(store)
    assert counts.total == 6
    assert counts.by_type == {"Opened": 3, "Deposited": 3}
    assert counts.by_day == {"2024-05-01": 4, "2024-05-02": 1, "2024-05-03": 1}
    assert counts.by_entity_type == {"account": 5, "loan": 1}
    later = await inspection.count_events(store, since=datetime(2024, 5, 2))  # naive is UTC
    assert (later.total, later.by_day) == (2, {"2024-05-02": 1, "2024-05-03": 1})
    assert (await inspection.count_events(ea.MemoryStore())).total == 0


async def test_write_rate_includes_empty_buckets(store):
    await bank(store)
    rate = await inspection.write_rate(
        store,
        bucket=timedelta(days=1),
        since=DAY - timedelta(days=1),
        until=DAY + timedelta(days=3),
    )
    assert rate == [
        (DAY - timedelta(days=1), 0),
        (DAY, 4),
        (DAY + timedelta(days=1), 1),
        (DAY + timedelta(days=2), 1),
    ]
    with pytest.raises(ValueError, match="bucket"):
        await inspection.write_rate(store, bucket=timedelta(0), since=DAY)


class CountingReads:
    """A store that notes what its reads return, to show how much of the log a query read."""

    def __init__(self, store: ea.Store) -> None:
        self.store = store
        self.events_read = 0
        self.streams_read: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    async def read_all(self, *args: object, **kwargs: object) -> list[ea.EventEnvelope]:
        page = await self.store.read_all(*args, **kwargs)
        self.events_read += len(page)
        return page

    async def highest_sequence_number(self, persistence_id: str) -> int:
        self.streams_read.append(persistence_id)
        return await self.store.highest_sequence_number(persistence_id)


async def test_write_rate_reads_only_the_log_near_its_window(store):
    await write(store, "account", "old", *[Deposited(n) for n in range(1, 1201)])  # 20 minutes
    later = DAY + timedelta(days=1)
    await write(store, "account", "new", Deposited(1), Deposited(2), at=later)
    counting = CountingReads(store)
    rate = await inspection.write_rate(
        counting, bucket=timedelta(hours=1), since=later, until=later + timedelta(hours=2)
    )
    assert rate == [(later, 2), (later + timedelta(hours=1), 0)]
    assert counting.events_read < 40  # a probe per halving, then the two events: not 1202
    # A window that starts inside the old events counts from exactly its start.
    middle = await inspection.write_rate(
        counting, bucket=timedelta(days=1), since=DAY + timedelta(seconds=600), until=later
    )
    assert middle == [(DAY + timedelta(seconds=600), 601)]  # seconds 600 to 1200 of DAY


async def test_projection_offsets_list_every_saved_offset(store):
    await bank(store)
    assert await inspection.projection_offsets(store) == []
    await store.save_offset("balances", 4)
    await store.save_offset("audit", 6)
    assert await store.list_offsets() == {"audit": 6, "balances": 4}
    assert isinstance(store, inspection.OffsetListing)
    assert await inspection.projection_offsets(store) == [
        ProjectionOffset("audit", 6, 6, 0),
        ProjectionOffset("balances", 4, 6, 2),
    ]
    assert await inspection.projection_offsets(store, ["balances", "never"]) == [
        ProjectionOffset("balances", 4, 6, 2),
        ProjectionOffset("never", 0, 6, 6),
    ]


async def test_projection_offsets_need_names_from_a_store_that_cannot_list(store):
    class Plain:
        """A third-party store without `list_offsets`."""

        def __getattr__(self, name: str) -> object:
            if name == "list_offsets":
                raise AttributeError(name)
            return getattr(store, name)

    await store.save_offset("balances", 0)
    with pytest.raises(InspectionError, match="name the projections"):
        await inspection.projection_offsets(Plain())  # type: ignore[arg-type]
    assert await inspection.projection_offsets(Plain(), ["balances"]) == [  # type: ignore[arg-type]
        ProjectionOffset("balances", 0, 0, 0)
    ]


async def test_payload_and_envelope_as_data(store):
    [opened] = await write(store, "account", "ann", Opened("ann"))
    assert inspection.payload_as_data(store, opened) == {"owner": "ann"}  # raw JSON: unregistered
    serializer = ea.JsonSerializer()
    serializer.register(Opened)
    assert inspection.payload_as_data(serializer, opened) == {"owner": "ann"}
    data = inspection.envelope_as_data(store, opened)
    assert json.loads(json.dumps(data)) == data
    assert data["persistence_id"] == "account|ann" and data["sequence_number"] == 1
    assert data["timestamp"] == "2024-05-01T09:00:01Z"
    assert set(data) >= {"event_id", "event_type", "tags", "metadata", "command_id", "payload"}


def test_binary_and_broken_payloads_never_raise():
    envelope = ea.EventEnvelope(
        event_id="e", persistence_id="t|1", entity_type="t", entity_id="1", sequence_number=1,
        global_position=1, event_type="Opened", timestamp=DAY, tags=(), metadata={},
        command_id="", correlation_id="", payload=b"\xff\x00" * 40, _decode=lambda e: None,
    )  # fmt: skip
    serializer = ea.JsonSerializer()
    serializer.register(Opened)
    assert inspection.payload_as_data(serializer, envelope) == {
        "undecodable": ("ff00" * 16),
        "bytes": 80,
    }


async def take(
    events: AsyncIterator[ea.EventEnvelope], count: int, seen: list[ea.EventEnvelope]
) -> None:
    """Follows until `count` events are seen, then closes the generator where it stands, at a
    yield: cancelling it instead could interrupt a read and leave its connection behind."""
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for envelope in events:
            seen.append(envelope)
            if len(seen) >= count:
                return


async def test_follow_events_tails_one_stream_after_its_history(store):
    await bank(store)
    seen: list[ea.EventEnvelope] = []

    events = inspection.follow_events(
        store, after_position=0, persistence_id="account|bob", poll=0.05
    )
    task = asyncio.create_task(take(events, 3, seen))
    await wait_until(lambda: len(seen) >= 2, timeout=10)
    await write(store, "account", "ann", Deposited(1))
    await write(store, "account", "bob", Deposited(2))
    await asyncio.wait_for(task, 10)
    assert [(e.entity_id, e.sequence_number) for e in seen] == [("bob", 1), ("bob", 2), ("bob", 3)]


def test_a_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path):
    with pytest.raises(InspectionError, match=r"no such store: .*missing\.db"):
        inspection.open_existing_store(str(tmp_path / "missing.db"))
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(InspectionError, match="postgresql://"):
        inspection.open_existing_store("mysql://x/y")


async def test_a_file_that_is_no_store_is_not_turned_into_one(tmp_path):
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    (tmp_path / "text.db").write_text("hello, not a database" * 10)
    for path in (other, tmp_path / "text.db"):
        store = inspection.open_existing_store(str(path))
        with pytest.raises(InspectionError, match=str(path)):
            await inspection.check_reachable(store)
    assert sqlite3.connect(other).execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


async def test_postgres_unreachable_or_without_the_schema(pg_schema):
    unreachable = inspection.open_existing_store("postgresql://postgres@127.0.0.1:1/x")
    with pytest.raises(InspectionError, match=r"PostgreSQL 127\.0\.0\.1:1/x.* is unavailable"):
        await inspection.check_reachable(unreachable)
    missing = inspection.open_existing_store(DSN, schema=pg_schema)
    with pytest.raises(InspectionError, match=f"no such store: .*'{pg_schema}'"):
        await inspection.check_reachable(missing)
    with pytest.raises(InspectionError, match="schema must be"):
        inspection.open_existing_store(DSN, schema="Bad-Name")
    real = ea.PostgresStore(DSN, schema=pg_schema)
    await bank(real)
    await real.close()
    store = inspection.open_existing_store(DSN, schema=pg_schema)
    await inspection.check_reachable(store)
    assert len(await inspection.list_streams(store)) == 3
    await store.close()


# -- read-only opening --------------------------------------------------------------------


def sqlite_fingerprint(path) -> tuple[bytes, str, list[str]]:
    """The database's bytes, its journal mode and its tables."""
    connection = sqlite3.connect(path)
    try:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master ORDER BY 1")]
    finally:
        connection.close()
    return path.read_bytes(), mode, tables


async def test_open_existing_store_reads_an_sqlite_file_without_changing_it(tmp_path):
    """An older file (no command log table) in rollback-journal mode: a writable store would
    add the table and switch the file to WAL; the inspector's store does neither."""
    path = tmp_path / "old.db"
    writable = ea.SQLiteStore(path)
    await bank(writable)
    await writable.save_offset("balances", 2)
    await writable.close()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode = DELETE")
    connection.execute("DROP TABLE ea_commands")
    connection.close()
    before = sqlite_fingerprint(path)
    store = inspection.open_existing_store(str(path))
    await inspection.check_reachable(store)
    assert len(await inspection.list_streams(store)) == 3
    assert (await inspection.count_events(store)).total == 6
    assert await inspection.projection_offsets(store) == [ProjectionOffset("balances", 2, 6, 4)]
    with pytest.raises(ea.WriteRefused, match="read-only"):
        await store.save_offset("balances", 6)
    await store.close()
    assert sqlite_fingerprint(path) == before


async def test_open_existing_store_reads_a_postgres_schema_without_recreating_tables(pg_schema):
    writable = ea.PostgresStore(DSN, schema=pg_schema)
    await bank(writable)
    await writable.close()
    connection = await asyncpg.connect(DSN)
    await connection.execute(f'DROP TABLE "{pg_schema}".ea_commands')
    store = inspection.open_existing_store(DSN, schema=pg_schema)
    try:
        await inspection.check_reachable(store)
        assert len(await inspection.list_streams(store)) == 3
        with pytest.raises(ea.WriteRefused, match="read-only"):
            await store.save_offset("balances", 6)
        found = await connection.fetchval("SELECT to_regclass($1)", f'"{pg_schema}".ea_commands')
        assert found is None
    finally:
        await store.close()
        await connection.close()


async def test_a_writable_store_is_only_opened_on_an_existing_event_log(tmp_path):
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    with pytest.raises(InspectionError, match="holds no eventactors event log"):
        await inspection.open_checked(str(other), read_only=False)
    assert sqlite_fingerprint(other) == (b"", "delete", [])
    real = tmp_path / "real.db"
    await bank(ea.SQLiteStore(real))
    store = await inspection.open_checked(str(real), read_only=False)
    await store.save_offset("balances", 1)  # this one writes
    await store.close()


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("postgresql://postgres:secret@127.0.0.1:99999/db", "Port out of range 0-65535"),
        ("postgresql://postgres:secret@127.0.0.1:notaport/db", "could not be cast to integer"),
    ],
)
def test_a_malformed_postgres_url_is_named_without_its_password(dsn, message):
    with pytest.raises(InspectionError, match=message) as refused:
        inspection.open_existing_store(dsn)
    assert "bad store location postgresql://postgres:***@127.0.0.1:" in str(refused.value)
    assert "secret" not in str(refused.value)


# -- timestamps, payloads -----------------------------------------------------------------


async def test_naive_and_offset_timestamps_of_other_writers_read_as_utc(tmp_path):
    path = tmp_path / "foreign.db"
    writable = ea.SQLiteStore(path)
    await bank(writable)
    await writable.close()
    connection = sqlite3.connect(path)  # as another writer left them
    connection.execute(
        "UPDATE ea_events SET timestamp = '2024-05-01T10:00:00' WHERE global_position = 1"
    )
    connection.execute(
        "UPDATE ea_events SET timestamp = '2024-05-03T04:30:00-05:00' WHERE global_position = 6"
    )
    connection.commit()
    connection.close()
    store = inspection.open_existing_store(str(path))
    counts = await inspection.count_events(store, since=datetime(2024, 5, 3, 9, tzinfo=UTC))
    assert (counts.total, counts.by_day) == (1, {"2024-05-03": 1})  # 04:30-05:00 is 09:30 UTC
    assert (await inspection.count_events(store, since=datetime(2024, 5, 1, 10))).total == 3
    loan = (await inspection.list_streams(store, entity_type="loan"))[0]
    assert loan.last_timestamp == datetime(2024, 5, 3, 9, 30, tzinfo=UTC)
    assert loan.last_timestamp.utcoffset() == timedelta(0)
    [first] = await store.read_all(0, 1)
    assert inspection.envelope_as_data(store, first)["timestamp"] == "2024-05-01T10:00:00Z"
    rate = await inspection.write_rate(store, bucket=timedelta(days=1), since=DAY, until=DAY)
    assert rate == [(DAY, 0)]
    await store.close()


def test_a_binary_payload_is_never_taken_for_json():
    envelope = ea.EventEnvelope(
        event_id="e", persistence_id="t|1", entity_type="t", entity_id="1", sequence_number=1,
        global_position=1, event_type="bank.v1.Opened", timestamp=DAY, tags=(), metadata={},
        command_id="", correlation_id="", payload=b"[1]", _decode=lambda e: None,
    )  # fmt: skip
    assert inspection.payload_as_data(ea.ProtobufSerializer(), envelope) == {
        "undecodable": "5b315d",
        "bytes": 3,
    }
    assert inspection.payload_as_data(ea.JsonSerializer(), envelope) == [1]


async def test_projection_offsets_of_saved_and_declared_names_against_one_head(store):
    await bank(store)
    await store.save_offset("balances", 4)
    assert await inspection.projection_offsets(store, also=["audit", "balances"]) == [
        ProjectionOffset("audit", 0, 6, 6),
        ProjectionOffset("balances", 4, 6, 2),
    ]


async def test_follow_events_of_a_stream_from_a_sequence_number(store):
    await bank(store)
    seen: list[ea.EventEnvelope] = []

    events = inspection.follow_events(
        store, after_position=6, persistence_id="account|bob", from_sequence=4, poll=0.05
    )
    task = asyncio.create_task(take(events, 1, seen))
    await write(store, "account", "bob", Deposited(3), Deposited(4))  # sequences 3 and 4
    await asyncio.wait_for(task, 10)
    assert [e.sequence_number for e in seen] == [4]
