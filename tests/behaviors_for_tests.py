"""Small behaviors built to expose one property each of the runtime."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

import eventactors as ea


class Add(msgspec.Struct, frozen=True):
    n: int
    delay: float = 0.0


class Added(msgspec.Struct, frozen=True):
    n: int


class Tally(msgspec.Struct, frozen=True):
    items: tuple[int, ...] = ()
    total: int = 0


class Probe:
    """Records what handlers saw, so tests can check overlap and order."""

    def __init__(self) -> None:
        self.active = 0
        self.max_active = 0
        self.release = asyncio.Event()
        self.recoveries = 0


class TallyBehavior(ea.EventSourcedBehavior[Tally]):
    """An async handler that may sleep: the mailbox must still take one command at a time."""

    events = (Added,)
    probe = Probe()

    def initial_state(self) -> Tally:
        type(self).probe.recoveries += 1
        return Tally()

    async def handle_command(self, state: Tally, command: Any) -> Any:
        probe = type(self).probe
        probe.active += 1
        probe.max_active = max(probe.max_active, probe.active)
        try:
            if command.delay:
                await asyncio.sleep(command.delay)
            return Added(command.n)
        finally:
            probe.active -= 1

    def handle_event(self, state: Tally, event: Added) -> Tally:
        return Tally((*state.items, event.n), state.total + event.n)


def tally_behavior() -> type[TallyBehavior]:
    """A fresh subclass with its own probe, so tests never share counters."""
    return type("Tally", (TallyBehavior,), {"probe": Probe()})


# -- following the log: helpers for projection and subscription tests ---------------------

OpenStore = Callable[[], ea.Store]
Envelopes = list[ea.EventEnvelope]


def memory() -> OpenStore:
    """One MemoryStore, handed out again on every call: 'another store on the same data'."""
    store = ea.MemoryStore()
    return lambda: store


async def add_events(
    engine: ea.Engine, count: int, *, start: int = 0, entities: tuple[str, ...] = ("a", "b", "c")
) -> None:
    """Sends Add(start) .. Add(start + count - 1) round-robin over `entities`: each entity's
    commands one after the other, the entities concurrently."""

    async def one(entity: str, numbers: range) -> None:
        for n in numbers:
            await engine.send("tally", entity, Add(n))

    await asyncio.gather(
        *(
            one(entity, range(start + index, start + count, len(entities)))
            for index, entity in enumerate(entities)
        )
    )


async def read_log(store: ea.Store) -> Envelopes:
    return await store.read_all(0, 100_000)


def keys(envelopes: Iterable[ea.EventEnvelope]) -> list[tuple[int, str]]:
    """What identifies each delivery: its global position and event id."""
    return [(envelope.global_position, envelope.event_id) for envelope in envelopes]
