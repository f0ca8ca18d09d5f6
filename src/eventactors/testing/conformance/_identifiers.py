"""Claims, entries and checks the IdentifierStore contract shares."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import eventactors as ea
from eventactors.errors import IdentifierTaken
from eventactors.records import ACCEPTED, CommandRecord, IdentifierClaim, split_persistence_id

from .kit import Kit

ALICE = '{"email":"alice@example.com"}'
BOB = '{"email":"bob@example.com"}'


def claim(persistence_id: str, identifiers: str) -> IdentifierClaim:
    entity_type, entity_id = split_persistence_id(persistence_id)
    return IdentifierClaim(entity_type, entity_id, identifiers)


def entry(persistence_id: str, command_id: str = "cmd-1") -> CommandRecord:
    entity_type, entity_id = split_persistence_id(persistence_id)
    return CommandRecord(
        command_id, persistence_id, entity_type, entity_id, "Register", b"{}",
        datetime.now(UTC), ACCEPTED,
    )  # fmt: skip


async def register(store: ea.Store, kit: Kit, stream: str, identifiers: str) -> None:
    """Starts the stream with one event, claiming `identifiers`."""
    await store.append(stream, kit.records(stream, 1, 1), 0, claim=claim(stream, identifiers))


async def assert_untouched(store: ea.Store, kit: Kit, stream: str) -> None:
    """Nothing of the stream was written: no events, no stream, no entry, no identifiers."""
    assert await store.highest_sequence_number(stream) == 0
    assert await store.read_stream(stream) == []
    assert stream not in await store.persistence_ids()
    assert await store.read_commands(stream) == []
    entity_type, entity_id = split_persistence_id(stream)
    assert await store.identifiers_of(entity_type, entity_id) is None


def one_winner(results: Sequence[object]) -> int:
    winners = [n for n, result in enumerate(results) if not isinstance(result, BaseException)]
    assert len(winners) == 1, results
    losers = [result for n, result in enumerate(results) if n != winners[0]]
    assert all(isinstance(result, IdentifierTaken) for result in losers), losers
    return winners[0]
