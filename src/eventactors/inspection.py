"""Read-only queries over any store, shared by the `eventactors` command and the web console.

Everything here reads through the store protocols: `persistence_ids` with
`highest_sequence_number` for streams, and `read_all` in pages for the log. Every scan is
paged (at most one page of the log in memory), but a scan is still a scan: on a large store,
counts and searches will want indexed queries in the backends.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from ._inspection_data import (
    PAGE,
    EventCounts,
    count_events,
    envelope_as_data,
    log_pages,
    payload_as_data,
    write_rate,
)
from .engine import Engine
from .errors import EventActorsError
from .records import EventEnvelope, split_persistence_id
from .stores.locate import open_store
from .stores.protocols import OffsetListing, Store

__all__ = [
    "EventCounts",
    "InspectionError",
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
    "open_existing_store",
    "payload_as_data",
    "projection_names",
    "projection_offsets",
    "registrations",
    "stream_events",
    "write_rate",
]


class InspectionError(EventActorsError):
    """What a tool reports in one line: a missing store, an unreachable server, a bad app."""


class StreamSummary(msgspec.Struct, frozen=True):
    persistence_id: str
    entity_type: str
    entity_id: str
    events: int  # highest sequence number
    last_timestamp: datetime | None


class ProjectionOffset(msgspec.Struct, frozen=True):
    name: str
    position: int
    head: int
    lag: int


# -- opening ------------------------------------------------------------------------------


def is_dsn(location: str) -> bool:
    return location.startswith(("postgres://", "postgresql://"))


def open_existing_store(location: str, *, schema: str = "eventactors") -> Store:
    """`open_store`, except that a missing SQLite file is an error rather than a new store."""
    location = str(location)
    if not is_dsn(location):
        if "://" in location:
            raise InspectionError(
                f"a store is an SQLite file path or a postgresql:// URL, got {location!r}"
            )
        if not Path(location).is_file():
            raise InspectionError(f"no such store: {location}")
    try:
        return open_store(location, schema=schema)
    except ValueError as exc:  # a bad schema name
        raise InspectionError(str(exc)) from None


async def check_reachable(store: Store) -> None:
    """Fails fast, in one line, on a store that cannot be read or holds no event log; a
    store that has none is never given one (the stores create their schema on first use)."""
    from .stores.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        await asyncio.to_thread(_check_sqlite_file, store.path)
    elif _is_postgres(store):
        await _check_postgres_schema(store)
    try:
        await store.head_position()
    except (EventActorsError, OSError, sqlite3.Error) as exc:
        raise InspectionError(_one_line(exc)) from None


def _is_postgres(store: Store) -> bool:
    try:
        from .stores.postgres import PostgresStore
    except ImportError:  # no postgres extra: it cannot be one
        return False
    return isinstance(store, PostgresStore)


def _check_sqlite_file(path: str) -> None:
    try:
        connection = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ea_events'"
            ).fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise InspectionError(f"cannot read {path} as an SQLite store: {exc}") from None
    if found is None:
        raise InspectionError(f"no such store: {path} holds no eventactors event log")


async def _check_postgres_schema(store: Any) -> None:
    import asyncpg

    from .stores._postgres_rows import describe

    where = describe(store.dsn, store.schema)
    try:
        connection = await asyncpg.connect(store.dsn, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise InspectionError(f"store unavailable: {where}: {_one_line(exc)}") from None
    try:
        found = await connection.fetchval("SELECT to_regclass($1)", f'"{store.schema}".ea_events')
    finally:
        await connection.close()
    if found is None:
        raise InspectionError(f"no such store: {where} holds no eventactors event log")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# -- the application ----------------------------------------------------------------------


async def load_app(spec: str, store: Store) -> Engine:
    """The application's engine on `store`, not started.

    `module:attr` names an `Engine` (its entity types and projections are declared again on
    `store`) or a callable that takes a store and returns an engine, or an awaitable of one.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise InspectionError(f"an app is given as module:engine or module:factory, got {spec!r}")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InspectionError(f"cannot load app {spec!r}: {_one_line(exc)}") from None
    if isinstance(target, Engine):
        return await engine_on(target, store, projections=True)
    if not callable(target):
        raise InspectionError(f"app {spec!r} is neither an Engine nor a factory of one")
    try:
        engine = target(store)
        if inspect.isawaitable(engine):
            engine = await engine
    except EventActorsError:
        raise
    except Exception as exc:
        raise InspectionError(f"app {spec!r} failed to build its engine: {_one_line(exc)}") from exc
    if not isinstance(engine, Engine):
        raise InspectionError(f"app {spec!r} returned {engine!r}, not an Engine")
    return engine


def registrations(engine: Engine) -> list[tuple[str, type, dict[str, Any]]]:
    """The engine's (entity type, behavior class, register options), in registration order.

    The one place that reads the engine's private registry, until the engine offers it."""
    return list(engine._registrations)


async def engine_on(
    app: Engine, store: Store, *, projections: bool, passivate_after: float | None = None
) -> Engine:
    """A local engine on `store` with `app`'s registrations and, with `projections`, its
    projections (as the cluster replays registrations in `AppSpec.build_engine`).

    `passivate_after` replaces every entity type's own: a tool that sends commands beside the
    running application must not keep an entity in memory that the application moves on."""
    engine = Engine(store=store, serializer=app.serializer)
    for entity_type, behavior_class, options in registrations(app):
        if passivate_after is not None:
            options = {**options, "passivate_after": passivate_after}
        engine.register(entity_type, behavior_class, **options)
    if not projections:
        return engine
    for runner in app._projections._runners.values():
        spec = runner.spec  # a partition is added alone, under its own name and slices
        await engine.add_projection(
            spec.name, spec.handler, from_start=spec.from_start, batch_size=spec.batch_size,
            policy=spec.policy, entity_types=spec.entity_types, event_types=spec.event_types,
            tags=spec.tags, batched=spec.batched, transactional=spec.transactional,
            reset=spec.reset, poll_interval=spec.poll_interval, slices=spec.slices,
            offset_store=None if spec.offset_store is app.store else spec.offset_store,
        )  # fmt: skip
    engine._partitions.update({name: list(members) for name, members in app._partitions.items()})
    return engine


def projection_names(engine: Engine) -> list[str]:
    """The names under which an engine's projections keep offsets (one per partition)."""
    return list(engine._projections._runners)


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
        highest = await store.highest_sequence_number(persistence_id)
        last = await store.read_stream(persistence_id, from_sequence=highest, limit=1)
        timestamp = last[0].timestamp if last else None
        found.append(StreamSummary(persistence_id, kind, entity_id, highest, timestamp))
    return found


async def stream_events(
    store: Store,
    persistence_id: str,
    *,
    from_sequence: int = 1,
    to_sequence: int | None = None,
    limit: int | None = None,
) -> list[EventEnvelope]:
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
    if global_position < 1:
        return None
    page = await store.read_all(global_position - 1, 1)
    return page[0] if page and page[0].global_position == global_position else None


async def follow_events(
    store: Store,
    *,
    after_position: int,
    persistence_id: str | None = None,
    poll: float = 1.0,
) -> AsyncIterator[EventEnvelope]:
    """Every event after `after_position` (of one stream, when given), then live, forever."""
    entity_types = None if persistence_id is None else [split_persistence_id(persistence_id)[0]]
    while True:
        head = await store.head_position()  # before the page: a short page reaches it
        page = await store.read_all(after_position, PAGE, entity_types=entity_types)
        for envelope in page:
            if persistence_id is None or envelope.persistence_id == persistence_id:
                yield envelope
        if page:
            after_position = page[-1].global_position
        if len(page) < PAGE:
            after_position = max(after_position, head)
            await store.wait_for_events(after_position, poll)


# -- projections --------------------------------------------------------------------------


async def projection_offsets(
    store: Store, names: Sequence[str] | None = None
) -> list[ProjectionOffset]:
    """Position, head and lag of each projection; without `names`, of every projection with
    a saved offset (the store must offer `list_offsets`). A name never saved is at 0."""
    if names is None:
        if not isinstance(store, OffsetListing):
            raise InspectionError(
                f"{type(store).__name__} cannot list its offsets: name the projections"
            )
        offsets = await store.list_offsets()
    else:
        offsets = {name: await store.get_offset(name) or 0 for name in names}
    head = await store.head_position()
    return [
        ProjectionOffset(name, position, head, max(0, head - position))
        for name, position in offsets.items()
    ]
