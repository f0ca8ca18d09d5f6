"""One writer per entity: strictly sequential, in arrival order, even while handlers await."""

from __future__ import annotations

import asyncio
import random

from behaviors_for_tests import Add, Added, Tally, tally_behavior

import eventactors as ea


async def test_concurrent_senders_to_one_entity_get_strictly_sequential_revisions(tmp_path):
    behavior = tally_behavior()
    engine = ea.Engine(store=ea.SQLiteStore(tmp_path / "o.db"))
    engine.register("tally", behavior)
    rng = random.Random(7)
    async with engine:
        replies = await asyncio.gather(
            *(
                engine.send("tally", "t1", Add(i, delay=rng.uniform(0, 0.003)), timeout=30)
                for i in range(60)
            )
        )
        assert [reply.revision for reply in replies] == list(range(1, 61))
        assert behavior.probe.max_active == 1  # no two handlers ever overlapped
        state, revision = await engine.get_state("tally", "t1")
        assert state.items == tuple(range(60))  # applied in arrival order
        assert revision == 60
        stream = await engine.store.read_stream("tally|t1")
        assert [e.sequence_number for e in stream] == list(range(1, 61))
        assert [e.event.n for e in stream] == list(range(60))


async def test_a_waiting_handler_does_not_block_other_entities():
    gate = asyncio.Event()
    entered = asyncio.Event()

    class Gated(ea.EventSourcedBehavior[Tally]):
        events = ()

        def initial_state(self) -> Tally:
            return Tally()

        async def handle_command(self, state, command):
            if self.entity_id == "slow":
                entered.set()
                await gate.wait()
            return None

        def handle_event(self, state, event):
            return state

    engine = ea.Engine()
    engine.register("gated", Gated)
    behavior = tally_behavior()
    engine.register("tally", behavior)
    async with engine:
        slow = asyncio.create_task(engine.send("gated", "slow", "go", timeout=10))
        await asyncio.wait_for(entered.wait(), 5)
        queued = asyncio.create_task(engine.send("gated", "slow", "second", timeout=10))
        # Other entities, of this type and another, proceed while "slow" waits.
        await asyncio.wait_for(engine.send("gated", "fast", "go"), 5)
        reply = await asyncio.wait_for(engine.send("tally", "x", Add(5)), 5)
        assert reply.state.total == 5
        assert not slow.done() and not queued.done()  # the later command to "slow" waits
        gate.set()
        await asyncio.wait_for(asyncio.gather(slow, queued), 5)


async def test_sync_and_async_handlers_both_work():
    class SyncTally(ea.EventSourcedBehavior[Tally]):
        events = (Added,)

        def initial_state(self) -> Tally:
            return Tally()

        def handle_command(self, state, command):
            return [Added(command.n), Added(command.n)]

        def handle_event(self, state, event):
            return Tally((*state.items, event.n), state.total + event.n)

    engine = ea.Engine()
    engine.register("sync", SyncTally)
    async with engine:
        reply = await engine.send("sync", "s", Add(2))
        assert (reply.state.total, reply.revision, len(reply.events)) == (4, 2, 2)
        assert [e.sequence_number for e in reply.events] == [1, 2]
