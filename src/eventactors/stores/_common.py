"""Argument checks and decoding shared by every backend, so they all fail the same way."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from ..errors import (
    ConcurrencyError,
    EventActorsError,
    IdentifierTaken,
    SerializationError,
    StoreUnavailable,
    WriteRefused,
)
from ..records import (
    ACCEPTED,
    FAILED,
    REJECTED,
    TIMED_OUT,
    CommandRecord,
    EventEnvelope,
    EventRecord,
    IdentifierClaim,
    StateRecord,
    persistence_id_of,
)
from ..serialization import Serializer


def check_append(
    persistence_id: str, records: Sequence[EventRecord], expected_sequence_number: int
) -> None:
    """Rejects a batch that is not a consecutive run of this stream after `expected`."""
    if not isinstance(expected_sequence_number, int) or expected_sequence_number < 0:
        raise ValueError(
            f"expected_sequence_number must be an int >= 0, got {expected_sequence_number!r}"
        )
    for offset, record in enumerate(records, start=1):
        if not isinstance(record, EventRecord):
            raise TypeError(f"append takes EventRecords, got {type(record).__qualname__}")
        if record.persistence_id != persistence_id:
            raise ValueError(
                f"record for stream {record.persistence_id!r} appended to {persistence_id!r}"
            )
        if record.sequence_number != expected_sequence_number + offset:
            raise ValueError(
                f"records for {persistence_id!r} must be numbered consecutively from "
                f"{expected_sequence_number + 1}; got {record.sequence_number} "
                f"at index {offset - 1}"
            )
        if not isinstance(record.timestamp, datetime) or record.timestamp.tzinfo is None:
            raise ValueError(
                f"record timestamps must be timezone-aware datetimes, got {record.timestamp!r} "
                f"(stream {persistence_id!r}, sequence {record.sequence_number})"
            )
        if not isinstance(record.payload, bytes):
            raise TypeError(
                f"record payload must be bytes, got {type(record.payload).__qualname__}"
            )


OUTCOMES = (ACCEPTED, REJECTED, TIMED_OUT, FAILED)


def check_extras(
    persistence_id: str, command: CommandRecord | None, claim: IdentifierClaim | None
) -> None:
    """Refuses a command-log entry or identifier claim that does not belong to this write."""
    if command is not None:
        check_command_record(command)
        if command.persistence_id != persistence_id:
            raise ValueError(
                f"command-log entry for stream {command.persistence_id!r} written with "
                f"{persistence_id!r}"
            )
    if claim is not None:
        if not isinstance(claim, IdentifierClaim):
            raise TypeError(f"claim must be an IdentifierClaim, got {type(claim).__qualname__}")
        if persistence_id_of(claim.entity_type, claim.entity_id) != persistence_id:
            raise ValueError(
                f"identifier claim for {claim.entity_type!r}/{claim.entity_id!r} written with "
                f"stream {persistence_id!r}"
            )
        if not isinstance(claim.identifiers, str):
            raise ValueError(
                f"claim.identifiers must be a str ('' to release), got {claim.identifiers!r}"
            )


def check_command_record(command: CommandRecord) -> None:
    if not isinstance(command, CommandRecord):
        raise TypeError(f"command must be a CommandRecord, got {type(command).__qualname__}")
    if command.outcome not in OUTCOMES:
        raise ValueError(
            f"command outcome must be one of {', '.join(OUTCOMES)}, got {command.outcome!r}"
        )
    if not isinstance(command.timestamp, datetime) or command.timestamp.tzinfo is None:
        raise ValueError(
            f"command timestamps must be timezone-aware datetimes, got {command.timestamp!r}"
        )
    if not isinstance(command.payload, bytes):
        raise TypeError(f"command payload must be bytes, got {type(command.payload).__qualname__}")


def require_text(**columns: Any) -> None:
    """Raises TypeError naming the first of a stored row's text columns that holds something
    else: a row written behind the store's back."""
    for name, value in columns.items():
        if type(value) is not str:
            raise TypeError(f"{name} is {type(value).__name__}, not text")


def text_tuple(name: str, values: Iterable[Any]) -> tuple[str, ...]:
    """A stored array of text (tags, event ids) as a tuple; TypeError if it holds anything
    else (a NULL, or a nested array, written behind the store's back)."""
    items = tuple(values)
    for item in items:
        if type(item) is not str:
            raise TypeError(f"{name} holds {item!r}, not only text")
    return items


def check_at_time(at_time: datetime) -> datetime:
    if not isinstance(at_time, datetime) or at_time.tzinfo is None:
        raise ValueError(f"at_time must be a timezone-aware datetime, got {at_time!r}")
    return at_time


def identifier_taken(claim: IdentifierClaim, owner: str) -> IdentifierTaken:
    """The error for a claim on keys another entity holds, worded the same by every backend."""
    return IdentifierTaken(
        f"{claim.entity_type!r} identifiers {claim.identifiers} already belong to entity "
        f"{owner!r}; nothing of the write for {claim.entity_id!r} was persisted",
        entity_type=claim.entity_type,
        owner=owner,
    )


def naming_stream(error: EventActorsError, persistence_id: str) -> EventActorsError:
    """`error`, reworded to name the stream if it does not already (a database's message
    rarely does), so that a caller of a shared batch knows which append failed."""
    if repr(persistence_id) in str(error) or type(error) not in _RENAMEABLE:
        return error
    renamed = type(error)(f"append to stream {persistence_id!r} failed: {error}")
    renamed.__cause__ = error.__cause__
    return renamed


_RENAMEABLE = (ConcurrencyError, SerializationError, WriteRefused, StoreUnavailable)


def check_range(from_sequence: int, to_sequence: int | None, limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if from_sequence < 0 or (to_sequence is not None and to_sequence < 0):
        raise ValueError("sequence bounds must be >= 0")


def envelope_from_record(record: EventRecord, position: int, store: Any) -> EventEnvelope:
    return EventEnvelope(
        event_id=record.event_id,
        persistence_id=record.persistence_id,
        entity_type=record.entity_type,
        entity_id=record.entity_id,
        sequence_number=record.sequence_number,
        global_position=position,
        event_type=record.event_type,
        timestamp=record.timestamp,
        tags=tuple(record.tags),
        metadata=dict(record.metadata),
        command_id=record.command_id,
        correlation_id=record.correlation_id,
        payload=record.payload,
        _decode=store.decode_event,
        event_version=record.event_version,
    )


def decode_event(serializer: Serializer, envelope: EventEnvelope) -> Any:
    """Decodes an envelope's payload; errors name the type, the stream and the position."""
    try:
        return serializer.decode(envelope.event_type, envelope.payload, envelope.event_version)
    except SerializationError as exc:
        raise SerializationError(
            f"{exc} (stream {envelope.persistence_id!r}, sequence {envelope.sequence_number}, "
            f"global position {envelope.global_position})"
        ) from exc


def decode_state(serializer: Serializer, state_type: str, payload: bytes, where: str) -> Any:
    try:
        return serializer.decode(state_type, payload)
    except SerializationError as exc:
        raise SerializationError(f"{exc} ({where})") from exc


def encode_state(serializer: Serializer, state: Any, persistence_id: str) -> bytes:
    try:
        return serializer.encode(state)
    except SerializationError as exc:
        raise SerializationError(f"{exc} (state of stream {persistence_id!r})") from exc


def check_state_record(persistence_id: str, revision: int, record: StateRecord[Any]) -> None:
    if record.persistence_id != persistence_id or record.revision != revision:
        raise ValueError(
            f"state record for {record.persistence_id!r} revision {record.revision} "
            f"does not match upsert of {persistence_id!r} revision {revision}"
        )


def check_position(position: int) -> int:
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        raise ValueError(f"an offset must be an int >= 0, got {position!r}")
    return position


def check_stream_position(persistence_id: str, highest: int, expected: int) -> None:
    """The optimistic-concurrency check of `append`, worded the same by every backend."""
    if type(highest) is not int:  # a stream head written behind the store's back
        raise SerializationError(
            f"corrupt row: the head of stream {persistence_id!r} is {highest!r}, not a "
            "sequence number; nothing was written"
        )
    if highest != expected:
        raise ConcurrencyError(
            f"stream {persistence_id!r} is at sequence {highest}, expected {expected}"
        )


def check_state_revision(
    persistence_id: str, stored: int, revision: int, *, deleting: bool
) -> None:
    """Writing needs the next revision; deleting needs the stored one."""
    if revision != (stored if deleting else stored + 1):
        action = "delete" if deleting else "write"
        raise ConcurrencyError(
            f"state {persistence_id!r} is at revision {stored}; cannot {action} revision {revision}"
        )


def payload_text(record: EventRecord) -> str:
    """The JSON payload as text, for stores that keep JSON readable; refuses non-UTF-8 bytes."""
    try:
        return record.payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SerializationError(
            f"payload of {record.event_type!r} for stream {record.persistence_id!r} "
            "is not UTF-8 text, but the serializer produces text"
        ) from exc


def check_filter(values: Sequence[str] | None, name: str) -> tuple[str, ...] | None:
    """A filter is None (everything) or a non-empty collection of strings."""
    if values is None:
        return None
    if isinstance(values, str):
        raise TypeError(f"{name} must be a collection of strings, not a single string")
    selected = tuple(values)
    if not selected or not all(isinstance(value, str) for value in selected):
        raise ValueError(f"{name} must be a non-empty collection of strings, got {values!r}")
    return selected


def matches(
    envelope: EventEnvelope,
    entity_types: tuple[str, ...] | None,
    event_types: tuple[str, ...] | None,
    tags: tuple[str, ...] | None,
) -> bool:
    return (
        (entity_types is None or envelope.entity_type in entity_types)
        and (event_types is None or envelope.event_type in event_types)
        and (tags is None or any(tag in envelope.tags for tag in tags))
    )


def reopen_store(
    store_class: type[Any], args: tuple[Any, ...], options: dict[str, Any], serializer_type: type
) -> Any:
    """Unpickles a store as a fresh, unopened store with the same configuration.

    A store that many processes can reach (a file, a database) pickles as its configuration,
    never as its connections: that is how cluster mode opens it again in every shard process.
    The serializer comes back empty; the engine there registers the same types again.
    """
    return store_class(*args, serializer=serializer_type(), **options)
