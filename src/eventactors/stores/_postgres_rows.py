"""Converting between event records and PostgreSQL rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec
from asyncpg import Record

from ..records import EventRecord
from ._common import payload_text

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


def row_payload(row: Record) -> bytes:
    return as_bytes(row["payload_bytes"] if row["payload_json"] is None else row["payload_json"])


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
