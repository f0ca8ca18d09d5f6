"""Catch-up speed: events per second a reader gets through the whole log, eventactors vs the peer.

The workload, the same for everyone: EVENTS bank deposits (payload {"amount": n}) spread over
STREAMS streams, already stored. A reader starts at the beginning of the global log, pages
through all of it, and decodes every event into its domain object, as a projection must decode
what it handles; the amounts are summed and checked against what was written.
- eventactors, SQLiteStore and PostgresStore: `await store.read_all(after_position, limit=PAGE)`
  until it comes back empty, and `envelope.event` on every envelope.
- the peer, the `eventsourcing` library with its SQLite and PostgreSQL modules:
  `NotificationLogReader(application.notification_log, section_size=PAGE).select(start=1)`,
  and `application.mapper.to_domain_event(notification)` on every notification. The
  application's `log_section_size` is raised to the largest PAGE, so that both sides fetch
  pages of the same size.
The reads alternate between the two sides, ROUNDS times per PAGE, and the best round counts.

Filling is not timed into the rates, but its wall time is reported. eventactors fills through
`store.append`, one append per stream of up to FILL_BATCH events, FILL_CONCURRENCY in flight;
the peer through its recorder's bulk insert, `application.recorder.insert_events` of about
FILL_BATCH stored events per call (one transaction each; `application.save` writes the same
rows, only more slowly). STREAMS defaults to 1,000 (1,000 events each), so that both sides fill
in transactions of about 1,000 events: each eventactors append is one transaction on
PostgreSQL, and its commits are serialised by the position lock, so 10,000 streams of 100
events fill about twice as slowly there. A read of the global log does not care how many
streams there are. PostgreSQL tables are vacuumed and analysed after the fill, so that no reader
pays for setting the hint bits of fresh rows. If the server restarts or goes away (another test
suite may restart it), a read is measured again and a fill starts over.

Run: .venv/bin/python benchmarks/catch_up.py   (about 6 minutes at 1,000,000 events on the
2-core development machine; needs `pip install -e '.[bench,postgres]'`, and for the peer on
PostgreSQL `pip install 'eventsourcing[postgres]'` (psycopg 3): without it that pair is skipped).
A quick run: BENCH_EVENTS=20000. Other settings: BENCH_STREAMS (1000), BENCH_PAGES ("1000,5000"),
BENCH_ROUNDS (1), BENCH_POSTGRES (the DSN, default postgresql://postgres@127.0.0.1:5432/test;
"off" skips PostgreSQL). It works in the schemas bench_catch_up and bench_catch_up_peer, which
it drops first and at the end, and puts the SQLite files in a temporary directory.

Writes benchmarks/results/catch_up.json. Figures are noisy on a shared machine: compare the
ratios within one run, not absolute rates across runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

import asyncpg
import msgspec
from eventsourcing.application import Application
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import StoredEvent
from eventsourcing.system import NotificationLogReader

import eventactors as ea
from eventactors._ids import uuid7

EVENTS = int(os.environ.get("BENCH_EVENTS", "1000000"))
STREAMS = min(int(os.environ.get("BENCH_STREAMS", "1000")), EVENTS)
PAGES = [int(page) for page in os.environ.get("BENCH_PAGES", "1000,5000").split(",")]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))
POSTGRES = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = "bench_catch_up"
PEER_SCHEMA = "bench_catch_up_peer"
FILL_CONCURRENCY = 8
FILL_BATCH = 1000
RESULTS = Path(__file__).with_name("results") / "catch_up.json"

STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", flush=True)


# -- the workload ---------------------------------------------------------------------------


class Deposited(msgspec.Struct, frozen=True):
    amount: int


class PeerDeposited(DomainEvent):
    """The peer's event: a frozen dataclass with originator_id, originator_version, timestamp."""

    amount: int


def stream_sizes() -> list[int]:
    """How many events each stream gets: EVENTS in all, as even as possible."""
    base, extra = divmod(EVENTS, STREAMS)
    return [base + (1 if index < extra else 0) for index in range(STREAMS)]


def amount(index: int, sequence: int) -> int:
    return (index + sequence) % 100 + 1


def expected_total() -> int:
    return sum(
        amount(index, sequence)
        for index, size in enumerate(stream_sizes())
        for sequence in range(1, size + 1)
    )


def phase(measured: dict[str, float], name: str) -> contextlib.AbstractContextManager[None]:
    """Logs a phase and records its wall time in `measured`."""

    @contextlib.contextmanager
    def timed() -> Iterator[None]:
        log(f"{name} ...")
        started = time.perf_counter()
        yield
        measured[name] = round(time.perf_counter() - started, 2)
        log(f"{name}: {measured[name]:.1f} s")

    return timed()


# -- eventactors ----------------------------------------------------------------------------


async def fill_eventactors(store: ea.Store) -> None:
    """Appends each stream's events (up to FILL_BATCH per append), FILL_CONCURRENCY at a time."""
    store.serializer.register(Deposited)
    event_type = store.serializer.type_name(Deposited)
    timestamp = datetime.now(UTC)
    sizes = iter(enumerate(stream_sizes()))

    async def appender() -> None:
        for index, size in sizes:
            entity_id = f"acc-{index:05d}"
            persistence_id = f"account|{entity_id}"
            records = [
                ea.EventRecord(
                    event_id=uuid7(),
                    persistence_id=persistence_id,
                    entity_type="account",
                    entity_id=entity_id,
                    sequence_number=sequence,
                    event_type=event_type,
                    payload=msgspec.json.encode(Deposited(amount(index, sequence))),
                    timestamp=timestamp,
                )
                for sequence in range(1, size + 1)
            ]
            for start in range(0, size, FILL_BATCH):
                await store.append(persistence_id, records[start : start + FILL_BATCH], start)

    await asyncio.gather(*(appender() for _ in range(FILL_CONCURRENCY)))


async def catch_up_rate(store: ea.Store, page: int) -> dict[str, float]:
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
    check(count, total)
    return measurement(elapsed, cpu)


async def projection_rate(store: ea.Store, page: int) -> dict[str, float]:
    """The same catch-up through a real projection: from `start` until its offset reaches the
    head, with a handler that decodes every event and adds its amount up."""
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
    check(status.events_handled, total)
    return measurement(elapsed, cpu)


# -- the peer: the eventsourcing library ----------------------------------------------------


class PeerBank(Application[UUID]):
    log_section_size = max(PAGES)


def peer_environment(database: str) -> dict[str, str]:
    if database == "sqlite":
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite"}
    parts = urlsplit(POSTGRES)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_SCHEMA": PEER_SCHEMA,
    }


def fill_peer(application: PeerBank) -> None:
    """Inserts through the peer's recorder, FILL_BATCH events per call (one transaction each).

    The stored events are what its mapper makes of PeerDeposited events. Every event has the same
    timestamp, so the encoded state depends on the amount alone and is made once per amount.
    `application.save` of the same events gives the same rows, only more slowly."""
    timestamp = datetime.now(UTC)
    topic, states = "", {}
    for value in range(1, 101):
        stored = application.mapper.to_stored_event(
            PeerDeposited(originator_id=uuid5(NAMESPACE_URL, ""), originator_version=1,
                          timestamp=timestamp, amount=value)
        )  # fmt: skip
        topic, states[value] = stored.topic, stored.state
    pending: list[StoredEvent] = []
    for index, size in enumerate(stream_sizes()):
        originator_id = uuid5(NAMESPACE_URL, f"acc-{index:05d}")
        pending += [
            StoredEvent(originator_id, sequence, topic, states[amount(index, sequence)])
            for sequence in range(1, size + 1)
        ]
        if len(pending) >= FILL_BATCH:
            application.recorder.insert_events(pending)
            pending = []
    if pending:
        application.recorder.insert_events(pending)


async def peer_read(application: PeerBank, page: int) -> dict[str, float]:
    """The peer is synchronous: it blocks the event loop, which has nothing else to do."""
    return peer_catch_up_rate(application, page)


def peer_catch_up_rate(application: PeerBank, page: int) -> dict[str, float]:
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
    check(count, total)
    return measurement(elapsed, cpu)


# -- measuring ------------------------------------------------------------------------------

TOTAL = expected_total()


def check(count: int, total: int) -> None:
    if (count, total) != (EVENTS, TOTAL):
        raise AssertionError(f"read {count} events summing to {total}; expected {EVENTS}, {TOTAL}")


def measurement(elapsed: float, cpu: float) -> dict[str, float]:
    """The rate, and this process's CPU time (the rest of the wall time is the database
    server, or waiting: the machine has 2 cores and is shared)."""
    return {
        "events_per_second": round(EVENTS / elapsed),
        "seconds": round(elapsed, 3),
        "client_cpu_seconds": round(cpu, 3),
    }


# PostgreSQL is shared: another test suite on this machine may restart the server mid-run.
SERVER_GONE: tuple[type[BaseException], ...] = (
    ea.StoreUnavailable, OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
)  # fmt: skip
with contextlib.suppress(ImportError):
    import psycopg

    SERVER_GONE += (psycopg.OperationalError, psycopg.InterfaceError)
ATTEMPTS = 3


async def execute(statement: str) -> Any:
    """Runs one statement on a connection of its own; returns its first value."""
    connection = await asyncpg.connect(POSTGRES)
    try:
        return await connection.fetchval(statement)
    finally:
        await connection.close()


async def wait_for_server(timeout: float = 120.0) -> None:
    deadline = time.perf_counter() + timeout
    while True:
        try:
            await execute("SELECT 1")
            return
        except SERVER_GONE:
            if time.perf_counter() > deadline:
                raise
            await asyncio.sleep(1.0)


async def server_started() -> str:
    """When the server last started: a read during which this changes is measured again."""
    return str(await execute("SELECT pg_postmaster_start_time()"))


async def measure(
    database: str, read: Callable[[], Awaitable[dict[str, float]]]
) -> dict[str, float]:
    """One timed read; on PostgreSQL, taken again if the server restarted or went away."""
    for attempt in range(1, ATTEMPTS + 1):
        if database != "postgres":
            return await read()
        try:
            started = await server_started()
            measured = await read()
            if await server_started() == started:
                return measured
            problem = "the server restarted during the read"
        except SERVER_GONE as exc:
            if attempt == ATTEMPTS:
                raise
            problem = f"the server went away ({type(exc).__name__})"
        log(f"{problem}; measuring again")
        await wait_for_server()
    raise RuntimeError(f"PostgreSQL restarted during {ATTEMPTS} reads in a row")


async def compare(
    database: str,
    store: ea.Store,
    peer: PeerBank | None,
    phases: dict[str, float],
) -> dict[str, Any]:
    """Reads the whole log ROUNDS times per page size, alternating the sides; keeps the best."""
    rounds: dict[str, dict[str, list[dict[str, float]]]] = {
        f"page_{page}": {"eventactors": [], "eventactors_projection": [], "peer": []}
        for page in PAGES
    }
    for number in range(1, ROUNDS + 1):
        for page in PAGES:
            runs = rounds[f"page_{page}"]
            with phase(phases, f"read {database} eventactors page {page} round {number}"):
                ours = await measure(database, partial(catch_up_rate, store, page))
                runs["eventactors"].append(ours)
            with phase(
                phases, f"read {database} eventactors projection page {page} round {number}"
            ):
                projected = await measure(database, partial(projection_rate, store, page))
                runs["eventactors_projection"].append(projected)
            if peer is not None:
                with phase(phases, f"read {database} peer page {page} round {number}"):
                    theirs = await measure(database, partial(peer_read, peer, page))
                    runs["peer"].append(theirs)
    results: dict[str, Any] = {}
    for name, runs in rounds.items():
        entry: dict[str, Any] = {}
        for side, measured in runs.items():
            if measured:
                entry[side] = max(measured, key=lambda run: run["events_per_second"])
                entry[side]["all_rounds_events_per_second"] = [
                    run["events_per_second"] for run in measured
                ]
        if "peer" in entry:
            for side in ("eventactors", "eventactors_projection"):
                entry[f"ratio_{side}_vs_peer"] = round(
                    entry[side]["events_per_second"] / entry["peer"]["events_per_second"], 2
                )
        results[name] = entry
    return results


def best(results: dict[str, Any], side: str) -> float | None:
    rates = [
        entry[side]["events_per_second"]
        for name, entry in results.items()
        if name.startswith("page_") and side in entry
    ]
    return max(rates) if rates else None


async def run_sqlite(folder: Path, phases: dict[str, float]) -> dict[str, Any]:
    store = ea.SQLiteStore(folder / "eventactors.db")
    peer = PeerBank(env={**peer_environment("sqlite"), "SQLITE_DBNAME": str(folder / "peer.db")})
    try:
        with phase(phases, "fill sqlite eventactors"):
            await fill_eventactors(store)
        with phase(phases, "fill sqlite peer"):
            fill_peer(peer)
        return await compare("sqlite", store, peer, phases)
    finally:
        peer.close()
        await store.close()


async def run_postgres(phases: dict[str, float]) -> dict[str, Any]:
    """The PostgreSQL part, started again from scratch if the server goes away while filling."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            results = await postgres_attempt(phases)
            results["attempts"] = attempt
            return results
        except SERVER_GONE as exc:
            if attempt == ATTEMPTS:
                raise
            log(f"PostgreSQL went away ({type(exc).__name__}: {exc}); starting the part again")
    raise AssertionError("unreachable")


async def drop_schemas() -> None:
    await wait_for_server()
    for schema in (SCHEMA, PEER_SCHEMA):
        await execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def postgres_attempt(phases: dict[str, float]) -> dict[str, Any]:
    await drop_schemas()
    store = ea.PostgresStore(POSTGRES, schema=SCHEMA)
    peer: PeerBank | None = None
    skipped = ""
    try:
        with phase(phases, "fill postgres eventactors"):
            await fill_eventactors(store)
        with phase(phases, "vacuum postgres eventactors"):
            await execute(f'VACUUM ANALYZE "{SCHEMA}".ea_events')
        try:
            import psycopg  # noqa: F401  (the peer's PostgreSQL module needs psycopg 3)
        except ImportError as exc:
            skipped = f"eventsourcing.postgres needs psycopg 3: {exc}"
            log(f"peer on PostgreSQL skipped: {skipped}")
        else:
            await execute(f'CREATE SCHEMA "{PEER_SCHEMA}"')
            peer = PeerBank(env=peer_environment("postgres"))
            with phase(phases, "fill postgres peer"):
                fill_peer(peer)
            with phase(phases, "vacuum postgres peer"):
                await execute(f'VACUUM ANALYZE "{PEER_SCHEMA}".peerbank_events')
        results = await compare("postgres", store, peer, phases)
        if skipped:
            results["peer_skipped"] = skipped
        return results
    finally:
        if peer is not None:
            peer.close()
        await store.close()
        await drop_schemas()


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


async def run() -> dict[str, Any]:
    phases: dict[str, float] = {}
    catch_up: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        catch_up["sqlite"] = await run_sqlite(Path(scratch), phases)
    if POSTGRES != "off":
        catch_up["postgres"] = await run_postgres(phases)
    ratios = {}
    for database, results in catch_up.items():
        ours, theirs = best(results, "eventactors"), best(results, "peer")
        if ours and theirs:
            ratios[f"{database}_best_eventactors_vs_best_peer"] = round(ours / theirs, 2)
    fills = {name.removeprefix("fill "): seconds for name, seconds in phases.items()
             if name.startswith("fill ")}  # fmt: skip
    return {
        "workload": {
            "events": EVENTS, "streams": STREAMS, "events_per_stream": EVENTS / STREAMS,
            "payload": 'Deposited {"amount": n}', "pages": PAGES, "rounds": ROUNDS,
            "eventactors_reader": "store.read_all(after_position, limit=page) + envelope.event",
            "peer_reader": "NotificationLogReader.select(start=1) + mapper.to_domain_event",
            "fill": f"eventactors: store.append, one per stream, {FILL_CONCURRENCY} in flight; "
                    f"peer: recorder.insert_events of about {FILL_BATCH} stored events per call",
        },
        "machine": {
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "sqlite": sqlite3.sqlite_version,
            "postgres": await execute("SHOW server_version") if POSTGRES != "off" else None,
            "eventsourcing": version("eventsourcing"), "psycopg": version("psycopg"),
            "asyncpg": version("asyncpg"), "msgspec": version("msgspec"),
        },
        "catch_up": catch_up,
        "ratios": ratios,
        "fill_seconds": fills,
        "fill_events_per_second": {name: round(EVENTS / s) for name, s in fills.items()},
        "phase_seconds": phases,
        "total_seconds": round(time.perf_counter() - STARTED, 1),
    }  # fmt: skip


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{'':9}{'page':>6}{'read_all ev/s':>15}{'projection ev/s':>17}{'peer ev/s':>12}"
        f"{'ratio':>8}"
    ]
    for database, entries in results["catch_up"].items():
        for name, entry in entries.items():
            if not name.startswith("page_"):
                continue
            peer = entry.get("peer", {}).get("events_per_second")
            ratio = entry.get("ratio_eventactors_projection_vs_peer")
            projection = entry.get("eventactors_projection", {}).get("events_per_second", 0)
            lines.append(
                f"{database:9}{name.removeprefix('page_'):>6}"
                f"{entry['eventactors']['events_per_second']:>15,}{projection:>17,}"
                f"{f'{peer:,}' if peer else 'skipped':>12}{f'{ratio}x' if ratio else '':>8}"
            )
    lines.append("fill seconds: " + ", ".join(
        f"{name} {seconds:.1f}" for name, seconds in results["fill_seconds"].items()
    ))  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    log(f"catch-up benchmark: {EVENTS:,} events over {STREAMS:,} streams, pages {PAGES}")
    results = asyncio.run(run())
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    log(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
