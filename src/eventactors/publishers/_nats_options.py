"""The publisher's arguments, checked once in its constructor, so that a mistake is a clear
error at startup rather than a projection failing later."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from .._engine_checks import check_positive
from ..records import EventEnvelope
from ._nats_format import MAX_PREFIX_LENGTH
from ._nats_types import PublishRejected

OnRejected = Literal["fail", "skip"]
#: Called with an event JetStream refused, under `on_rejected="skip"`; may be async.
RejectedCallback = Callable[[EventEnvelope, PublishRejected], Any]

_BAD_TOKEN_CHARS = frozenset(".*> \t\r\n")
_BAD_STREAM_CHARS = frozenset(">*. /\\\t\r\n")
_SCHEMES = ("nats", "tls", "ws", "wss")


@dataclass(frozen=True, slots=True)
class Settings:
    """What every connection and partition of one publisher shares."""

    servers: tuple[str, ...]
    stream: str
    subject_prefix: str
    create_stream: bool
    duplicate_window: float
    ack_timeout: float
    connect_timeout: float
    connect_options: Mapping[str, Any]
    on_rejected: OnRejected
    dead_letter: RejectedCallback | None


def check_servers(servers: str | Iterable[str]) -> tuple[str, ...]:
    urls = (servers,) if isinstance(servers, str) else tuple(servers)
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
    """A literal subject of one or more tokens: no wildcards, no whitespace, no `$`, short
    enough that every entity's subject fits."""
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
    if len(prefix.encode()) > MAX_PREFIX_LENGTH:
        raise ValueError(f"subject_prefix is over {MAX_PREFIX_LENGTH} bytes")
    return prefix


def check_stream_name(stream: str) -> str:
    if not isinstance(stream, str) or not stream or _BAD_STREAM_CHARS & set(stream):
        raise ValueError(
            f"invalid stream name {stream!r}: it must be non-empty, without '.', '*', '>', "
            "'/', '\\' or whitespace"
        )
    return stream


def check_seconds(name: str, value: float) -> float:
    if value is None:  # check_positive lets None through, as "not set"
        raise ValueError(f"{name} must be a positive number, got None")
    check_positive(name, value, (int, float))
    return float(value)


def check_rejected(
    on_rejected: OnRejected, dead_letter: RejectedCallback | None
) -> tuple[OnRejected, RejectedCallback | None]:
    if on_rejected not in ("fail", "skip"):
        raise ValueError(f"on_rejected must be 'fail' or 'skip', got {on_rejected!r}")
    if dead_letter is not None and not callable(dead_letter):
        raise TypeError(f"dead_letter must be callable, got {dead_letter!r}")
    if dead_letter is not None and on_rejected != "skip":
        raise ValueError("dead_letter is called for skipped events: pass on_rejected='skip'")
    return on_rejected, dead_letter


def check_connect_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    options = dict(options or {})
    if "servers" in options:
        raise ValueError("give the servers as the first argument, not in connect_options")
    return options
