"""The engine works unchanged on an EncryptedStore, on every backend: commands, snapshots,
recovery after a restart, durable state, projections, subscriptions, `events()`, time
travel, the command log and natural identifiers; and the wrapped store holds ciphertext."""

from __future__ import annotations

import asyncio

import pytest
from encryption_behaviors import (
    Notebook,
    Profile,
    ProfileBehavior,
    SetProfile,
    Write,
    Written,
    notebook_engine,
)

import eventactors as ea
from eventactors.stores._payload_cipher import MAGIC

pytestmark = pytest.mark.timeout(60)


async def test_event_sourced_entities_round_trip_and_recover_after_a_restart(backend):
    engine = notebook_engine(backend.encrypted(), snapshot_every=3)
    async with engine:
        for number in range(7):
            reply = await engine.send("notebook", "n", Write(f"page {number}"))
        assert reply.events[0].event == Written("page 6")
        live = await engine.get_state("notebook", "n")
    assert live == (Notebook(tuple(f"page {n}" for n in range(7)), "6 egap"), 7)

    store = backend.encrypted()
    engine = notebook_engine(store, snapshot_every=3)
    async with engine:
        assert await engine.get_state("notebook", "n") == live  # snapshot 6, then event 7
        snapshot = await store.load_snapshot("notebook|n")
        assert (snapshot.sequence_number, snapshot.state.mirrored) == (6, "5 egap")
        stream = [envelope async for envelope in engine.events("notebook", "n")]
        assert [e.event for e in stream] == [Written(f"page {n}") for n in range(7)]
        assert stream[0].payload == b'{"text":"page 0"}'
        # What the wrapped store holds is sealed, with the metadata in the clear.
        raw = await store.inner.read_stream("notebook|n")
        assert [e.event_type for e in raw] == ["Written"] * 7
        assert all(e.payload.startswith(MAGIC) for e in raw)
        raw_snapshot = await store.inner.load_snapshot("notebook|n")
        assert raw_snapshot.state.startswith(MAGIC)


async def test_durable_state_round_trips_and_is_sealed(backend):
    engine = notebook_engine(backend.encrypted())
    async with engine:
        await engine.send("profile", "p", SetProfile("ann"))
        await engine.send("profile", "p", SetProfile("ann lee"))
    store = backend.encrypted()
    engine = notebook_engine(store)
    async with engine:
        assert await engine.get_state("profile", "p") == (Profile("ann lee"), 2)
        assert (await engine.send("profile", "p", SetProfile("ann b"))).revision == 3
        record = await store.get_state("profile|p")
        assert (record.revision, record.state) == (3, Profile("ann b"))
        assert (await store.inner.get_state("profile|p")).state.startswith(MAGIC)


async def test_projections_subscriptions_and_read_all_see_decoded_events(backend):
    store = backend.encrypted()
    engine = notebook_engine(store)
    seen: list[ea.EventEnvelope] = []
    await engine.add_projection("pages", seen.append, from_start=True, batch_size=2)
    async with engine:
        subscription = engine.subscribe()
        for entity in ("a", "b", "c"):
            await engine.send("notebook", entity, Write(f"hello {entity}"))
        await engine.wait_for_projection("pages", timeout=10)
        live = [await asyncio.wait_for(anext(subscription), 5) for _ in range(3)]
        log = await store.read_all()
        filtered = await store.read_all(entity_types=["notebook"], event_types=["Written"])
    expected = [Written(f"hello {entity}") for entity in ("a", "b", "c")]
    for envelopes in (seen, live, log, filtered):
        assert [e.event for e in envelopes] == expected
        assert [e.global_position for e in envelopes] == [e.global_position for e in log]


async def test_time_travel_rebuilds_past_states(backend):
    engine = notebook_engine(backend.encrypted(), snapshot_every=2)
    async with engine:
        for number in range(5):
            await engine.send("notebook", "n", Write(f"p{number}"))
        state, revision = await engine.get_state("notebook", "n", at_revision=3)
    assert (state.pages, revision) == (("p0", "p1", "p2"), 3)


async def test_the_command_log_is_sealed_and_decodes(backend):
    store = backend.encrypted()
    engine = notebook_engine(store, command_log=True)
    async with engine:
        await engine.send("notebook", "n", Write("kept", note="why"))
        with pytest.raises(ea.Rejected):
            await engine.send("notebook", "n", Write(""))  # logged on its own
        await engine.send("profile", "p", SetProfile("ann"))  # logged with the state
        log = await engine.command_log("notebook", "n")
        assert [(e.outcome, e.command) for e in log] == [
            (ea.ACCEPTED, Write("kept", note="why")),
            (ea.REJECTED, Write("")),
        ]
        assert [e.command for e in await engine.command_log("profile", "p")] == [SetProfile("ann")]
        raw = await store.inner.read_commands("notebook|n")
        assert all(entry.payload.startswith(MAGIC) for entry in raw)


async def test_natural_identifiers_stay_plaintext_and_keep_working(backend):
    store = backend.encrypted()
    engine = ea.Engine(store=store)
    engine.register(
        "profile",
        ProfileBehavior,
        identifiers=lambda state: {"name": state.name},
    )
    async with engine:
        reply = await engine.send_by("profile", {"name": "ann"}, SetProfile("ann"))
        assert await engine.resolve("profile", {"name": "ann"}) == reply.entity_id
        assert await store.inner.identifiers_of("profile", reply.entity_id) == '{"name":"ann"}'
