"""The engine's `max_event_bytes`: how large one encoded event or durable state may be.

Checked in the runtime, on the bytes the serializer produced, before anything is written:
every store then refuses the same values, with the same error, and an oversized value never
reaches a stream that every later replay would have to read.
"""

from __future__ import annotations

from typing import NoReturn

from ..errors import PayloadTooLarge

#: 1 MiB: far above any sensible event, far below what makes a database struggle.
DEFAULT_MAX_EVENT_BYTES = 1_048_576


def too_large(what: str, type_name: str, persistence_id: str, size: int, limit: int) -> NoReturn:
    """Raises `PayloadTooLarge` for a `what` ("event", "state") of `size` bytes over `limit`."""
    raise PayloadTooLarge(
        f"{what} {type_name!r} for stream {persistence_id!r} is {size} bytes encoded, over "
        f"the limit of {limit} bytes (max_event_bytes); nothing was persisted",
        size=size,
        limit=limit,
    )
