"""How an event looks on NATS: its subject and its headers.

Pure functions, with no import of nats-py, so that they can be read and tested alone.

Subjects are `<prefix>.<entity_type>.<entity_id>`. A NATS subject token cannot hold `.`, `*`,
`>` or whitespace, and both the entity type and the id may, so each is percent-encoded: the
UTF-8 bytes of every character other than an ASCII letter, digit, `-`, `_` or `~` become `%XX`
(RFC 3986 escaping, with `.` escaped as well, and a leading `~` too). `decode_token` (that is,
`urllib.parse.unquote`) gives the text back.

A subject must fit the server's protocol line, and an entity id of 1024 characters can take
12 KiB once escaped. So a token longer than `MAX_TOKEN_LENGTH` bytes becomes a hashed token,
`~` and the SHA-256 of the text in hex: still one subject per entity, the same in every
process, but not reversible (the `EventActors-Entity-Id` and `-Entity-Type` headers carry the
text). An escaped token never starts with `~`, so the two cannot be confused.

Header values use the same escaping but keep every visible ASCII character except `%` (and a
leading `~`): nats-py strips whitespace from header values and drops their line breaks, which
would otherwise change ids and metadata silently.
"""

from __future__ import annotations

import functools
import hashlib
import re
from urllib.parse import quote, unquote

import msgspec

from ..records import EventEnvelope

#: JetStream drops a second message with the same id within the stream's duplicate window.
MSG_ID = "Nats-Msg-Id"
PERSISTENCE_ID = "EventActors-Persistence-Id"
ENTITY_TYPE = "EventActors-Entity-Type"
ENTITY_ID = "EventActors-Entity-Id"
SEQUENCE_NUMBER = "EventActors-Sequence-Number"
GLOBAL_POSITION = "EventActors-Global-Position"
EVENT_TYPE = "EventActors-Event-Type"
EVENT_VERSION = "EventActors-Event-Version"  # of the type's definition that wrote the payload
TIMESTAMP = "EventActors-Timestamp"  # ISO 8601, UTC
COMMAND_ID = "EventActors-Command-Id"
CORRELATION_ID = "EventActors-Correlation-Id"
METADATA = "EventActors-Metadata"  # a JSON object, present when the event has metadata
TAGS = "EventActors-Tags"  # a JSON array, present when the event has tags
CONTENT_TYPE = "Content-Type"  # of the body: the payload as the store's serializer wrote it

#: The server refuses a protocol line longer than its max_control_line (4 KiB by default);
#: the subject shares that line with the reply inbox and the sizes.
MAX_SUBJECT_LENGTH = 3072
#: A longer escaped token is hashed; two tokens and the prefix always fit a subject.
MAX_TOKEN_LENGTH = 1024
MAX_PREFIX_LENGTH = MAX_SUBJECT_LENGTH - 2 * (MAX_TOKEN_LENGTH + 1)

_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
_HASHED = re.compile(r"~[0-9a-f]{64}")


@functools.lru_cache(maxsize=4096)  # an entity's id comes back with each of its events
def encode_token(text: str) -> str:
    """One subject token for any non-empty text: escaped, or hashed when too long."""
    token = _leading_tilde(quote(text, safe="").replace(".", "%2E"))
    if len(token) > MAX_TOKEN_LENGTH:
        return "~" + hashlib.sha256(text.encode()).hexdigest()
    return token


def is_hashed_token(token: str) -> bool:
    """Whether `encode_token` hashed this token's text (it was too long to escape)."""
    return _HASHED.fullmatch(token) is not None


def decode_token(token: str) -> str:
    """The text of a token made by `encode_token`; also decodes the `EventActors-*` headers.

    Raises ValueError for a hashed token: a hash cannot be reversed, and the message's
    `EventActors-Entity-Id` (or `-Entity-Type`) header holds the text."""
    if is_hashed_token(token):
        raise ValueError(
            f"{token[:12]}... is a hashed subject token (its text was over "
            f"{MAX_TOKEN_LENGTH} bytes escaped) and cannot be decoded; read the "
            f"{ENTITY_ID} or {ENTITY_TYPE} header of the message instead"
        )
    return unquote(token, errors="strict")


def _leading_tilde(escaped: str) -> str:
    return "%7E" + escaped[1:] if escaped.startswith("~") else escaped


def _header(value: str) -> str:
    if (
        value.isascii()
        and value.isprintable()
        and " " not in value
        and "%" not in value
        and not value.startswith("~")
    ):
        return value  # the common case, without quote's cost
    return _leading_tilde(quote(value, safe=_HEADER_SAFE))


def subject_of(prefix: str, envelope: EventEnvelope) -> str:
    return f"{prefix}.{encode_token(envelope.entity_type)}.{encode_token(envelope.entity_id)}"


def message_id(envelope: EventEnvelope) -> str:
    """The `Nats-Msg-Id` header's value: what JetStream recognises a re-publication by."""
    return _header(envelope.event_id)


def headers_of(envelope: EventEnvelope, content_type: str) -> dict[str, str]:
    headers = {
        MSG_ID: message_id(envelope),
        PERSISTENCE_ID: _header(envelope.persistence_id),
        ENTITY_TYPE: _header(envelope.entity_type),
        ENTITY_ID: _header(envelope.entity_id),
        SEQUENCE_NUMBER: str(envelope.sequence_number),
        GLOBAL_POSITION: str(envelope.global_position),
        EVENT_TYPE: _header(envelope.event_type),
        EVENT_VERSION: str(envelope.event_version),
        TIMESTAMP: envelope.timestamp.isoformat(),
        CONTENT_TYPE: content_type,
    }
    if envelope.command_id:
        headers[COMMAND_ID] = _header(envelope.command_id)
    if envelope.correlation_id:
        headers[CORRELATION_ID] = _header(envelope.correlation_id)
    if envelope.metadata:
        headers[METADATA] = _header(msgspec.json.encode(dict(envelope.metadata)).decode())
    if envelope.tags:
        headers[TAGS] = _header(msgspec.json.encode(list(envelope.tags)).decode())
    return headers


def describe(envelope: EventEnvelope) -> str:
    """An event, for error messages."""
    return (
        f"event {envelope.event_id} ({envelope.persistence_id} #{envelope.sequence_number}, "
        f"{envelope.event_type}, global position {envelope.global_position})"
    )
