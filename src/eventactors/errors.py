"""The error hierarchy: every error eventactors raises derives from `EventActorsError`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class EventActorsError(Exception):
    """Base class, so callers can catch everything the framework raises in one clause."""


class Rejected(EventActorsError):
    """A command handler refused the command; nothing was persisted.

    `meta` carries structured context back to the caller (for example the current highest bid).
    """

    def __init__(self, reason: str, meta: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.meta: dict[str, Any] = dict(meta or {})

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.meta))


class EngineNotStarted(EventActorsError):
    """The engine is not running: it was never started, or it was stopped."""


class UnknownEntityType(EventActorsError, KeyError):
    """No behavior is registered under the entity type a caller used."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidEntityId(EventActorsError, ValueError):
    """An entity id that cannot address a stream: not a string, empty, too long, or with NUL."""


class UnknownCommand(EventActorsError, TypeError):
    """A command no handler of the behavior accepts."""


class InvalidHandlerResult(EventActorsError, TypeError):
    """A handler returned something that is neither an event, a list of events, nor None."""


class CommandTimeout(EventActorsError, TimeoutError):
    """The caller's timeout or the entity's command deadline passed; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConcurrencyError(EventActorsError):
    """A stream or durable state was written by someone else: the expected revision differs."""


class IdentifierTaken(EventActorsError):
    """Another entity of the type already holds these natural identifiers; nothing of the
    write that claimed them was persisted."""

    def __init__(self, message: str, *, entity_type: str = "", owner: str = "") -> None:
        super().__init__(message)
        self.entity_type = entity_type
        self.owner = owner  # the entity id that holds the keys, when known

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_identifier_taken, (str(self), self.entity_type, self.owner))


def _rebuild_identifier_taken(message: str, entity_type: str, owner: str) -> IdentifierTaken:
    return IdentifierTaken(message, entity_type=entity_type, owner=owner)


class InvalidIdentifiers(EventActorsError, ValueError):
    """Natural identifiers that do not fit the entity type: an unknown or missing key, or a
    value that is not a non-empty str or an int."""


class SerializationError(EventActorsError):
    """A value could not be encoded or decoded; the message names the type and the stream."""


class PayloadTooLarge(SerializationError):
    """An event or a durable state encodes to more bytes than the engine's `max_event_bytes`.

    Refused before anything of the command is written, so one oversized value can neither
    fill the store nor become an event that every later replay must read. `size` and `limit`
    are in bytes.
    """

    def __init__(self, message: str, *, size: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_payload_too_large, (str(self), self.size, self.limit))


def _rebuild_payload_too_large(message: str, size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(message, size=size, limit=limit)


class WriteRefused(EventActorsError):
    """The database refused a write on its own terms (a constraint or a trigger): nothing of
    it was written, and the same write would be refused again, so it is not a conflict."""


class StoreUnavailable(EventActorsError):
    """The store cannot be reached or is closed; the operation may succeed once it is back."""


class ShardUnavailable(EventActorsError):
    """Cluster mode: the shard (or projection) process a call went to died or could not be
    reached. A command in flight then may or may not have been persisted, as after a timeout;
    the restarted shard recovers the entity from the store, so read its state to find out."""


class EntityErased(EventActorsError):
    """The entity was erased (`Engine.erase_entity`): its data key is deleted, so its events,
    snapshots and state can no longer be read, and its stream cannot be written again."""

    def __init__(self, message: str, *, persistence_id: str = "") -> None:
        super().__init__(message)
        self.persistence_id = persistence_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_entity_erased, (str(self), self.persistence_id))


def _rebuild_entity_erased(message: str, persistence_id: str) -> EntityErased:
    return EntityErased(message, persistence_id=persistence_id)
