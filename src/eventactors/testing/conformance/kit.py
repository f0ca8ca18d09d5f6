"""The records the contract writes, built through the store under test's own serializer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

import eventactors as ea
from eventactors._ids import uuid7
from eventactors.records import persistence_id_of, split_persistence_id

# -- types the tests store ------------------------------------------------------------------


class Deposited(msgspec.Struct, frozen=True):
    account: str
    amount: int


class Withdrawn(msgspec.Struct, frozen=True):
    account: str
    amount: int
    note: str = ""


class Account(msgspec.Struct, frozen=True):
    owner: str
    balance: int
    history: tuple[int, ...] = ()


class NeverRegistered(msgspec.Struct, frozen=True):
    """Encodable, but no test registers it: its events must fail to decode."""

    value: int


REGISTERED_TYPES: tuple[type, ...] = (Deposited, Withdrawn, Account)

# For annotations inside Kit, where `Account` names the class attribute.
AccountState = Account


def register_types(store: ea.Store) -> ea.Store:
    for cls in REGISTERED_TYPES:
        store.serializer.register(cls)
    return store


# -- building records -----------------------------------------------------------------------


class Kit:
    """Builds and appends records for one store; the contract reaches everything through it."""

    Deposited = Deposited
    Withdrawn = Withdrawn
    Account = Account
    NeverRegistered = NeverRegistered

    def __init__(self, store: ea.Store) -> None:
        self.store = store

    @staticmethod
    def pid(entity_id: str, entity_type: str = "account") -> str:
        return persistence_id_of(entity_type, entity_id)

    def record(
        self,
        persistence_id: str,
        sequence_number: int,
        event: Any = None,
        *,
        event_type: str | None = None,
        tags: Sequence[str] = (),
        metadata: dict[str, str] | None = None,
        command_id: str = "",
        correlation_id: str = "",
        timestamp: datetime | None = None,
        event_version: int = 1,
    ) -> ea.EventRecord:
        """A record of `event` (a Deposited by default), encoded by the store's serializer."""
        if event is None:
            event = Deposited(account=persistence_id, amount=sequence_number)
        entity_type, entity_id = split_persistence_id(persistence_id)
        return ea.EventRecord(
            event_id=uuid7(),
            persistence_id=persistence_id,
            entity_type=entity_type,
            entity_id=entity_id,
            sequence_number=sequence_number,
            event_type=event_type or self.store.serializer.type_name(type(event)),
            payload=self.store.serializer.encode(event),
            timestamp=timestamp or datetime.now(UTC),
            tags=tuple(tags),
            metadata=dict(metadata or {}),
            command_id=command_id,
            correlation_id=correlation_id,
            event_version=event_version,
        )

    def same_payload(self, stored: bytes, written: bytes) -> bool:
        """Stored payloads must carry the same value; JSON may come back normalised (jsonb)."""
        if self.store.serializer.is_text:
            return bool(msgspec.json.decode(stored) == msgspec.json.decode(written))
        return stored == written

    def records(self, persistence_id: str, first: int, count: int) -> list[ea.EventRecord]:
        """`count` consecutive records of the stream, numbered from `first`."""
        return [self.record(persistence_id, first + index) for index in range(count)]

    async def append(self, persistence_id: str, count: int) -> list[ea.EventEnvelope]:
        """Appends `count` events after the stream's current highest sequence number."""
        highest = await self.store.highest_sequence_number(persistence_id)
        records = self.records(persistence_id, highest + 1, count)
        return await self.store.append(persistence_id, records, highest)

    async def read_everything(self, page: int = 1000) -> list[ea.EventEnvelope]:
        """The whole global log, paged with `after_position` = the last position seen."""
        seen: list[ea.EventEnvelope] = []
        after = 0
        while batch := await self.store.read_all(after_position=after, limit=page):
            # Also keeps a store that ignores after_position from looping here forever.
            assert batch[0].global_position > after, "read_all returned a position <= after"
            seen.extend(batch)
            after = batch[-1].global_position
        return seen

    def snapshot(self, persistence_id: str, sequence_number: int) -> ea.Snapshot[AccountState]:
        state = Account(
            owner=persistence_id,
            balance=sequence_number * 10,
            history=tuple(range(sequence_number)),
        )
        return ea.Snapshot(
            persistence_id=persistence_id,
            sequence_number=sequence_number,
            state_type=self.store.serializer.type_name(Account),
            state=state,
            timestamp=datetime.now(UTC),
        )

    def state(
        self, persistence_id: str, revision: int, balance: int
    ) -> ea.StateRecord[AccountState]:
        return ea.StateRecord(
            persistence_id=persistence_id,
            revision=revision,
            state_type=self.store.serializer.type_name(Account),
            state=Account(owner=persistence_id, balance=balance, history=(revision,)),
            timestamp=datetime.now(UTC),
        )
