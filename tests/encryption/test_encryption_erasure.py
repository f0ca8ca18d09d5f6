"""`Engine.erase_entity`: the entity's events become tombstones with their metadata intact,
commands, state reads, recovery and writes to its stream fail with `EntityErased`, its
snapshots and state are gone, and nothing of any other entity changes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from encryption_behaviors import (
    GATES,
    Gate,
    Notebook,
    NotebookBehavior,
    Profile,
    SetProfile,
    Write,
    Written,
    notebook_engine,
)
from encryption_support import KEY
from waits import wait_until

import eventactors as ea
from eventactors.testing.conformance import Kit

pytestmark = pytest.mark.timeout(60)


def metadata(envelope: ea.EventEnvelope) -> tuple[object, ...]:
    return (
        envelope.event_id, envelope.persistence_id, envelope.entity_type, envelope.entity_id,
        envelope.sequence_number, envelope.global_position, envelope.event_type,
        envelope.timestamp, envelope.tags, dict(envelope.metadata), envelope.command_id,
        envelope.correlation_id,
    )  # fmt: skip


async def test_an_erased_entity_reads_as_tombstones_and_the_rest_of_the_log_is_untouched(
    backend,
):
    store = backend.encrypted()
    engine = notebook_engine(store, snapshot_every=2)
    async with engine:
        for number in range(3):
            await engine.send("notebook", "gone", Write(f"secret {number}"))
            await engine.send("notebook", "kept", Write(f"public {number}"))
        await engine.send("profile", "gone", SetProfile("not the notebook"))
        before = await store.read_all()
        kept_state = await engine.get_state("notebook", "kept")

        await engine.erase_entity("notebook", "gone")

        after = await store.read_all()
        assert [metadata(e) for e in after] == [metadata(e) for e in before]
        for old, new in zip(before, after, strict=True):
            if new.persistence_id == "notebook|gone":
                assert new.payload == b""
                assert new.event == ea.ErasedEvent("Written", "notebook|gone", old.sequence_number)
            else:
                assert (new.payload, new.event) == (old.payload, old.event)
        stream = [e async for e in engine.events("notebook", "gone")]
        assert [type(e.event) for e in stream] == [ea.ErasedEvent] * 3
        assert await store.read_stream("notebook|gone") == stream

        with pytest.raises(ea.EntityErased, match="'notebook'/'gone'"):
            await engine.get_state("notebook", "gone")
        with pytest.raises(ea.EntityErased, match="'notebook'/'gone'"):
            await engine.send("notebook", "gone", Write("again"))
        with pytest.raises(ea.EntityErased):
            await engine.get_state("notebook", "gone", at_revision=2)
        with pytest.raises(ea.EntityErased):
            await store.read_stream_payloads("notebook|gone")
        with pytest.raises(ea.EntityErased):
            await store.load_snapshot("notebook|gone")
        assert await store.inner.load_snapshot("notebook|gone") is None  # deleted as well
        assert await store.highest_sequence_number("notebook|gone") == 3  # not rewound
        assert await store.is_erased("notebook|gone")

        # The stream cannot be written again, through the store either.
        kit = Kit(store)
        with pytest.raises(ea.EntityErased):
            await store.append("notebook|gone", [kit.record("notebook|gone", 4, Written("x"))], 3)
        assert await store.highest_sequence_number("notebook|gone") == 3

        # Everything else carries on: another entity, and the same id of another type.
        assert await engine.get_state("notebook", "kept") == kept_state
        assert (await engine.send("notebook", "kept", Write("more"))).revision == 4
        assert await engine.get_state("profile", "gone") == (Profile("not the notebook"), 1)
        await engine.erase_entity("notebook", "gone")  # twice: harmless

    engine = notebook_engine(backend.encrypted())
    async with engine:  # after a restart, recovery meets the erasure
        with pytest.raises(ea.EntityErased):
            await engine.get_state("notebook", "gone")
        assert (await engine.get_state("notebook", "kept"))[1] == 4


async def test_projections_see_tombstones_and_keep_their_offsets(backend):
    store = backend.encrypted()
    engine = notebook_engine(store)
    seen: list[ea.EventEnvelope] = []
    async with engine:
        await engine.send("notebook", "gone", Write("secret"))
        await engine.send("notebook", "kept", Write("public"))
        await engine.erase_entity("notebook", "gone")
        await engine.add_projection("rebuilt", seen.append, from_start=True)
        await engine.send("notebook", "kept", Write("later"))
        status = await engine.wait_for_projection("rebuilt", timeout=10)
    assert status.last_error is None and status.events_handled == 3
    assert [type(e.event) for e in seen] == [ea.ErasedEvent, Written, Written]
    assert [e.global_position for e in seen] == sorted(e.global_position for e in seen)


async def test_erasing_durable_state_deletes_it_and_refuses_writes(backend):
    store = backend.encrypted()
    engine = notebook_engine(store)
    async with engine:
        await engine.send("profile", "p", SetProfile("ann"))
        await engine.send("profile", "q", SetProfile("bob"))
        await engine.erase_entity("profile", "p")
        with pytest.raises(ea.EntityErased):
            await engine.get_state("profile", "p")
        with pytest.raises(ea.EntityErased):
            await engine.send("profile", "p", SetProfile("ann again"))
        with pytest.raises(ea.EntityErased):
            await store.get_state("profile|p")
        record = ea.StateRecord("profile|p", 1, "Profile", Profile("x"), datetime.now(UTC))
        with pytest.raises(ea.EntityErased):
            await store.upsert_state("profile|p", 1, record)
        assert await store.inner.get_state("profile|p") is None  # deleted
        assert await engine.get_state("profile", "q") == (Profile("bob"), 1)


async def test_an_entity_erased_before_it_existed_can_never_be_created(backend):
    engine = notebook_engine(backend.encrypted())
    async with engine:
        await engine.erase_entity("notebook", "never")
        with pytest.raises(ea.EntityErased):
            await engine.send("notebook", "never", Write("hello"))
        with pytest.raises(ea.EntityErased):
            await engine.get_state("notebook", "never")


async def test_the_command_in_flight_finishes_and_waiting_ones_fail(backend):
    GATES["hold"] = gate = Gate()
    try:
        engine = notebook_engine(backend.encrypted())
        async with engine:
            await engine.send("notebook", "n", Write("first"))
            held = asyncio.ensure_future(engine.send("notebook", "n", Write("held", "hold")))
            await asyncio.wait_for(gate.arrived.wait(), 5)  # running, and held there
            waiting = asyncio.ensure_future(engine.send("notebook", "n", Write("waiting")))
            await wait_until(lambda: engine.statistics().deepest_mailbox >= 1)
            erasing = asyncio.ensure_future(engine.erase_entity("notebook", "n"))
            with pytest.raises(ea.EntityErased, match="being erased"):
                await waiting
            assert not erasing.done()  # it waits for the command in hand
            gate.release.set()
            assert (await held).revision == 2  # its reply stands
            await erasing
            with pytest.raises(ea.EntityErased):
                await engine.get_state("notebook", "n")
            assert [type(e.event) for e in await engine.store.read_stream("notebook|n")] == [
                ea.ErasedEvent
            ] * 2
    finally:
        GATES.pop("hold", None)


async def test_an_entity_cannot_erase_itself_from_its_own_handler():
    class SelfEraser(NotebookBehavior):
        async def handle_command(self, state: Notebook, command: Write) -> object:
            await self.engine.erase_entity("notebook", self.entity_id)
            return Written(command.text)

    engine = ea.Engine(store=ea.EncryptedStore(ea.MemoryStore(), KEY))
    engine.register("notebook", SelfEraser)
    async with engine:
        with pytest.raises(ea.EventActorsError, match="cannot erase itself"):
            await engine.send("notebook", "n", Write("x"))
        assert not await engine.store.is_erased("notebook|n")


async def test_erasure_needs_an_encrypted_store():
    engine = notebook_engine(ea.MemoryStore())
    async with engine:
        await engine.send("notebook", "n", Write("hello"))
        with pytest.raises(ea.EventActorsError, match="needs encryption"):
            await engine.erase_entity("notebook", "n")
        assert (await engine.get_state("notebook", "n"))[0] == Notebook(("hello",), "olleh")


async def test_another_store_object_sees_the_erasure_on_the_entitys_next_activation(
    durable_backend,
):
    writer = durable_backend.encrypted()
    kit = Kit(writer)
    other = durable_backend.encrypted()
    for store in (writer, other):
        store.serializer.register(Written)
    await writer.append("notebook|n", [kit.record("notebook|n", 1, Written("a"))], 0)
    assert [e.event for e in await other.read_stream("notebook|n")] == [Written("a")]  # cached

    await writer.erase("notebook|n")

    # Within its key cache's lifetime, `other` still holds the key...
    assert [e.event for e in await other.read_stream("notebook|n")] == [Written("a")]
    # ...until the entity is recovered there, which asks the key table.
    with pytest.raises(ea.EntityErased):
        await other.load_snapshot("notebook|n")
    assert isinstance((await other.read_stream("notebook|n"))[0].event, ea.ErasedEvent)
    with pytest.raises(ea.EntityErased):
        await other.append("notebook|n", [kit.record("notebook|n", 2, Written("b"))], 1)


async def test_a_key_cache_without_lifetime_sees_an_erasure_at_once(durable_backend):
    writer = durable_backend.encrypted()
    other = durable_backend.encrypted(key_cache_ttl=0)
    for store in (writer, other):
        store.serializer.register(Written)
    kit = Kit(writer)
    await other.append("notebook|n", [kit.record("notebook|n", 1, Written("a"))], 0)
    await writer.erase("notebook|n")
    with pytest.raises(ea.EntityErased):
        await other.append("notebook|n", [kit.record("notebook|n", 2, Written("b"))], 1)
    assert isinstance((await other.read_stream("notebook|n"))[0].event, ea.ErasedEvent)


async def test_an_erasure_that_begins_while_the_first_key_is_created_refuses_the_write(backend):
    """The writer's key reaches the key table first, and the erasure deletes it while the
    writer waits for the answer: the write must not go through with the key it got."""
    store = backend.encrypted()
    store.serializer.register(Written)
    record = Kit(store).record("notebook|race", 1, Written("after the erasure"))
    inner = store.inner
    create_data_key, erase_data_key = inner.create_data_key, inner.erase_data_key
    key_erased = asyncio.Event()
    erasures: list[asyncio.Future[None]] = []

    async def erasing(persistence_id: str) -> None:
        await erase_data_key(persistence_id)
        key_erased.set()

    async def created_while_an_erasure_begins(persistence_id: str, wrapped: bytes) -> object:
        stored = await create_data_key(persistence_id, wrapped)
        erasures.append(asyncio.ensure_future(store.erase(persistence_id)))
        await asyncio.wait_for(key_erased.wait(), timeout=10)
        return stored

    inner.erase_data_key = erasing  # type: ignore[method-assign]
    inner.create_data_key = created_while_an_erasure_begins  # type: ignore[method-assign]
    with pytest.raises(ea.EntityErased):
        await store.append("notebook|race", [record], 0)
    await asyncio.gather(*erasures)
    assert await store.is_erased("notebook|race")
    assert await store.highest_sequence_number("notebook|race") == 0
    with pytest.raises(ea.EntityErased):
        await store.append("notebook|race", [record], 0)


async def test_an_erasure_that_begins_while_the_key_is_loaded_refuses_the_write(
    durable_backend,
):
    writer = durable_backend.encrypted()
    writer.serializer.register(Written)
    kit = Kit(writer)
    await writer.append("notebook|race", [kit.record("notebook|race", 1, Written("a"))], 0)
    other = durable_backend.encrypted()  # holds no key yet
    inner = other.inner
    load_data_keys = inner.load_data_keys
    erasures: list[asyncio.Future[None]] = []

    async def loaded_while_an_erasure_begins(persistence_ids: list[str]) -> object:
        loaded = await load_data_keys(persistence_ids)
        if not erasures:  # the first load only: the one the write waits for
            erasures.append(asyncio.ensure_future(other.erase("notebook|race")))
            await wait_until(lambda: erasures[0].done(), timeout=10)
        return loaded

    inner.load_data_keys = loaded_while_an_erasure_begins  # type: ignore[method-assign]
    with pytest.raises(ea.EntityErased):
        await other.append("notebook|race", [kit.record("notebook|race", 2, Written("b"))], 1)
    await asyncio.gather(*erasures)
    assert await other.highest_sequence_number("notebook|race") == 1
    assert isinstance((await other.read_stream("notebook|race"))[0].event, ea.ErasedEvent)
