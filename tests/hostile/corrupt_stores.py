"""A small bank on a real database, and every way to read it back, for corruption tests.

`seed` writes two accounts and two pages through an engine: the "victim" ones get corrupted
behind the store's back, the "intact" ones must keep working. `READERS` are the store's and
the engine's reads, each one as a caller would use it: envelopes are decoded, a projection
is run to its end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from eventactors_examples.bank.domain import Account, AccountBehavior, Deposit, Open
from hostile_behaviors import Fill, Page, PageBehavior

import eventactors as ea

VICTIM, INTACT = "account|victim", "account|intact"
PAGE_VICTIM, PAGE_INTACT = "page|victim", "page|intact"
#: What the seed leaves: the victim's third event is the one corruptions aim at, and a
#: snapshot stands at its second.
VICTIM_STATE = (Account("ann", 15, True), 3)
INTACT_STATE = (Account("bob", 7, True), 2)
PAGE_STATES = {PAGE_VICTIM: (Page("xxx", 1), 1), PAGE_INTACT: (Page("xxxx", 1), 1)}
#: Every reader gets this long; a corrupt row must never make one hang.
READ_DEADLINE = 15.0


def bank_engine(store: ea.Store) -> ea.Engine:
    engine = ea.Engine(store=store)
    engine.register("account", AccountBehavior, snapshot_every=2, command_log=True)
    engine.register("page", PageBehavior, command_log=True)
    return engine


async def seed(store: ea.Store) -> None:
    async with bank_engine(store) as engine:
        for command in (Open("ann"), Deposit(10), Deposit(5)):
            await engine.send("account", "victim", command)
        for command in (Open("bob"), Deposit(7)):
            await engine.send("account", "intact", command)
        await engine.send("page", "victim", Fill(3))
        await engine.send("page", "intact", Fill(4))


async def decoded(envelopes: list[ea.EventEnvelope]) -> list[Any]:
    return [envelope.event for envelope in envelopes]


async def run_projection(engine: ea.Engine, tags: list[str] | None = None) -> None:
    """A projection over the whole log (or the events with `tags`), to its end: a failure
    comes back as its status's error, raised as the SerializationError it reports (or an
    AssertionError)."""
    seen: list[Any] = []
    name = f"reader-{id(seen)}"
    await engine.add_projection(name, lambda envelope: seen.append(envelope.event), tags=tags)
    head = await engine.store.head_position()
    deadline = asyncio.get_running_loop().time() + READ_DEADLINE
    while True:
        status = engine.projection_status(name)
        if status.state is ea.ProjectionState.FAILED:
            await engine.remove_projection(name)
            error = status.last_error or ""
            if error.startswith("SerializationError: ") or "SerializationError" in error:
                raise ea.SerializationError(error)
            raise AssertionError(f"the projection failed with {error}")
        if status.position >= head:
            await engine.remove_projection(name)
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the projection did not finish: {status}")
        await asyncio.sleep(0.01)


async def engine_events(engine: ea.Engine, entity_type: str, entity_id: str) -> list[Any]:
    return [envelope.event async for envelope in engine.events(entity_type, entity_id)]


Reader = Callable[[ea.Engine, Any], Awaitable[Any]]

#: name -> how a caller reads the victims. The engine's `send` comes last: it may write.
READERS: dict[str, Reader] = {
    "read_stream": lambda e, s: s.read_stream(VICTIM),
    "read_stream.event": lambda e, s: _then(s.read_stream(VICTIM), decoded),
    "read_stream_payloads": lambda e, s: s.read_stream_payloads(VICTIM),
    "read_all": lambda e, s: s.read_all(0, 1000),
    "read_all.event": lambda e, s: _then(s.read_all(0, 1000), decoded),
    "read_all(tags)": lambda e, s: s.read_all(0, 1000, tags=["t"]),
    "highest_sequence_number": lambda e, s: s.highest_sequence_number(VICTIM),
    "load_snapshot": lambda e, s: s.load_snapshot(VICTIM),
    "get_state": lambda e, s: s.get_state(PAGE_VICTIM),
    "read_commands": lambda e, s: s.read_commands(VICTIM),
    "read_page_commands": lambda e, s: s.read_commands(PAGE_VICTIM),
    "engine.events": lambda e, s: engine_events(e, "account", "victim"),
    "engine.command_log": lambda e, s: e.command_log("account", "victim"),
    "engine.get_state": lambda e, s: e.get_state("account", "victim"),
    "engine.get_state(at_revision)": lambda e, s: e.get_state("account", "victim", at_revision=3),
    "engine.page_state": lambda e, s: e.get_state("page", "victim"),
    "projection": lambda e, s: run_projection(e),
    "projection(tags)": lambda e, s: run_projection(e, tags=["t"]),
    "engine.send": lambda e, s: e.send("account", "victim", Deposit(1)),
    "engine.send_page": lambda e, s: e.send("page", "victim", Fill(2)),
}


async def _then(read: Awaitable[Any], then: Callable[[Any], Awaitable[Any]]) -> Any:
    return await then(await read)


async def read_everything(engine: ea.Engine, store: Any) -> dict[str, BaseException | None]:
    """Each reader's outcome: None when it returned, else what it raised."""
    outcomes: dict[str, BaseException | None] = {}
    for name, reader in READERS.items():
        try:
            await asyncio.wait_for(reader(engine, store), READ_DEADLINE)
        except TimeoutError as exc:
            raise AssertionError(f"{name} hung on a corrupt row") from exc
        except Exception as exc:
            outcomes[name] = exc
        else:
            outcomes[name] = None
    return outcomes


async def assert_intact_still_work(engine: ea.Engine, store: Any) -> None:
    """The intact entities read and write as before, on the engine that met the corruption."""
    assert engine.is_running
    assert await engine.get_state("account", "intact") == INTACT_STATE
    assert await decoded(await store.read_stream(INTACT)) is not None
    assert len(await store.read_stream(INTACT)) == 2
    reply = await engine.send("account", "intact", Deposit(1))
    assert (reply.state.balance, reply.revision) == (8, 3)
    assert await engine.get_state("page", "intact") == PAGE_STATES[PAGE_INTACT]
    assert (await engine.send("page", "intact", Fill(1))).revision == 2
    outcomes = [entry.outcome for entry in await store.read_commands(INTACT)]
    assert outcomes == [ea.ACCEPTED] * 3, outcomes
