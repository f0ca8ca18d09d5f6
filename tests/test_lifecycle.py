"""Engine lifecycle: start, stop with draining, refusal after stop, subscriptions."""

from __future__ import annotations

import asyncio

import pytest
from behaviors_for_tests import Add, Added, Tally, tally_behavior

import eventactors as ea


def make_engine(store: ea.Store | None = None) -> ea.Engine:
    engine = ea.Engine(store=store)
    engine.register("tally", tally_behavior())
    return engine


async def test_commands_before_start_and_after_stop_raise_engine_not_started():
    engine = make_engine()
    with pytest.raises(ea.EngineNotStarted):
        await engine.send("tally", "a", Add(1))
    async with engine:
        assert engine.is_running
        await engine.send("tally", "a", Add(1))
    assert not engine.is_running
    with pytest.raises(ea.EngineNotStarted):
        await engine.send("tally", "a", Add(1))
    with pytest.raises(ea.EngineNotStarted):
        await engine.get_state("tally", "a")
    with pytest.raises(ea.EngineNotStarted):
        engine.subscribe()


async def test_stop_drains_mailboxes_in_flight_then_closes_the_store(tmp_path):
    store = ea.SQLiteStore(tmp_path / "drain.db")
    engine = make_engine(store)
    await engine.start()
    sends = [
        asyncio.create_task(engine.send("tally", f"e{i % 3}", Add(i, delay=0.002)))
        for i in range(30)
    ]
    await asyncio.sleep(0)  # let every send reach its mailbox
    await engine.stop()
    replies = await asyncio.gather(*sends)
    assert sorted(r.revision for r in replies if r.state.items[-1] % 3 == 0) == list(range(1, 11))
    assert engine.statistics().live_entities == 0
    # A fresh store object on the same file sees all 30 events: the drain persisted them.
    reopened = ea.SQLiteStore(tmp_path / "drain.db")
    assert len(await reopened.read_all(limit=100)) == 30
    await reopened.close()


async def test_engine_can_start_again_after_stop_and_recovers():
    store = ea.MemoryStore()
    engine = make_engine(store)
    async with engine:
        await engine.send("tally", "a", Add(4))
    async with engine:
        state, revision = await engine.get_state("tally", "a")
    assert (state.total, revision) == (4, 1)


async def test_get_state_of_a_new_entity_is_the_initial_state_at_revision_zero():
    async with make_engine() as engine:
        assert await engine.get_state("tally", "nobody") == (Tally(), 0)


async def test_subscribe_sees_every_event_persisted_after_it_returns_in_commit_order():
    async with make_engine() as engine:
        await engine.send("tally", "before", Add(1))
        subscription = engine.subscribe()
        await asyncio.gather(*(engine.send("tally", f"e{i % 4}", Add(i)) for i in range(40)))
        seen = [await asyncio.wait_for(anext(subscription), 5) for _ in range(40)]
        assert subscription.pending == 0
        positions = [envelope.global_position for envelope in seen]
        assert positions == sorted(positions) and len(set(positions)) == 40
        assert sorted(envelope.event.n for envelope in seen) == list(range(40))
        assert all(isinstance(envelope.event, Added) for envelope in seen)
        assert "tally|before" not in {envelope.persistence_id for envelope in seen}
    # The subscription ends when the engine stops.
    assert [envelope async for envelope in subscription] == []


async def test_a_closed_subscription_stops_receiving():
    async with make_engine() as engine:
        async with engine.subscribe() as subscription:
            await engine.send("tally", "a", Add(1))
            assert (await anext(subscription)).event.n == 1
        await engine.send("tally", "a", Add(2))
        assert [envelope async for envelope in subscription] == []  # ended: reads no further
        assert engine.statistics().subscriptions == 0


async def test_reply_carries_the_envelopes_with_ids_and_metadata():
    async with make_engine() as engine:
        reply = await engine.send(
            "tally", "a", Add(3), metadata={"user": "ann"}, correlation_id="corr-1"
        )
        (envelope,) = reply.events
        assert envelope.persistence_id == "tally|a"
        assert (envelope.entity_type, envelope.entity_id) == ("tally", "a")
        assert envelope.sequence_number == 1 and envelope.global_position >= 1
        assert envelope.event == Added(3) and envelope.event_type == "Added"
        assert envelope.metadata == {"user": "ann"}
        assert envelope.correlation_id == "corr-1" and envelope.command_id
        assert envelope.event_id[14] == "7"  # a UUIDv7
        assert envelope.timestamp.tzinfo is not None
        stored = (await engine.store.read_stream("tally|a"))[0]
        assert stored == envelope


async def test_register_refuses_bad_arguments():
    engine = ea.Engine()
    behavior = tally_behavior()
    engine.register("tally", behavior)
    with pytest.raises(ValueError, match="already registered"):
        engine.register("tally", behavior)
    with pytest.raises(ValueError, match="'\\|'"):
        engine.register("a|b", behavior)
    with pytest.raises(ValueError, match="non-empty"):
        engine.register("", behavior)
    with pytest.raises(TypeError, match="not an EventSourcedBehavior"):
        engine.register("x", dict)  # type: ignore[arg-type]
    for option in ("snapshot_every", "passivate_after", "command_timeout"):
        with pytest.raises(ValueError, match=option):
            engine.register("y", behavior, **{option: 0})
    with pytest.raises(ValueError, match="snapshot_every"):
        engine.register("y", behavior, snapshot_every=2.5)  # type: ignore[arg-type]
    assert engine.entity_types == ("tally",)


async def test_stop_with_a_drain_timeout_abandons_a_hung_handler_with_a_clear_error():
    hang = asyncio.Event()  # never set

    class Hangs(ea.EventSourcedBehavior[Tally]):
        events = (Added,)

        def initial_state(self) -> Tally:
            return Tally()

        async def handle_command(self, state, command):
            await hang.wait()

        def handle_event(self, state, event):
            return state

    engine = ea.Engine()
    engine.register("h", Hangs)
    await engine.start()
    running = asyncio.create_task(engine.send("h", "a", Add(1)))
    queued = asyncio.create_task(engine.send("h", "a", Add(2)))
    await asyncio.sleep(0)
    await asyncio.wait_for(engine.stop(drain_timeout=0.05), 5)
    with pytest.raises(ea.EngineNotStarted, match="was running; it was abandoned"):
        await running
    with pytest.raises(ea.EngineNotStarted, match=r"before a command.*nothing was persisted"):
        await queued
    assert not engine.is_running
