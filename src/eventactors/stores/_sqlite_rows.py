"""Converting between event records and SQLite rows, and refusing corrupt rows clearly."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec

from ..errors import SerializationError
from ..records import EventEnvelope, EventRecord, PayloadRow
from ._common import payload_text

_tags_decoder = msgspec.json.Decoder(tuple[str, ...])
_metadata_decoder = msgspec.json.Decoder(dict[str, str])
_encoder = msgspec.json.Encoder()


def event_row(record: EventRecord, text: bool) -> tuple[Any, ...]:
    payload: bytes | str = payload_text(record) if text else record.payload
    tags, metadata = record.tags, record.metadata
    return (
        record.event_id, record.persistence_id, record.entity_type, record.entity_id,
        record.sequence_number, record.event_type, payload, format_timestamp(record.timestamp),
        _encoder.encode(list(tags)).decode() if tags else "[]",
        _encoder.encode(dict(metadata)).decode() if metadata else "{}",
        record.command_id, record.correlation_id, record.event_version,
    )  # fmt: skip


def envelope_from_row(
    row: tuple[Any, ...], decode: Callable[[EventEnvelope], Any], path: str
) -> EventEnvelope:
    """Builds an envelope from a row, refusing a corrupt one with the stream and position."""
    (position, event_id, persistence_id, entity_type, entity_id, sequence_number, event_type,
     payload, timestamp, tags, metadata, command_id, correlation_id, version) = row  # fmt: skip
    try:
        if type(payload) is str:
            payload = payload.encode("utf-8")
        if not (
            type(event_id)
            is type(persistence_id)
            is type(entity_type)
            is type(entity_id)
            is type(event_type)
            is type(command_id)
            is type(correlation_id)
            is str
        ):  # one test for the common case; the loop below only runs to name the culprit
            for name, value in (("event_id", event_id), ("persistence_id", persistence_id),
                                ("entity_type", entity_type), ("entity_id", entity_id),
                                ("event_type", event_type), ("command_id", command_id),
                                ("correlation_id", correlation_id)):  # fmt: skip
                if not isinstance(value, str):
                    raise TypeError(f"{name} is {type(value).__name__}, not text")
        if type(sequence_number) is not int or sequence_number < 1:
            raise TypeError(f"sequence_number {sequence_number!r} is not a positive integer")
        if type(payload) is not bytes:
            raise TypeError(f"payload is {type(payload).__name__}, not text or blob")
        if type(version) is not int or version < 1:
            raise TypeError(f"event_version {version!r} is not a positive integer")
        return EventEnvelope(
            event_id, persistence_id, entity_type, entity_id, sequence_number, position,
            event_type, parse_timestamp(timestamp),
            () if tags == "[]" else _tags_decoder.decode(tags),
            {} if metadata == "{}" else _metadata_decoder.decode(metadata),
            command_id, correlation_id, payload, decode, event_version=version,
        )  # fmt: skip
    except (TypeError, ValueError, msgspec.DecodeError) as exc:
        raise SerializationError(
            f"corrupt event row in {path}: stream {persistence_id!r}, "
            f"sequence {sequence_number!r}, global position {position}: {exc}"
        ) from exc


def payload_row(row: tuple[Any, ...], persistence_id: str, path: str) -> PayloadRow:
    """(sequence_number, event_type, payload, event_version) for recovery, refusing a corrupt
    row."""
    sequence_number, event_type, payload, version = row
    if (
        type(sequence_number) is int
        and sequence_number >= 1
        and type(event_type) is str
        and type(version) is int
        and version >= 1
    ):
        if type(payload) is str:
            return sequence_number, event_type, payload.encode("utf-8"), version
        if type(payload) is bytes:
            return sequence_number, event_type, payload, version
    raise SerializationError(
        f"corrupt event row in {path}: stream {persistence_id!r}, sequence "
        f"{sequence_number!r}: event_type {event_type!r}, payload {type(payload).__name__}, "
        f"event_version {version!r}"
    )


def format_timestamp(value: datetime) -> str:
    if value.tzinfo is UTC:
        return value.isoformat()
    if value.tzinfo is None:
        raise ValueError(f"timestamps must be timezone-aware, got {value!r}")
    return value.astimezone(UTC).isoformat()


def parse_timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"timestamp is {type(value).__name__}, not text")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:  # another writer's, without an offset: UTC, as the tools read it
        return parsed.replace(tzinfo=UTC)
    return parsed


def row_timestamp(value: Any, where: str) -> datetime:
    """A stored timestamp, outside an envelope's own checks: a corrupt one names `where`."""
    try:
        return parse_timestamp(value)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"corrupt row: {where}: {exc}") from exc


def row_integer(value: Any, where: str) -> int:
    """A stored revision, sequence number or position: text or a blob there is corruption
    (SQLite keeps whatever was written in a column, whatever its declared type)."""
    if type(value) is int:
        return value
    raise SerializationError(f"corrupt row: {where} is {value!r}, not an integer")


@contextmanager
def readable_text(where: str) -> Iterator[None]:
    """Reports text that is not UTF-8 (written behind the store's back), which the sqlite3
    module refuses while fetching the row, as the corrupt data it is rather than as an
    unavailable database; `where` says which rows were being read."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if not _unreadable(exc):
            raise
        raise SerializationError(f"corrupt row: {where}: {exc}") from exc


@contextmanager
def readable_events(
    connection: sqlite3.Connection, where: str, conditions: str, parameters: Sequence[Any]
) -> Iterator[None]:
    """`readable_text` for event rows, and for tags that SQLite's JSON functions refuse (a
    tag filter): the error names the first such row among those `conditions` select."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if not _unreadable(exc):
            raise
        culprit = _first_unreadable(connection, conditions, parameters)
        raise SerializationError(f"corrupt event row in {where}: {culprit}: {exc}") from exc


def _unreadable(error: sqlite3.OperationalError) -> bool:
    text = str(error)
    return "Could not decode to UTF-8" in text or "malformed JSON" in text


_TEXT_COLUMNS = (
    "persistence_id", "event_id", "entity_type", "entity_id", "event_type", "payload",
    "timestamp", "tags", "metadata", "command_id", "correlation_id",
)  # fmt: skip


def _first_unreadable(
    connection: sqlite3.Connection, conditions: str, parameters: Sequence[Any]
) -> str:
    """Reads the selected rows again as bytes, in log order, to name the first one holding
    text that is not UTF-8, or tags that are not JSON. Only ever runs after such a failure."""
    texts = ", ".join(f"CASE WHEN typeof({c}) = 'text' THEN {c} END" for c in _TEXT_COLUMNS)
    factory = connection.text_factory
    connection.text_factory = bytes
    rows = connection.execute(
        f"SELECT global_position, sequence_number, json_valid(tags), {texts} FROM ea_events "
        f"WHERE {conditions} ORDER BY global_position",
        tuple(parameters),
    )
    try:
        for position, sequence, tags_valid, *values in rows:
            columns = [c for c, v in zip(_TEXT_COLUMNS, values, strict=True) if not _utf8(v)]
            if not tags_valid:
                columns.append("tags")
            if columns:
                stream = (values[0] or b"").decode("utf-8", "replace")
                return (
                    f"stream {stream!r}, sequence {sequence!r}, global position {position} "
                    f"({', '.join(dict.fromkeys(columns))})"
                )
    finally:
        rows.close()
        connection.text_factory = factory
    return "a row no longer there"


def _utf8(value: Any) -> bool:
    if not isinstance(value, bytes):
        return True
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
