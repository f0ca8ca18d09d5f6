"""Recovery: how fast an entity comes back from its events, and from a snapshot.

The store is filled directly with `store.append` of event records, in big appends (not timed):
one account with `big_stream_events` events (an Opened, then Deposited(1) events), and
`small_streams` accounts of `small_stream_events` events each. Then each measurement starts a
fresh engine on a fresh store object (so nothing is cached in the process; the database's own
cache is warm, since the data was just written), opens the store's connections, and times
`engine.get_state`, which spawns the entity and replays it:
- one entity with all its events, in events per second (best of `recovery_repeats`);
- every small entity, `recovery_in_flight` recoveries at a time, in events per second;
- the big entity again, registered with snapshot_every=100, after snapshots were saved every
  100 events with `store.save_snapshot` (what the engine would have written): the latest
  snapshot plus nothing to replay, in milliseconds (median of 5).
Recovery always loads the latest snapshot, so the full replays are timed before any snapshot
exists. SQLite in a temporary file; PostgreSQL in the schema bench_recovery.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from eventactors_examples.bank.domain import Account, AccountBehavior, Deposited, Opened

import eventactors as ea

from .common import Context, guarded, log, new_id, rate
from .pg import drop_schemas, on_postgres

SCHEMA = "bench_recovery"
APPEND_SIZE = 5000  # events per append when filling the big stream
FILL_IN_FLIGHT = 16
SNAPSHOT_REPEATS = 5
BIG = "big"


def run(context: Context) -> dict[str, Any]:
    settings = context.settings
    results: dict[str, Any] = {
        "workload": {
            "big_stream_events": settings.big_stream_events,
            "small_streams": settings.small_streams,
            "small_stream_events": settings.small_stream_events,
            "in_flight": settings.recovery_in_flight,
            "snapshot_every": settings.snapshot_every,
        }
    }
    for store in context.stores():
        results[store] = guarded(f"recovery {store}", partial(measure, context, store))
    return results


def measure(context: Context, store: str) -> dict[str, Any]:
    if store == "sqlite":
        path = context.sqlite_path("recovery")
        return context.run(recovery(context, "sqlite", lambda: ea.SQLiteStore(path)))
    dsn = context.postgres
    assert dsn is not None

    def unit() -> dict[str, Any]:
        context.run(drop_schemas(dsn, SCHEMA))
        try:
            maker = partial(ea.PostgresStore, dsn, schema=SCHEMA)
            return context.run(recovery(context, "postgres", maker))
        finally:
            context.run(drop_schemas(dsn, SCHEMA))

    return on_postgres(context, "recovery postgres", unit)


async def recovery(
    context: Context, name: str, make_store: Callable[[], ea.Store]
) -> dict[str, Any]:
    settings = context.settings
    big, small, each = (
        settings.big_stream_events,
        settings.small_streams,
        settings.small_stream_events,
    )
    small_ids = [f"small-{index:05d}" for index in range(small)]
    results: dict[str, Any] = {}

    started = time.perf_counter()
    store = make_store()
    writer = Writer(store)
    await writer.fill(BIG, big)
    await bounded((writer.fill(entity, each) for entity in small_ids), FILL_IN_FLIGHT)
    await store.close()
    results["fill_seconds"] = round(time.perf_counter() - started, 2)
    log(f"recovery {name}: filled {big + small * each:,} events in {results['fill_seconds']} s")

    runs = []
    for _ in range(settings.recovery_repeats):
        seconds, revisions = await timed_recovery(context, make_store, [BIG], None)
        check(revisions, big)
        runs.append(seconds)
    results["one_entity"] = replay_figures(big, runs)
    rate_one = results["one_entity"]["events_per_second"]
    log(f"recovery {name}: 1 x {big:,} events: {rate_one:,.0f} ev/s")

    seconds, revisions = await timed_recovery(context, make_store, small_ids, None)
    check(revisions, each)
    results["many_entities"] = {**replay_figures(small * each, [seconds]),
                                "entities_per_second": rate(small, seconds)}  # fmt: skip
    log(f"recovery {name}: {small:,} x {each} events: "
        f"{results['many_entities']['events_per_second']:,.0f} ev/s")  # fmt: skip

    store = make_store()
    await Writer(store).snapshots(BIG, big, settings.snapshot_every)
    await store.close()
    runs = []
    for _ in range(SNAPSHOT_REPEATS):
        seconds, revisions = await timed_recovery(
            context, make_store, [BIG], settings.snapshot_every
        )
        check(revisions, big)
        runs.append(seconds)
    results["one_entity_with_snapshots"] = {
        "events": big,
        "snapshot_every": settings.snapshot_every,
        "median_ms": round(statistics.median(runs) * 1000, 3),
        "best_ms": round(min(runs) * 1000, 3),
        "all_ms": [round(run * 1000, 3) for run in runs],
    }
    log(f"recovery {name}: 1 x {big:,} events with snapshots: "
        f"{results['one_entity_with_snapshots']['median_ms']} ms")  # fmt: skip
    return results


class Writer:
    """Writes an account's history straight into the store, as the engine would have."""

    def __init__(self, store: ea.Store) -> None:
        self.store = store
        self.serializer = store.serializer

    def register(self) -> None:
        for cls in (Opened, Deposited, Account):
            if not self.serializer.is_registered(cls):
                self.serializer.register(cls)

    async def fill(self, entity_id: str, events: int) -> None:
        self.register()
        persistence_id = f"account|{entity_id}"
        timestamp = datetime.now(UTC)
        opened = (self.serializer.type_name(Opened), self.serializer.encode(Opened("owner")))
        deposited = (self.serializer.type_name(Deposited), self.serializer.encode(Deposited(1)))
        for start in range(0, events, APPEND_SIZE):
            records = [
                ea.EventRecord(
                    event_id=new_id(),
                    persistence_id=persistence_id,
                    entity_type="account",
                    entity_id=entity_id,
                    sequence_number=sequence,
                    event_type=(opened if sequence == 1 else deposited)[0],
                    payload=(opened if sequence == 1 else deposited)[1],
                    timestamp=timestamp,
                )
                for sequence in range(start + 1, min(events, start + APPEND_SIZE) + 1)
            ]
            await self.store.append(persistence_id, records, start)

    async def snapshots(self, entity_id: str, events: int, every: int) -> None:
        """Snapshots at every multiple of `every`, each holding the state after that event."""
        self.register()
        state_type = self.serializer.type_name(Account)
        timestamp = datetime.now(UTC)
        await bounded(
            (
                self.store.save_snapshot(
                    ea.Snapshot(
                        f"account|{entity_id}",
                        sequence,
                        state_type,
                        Account(owner="owner", balance=sequence - 1, is_open=True),
                        timestamp,
                    )
                )
                for sequence in range(every, events + 1, every)
            ),
            FILL_IN_FLIGHT,
        )


async def timed_recovery(
    context: Context,
    make_store: Callable[[], ea.Store],
    entity_ids: list[str],
    snapshot_every: int | None,
) -> tuple[float, list[int]]:
    """Seconds to get the state of every entity, from a fresh engine on a fresh store."""
    store = make_store()
    engine = ea.Engine(store=store)
    engine.register("account", AccountBehavior, snapshot_every=snapshot_every)
    in_flight = context.settings.recovery_in_flight
    async with engine:
        # Open the connections first (a pool's worth on PostgreSQL): not part of recovery.
        await asyncio.gather(*(store.highest_sequence_number("account|-") for _ in range(10)))
        started = time.perf_counter()
        states = await bounded(
            (engine.get_state("account", entity_id) for entity_id in entity_ids), in_flight
        )
        elapsed = time.perf_counter() - started
    return elapsed, [revision for _, revision in states]


async def bounded(awaitables: Any, limit: int) -> list[Any]:
    """Awaits them all, at most `limit` at a time, in order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(awaitable: Any) -> Any:
        async with semaphore:
            return await awaitable

    return await asyncio.gather(*(one(awaitable) for awaitable in awaitables))


def replay_figures(events: int, runs: list[float]) -> dict[str, Any]:
    best = min(runs)
    return {
        "events": events,
        "seconds": round(best, 3),
        "events_per_second": rate(events, best),
        "all_seconds": [round(run, 3) for run in runs],
    }


def check(revisions: list[int], expected: int) -> None:
    wrong = [revision for revision in revisions if revision != expected]
    if wrong:
        raise AssertionError(
            f"{len(wrong)} entities recovered at revision {wrong[0]}, not {expected}"
        )
