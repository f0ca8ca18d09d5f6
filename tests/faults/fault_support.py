"""What every fault test checks once the fault has cleared: the store holds exactly the events
the engine acknowledged, and each entity's state is the fold of its stored events.

A fault may fail commands, but it must never leave an event the caller was told failed and
later appears out of nowhere, a revision skipped, or a state that a replay would not give.
"""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from typing import Any

import eventactors as ea


class Ledger:
    """The events the engine acknowledged, stream by stream, as (sequence, event id)."""

    def __init__(self) -> None:
        self.streams: dict[str, list[tuple[int, str]]] = {}

    def record(self, reply: ea.Reply[Any]) -> ea.Reply[Any]:
        for envelope in reply.events:
            self.add(envelope.persistence_id, envelope.sequence_number, envelope.event_id)
        return reply

    def add(self, persistence_id: str, sequence_number: int, event_id: str) -> None:
        self.streams.setdefault(persistence_id, []).append((sequence_number, event_id))

    def revision(self, persistence_id: str) -> int:
        return len(self.streams.get(persistence_id, []))


async def stored_log(store: ea.Store) -> dict[str, list[tuple[int, str]]]:
    """Every stored event, stream by stream, read through the global log."""
    streams: dict[str, list[tuple[int, str]]] = {}
    position = 0
    while page := await store.read_all(position, limit=1000):
        for envelope in page:
            streams.setdefault(envelope.persistence_id, []).append(
                (envelope.sequence_number, envelope.event_id)
            )
        position = page[-1].global_position
    return streams


async def assert_log_is_acknowledged(store: ea.Store, ledger: Ledger) -> None:
    """No acknowledged event lost, none written twice, none written for a failed command."""
    assert await stored_log(store) == ledger.streams


def fold(
    behavior_class: type[ea.EventSourcedBehavior[Any]], entity_id: str, events: list[Any]
) -> Any:
    behavior = behavior_class()
    behavior.entity_id = entity_id
    return functools.reduce(behavior.handle_event, events, behavior.initial_state())


async def assert_state_is_the_fold(
    engine: ea.Engine,
    entity_type: str,
    entity_id: str,
    behavior_class: type[ea.EventSourcedBehavior[Any]],
) -> tuple[Any, int]:
    """The live entity's (state, revision) is what a replay of its stored events gives."""
    stored = await engine.store.read_stream(f"{entity_type}|{entity_id}")
    assert [e.sequence_number for e in stored] == list(range(1, len(stored) + 1))
    expected = (fold(behavior_class, entity_id, [e.event for e in stored]), len(stored))
    state_and_revision = await engine.get_state(entity_type, entity_id, timeout=30)
    assert state_and_revision == expected
    return state_and_revision


async def assert_recovered(
    engine: ea.Engine,
    ledger: Ledger,
    behavior_class: type[ea.EventSourcedBehavior[Any]],
    entity_type: str,
    fresh_store: ea.Store,
) -> None:
    """The checks after a fault: the log is the acknowledged events, every entity is at its
    fold and its acknowledged revision, and a fresh engine on `fresh_store` (another store
    object on the same data) recovers the same states."""
    await assert_log_is_acknowledged(engine.store, ledger)
    states = {}
    for persistence_id in ledger.streams:
        entity_id = persistence_id.split("|", 1)[1]
        states[entity_id] = await assert_state_is_the_fold(
            engine, entity_type, entity_id, behavior_class
        )
        assert states[entity_id][1] == ledger.revision(persistence_id)
    fresh = ea.Engine(store=fresh_store)
    fresh.register(entity_type, behavior_class)
    async with fresh:
        for entity_id, state in states.items():
            assert await fresh.get_state(entity_type, entity_id, timeout=30) == state


def integrity(path: Path) -> list[tuple[str]]:
    """SQLite's own check of the whole file, WAL included, from a connection of its own."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()
