"""Read-only queries over any store, shared by the `eventactors` command and the web console.

Everything here reads through the store protocols: `persistence_ids` with
`highest_sequence_number` for streams, and `read_all` in pages for the log. Every scan is
paged (at most one page of the log in memory), but a scan is still a scan: on a large store,
counts and searches will want indexed queries in the backends.

This module holds the queries over streams and events; it re-exports the rest of the
inspection API from the modules that hold it: opening a store (`_inspection_stores`), loading
an application (`_app_loading`), projection offsets (`_inspection_offsets`), and counts and
events as data (`_inspection_data`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import msgspec

from ._app_loading import engine_on, load_app, projection_names, registrations
from ._inspection_data import (
    PAGE,
    EventCounts,
    count_events,
    envelope_as_data,
    log_pages,
    payload_as_data,
    utc,
    utc_text,
    write_rate,
)
from ._inspection_offsets import ProjectionOffset, projection_offsets
from ._inspection_stores import (
    InspectionError,
    check_reachable,
    open_checked,
    open_existing_store,
)
from .records import EventEnvelope, split_persistence_id
from .stores.locate import is_dsn
from .stores.protocols import OffsetListing, Store

__all__ = [
    "EventCounts",
    "InspectionError",
    "OffsetListing",
    "ProjectionOffset",
    "StreamSummary",
    "check_reachable",
    "count_events",
    "engine_on",
    "envelope_as_data",
    "event_by_position",
    "find_events",
    "follow_events",
    "is_dsn",
    "list_streams",
    "load_app",
    "log_pages",
    "open_checked",
    "open_existing_store",
    "payload_as_data",
    "projection_names",
    "projection_offsets",
    "registrations",
    "stream_events",
    "utc",
    "utc_text",
    "write_rate",
]


class StreamSummary(msgspec.Struct, frozen=True):
    """One stream as a tool lists it.

    `highest_sequence` is the last sequence number ever written, which survives the deletion
    of events (`delete_events_to`); `events` is how many the store still holds, the ones
    from the first left to the highest (deletion only ever removes a prefix)."""

    persistence_id: str
    entity_type: str
    entity_id: str
    highest_sequence: int
    events: int
    last_timestamp: datetime | None  # UTC; None when every event was deleted


# -- streams and events -------------------------------------------------------------------


async def list_streams(
    store: Store,
    *,
    entity_type: str | None = None,
    search: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> list[StreamSummary]:
    """Streams in persistence-id order; `search` is a case-insensitive substring of the id.

    The first `offset` matching streams are skipped without a query each, so that a later
    page costs no more than the first."""
    if offset < 0:
        raise ValueError(f"offset must be 0 or more, got {offset}")
    needle = search.casefold() if search else None
    found: list[StreamSummary] = []
    skipped = 0
    for persistence_id in sorted(await store.persistence_ids()):
        if limit is not None and len(found) >= limit:
            break
        kind, entity_id = split_persistence_id(persistence_id)
        if entity_type is not None and kind != entity_type:
            continue
        if needle is not None and needle not in persistence_id.casefold():
            continue
        if skipped < offset:
            skipped += 1
            continue
        found.append(await _summary(store, persistence_id, kind, entity_id))
    return found


async def _summary(store: Store, persistence_id: str, kind: str, entity_id: str) -> StreamSummary:
    highest = await store.highest_sequence_number(persistence_id)
    first = await store.read_stream(persistence_id, limit=1)
    last = await store.read_stream(persistence_id, from_sequence=max(1, highest), limit=1)
    held = highest - first[0].sequence_number + 1 if first and highest else 0
    timestamp = utc(last[0].timestamp) if last else None
    return StreamSummary(persistence_id, kind, entity_id, highest, held, timestamp)


async def stream_events(
    store: Store,
    persistence_id: str,
    *,
    from_sequence: int = 1,
    to_sequence: int | None = None,
    limit: int | None = None,
) -> list[EventEnvelope]:
    """One stream's events from `from_sequence` to `to_sequence` (inclusive), at most
    `limit` of them: the tools' name for `read_stream`."""
    return await store.read_stream(persistence_id, from_sequence, to_sequence, limit)


async def find_events(
    store: Store,
    *,
    event_type: str | None = None,
    search: str | None = None,
    after_position: int = 0,
    limit: int = 100,
) -> list[EventEnvelope]:
    """Events in log order; `search` is a case-insensitive substring of the persistence id,
    the event type or the stored payload text."""
    needle = search.casefold() if search else None
    found: list[EventEnvelope] = []
    types = None if event_type is None else [event_type]
    async for page in log_pages(store, after_position=after_position, event_types=types):
        for envelope in page:
            if needle is None or needle in _searchable(envelope):
                found.append(envelope)
                if len(found) >= limit:
                    return found
    return found


def _searchable(envelope: EventEnvelope) -> str:
    text = envelope.payload.decode("utf-8", errors="replace")
    return f"{envelope.persistence_id}\n{envelope.event_type}\n{text}".casefold()


async def event_by_position(store: Store, global_position: int) -> EventEnvelope | None:
    """The event at `global_position` of the log, or None (never written, or deleted)."""
    if global_position < 1:
        return None
    page = await store.read_all(global_position - 1, 1)
    return page[0] if page and page[0].global_position == global_position else None


async def follow_events(
    store: Store,
    *,
    after_position: int,
    persistence_id: str | None = None,
    from_sequence: int = 1,
    poll: float = 1.0,
) -> AsyncIterator[EventEnvelope]:
    """Every event after `after_position` (of one stream from `from_sequence`, when given),
    then live, forever."""
    entity_types = None if persistence_id is None else [split_persistence_id(persistence_id)[0]]
    while True:
        head = await store.head_position()  # before the page: a short page reaches it
        page = await store.read_all(after_position, PAGE, entity_types=entity_types)
        for envelope in page:
            if persistence_id is None or (
                envelope.persistence_id == persistence_id
                and envelope.sequence_number >= from_sequence
            ):
                yield envelope
        if page:
            after_position = page[-1].global_position
        if len(page) < PAGE:
            after_position = max(after_position, head)
            await store.wait_for_events(after_position, poll)
