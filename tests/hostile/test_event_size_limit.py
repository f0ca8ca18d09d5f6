"""`Engine(max_event_bytes=...)`: an event or durable state over the limit fails its command
with `PayloadTooLarge`, writes nothing, and leaves the entity and every other one working.

The limit measures the serializer's bytes, so each test builds values of an exact encoded
size: exactly the limit is accepted, one byte more is refused.
"""

from __future__ import annotations

import pickle

import pytest
from hostile_behaviors import (
    Fill,
    NotesBehavior,
    Page,
    PageBehavior,
    Write,
    Wrote,
    encoded_size,
    page_of_size,
    wrote_of_size,
)
from postgres_support import DSN, drop_schema, new_schema_name

import eventactors as ea
from eventactors import inspection

pytestmark = pytest.mark.timeout(60)

LIMIT = 200


def engine_on(store: ea.Store, limit: int | None = LIMIT, *, command_log: bool = False):
    engine = ea.Engine(store=store, max_event_bytes=limit)
    engine.register("notes", NotesBehavior, command_log=command_log)
    engine.register("page", PageBehavior, command_log=command_log)
    return engine


def assert_names_everything(error: ea.PayloadTooLarge, type_name: str, stream: str, size: int):
    message = str(error)
    assert isinstance(error, ea.SerializationError)
    assert f"{type_name!r}" in message
    assert f"stream {stream!r}" in message
    assert f"{size} bytes" in message
    assert f"limit of {LIMIT} bytes" in message
    assert "max_event_bytes" in message
    assert "nothing was persisted" in message
    assert (error.size, error.limit) == (size, LIMIT)


def test_the_default_limit_is_one_mebibyte_and_none_removes_it():
    assert ea.Engine().max_event_bytes == 1_048_576
    assert ea.Engine(max_event_bytes=None).max_event_bytes is None
    assert "PayloadTooLarge" in ea.__all__


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "1024", float("nan"), 10**6 * 1.0])
def test_a_limit_that_is_not_a_positive_int_is_refused_naming_the_option(value):
    with pytest.raises(ValueError, match="max_event_bytes"):
        ea.Engine(max_event_bytes=value)


def test_the_error_survives_pickling_for_the_trip_back_from_a_shard():
    error = ea.PayloadTooLarge("too big", size=3, limit=2)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.size, copy.limit) == (ea.PayloadTooLarge, "too big", 3, 2)


async def test_an_event_of_exactly_the_limit_is_written_and_one_byte_more_is_refused():
    store = ea.MemoryStore()
    async with engine_on(store) as engine:
        reply = await engine.send("notes", "n", Write((wrote_of_size(LIMIT),)))
        assert reply.revision == 1
        assert len(reply.events[0].payload) == LIMIT

        with pytest.raises(ea.PayloadTooLarge) as refused:
            await engine.send("notes", "n", Write((wrote_of_size(LIMIT) + 1,)))
        assert_names_everything(refused.value, "Wrote", "notes|n", LIMIT + 1)

        assert await store.highest_sequence_number("notes|n") == 1
        assert await engine.get_state("notes", "n") == (reply.state, reply.revision)
        # The entity carries on, and so does every other.
        assert (await engine.send("notes", "n", Write((5,)))).revision == 2
        assert (await engine.send("notes", "other", Write((LIMIT - 20,)))).revision == 1


async def test_one_oversized_event_among_several_writes_none_of_them():
    store = ea.MemoryStore()
    async with engine_on(store) as engine:
        await engine.send("notes", "n", Write((1,)))
        with pytest.raises(ea.PayloadTooLarge, match="'Wrote'"):
            await engine.send("notes", "n", Write((10, 2 * LIMIT, 10)))
        assert [e.event for e in await store.read_stream("notes|n")] == [Wrote("x")]
        assert (await engine.send("notes", "n", Write((10, 10)))).revision == 3


async def test_a_durable_state_over_the_limit_is_refused_and_the_entity_carries_on():
    store = ea.MemoryStore()
    async with engine_on(store) as engine:
        exact = await engine.send("page", "p", Fill(page_of_size(LIMIT, edits=1)))
        assert exact.revision == 1 and encoded_size(exact.state) == LIMIT
        with pytest.raises(ea.PayloadTooLarge) as refused:
            await engine.send("page", "p", Fill(page_of_size(LIMIT, edits=2) + 1))
        assert_names_everything(refused.value, "Page", "page|p", LIMIT + 1)
        assert await engine.get_state("page", "p") == (exact.state, 1)
        stored = await store.get_state("page|p")
        assert stored is not None and (stored.state, stored.revision) == (exact.state, 1)
        assert await engine.send("page", "p", Fill(3)) == ea.Reply(Page("xxx", 2), 2)


async def test_without_a_limit_a_two_mebibyte_event_and_state_are_written():
    async with engine_on(ea.MemoryStore(), limit=None) as engine:
        assert (await engine.send("notes", "n", Write((2 * 1_048_576,)))).revision == 1
        assert (await engine.send("page", "p", Fill(2 * 1_048_576))).revision == 1


async def test_the_command_log_records_the_refusal_as_a_failure():
    async with engine_on(ea.MemoryStore(), command_log=True) as engine:
        with pytest.raises(ea.PayloadTooLarge):
            await engine.send("notes", "n", Write((LIMIT,)))
        [entry] = await engine.command_log("notes", "n")
        assert entry.outcome == ea.FAILED
        assert entry.reason.startswith("PayloadTooLarge: ") and "'Wrote'" in entry.reason
        assert entry.event_ids == () and entry.revision == 0


async def check_limit_on(open_store) -> None:
    """The event and state boundaries on a durable store, then a restart: nothing of the
    refused commands was written, and both entities recover as they were."""
    async with engine_on(open_store()) as engine:
        event = await engine.send("notes", "n", Write((wrote_of_size(LIMIT),)))
        page = await engine.send("page", "p", Fill(page_of_size(LIMIT, edits=1)))
        with pytest.raises(ea.PayloadTooLarge) as refused_event:
            await engine.send("notes", "n", Write((wrote_of_size(LIMIT) + 1,)))
        assert_names_everything(refused_event.value, "Wrote", "notes|n", LIMIT + 1)
        with pytest.raises(ea.PayloadTooLarge) as refused_state:
            await engine.send("page", "p", Fill(page_of_size(LIMIT, edits=2) + 1))
        assert_names_everything(refused_state.value, "Page", "page|p", LIMIT + 1)
    async with engine_on(open_store()) as engine:
        assert await engine.get_state("notes", "n") == (event.state, 1)
        assert await engine.get_state("page", "p") == (page.state, 1)
        assert len(await engine.store.read_stream("notes|n")) == 1
        assert (await engine.send("notes", "n", Write((1,)))).revision == 2
        assert (await engine.send("page", "p", Fill(1))).revision == 2


async def test_the_limit_holds_on_sqlite(tmp_path):
    await check_limit_on(lambda: ea.SQLiteStore(tmp_path / "limit.db"))


async def test_the_limit_holds_on_postgres():
    schema = new_schema_name()
    try:
        await check_limit_on(lambda: ea.PostgresStore(DSN, schema=schema))
    finally:
        await drop_schema(schema)


def test_a_cluster_engine_hands_its_limit_to_its_shard_hosts(tmp_path):
    """Shard and projection hosts build their engines from the driver's `AppSpec`, which
    travels pickled: the limit goes with it (no Ray needed to check that)."""
    driver = ea.Engine(
        store=ea.SQLiteStore(tmp_path / "cluster.db"),
        cluster=ea.RayCluster(num_shards=2),
        max_event_bytes=1234,
    )
    driver.register("notes", NotesBehavior)
    spec = pickle.loads(pickle.dumps(driver._app_spec()))
    host = spec.build_engine(shard=0)
    assert host.max_event_bytes == 1234
    assert host._kinds["notes"].max_event_bytes == 1234


async def test_a_tool_engine_built_from_an_app_keeps_its_limit(tmp_path):
    app = engine_on(ea.MemoryStore(), limit=321)
    tool = await inspection.engine_on(app, ea.MemoryStore(), projections=False)
    assert tool.max_event_bytes == 321
    async with tool:
        with pytest.raises(ea.PayloadTooLarge, match="limit of 321 bytes"):
            await tool.send("notes", "n", Write((400,)))
