"""Converting between event records and PostgreSQL rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec
from asyncpg import Record

from ..errors import SerializationError
from ..records import EventRecord
from ._common import payload_text
from ._postgres_connections import PostgresConnections

metadata_decoder = msgspec.json.Decoder(dict[str, str])


def event_row(record: EventRecord, text: bool) -> tuple[Any, ...]:
    """The columns after global_position, which is drawn only inside the transaction."""
    payload = record.payload
    as_json = payload_text(record) if text else None
    return (
        record.event_id, record.persistence_id, record.entity_type, record.entity_id,
        record.sequence_number, record.event_type, as_json, None if text else payload,
        aware(record.timestamp), list(record.tags),
        msgspec.json.encode(dict(record.metadata)).decode(), record.command_id,
        record.correlation_id, record.event_version,
    )  # fmt: skip


def row_payload(row: Record, where: str) -> bytes:
    """A snapshot's or a state's payload; its table lets both columns be NULL."""
    payload = row["payload_bytes"] if row["payload_json"] is None else row["payload_json"]
    if payload is None:
        raise SerializationError(f"corrupt row: {where}: it holds no payload")
    return as_bytes(payload)


def row_time(value: datetime, where: str) -> datetime:
    """A stored timestamp: 'infinity' and '-infinity' come back naive, and are no moment."""
    if value.tzinfo is None:
        raise SerializationError(f"corrupt row: {where}: timestamp {value} is not a moment")
    return value


#: Timestamps asyncpg cannot turn into a datetime: before year 1, or after year 9999.
_OUT_OF_RANGE = (
    "(timestamp < '0001-01-01 00:00:00+00' OR timestamp > '9999-12-31 23:59:59.999999+00')"
)


async def out_of_range_event(
    db: PostgresConnections,
    events: str,
    conditions: str,
    tail: str,
    parameters: Sequence[Any],
    error: OverflowError,
) -> SerializationError:
    """The error for an event read that asyncpg failed (`error`) on a timestamp Python
    cannot hold, naming the first such row among those `conditions` select (`tail` uses the
    rest of `parameters`, so that the same list fits). Only runs after such a failure."""
    row = await db.run(
        lambda connection: connection.fetchrow(
            f"SELECT global_position, persistence_id, sequence_number FROM {events} "
            f"WHERE {conditions} AND {_OUT_OF_RANGE} ORDER BY global_position {tail}",
            *parameters,
        ),
        write=False,
    )
    culprit = (
        "a row no longer there"
        if row is None
        else f"stream {row[1]!r}, sequence {row[2]}, global position {row[0]}"
    )
    return SerializationError(
        f"corrupt event row in {db.where}: {culprit}: its timestamp is outside the years 1 "
        f"to 9999 ({error})"
    )


@contextmanager
def representable(where: str) -> Iterator[None]:
    """Reports a stored value asyncpg cannot turn into a Python one (a timestamp past year
    9999 or before year 1: OverflowError, raised while fetching) as the corrupt data it is."""
    try:
        yield
    except OverflowError as exc:
        raise SerializationError(f"corrupt row: {where}: {exc}") from exc


def as_bytes(payload: str | bytes) -> bytes:
    return payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)


def aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"timestamps must be timezone-aware, got {value!r}")
    return value.astimezone(UTC)


def describe(dsn: str, schema: str) -> str:
    """The server, database and schema, for messages: never the password."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        database = parts.path.lstrip("/") or "(default database)"
    except ValueError:
        return f"PostgreSQL (unparsable DSN), schema {schema!r}"
    return f"PostgreSQL {host}{port}/{database}, schema {schema!r}"
