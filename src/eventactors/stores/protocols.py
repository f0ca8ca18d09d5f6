"""The store protocols every backend implements, and `Store`, which combines them.

One store object provides them all, so a projection can commit its read model and its
offset in one transaction of the same database. Every backend passes tests/conformance/.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from ..records import (
    CommandRecord,
    EventEnvelope,
    EventRecord,
    IdentifierClaim,
    PayloadRow,
    Snapshot,
    StateRecord,
)
from ..serialization import Serializer


@runtime_checkable
class EventStore(Protocol):
    async def append(
        self,
        persistence_id: str,
        records: Sequence[EventRecord],
        expected_sequence_number: int,
        *,
        command: CommandRecord | None = None,
        claim: IdentifierClaim | None = None,
    ) -> list[EventEnvelope]:
        """Writes all records or none; `ConcurrencyError` if the stream's highest sequence
        number is not `expected_sequence_number`. Returns the envelopes with their positions.

        `command` (a command-log entry) and `claim` (the entity's new natural identifiers)
        are written in the same transaction, or nothing is: a claim on keys another entity
        holds raises `IdentifierTaken`.
        """
        ...

    async def read_stream(
        self,
        persistence_id: str,
        from_sequence: int = 1,
        to_sequence: int | None = None,
        limit: int | None = None,
    ) -> list[EventEnvelope]:
        """Events with from_sequence <= sequence_number <= to_sequence, in order."""
        ...

    async def read_stream_payloads(
        self, persistence_id: str, from_sequence: int = 1, limit: int | None = None
    ) -> list[PayloadRow]:
        """(sequence_number, event_type, payload, event_version) of the stream's events from
        `from_sequence`, in order: what recovery needs, without building an envelope per
        event."""
        ...

    async def highest_sequence_number(self, persistence_id: str) -> int:
        """0 for an unknown stream; never lowered by `delete_events_to`."""
        ...

    async def sequence_at(self, persistence_id: str, at_time: datetime) -> int:
        """How far the stream had got at `at_time`: the highest n such that no stored event
        up to n is timestamped after `at_time` (0 for a stream that had not started)."""
        ...

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        entity_types: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> list[EventEnvelope]:
        """Events with global_position > after_position in global order.

        A reader following the log never skips an event committed later with a lower position.
        Filters select events of any of the given entity types, any of the event types, and
        carrying any of the tags; the store skips the rest without decoding them.
        """
        ...

    async def head_position(self) -> int:
        """The highest global position committed; every event at or below it is readable."""
        ...

    async def wait_for_events(self, after_position: int, timeout: float) -> bool:
        """Waits until an event past `after_position` is committed (True) or `timeout` passes
        (False). Woken at once by appends through this store object (and, where the backend
        can, by other processes' appends); polls as a fallback."""
        ...

    async def delete_events_to(self, persistence_id: str, to_sequence: int) -> None: ...

    async def persistence_ids(self) -> list[str]: ...


@runtime_checkable
class SnapshotStore(Protocol):
    async def save_snapshot(self, snapshot: Snapshot[Any]) -> None: ...

    async def load_snapshot(
        self, persistence_id: str, max_sequence: int | None = None
    ) -> Snapshot[Any] | None:
        """The newest snapshot with sequence_number <= max_sequence (any, when None)."""
        ...

    async def delete_snapshots_to(self, persistence_id: str, to_sequence: int) -> None: ...


@runtime_checkable
class StateStore(Protocol):
    async def upsert_state(
        self,
        persistence_id: str,
        revision: int,
        state_record: StateRecord[Any],
        *,
        command: CommandRecord | None = None,
        claim: IdentifierClaim | None = None,
    ) -> None:
        """Writes revision `revision`, which must be exactly one more than the stored one
        (1 for a new entity); anything else raises `ConcurrencyError`. `command` and `claim`
        are written with it, as for `EventStore.append`."""
        ...

    async def get_state(self, persistence_id: str) -> StateRecord[Any] | None: ...

    async def delete_state(self, persistence_id: str, revision: int) -> None:
        """Deletes the state if its stored revision is `revision`, else `ConcurrencyError`."""
        ...


@runtime_checkable
class OffsetStore(Protocol):
    async def get_offset(self, projection: str) -> int | None:
        """The saved position, or None for a projection that never saved one."""
        ...

    async def save_offset(self, projection: str, position: int) -> None: ...

    async def reset_offset(self, projection: str, position: int = 0) -> None: ...


@runtime_checkable
class OffsetListing(Protocol):
    """Optional beside `OffsetStore` (not part of `Store`, so third-party stores stay valid):
    lets tools list every projection that saved an offset without knowing its name."""

    async def list_offsets(self) -> dict[str, int]:
        """Every saved offset, by projection name, in name order."""
        ...


@runtime_checkable
class KeyStore(Protocol):
    """Optional (not part of `Store`): the table of per-entity data keys that
    `EncryptedStore` keeps in the same database as the events, each key wrapped (encrypted)
    under the master key, which never reaches the store.

    A row without a key is an erased entity's: erasure is final, so a key once erased is
    never created again.
    """

    async def load_data_keys(self, persistence_ids: Sequence[str]) -> dict[str, bytes | None]:
        """The wrapped keys of those streams that have a row: None for an erased one."""
        ...

    async def create_data_key(self, persistence_id: str, wrapped_key: bytes) -> bytes | None:
        """Stores `wrapped_key` unless the stream already has a row, and returns what is
        stored: another writer's key when it got there first, None if the stream is erased."""
        ...

    async def erase_data_key(self, persistence_id: str) -> None:
        """Deletes the stream's key for good, leaving an erased row (inserting one if the
        stream had no key), so that no key can be created for it again."""
        ...


@runtime_checkable
class IdentifierStore(Protocol):
    """The map from natural identifiers to entity ids, kept beside the streams (written by
    the `claim` of `append` and `upsert_state`)."""

    async def find_entity(self, entity_type: str, identifiers: str) -> str | None:
        """The id of the entity holding this canonical key set, or None."""
        ...

    async def identifiers_of(self, entity_type: str, entity_id: str) -> str | None:
        """The canonical key set an entity holds, or None."""
        ...


@runtime_checkable
class CommandLogStore(Protocol):
    """The command log: every handled command of the entity types that keep one."""

    async def record_command(self, command: CommandRecord) -> None:
        """Adds an entry for a command that wrote nothing (rejected, timed out, failed, or
        accepted without events); entries for writes go with `append` and `upsert_state`."""
        ...

    async def read_commands(
        self, persistence_id: str, *, limit: int | None = None
    ) -> list[CommandRecord]:
        """The stream's entries in the order they were written."""
        ...


@runtime_checkable
class TransactionalOffsetStore(Protocol):
    """A store that can commit a projection's own writes and its offset in one transaction."""

    async def commit_with_offset(
        self, projection: str, position: int, work: Callable[[Any], Any]
    ) -> Any:
        """Runs `work(connection)` and saves the offset in one transaction: both or neither.

        SQLite passes its `sqlite3.Connection` to a plain function, run on the writer thread;
        PostgreSQL awaits `work` with an asyncpg connection.
        """
        ...


@runtime_checkable
class Store(
    EventStore, SnapshotStore, StateStore, OffsetStore, IdentifierStore, CommandLogStore, Protocol
):
    """A backend: all six protocols, the serializer that decodes what it reads, and `close()`."""

    serializer: Serializer

    async def close(self) -> None: ...
