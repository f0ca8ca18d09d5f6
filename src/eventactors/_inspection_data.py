"""The log as data: counts and write rates from paged scans, and events in JSON-friendly form.

Part of `eventactors.inspection`, which re-exports every public name here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import msgspec

from .records import EventEnvelope
from .serialization import Serializer
from .stores.protocols import Store

#: How many events a scan of the log reads per call.
PAGE = 500
_HEX_PREFIX = 32  # bytes of an undecodable payload shown


class EventCounts(msgspec.Struct, frozen=True):
    """How many events a count found, in total and per event type, UTC day and entity type."""

    total: int
    by_type: dict[str, int]  # event_type -> count
    by_day: dict[str, int]  # "YYYY-MM-DD" (UTC) -> count
    by_entity_type: dict[str, int]


async def log_pages(
    store: Store, *, after_position: int = 0, event_types: Sequence[str] | None = None
) -> AsyncIterator[list[EventEnvelope]]:
    """The log from `after_position` to the end, one page at a time."""
    while True:
        page = await store.read_all(after_position, PAGE, event_types=event_types)
        if not page:
            return
        yield page
        if len(page) < PAGE:
            return
        after_position = page[-1].global_position


# -- time -----------------------------------------------------------------------------------


def utc(moment: datetime) -> datetime:
    """`moment` in UTC. A naive timestamp (another writer's, or a caller's) is taken as UTC,
    never as this machine's local time, so tools show and compare the same instant anywhere."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def utc_text(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as msgspec writes an aware UTC datetime: every timestamp a
    tool prints as data has this one form."""
    return utc(moment).isoformat().removesuffix("+00:00") + "Z"


# -- counts -------------------------------------------------------------------------------


async def count_events(store: Store, *, since: datetime | None = None) -> EventCounts:
    """Events per type, per UTC day and per entity type, from `since` (naive means UTC)."""
    start = None if since is None else utc(since)
    by_type: Counter[str] = Counter()
    by_day: Counter[str] = Counter()
    by_entity_type: Counter[str] = Counter()
    async for page in log_pages(store):
        for envelope in page:
            timestamp = utc(envelope.timestamp)
            if start is not None and timestamp < start:
                continue
            by_type[envelope.event_type] += 1
            by_day[timestamp.date().isoformat()] += 1
            by_entity_type[envelope.entity_type] += 1
    return EventCounts(
        total=sum(by_type.values()),
        by_type=dict(by_type.most_common()),
        by_day=dict(sorted(by_day.items())),
        by_entity_type=dict(by_entity_type.most_common()),
    )


async def write_rate(
    store: Store, *, bucket: timedelta, since: datetime, until: datetime | None = None
) -> list[tuple[datetime, int]]:
    """(bucket start, events timestamped in [start, start + bucket)) from `since` to `until`
    (default now), empty buckets included.

    Reads only the part of the log near the window: see `first_position_from` for how it is
    found, and the assumption that makes it sound."""
    if bucket <= timedelta(0):
        raise ValueError(f"bucket must be a positive timedelta, got {bucket!r}")
    start = utc(since)
    end = utc(until) if until is not None else datetime.now(UTC)
    if end < start:
        raise ValueError(f"until ({end.isoformat()}) is before since ({start.isoformat()})")
    counts = [0] * max(1, -(-(end - start) // bucket))
    after = await first_position_from(store, start - CLOCK_SKEW)
    async for page in log_pages(store, after_position=after):
        for envelope in page:
            timestamp = utc(envelope.timestamp)
            if start <= timestamp < end:
                counts[(timestamp - start) // bucket] += 1
        if utc(page[-1].timestamp) >= end + CLOCK_SKEW:
            break  # the rest of the log is later still
    return [(start + index * bucket, count) for index, count in enumerate(counts)]


#: How far out of order two events' timestamps may be. Each writer stamps its events with its
#: own clock just before it appends them, so an event at a higher position can carry an
#: earlier time, by about the time between stamping and commit, or the skew between hosts.
CLOCK_SKEW = timedelta(minutes=1)


async def first_position_from(store: Store, moment: datetime) -> int:
    """A position after which the log holds every event timestamped at or after `moment`,
    found by bisecting on global position with one-event probes (`read_all(p, limit=1)`).

    This assumes timestamps are non-decreasing in position, give or take `CLOCK_SKEW` (which
    the callers subtract): events appended later with back-dated timestamps, as an import
    might write them, can be missed. Callers still filter every event by its timestamp."""
    moment = utc(moment)
    low, high = 0, await store.head_position()
    # Invariant: the first event after `low` is before `moment` (or low is 0), and the first
    # event after `high` is at or after it (or there is none).
    while low < high:
        middle = (low + high) // 2
        probe = await store.read_all(middle, 1)
        if probe and utc(probe[0].timestamp) < moment:
            low = probe[0].global_position  # that event, and all before it, are too early
        else:
            high = middle
    return low


# -- rendering as data --------------------------------------------------------------------


def payload_as_data(store_or_serializer: Store | Serializer, envelope: EventEnvelope) -> Any:
    """The payload as JSON-friendly data: the decoded event when its type is registered, else
    the stored JSON (for a text serializer only: a binary payload that happens to parse as
    JSON is not JSON), else a hex prefix of the bytes. Never raises on what a store holds.

    Non-finite numbers (`NaN`, `1e400`) parse as floats that JSON cannot hold: encode the
    result with msgspec, which writes them as null."""
    serializer = cast(
        Serializer, getattr(store_or_serializer, "serializer", store_or_serializer)
    )  # a store has one, a serializer is one
    try:
        return value_as_data(
            serializer.decode(envelope.event_type, envelope.payload, envelope.event_version)
        )
    except Exception:  # an unregistered type, or a payload its class no longer reads
        pass
    if serializer.is_text:
        try:
            data = json.loads(envelope.payload)
            msgspec.json.encode(data)  # a lone surrogate ("\ud800") loads, but cannot be shown
            return data
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
            pass
    prefix = envelope.payload[:_HEX_PREFIX].hex()
    return {"undecodable": prefix, "bytes": len(envelope.payload)}


def value_as_data(value: Any) -> Any:
    """A decoded event or state as JSON-friendly data (its `repr` when nothing converts it)."""
    if hasattr(value, "DESCRIPTOR"):  # a protobuf message
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(value)
    try:
        return msgspec.to_builtins(value)
    except TypeError:
        return repr(value)


def envelope_as_data(
    store_or_serializer: Store | Serializer, envelope: EventEnvelope
) -> dict[str, Any]:
    """Every envelope field, JSON-friendly: the `--json` line of the command, and the
    console's detail view."""
    return {
        "global_position": envelope.global_position,
        "persistence_id": envelope.persistence_id,
        "entity_type": envelope.entity_type,
        "entity_id": envelope.entity_id,
        "sequence_number": envelope.sequence_number,
        "event_type": envelope.event_type,
        "timestamp": utc_text(envelope.timestamp),
        "event_id": envelope.event_id,
        "tags": list(envelope.tags),
        "metadata": dict(envelope.metadata),
        "command_id": envelope.command_id,
        "correlation_id": envelope.correlation_id,
        "payload": payload_as_data(store_or_serializer, envelope),
    }
