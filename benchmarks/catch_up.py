"""Catch-up: events per second a reader gets through the whole log, eventactors vs the peer.

The workload, the same for everyone: `catch_up_events` bank deposits (payload {"amount": n})
in streams of `catch_up_stream_events`, already stored. A reader starts at the beginning of the
global log, pages through all of it, and decodes every event into its domain object, as a
projection must; the amounts are summed and checked against what was written.
- eventactors, SQLiteStore and PostgresStore: `await store.read_all(after_position, limit=page)`
  until it comes back empty, with `envelope.event` on every envelope; and the same catch-up
  through a real projection (`engine.add_projection(..., batch_size=page)`, timed until
  `wait_for_projection` sees it at the head).
- the peer, the `eventsourcing` library with its SQLite and PostgreSQL modules:
  `NotificationLogReader(application.notification_log, section_size=page).select(start=1)`
  and `application.mapper.to_domain_event(notification)` on every notification. The
  application's `log_section_size` is raised to the largest page, so that both sides fetch
  pages of the same size.
Each page size is read once per side, alternating the sides.

Filling is not timed into the rates (its wall time is reported): eventactors through
`store.append`, one append per stream of up to FILL_BATCH events, FILL_CONCURRENCY in flight;
the peer through its recorder's bulk insert, `application.recorder.insert_events` of about
FILL_BATCH stored events per call (one transaction each; `application.save` writes the same
rows, only more slowly). Streams of 1,000 events make both sides fill in transactions of about
1,000 events; a read of the global log does not care how many streams there are. PostgreSQL
tables are vacuumed and analysed after the fill, so that no reader pays for setting the hint
bits of fresh rows. SQLite files in a temporary directory; PostgreSQL in the schemas
bench_catch_up and bench_catch_up_peer, dropped before and after.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec
from eventsourcing.application import Application
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import StoredEvent
from eventsourcing.system import NotificationLogReader

import eventactors as ea

from .common import Context, guarded, log, new_id, phase
from .pg import drop_schemas, fetchval, on_postgres, peer_environment

SCHEMA = "bench_catch_up"
PEER_SCHEMA = "bench_catch_up_peer"
FILL_CONCURRENCY = 8
FILL_BATCH = 1000


class Deposited(msgspec.Struct, frozen=True):
    amount: int


class PeerDeposited(DomainEvent):
    """The peer's event: a frozen dataclass with originator_id, originator_version, timestamp."""

    amount: int


class Workload:
    """The stream sizes and amounts, and the total every reader must arrive at."""

    def __init__(self, events: int, stream_events: int) -> None:
        self.events = events
        streams = max(1, events // stream_events)
        base, extra = divmod(events, streams)
        self.sizes = [base + (1 if index < extra else 0) for index in range(streams)]
        self.total = sum(
            self.amount(index, sequence)
            for index, size in enumerate(self.sizes)
            for sequence in range(1, size + 1)
        )

    @staticmethod
    def amount(index: int, sequence: int) -> int:
        return (index + sequence) % 100 + 1

    def check(self, count: int, total: int) -> None:
        if (count, total) != (self.events, self.total):
            raise AssertionError(
                f"read {count} events summing to {total}; expected {self.events}, {self.total}"
            )

    def measurement(self, elapsed: float, cpu: float) -> dict[str, float]:
        """The rate, and this process's CPU time (the rest of the wall time is the database
        server, or waiting: the machine has 2 cores and is shared)."""
        return {
            "events_per_second": round(self.events / elapsed),
            "seconds": round(elapsed, 3),
            "client_cpu_seconds": round(cpu, 3),
        }


def run(context: Context) -> dict[str, Any]:
    settings = context.settings
    if max(settings.catch_up_pages) > PeerReader.log_section_size:
        raise ValueError(f"pages larger than {PeerReader.log_section_size} need a larger peer log")
    workload = Workload(settings.catch_up_events, settings.catch_up_stream_events)
    results: dict[str, Any] = {
        "workload": {
            "events": workload.events,
            "streams": len(workload.sizes),
            "pages": list(settings.catch_up_pages),
            "eventactors_reader": "store.read_all(after_position, limit=page) + envelope.event",
            "eventactors_projection": "engine.add_projection(handler, batch_size=page)",
            "peer_reader": "NotificationLogReader.select(start=1) + mapper.to_domain_event",
        }
    }
    for store in context.stores():
        measure = sqlite_part if store == "sqlite" else postgres_part
        results[store] = guarded(f"catch-up {store}", partial(measure, context, workload))
    ratios = {}
    for store in context.stores():
        ours, theirs = best(results[store], "eventactors"), best(results[store], "peer")
        if ours and theirs:
            ratios[f"{store}_best_eventactors_vs_best_peer"] = round(ours / theirs, 2)
    results["ratios"] = ratios
    return results


def sqlite_part(context: Context, workload: Workload) -> dict[str, Any]:
    store = ea.SQLiteStore(context.sqlite_path("catch_up"))
    peer_path = context.sqlite_path("catch_up_peer")
    peer = PeerReader(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(peer_path)}
    )
    return compare(context, workload, "sqlite", store, peer)


def postgres_part(context: Context, workload: Workload) -> dict[str, Any]:
    dsn = context.postgres
    assert dsn is not None

    def unit() -> dict[str, Any]:
        context.run(drop_schemas(dsn, SCHEMA, PEER_SCHEMA))
        context.run(fetchval(dsn, f'CREATE SCHEMA "{PEER_SCHEMA}"'))
        try:
            store = ea.PostgresStore(dsn, schema=SCHEMA)
            peer = PeerReader(env=peer_environment(dsn, PEER_SCHEMA))
            return compare(context, workload, "postgres", store, peer, vacuum=dsn)
        finally:
            context.run(drop_schemas(dsn, SCHEMA, PEER_SCHEMA))

    return on_postgres(context, "catch-up postgres", unit)


def compare(
    context: Context,
    workload: Workload,
    name: str,
    store: ea.Store,
    peer: PeerReader,
    vacuum: str | None = None,
) -> dict[str, Any]:
    """Fills both sides, then reads the whole log once per page size and side."""
    fill: dict[str, float] = {}
    results: dict[str, Any] = {"fill_seconds": fill}
    try:
        with phase(f"catch-up {name}: fill eventactors", fill):
            context.run(fill_eventactors(store, workload))
        with phase(f"catch-up {name}: fill peer", fill):
            fill_peer(peer, workload)
        if vacuum:
            context.run(fetchval(vacuum, f'VACUUM ANALYZE "{SCHEMA}".ea_events'))
            context.run(fetchval(vacuum, f'VACUUM ANALYZE "{PEER_SCHEMA}".peerreader_events'))
        for page in context.settings.catch_up_pages:
            entry: dict[str, Any] = {
                "eventactors": context.run(catch_up_rate(store, workload, page)),
                "eventactors_projection": context.run(projection_rate(store, workload, page)),
                "peer": peer_catch_up_rate(peer, workload, page),
            }
            for side in ("eventactors", "eventactors_projection"):
                entry[f"ratio_{side}_vs_peer"] = round(
                    entry[side]["events_per_second"] / entry["peer"]["events_per_second"], 2
                )
            log(
                f"catch-up {name} page {page}: read_all "
                f"{entry['eventactors']['events_per_second']:,} ev/s, projection "
                f"{entry['eventactors_projection']['events_per_second']:,} ev/s, peer "
                f"{entry['peer']['events_per_second']:,} ev/s"
            )
            results[f"page_{page}"] = entry
    finally:
        peer.close()
        context.run(store.close())
    return results


def best(results: dict[str, Any], side: str) -> float | None:
    rates = [
        entry[side]["events_per_second"]
        for name, entry in results.items()
        if name.startswith("page_") and side in entry
    ]
    return max(rates) if rates else None


# -- eventactors ----------------------------------------------------------------------------


async def fill_eventactors(store: ea.Store, workload: Workload) -> None:
    """Appends each stream's events (up to FILL_BATCH per append), FILL_CONCURRENCY at a time."""
    if not store.serializer.is_registered(Deposited):
        store.serializer.register(Deposited)
    event_type = store.serializer.type_name(Deposited)
    timestamp = datetime.now(UTC)
    sizes = iter(enumerate(workload.sizes))

    async def appender() -> None:
        for index, size in sizes:
            entity_id = f"acc-{index:05d}"
            persistence_id = f"account|{entity_id}"
            records = [
                ea.EventRecord(
                    event_id=new_id(),
                    persistence_id=persistence_id,
                    entity_type="account",
                    entity_id=entity_id,
                    sequence_number=sequence,
                    event_type=event_type,
                    payload=msgspec.json.encode(Deposited(workload.amount(index, sequence))),
                    timestamp=timestamp,
                )
                for sequence in range(1, size + 1)
            ]
            for start in range(0, size, FILL_BATCH):
                await store.append(persistence_id, records[start : start + FILL_BATCH], start)

    await asyncio.gather(*(appender() for _ in range(FILL_CONCURRENCY)))


async def catch_up_rate(store: ea.Store, workload: Workload, page: int) -> dict[str, float]:
    """Pages through the whole log with `read_all` and decodes every event."""
    position = count = total = 0
    started, cpu = time.perf_counter(), time.process_time()
    while True:
        envelopes = await store.read_all(after_position=position, limit=page)
        if not envelopes:
            break
        for envelope in envelopes:
            total += envelope.event.amount
        count += len(envelopes)
        position = envelopes[-1].global_position
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    workload.check(count, total)
    return workload.measurement(elapsed, cpu)


async def projection_rate(store: ea.Store, workload: Workload, page: int) -> dict[str, float]:
    """The same catch-up through a real projection: from the start until its offset reaches
    the head, with a handler that decodes every event and adds its amount up."""
    total = 0

    def handler(envelope: ea.EventEnvelope) -> None:
        nonlocal total
        total += envelope.event.amount

    engine = ea.Engine(store=store)
    name = f"bench-{page}-{time.monotonic_ns()}"  # a new projection each time: from position 0
    await engine.add_projection(name, handler, batch_size=page)
    started, cpu = time.perf_counter(), time.process_time()
    async with engine:
        status = await engine.wait_for_projection(name, timeout=3600)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    workload.check(status.events_handled, total)
    return workload.measurement(elapsed, cpu)


# -- the peer: the eventsourcing library ----------------------------------------------------


class PeerReader(Application[UUID]):
    log_section_size = 5000  # at least the largest page, so both sides fetch the same pages


def fill_peer(application: PeerReader, workload: Workload) -> None:
    """Inserts through the peer's recorder, FILL_BATCH events per call (one transaction each).

    The stored events are what its mapper makes of PeerDeposited events. Every event has the
    same timestamp, so the encoded state depends on the amount alone and is made once per
    amount. `application.save` of the same events gives the same rows, only more slowly."""
    timestamp = datetime.now(UTC)
    topic, states = "", {}
    for value in range(1, 101):
        stored = application.mapper.to_stored_event(
            PeerDeposited(
                originator_id=uuid5(NAMESPACE_URL, ""),
                originator_version=1,
                timestamp=timestamp,
                amount=value,
            )
        )
        topic, states[value] = stored.topic, stored.state
    pending: list[StoredEvent] = []
    for index, size in enumerate(workload.sizes):
        originator_id = uuid5(NAMESPACE_URL, f"acc-{index:05d}")
        pending += [
            StoredEvent(originator_id, sequence, topic, states[workload.amount(index, sequence)])
            for sequence in range(1, size + 1)
        ]
        if len(pending) >= FILL_BATCH:
            application.recorder.insert_events(pending)
            pending = []
    if pending:
        application.recorder.insert_events(pending)


def peer_catch_up_rate(application: PeerReader, workload: Workload, page: int) -> dict[str, float]:
    """Reads the whole notification log and rebuilds every domain event."""
    reader = NotificationLogReader(application.notification_log, section_size=page)
    to_domain_event = application.mapper.to_domain_event
    count = total = 0
    started, cpu = time.perf_counter(), time.process_time()
    for notifications in reader.select(start=1):
        for notification in notifications:
            total += to_domain_event(notification).amount  # type: ignore[attr-defined]
        count += len(notifications)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    workload.check(count, total)
    return workload.measurement(elapsed, cpu)
