"""How an event looks on NATS: its subject, its headers, and the checks on names.

Pure functions, with no import of nats-py, so that they can be read and tested alone.

Subjects are `<prefix>.<entity_type>.<entity_id>`. A NATS subject token cannot hold `.`, `*`,
`>` or whitespace, and both the entity type and the id may, so each is percent-encoded: the
UTF-8 bytes of every character other than an ASCII letter, digit, `-`, `_` or `~` become `%XX`
(RFC 3986 escaping, with `.` escaped as well). `decode_token` (that is,
`urllib.parse.unquote`) gives the id back. Header values use the same escaping but keep
every visible ASCII character except `%`: nats-py strips whitespace from header values and
drops their line breaks, which would otherwise change ids and metadata silently.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

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
TIMESTAMP = "EventActors-Timestamp"  # ISO 8601, UTC
COMMAND_ID = "EventActors-Command-Id"
CORRELATION_ID = "EventActors-Correlation-Id"
METADATA = "EventActors-Metadata"  # a JSON object, present when the event has metadata
TAGS = "EventActors-Tags"  # a JSON array, present when the event has tags
CONTENT_TYPE = "Content-Type"  # of the body: the payload as the store's serializer wrote it

#: The server refuses a protocol line longer than its max_control_line (4 KiB by default);
#: the subject shares that line with the reply inbox and the sizes.
MAX_SUBJECT_LENGTH = 3072

_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
_BAD_TOKEN_CHARS = frozenset(".*> \t\r\n")
_BAD_STREAM_CHARS = frozenset(">*. /\\\t\r\n")
_SCHEMES = ("nats", "tls", "ws", "wss")


@functools.lru_cache(maxsize=4096)  # an entity's id comes back with each of its events
def encode_token(text: str) -> str:
    """One subject token for any non-empty text; reversible with `decode_token`."""
    return quote(text, safe="").replace(".", "%2E")


def decode_token(token: str) -> str:
    """The text of a token made by `encode_token`; also decodes the `EventActors-*` headers."""
    return unquote(token, errors="strict")


def _header(value: str) -> str:
    if value.isascii() and value.isprintable() and " " not in value and "%" not in value:
        return value  # the common case, without quote's cost
    return quote(value, safe=_HEADER_SAFE)


def subject_of(prefix: str, envelope: EventEnvelope) -> str:
    return f"{prefix}.{encode_token(envelope.entity_type)}.{encode_token(envelope.entity_id)}"


def headers_of(envelope: EventEnvelope, content_type: str) -> dict[str, str]:
    headers = {
        MSG_ID: _header(envelope.event_id),
        PERSISTENCE_ID: _header(envelope.persistence_id),
        ENTITY_TYPE: _header(envelope.entity_type),
        ENTITY_ID: _header(envelope.entity_id),
        SEQUENCE_NUMBER: str(envelope.sequence_number),
        GLOBAL_POSITION: str(envelope.global_position),
        EVENT_TYPE: _header(envelope.event_type),
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


# -- checks on the publisher's arguments ---------------------------------------------------


def check_servers(servers: str | Iterable[str]) -> list[str]:
    urls = [servers] if isinstance(servers, str) else list(servers)
    if not urls:
        raise ValueError("servers must name at least one NATS URL, got none")
    for url in urls:
        if not isinstance(url, str):
            raise TypeError(f"servers must be URL strings, got {url!r}")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"invalid NATS server URL {url!r}: {exc}") from None
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise ValueError(
                f"invalid NATS server URL {url!r}: expected "
                f"{' | '.join(s + '://host[:port]' for s in _SCHEMES)}"
            )
        if port == 0:
            raise ValueError(f"invalid NATS server URL {url!r}: port 0")
    return urls


def check_prefix(prefix: str) -> str:
    """A literal subject of one or more tokens: no wildcards, no whitespace, no `$`."""
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"subject_prefix must be a non-empty string, got {prefix!r}")
    for token in prefix.split("."):
        if not token or _BAD_TOKEN_CHARS & set(token):
            raise ValueError(
                f"invalid subject_prefix {prefix!r}: tokens are separated by single dots and "
                "must not be empty or contain '*', '>' or whitespace"
            )
    if prefix.startswith("$"):
        raise ValueError(
            f"invalid subject_prefix {prefix!r}: subjects starting with '$' are reserved "
            "for NATS itself ($JS, $SYS, $KV)"
        )
    return prefix


def check_stream_name(stream: str) -> str:
    if not isinstance(stream, str) or not stream or _BAD_STREAM_CHARS & set(stream):
        raise ValueError(
            f"invalid stream name {stream!r}: it must be non-empty, without '.', '*', '>', "
            "'/', '\\' or whitespace"
        )
    return stream


def check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def captures(stream_subject: str, prefix: str) -> bool:
    """Whether a stream subject (maybe with wildcards) captures every `<prefix>.<a>.<b>`."""
    target = [*prefix.split("."), "*", "*"]
    pattern = stream_subject.split(".")
    for index, token in enumerate(pattern):
        if index >= len(target):
            return False
        if token == ">":
            return True
        if token != "*" and (target[index] == "*" or token != target[index]):
            return False
    return len(pattern) == len(target)
