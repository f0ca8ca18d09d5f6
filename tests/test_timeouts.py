"""Timeouts: the caller's ask timeout and the entity's command deadline. Never half-applied."""

from __future__ import annotations

import asyncio

import pytest
from behaviors_for_tests import Add, Added, Tally
from waits import wait_until

import eventactors as ea


class Gate:
    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()


def gated_behavior(gate: Gate) -> type[ea.EventSourcedBehavior[Tally]]:
    class Gated(ea.EventSourcedBehavior[Tally]):
        """Commands with n < 0 wait for the gate: an external check that takes its time."""

        events = (Added,)

        def initial_state(self) -> Tally:
            return Tally()

        async def handle_command(self, state: Tally, command: Add) -> Added:
            if command.n < 0:
                gate.entered.set()
                await gate.release.wait()
            return Added(command.n)

        def handle_event(self, state: Tally, event: Added) -> Tally:
            return Tally((*state.items, event.n), state.total + event.n)

    return Gated


async def test_send_timeout_raises_command_timeout_naming_the_entity():
    gate = Gate()
    engine = ea.Engine()
    engine.register("g", gated_behavior(gate))
    async with engine:
        with pytest.raises(ea.CommandTimeout, match=r"g\|a.*0.05s"):
            await engine.send("g", "a", Add(-1), timeout=0.05)
        gate.release.set()


async def test_a_command_that_timed_out_before_it_started_is_dropped():
    gate = Gate()
    engine = ea.Engine()
    engine.register("g", gated_behavior(gate))
    async with engine:
        first = asyncio.create_task(engine.send("g", "a", Add(-1)))
        await asyncio.wait_for(gate.entered.wait(), 5)
        with pytest.raises(ea.CommandTimeout):
            await engine.send("g", "a", Add(7), timeout=0.05)  # queued behind the first
        gate.release.set()
        assert (await first).revision == 1
        state, revision = await engine.get_state("g", "a")
        assert (state.items, revision) == ((-1,), 1)  # the dropped command left no trace
        assert len(await engine.store.read_stream("g|a")) == 1


async def test_a_command_already_running_when_its_caller_gives_up_still_completes_whole():
    gate = Gate()
    engine = ea.Engine()
    engine.register("g", gated_behavior(gate))
    async with engine:
        subscription = engine.subscribe()
        with pytest.raises(ea.CommandTimeout):
            await engine.send("g", "a", Add(-5), timeout=0.05)
        gate.release.set()
        envelope = await asyncio.wait_for(anext(subscription), 5)
        assert envelope.event == Added(-5)
        assert await engine.get_state("g", "a") == (Tally((-5,), -5), 1)


async def test_command_timeout_abandons_the_handler_and_persists_nothing():
    gate = Gate()
    engine = ea.Engine()
    engine.register("g", gated_behavior(gate), command_timeout=0.05)
    async with engine:
        slow = asyncio.create_task(engine.send("g", "a", Add(-1)))
        queued = asyncio.create_task(engine.send("g", "a", Add(3)))
        with pytest.raises(
            ea.CommandTimeout, match=r"command_timeout=0\.05s; nothing was persisted"
        ):
            await slow
        reply = await queued  # the waiting command proceeds once the slow one is abandoned
        assert (reply.state.items, reply.revision) == ((3,), 1)
        assert [e.event for e in await engine.store.read_stream("g|a")] == [Added(3)]


async def test_a_handler_that_hangs_forever_times_out_while_other_entities_work():
    gate = Gate()  # never released
    engine = ea.Engine()
    engine.register("g", gated_behavior(gate), command_timeout=0.1)
    async with engine:
        hung = asyncio.create_task(engine.send("g", "stuck", Add(-1)))
        await asyncio.wait_for(gate.entered.wait(), 5)
        for i in range(5):
            assert (await engine.send("g", "other", Add(i), timeout=5)).revision == i + 1
        with pytest.raises(ea.CommandTimeout):
            await hung
        await wait_until(lambda: engine.statistics().busy_entities == 0)
        assert await engine.store.highest_sequence_number("g|stuck") == 0
