"""Bad input gets a clear error naming what was wrong, and nothing stored is lost or corrupted."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec
import pytest
from behaviors_for_tests import Add, Added, Tally
from eventactors_examples.bank.domain import AccountBehavior, Deposit, Open, Withdraw

import eventactors as ea


class Unlisted(msgspec.Struct, frozen=True):
    n: int


class Opaque(msgspec.Struct, frozen=True):
    thing: Any


class Misbehaving(ea.EventSourcedBehavior[Tally]):
    """Returns whatever the command asks it to, to test what the engine accepts."""

    events = (Added, Opaque)

    def initial_state(self) -> Tally:
        return Tally()

    def handle_command(self, state: Tally, command: Any) -> Any:
        if isinstance(command, Add):
            return Added(command.n)
        if command == "raise":
            raise ValueError("the handler failed")
        return command["return"]

    def handle_event(self, state: Tally, event: Any) -> Tally:
        if isinstance(event, Added) and event.n == 13:
            raise RuntimeError("unlucky event")
        if isinstance(event, Added):
            return Tally((*state.items, event.n), state.total + event.n)
        return state


@pytest.fixture
async def engine(tmp_path):
    engine = ea.Engine(store=ea.SQLiteStore(tmp_path / "bad.db"))
    engine.register("m", Misbehaving)
    engine.register("account", AccountBehavior)
    async with engine:
        await engine.send("m", "e", Add(1))
        yield engine


async def assert_intact(engine: ea.Engine) -> None:
    """The entity still holds exactly its one good event, in memory and in the store."""
    assert await engine.get_state("m", "e") == (Tally((1,), 1), 1)
    assert [e.event for e in await engine.store.read_stream("m|e")] == [Added(1)]
    assert (await engine.send("m", "e", Add(2))).revision == 2


async def test_unknown_entity_type_names_it_and_the_registered_ones(engine):
    with pytest.raises(ea.UnknownEntityType, match=r"'nope'.*registered: 'm', 'account'"):
        await engine.send("nope", "e", Add(1))


@pytest.mark.parametrize("entity_id", ["", "   ", None, 42, b"e", "x" * 1025, "a\x00b"])
async def test_invalid_entity_ids_are_refused(engine, entity_id):
    with pytest.raises(ea.InvalidEntityId, match="entity id"):
        await engine.send("m", entity_id, Add(1))
    with pytest.raises(ea.InvalidEntityId):
        await engine.get_state("m", entity_id)


async def test_a_command_nobody_handles_is_refused_by_type(engine):
    with pytest.raises(ea.UnknownCommand, match=r"AccountBehavior does not handle Add.*Deposit"):
        await engine.send("account", "a", Add(1))
    assert await engine.store.highest_sequence_number("account|a") == 0
    assert (await engine.send("account", "a", Open("ann"))).revision == 1


async def test_an_event_type_missing_from_events_is_refused_before_any_write(engine):
    with pytest.raises(ea.SerializationError, match=r"Unlisted is not declared in Misbehaving"):
        await engine.send("m", "e", {"return": [Added(5), Unlisted(1)]})
    await assert_intact(engine)


async def test_a_non_serializable_event_rejects_that_command_only(engine):
    with pytest.raises(ea.SerializationError, match=r"Opaque.*stream 'm\|e'"):
        await engine.send("m", "e", {"return": [Added(5), Opaque(object())]})
    await assert_intact(engine)


@pytest.mark.parametrize("returned", ["ok", 42, {"a": 1}, [Added(2), "x"], object()])
async def test_a_handler_returning_a_non_event_gets_invalid_handler_result(engine, returned):
    with pytest.raises(ea.InvalidHandlerResult, match=r"Misbehaving\.handle_command returned"):
        await engine.send("m", "e", {"return": returned})
    await assert_intact(engine)


async def test_handler_exceptions_reach_the_caller_unchanged(engine):
    with pytest.raises(ValueError, match="the handler failed"):
        await engine.send("m", "e", "raise")
    await assert_intact(engine)


async def test_an_event_handler_failure_persists_nothing(engine):
    with pytest.raises(RuntimeError, match="unlucky event"):
        await engine.send("m", "e", Add(13))
    await assert_intact(engine)


async def test_rejected_carries_reason_and_meta_and_persists_nothing(engine):
    await engine.send("account", "a", Open("ann"))
    await engine.send("account", "a", Deposit(10))
    with pytest.raises(ea.Rejected) as refused:
        await engine.send("account", "a", Withdraw(25))
    assert refused.value.reason == "insufficient funds"
    assert refused.value.meta == {"balance": 10, "requested": 25}
    assert await engine.store.highest_sequence_number("account|a") == 2


async def test_durable_state_handler_returning_the_wrong_type_is_refused():
    class S(msgspec.Struct):
        n: int = 0

    class Durable(ea.DurableStateBehavior[S]):
        def initial_state(self) -> S:
            return S()

        def handle_command(self, state: S, command: Any) -> Any:
            return command

    engine = ea.Engine()
    engine.register("d", Durable)
    async with engine:
        with pytest.raises(ea.InvalidHandlerResult, match=r"return a new \S*S, or None"):
            await engine.send("d", "x", {"n": 1})
        assert (await engine.send("d", "x", S(4))).revision == 1


async def test_an_unknown_event_type_on_replay_names_the_type_and_the_stream(tmp_path):
    path = tmp_path / "evolve.db"
    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("m", Misbehaving)
    async with engine:
        await engine.send("m", "e", Add(1))

    class Forgetful(Misbehaving):
        events = (Opaque,)  # Added was dropped from the registry

    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("m", Forgetful)
    async with engine:
        with pytest.raises(ea.SerializationError, match=r"unknown type 'Added'.*stream 'm\|e'"):
            await engine.send("m", "e", Add(2))
    assert [e.event_type for e in await ea.SQLiteStore(path).read_stream("m|e")] == ["Added"]


async def test_a_corrupt_row_is_reported_with_stream_and_position_and_harms_nothing_else(tmp_path):
    path = tmp_path / "corrupt.db"
    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("m", Misbehaving)
    async with engine:
        for entity in ("bad", "good"):
            for n in range(3):
                await engine.send("m", entity, Add(n))
    with sqlite3.connect(path) as raw:
        raw.execute(
            "UPDATE ea_events SET payload = '{\"n\": tru' "
            "WHERE persistence_id = 'm|bad' AND sequence_number = 2"
        )
        position = raw.execute(
            "SELECT global_position FROM ea_events WHERE persistence_id = 'm|bad' "
            "AND sequence_number = 2"
        ).fetchone()[0]
    async with engine:
        with pytest.raises(
            ea.SerializationError, match=rf"stream 'm\|bad', sequence 2, global position {position}"
        ):
            await engine.send("m", "bad", Add(9))
        assert (await engine.send("m", "good", Add(9))).state.items == (0, 1, 2, 9)
    with sqlite3.connect(path) as raw:  # the failed command wrote nothing
        assert raw.execute("SELECT count(*) FROM ea_events").fetchone()[0] == 7
