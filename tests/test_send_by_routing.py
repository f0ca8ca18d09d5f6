"""send_by routes by keys at the moment the command runs, and refuses keys no store can hold."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from waits import wait_until

import eventactors as ea


class Person(msgspec.Struct, frozen=True):
    email: str = ""
    pings: int = 0


class Join(msgspec.Struct, frozen=True):
    email: str


class Move(msgspec.Struct, frozen=True):
    email: str


class Ping(msgspec.Struct, frozen=True):
    pass


class Joined(msgspec.Struct, frozen=True):
    email: str


class Pinged(msgspec.Struct, frozen=True):
    pass


class PersonBehavior(ea.EventSourcedBehavior[Person]):
    events = (Joined, Pinged)
    gate: asyncio.Event

    def initial_state(self) -> Person:
        return Person()

    async def handle_command(self, state: Person, command: Any) -> Any:
        match command:
            case Join(email):
                return Joined(email)
            case Move(email):
                await type(self).gate.wait()  # holds the mailbox while a Ping queues behind
                return Joined(email)
            case Ping():
                if not state.email:
                    raise ea.Rejected("no such person")
                return Pinged()

    def handle_event(self, state: Person, event: Any) -> Person:
        match event:
            case Joined(email):
                return Person(email, state.pings)
            case Pinged():
                return Person(state.email, state.pings + 1)
        return state


def person_keys(state: Person) -> dict[str, str]:
    return {"email": state.email}


@pytest.fixture
async def engine():
    behavior = type("Gated", (PersonBehavior,), {"gate": asyncio.Event()})
    engine = ea.Engine()
    engine.register("person", behavior, identifiers=person_keys, command_log=True)
    async with engine:
        engine.gate = behavior.gate  # type: ignore[attr-defined]
        yield engine


async def test_a_command_never_runs_on_an_entity_that_gave_its_keys_up_meanwhile(engine):
    ann = (await engine.send_by("person", {"email": "a@x"}, Join("a@x"))).entity_id
    move = asyncio.ensure_future(engine.send("person", ann, Move("b@x")))
    await wait_until(lambda: engine.statistics().busy_entities == 1)
    ping = asyncio.ensure_future(engine.send_by("person", {"email": "a@x"}, Ping()))
    await wait_until(lambda: engine.statistics().queued_messages == 1)  # behind the Move
    engine.gate.set()
    assert (await move).state.email == "b@x"
    with pytest.raises(ea.Rejected, match="no such person"):
        await ping  # looked up again: nobody holds a@x now, and a new person has no email
    state, revision = await engine.get_state("person", ann)
    assert (state, revision) == (Person("b@x", 0), 2)
    assert [entry.command_type for entry in await engine.command_log("person", ann)] == [
        "Join",
        "Move",
    ]


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ({"email": "\ud800"}, "not valid Unicode text"),
        ({"email": "邮" * 700}, "bytes of UTF-8 together; the limit is 2000"),
    ],
)
async def test_keys_no_store_could_index_are_refused_by_name(engine, keys, named):
    with pytest.raises(ea.InvalidIdentifiers, match=named):
        await engine.send_by("person", keys, Join("x"))
    with pytest.raises(ea.InvalidIdentifiers, match=named):
        await engine.resolve("person", keys)
    assert engine.statistics().live_entities == 0


async def test_bad_create_and_limit_arguments_are_refused(engine):
    with pytest.raises(TypeError, match="create must be True or False, got 'yes'"):
        await engine.send_by("person", {"email": "a@x"}, Join("a@x"), create="yes")
    with pytest.raises(ValueError, match="limit must be an int >= 0, got '3'"):
        await engine.command_log("person", "p", limit="3")
    assert await engine.resolve("person", {"email": "a@x"}) is None


class SlowToDateStore(ea.MemoryStore):
    async def sequence_at(self, persistence_id: str, at_time: datetime) -> int:
        await asyncio.sleep(30)
        return 0


async def test_a_time_travel_past_its_timeout_raises_command_timeout():
    engine = ea.Engine(SlowToDateStore())
    engine.register("person", PersonBehavior)
    async with engine:
        with pytest.raises(ea.CommandTimeout, match=r"took longer than 0\.05s"):
            await engine.get_state("person", "p", at_time=datetime.now(UTC), timeout=0.05)
