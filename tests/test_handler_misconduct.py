"""Handlers that misbehave in ways a real user's code does: the entity must stay exact."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import msgspec
import pytest
from behaviors_for_tests import Add, Added, Tally, tally_behavior

import eventactors as ea


async def test_a_cancellation_inside_a_handler_fails_only_that_command():
    cancelled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cancelled.cancel()

    class AwaitsCancelled(ea.EventSourcedBehavior[Tally]):
        events = (Added,)

        def initial_state(self) -> Tally:
            return Tally()

        async def handle_command(self, state: Tally, command: Add) -> Added:
            if command.n < 0:
                await cancelled  # e.g. a client library whose request was cancelled
            return Added(command.n)

        def handle_event(self, state: Tally, event: Added) -> Tally:
            return Tally((*state.items, event.n), state.total + event.n)

    engine = ea.Engine()
    engine.register("c", AwaitsCancelled)
    async with engine:
        first = asyncio.create_task(engine.send("c", "a", Add(-1)))
        queued = [asyncio.create_task(engine.send("c", "a", Add(i))) for i in (1, 2)]
        with pytest.raises(asyncio.CancelledError):
            await first
        assert [(await q).revision for q in queued] == [1, 2]
        assert engine.is_running
        assert await engine.get_state("c", "a") == (Tally((1, 2), 3), 2)


async def test_recovery_refuses_a_stream_whose_events_were_deleted_without_a_snapshot(tmp_path):
    store = ea.SQLiteStore(tmp_path / "deleted.db")
    engine = ea.Engine(store=store)
    engine.register("tally", tally_behavior())
    async with engine:
        for i in range(3):
            await engine.send("tally", "x", Add(i))
    await store.delete_events_to("tally|x", 3)
    async with engine:
        with pytest.raises(ea.EventActorsError, match=r"tally\|x.*sequence 3.*no snapshot covers"):
            await engine.get_state("tally", "x")


@dataclasses.dataclass
class MutableCounter:
    n: int = 0


class MutatingCounter(ea.DurableStateBehavior[MutableCounter]):
    """Changes the state in place before deciding to refuse: a natural mistake."""

    def initial_state(self) -> MutableCounter:
        return MutableCounter()

    def handle_command(self, state: MutableCounter, command: int) -> MutableCounter:
        state.n += command
        if state.n > 5:
            raise ea.Rejected("too high")
        return state


async def test_a_refused_durable_state_change_made_in_place_is_never_persisted():
    engine = ea.Engine()
    engine.register("m", MutatingCounter)
    async with engine:
        await engine.send("m", "a", 3)
        with pytest.raises(ea.Rejected):
            await engine.send("m", "a", 10)
        assert await engine.get_state("m", "a") == (MutableCounter(3), 1)
        reply = await engine.send("m", "a", -10)
        assert (reply.state, reply.revision) == (MutableCounter(-7), 2)
        stored = await engine.store.get_state("m|a")
        assert stored is not None and stored.state == MutableCounter(-7)


class Tagged(msgspec.Struct, frozen=True):
    tags: Any  # a tuple goes in; JSON gives a list back


class Tags(msgspec.Struct, frozen=True):
    tags: tuple[str, ...] = ()


class TagBehavior(ea.EventSourcedBehavior[Tags]):
    events = (Tagged,)

    def initial_state(self) -> Tags:
        return Tags()

    def handle_command(self, state: Tags, command: tuple[str, ...]) -> Tagged:
        return Tagged(command)

    def handle_event(self, state: Tags, event: Tagged) -> Tags:
        return Tags(state.tags + event.tags)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_replay_decodes_stored_bytes_on_every_store(tmp_path, backend):
    """The memory store must not hand replay the handler's own objects: what a database
    would give back (here a list for a tuple) must show up in memory too."""
    store = ea.MemoryStore() if backend == "memory" else ea.SQLiteStore(tmp_path / "t.db")
    engine = ea.Engine(store=store)
    engine.register("t", TagBehavior)
    async with engine:
        await engine.send("t", "a", ("x", "y"))
    async with engine:
        with pytest.raises(TypeError, match="concatenate tuple"):
            await engine.get_state("t", "a")


async def test_command_timeout_holds_even_when_the_handler_swallows_the_cancellation():
    class Stubborn(ea.EventSourcedBehavior[Tally]):
        events = (Added,)

        def initial_state(self) -> Tally:
            return Tally()

        async def handle_command(self, state: Tally, command: Add) -> Added:
            with contextlib.suppress(asyncio.CancelledError):  # refuses to be cancelled
                await asyncio.sleep(command.delay)
            return Added(command.n)

        def handle_event(self, state: Tally, event: Added) -> Tally:
            return Tally((*state.items, event.n), state.total + event.n)

    engine = ea.Engine()
    engine.register("s", Stubborn, command_timeout=0.05)
    async with engine:
        with pytest.raises(ea.CommandTimeout):
            await engine.send("s", "a", Add(1, delay=5))
        assert await engine.store.highest_sequence_number("s|a") == 0
        assert (await engine.send("s", "a", Add(2))).revision == 1


async def test_a_handlers_own_timeout_error_is_not_mistaken_for_the_deadline():
    class Raises(ea.EventSourcedBehavior[Tally]):
        events = (Added,)

        def initial_state(self) -> Tally:
            return Tally()

        async def handle_command(self, state: Tally, command: Add) -> Added:
            raise TimeoutError("the payment gateway timed out")

        def handle_event(self, state: Tally, event: Added) -> Tally:
            return state

    engine = ea.Engine()
    engine.register("r", Raises, command_timeout=5)
    async with engine:
        with pytest.raises(TimeoutError, match="payment gateway") as raised:
            await engine.send("r", "a", Add(1))
        assert not isinstance(raised.value, ea.CommandTimeout)


@pytest.mark.parametrize("path", [":memory:", ""])
def test_sqlite_store_refuses_an_in_memory_path(path):
    with pytest.raises(ValueError, match="MemoryStore"):
        ea.SQLiteStore(path)


async def test_a_behavior_whose_constructor_fails_fails_the_waiting_commands_not_the_entity():
    failures = [RuntimeError("config not loaded")]

    class FlakyConstructor(ea.EventSourcedBehavior[Tally]):
        events = (Added,)

        def __init__(self) -> None:
            if constructions.pop() and failures:  # the probe at register() passes
                raise failures.pop()

        def initial_state(self) -> Tally:
            return Tally()

        def handle_command(self, state: Tally, command: Add) -> Added:
            return Added(command.n)

        def handle_event(self, state: Tally, event: Added) -> Tally:
            return Tally((*state.items, event.n), state.total + event.n)

    constructions = [True, True, False]  # popped from the end: probe, failing drain, good drain
    engine = ea.Engine()
    engine.register("c", FlakyConstructor)
    async with engine:
        waiting = [asyncio.create_task(engine.send("c", "a", Add(n), timeout=5)) for n in (1, 2)]
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert [str(result) for result in results] == ["config not loaded"] * 2
        reply = await engine.send("c", "a", Add(3), timeout=5)
        assert (reply.state.total, reply.revision) == (3, 1)
        assert engine.statistics().busy_entities == 0
