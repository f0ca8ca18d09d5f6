"""The immutable records that cross the store boundary: events, snapshots and durable state."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

S = TypeVar("S")

_UNSET: Any = object()


def persistence_id_of(entity_type: str, entity_id: str) -> str:
    """The stream name of an entity: `"<entity_type>|<entity_id>"`."""
    return f"{entity_type}|{entity_id}"


def split_persistence_id(persistence_id: str) -> tuple[str, str]:
    """Inverse of `persistence_id_of`; entity types never contain `|`, entity ids may."""
    entity_type, _, entity_id = persistence_id.partition("|")
    return entity_type, entity_id


class EventRecord(msgspec.Struct, frozen=True):
    """An event in its stored form, as handed to `EventStore.append`.

    A frozen msgspec Struct rather than a dataclass: one is built for every event written,
    and a Struct is built about ten times faster.
    """

    event_id: str
    persistence_id: str
    entity_type: str
    entity_id: str
    sequence_number: int
    event_type: str
    payload: bytes
    timestamp: datetime
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, str] = {}  # msgspec gives each record its own empty dict
    command_id: str = ""
    correlation_id: str = ""
    global_position: int | None = None
    event_version: int = 1  # the version of the event type's definition that wrote it


#: One event as recovery reads it, without an envelope:
#: (sequence_number, event_type, payload, event_version).
PayloadRow = tuple[int, str, bytes, int]


@dataclass(frozen=True, slots=True, eq=False)
class EventEnvelope:
    """A persisted event as handlers, subscribers and projections see it.

    `event` is decoded on first access, so a reader that filters by type never pays for,
    or fails on, the events it skips. `payload` is the stored form: a store may normalise
    JSON (PostgreSQL's jsonb does), so equality compares everything but the payload bytes.
    """

    event_id: str
    persistence_id: str
    entity_type: str
    entity_id: str
    sequence_number: int
    global_position: int
    event_type: str
    timestamp: datetime
    tags: tuple[str, ...]
    metadata: Mapping[str, str]
    command_id: str
    correlation_id: str
    payload: bytes = field(repr=False)
    _decode: Callable[[EventEnvelope], Any] = field(repr=False, compare=False)
    _event: Any = field(default=_UNSET, repr=False, compare=False)
    #: The version of the event type's definition that wrote it; older versions are
    #: upcast to the current definition when `event` is decoded.
    event_version: int = 1

    @property
    def event(self) -> Any:
        """The decoded event object; raises `SerializationError` naming the type and stream."""
        if self._event is _UNSET:
            object.__setattr__(self, "_event", self._decode(self))
        return self._event

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventEnvelope):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self.event_id)

    def _key(self) -> tuple[Any, ...]:
        return (
            self.event_id,
            self.persistence_id,
            self.sequence_number,
            self.global_position,
            self.event_type,
            self.timestamp,
            self.tags,
            dict(self.metadata),
            self.command_id,
            self.correlation_id,
            self.event_version,
        )


#: The outcomes a command-log entry can record.
ACCEPTED, REJECTED, TIMED_OUT, FAILED = "accepted", "rejected", "timed_out", "failed"


class CommandRecord(msgspec.Struct, frozen=True):
    """One handled command in the command log: the audit trail of who asked for what, and
    what came of it.

    An accepted command's entry is written in the same transaction as its events (or its new
    durable state), so the log and the streams never disagree. `event_ids` are the events it
    caused; each of those events carries this `command_id`. `reason` says why a command was
    rejected, timed out or failed. `command` is the decoded command, filled in by
    `Engine.command_log` when its type is registered; stores leave it None.
    """

    command_id: str
    persistence_id: str
    entity_type: str
    entity_id: str
    command_type: str
    payload: bytes
    timestamp: datetime
    outcome: str
    reason: str = ""
    event_ids: tuple[str, ...] = ()
    revision: int = 0  # the entity's revision after the command
    correlation_id: str = ""
    metadata: Mapping[str, str] = {}
    command: Any = None


class IdentifierClaim(msgspec.Struct, frozen=True):
    """The statement "this entity's natural identifiers are now `identifiers`", written with
    the write that creates or changes them.

    `identifiers` is the canonical text of the key set (JSON, keys sorted): unique per entity
    type, so two entities can never hold the same keys, and one entity holds one key set.
    An empty `identifiers` releases the entity's keys (its state no longer names any).
    """

    entity_type: str
    entity_id: str
    identifiers: str


@dataclass(frozen=True, slots=True)
class Snapshot(Generic[S]):
    """An entity's state after event `sequence_number`; bounds recovery to the events after it."""

    persistence_id: str
    sequence_number: int
    state_type: str
    state: S
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class StateRecord(Generic[S]):
    """The latest state of a durable-state entity; `revision` grows by one per change."""

    persistence_id: str
    revision: int
    state_type: str
    state: S
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Reply(Generic[S]):
    """What `Engine.send` returns once the command's events are durable and applied."""

    state: S
    revision: int
    events: tuple[EventEnvelope, ...] = ()
    entity_id: str = ""  # set by `Engine.send_by`, which finds or creates the entity
