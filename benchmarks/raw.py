"""The raw database limit: the bank's event rows inserted with no framework at all.

The rows are what eventactors writes for a deposit (an id, the stream, the sequence number,
the type, the JSON payload, the timestamp, empty tags and metadata, command and correlation
ids), built before the clock starts, into the `ea_events` table created by the store itself,
so that the table, its keys and its indexes are exactly eventactors'. Only the event rows are
written (not the stream-head rows eventactors also maintains): this is what the database can
do, the ceiling for any framework. The transactions hold as many rows as eventactors'
transactions held appends on average at the same client count (`average_batch` from the bank
scenario; without it, one row per client), one connection, one transaction after another.

- SQLite: plain sqlite3, WAL, synchronous=FULL, `BEGIN IMMEDIATE; executemany; COMMIT`.
- PostgreSQL: asyncpg, one transaction per batch, with `executemany` and with
  `copy_records_to_table`; the faster of the two is the limit.
Each measurement stops after its rows (the bank's deposit count) or `raw_seconds`, whichever
comes first.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from typing import Any

import asyncpg

import eventactors as ea

from .common import Context, guarded, log, new_id, rate
from .pg import drop_schemas, on_postgres

SCHEMA = "bench_raw"
PAYLOAD = '{"amount":1}'


def run(context: Context, bank: dict[str, Any] | None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for store in context.stores():
        by_clients: dict[str, Any] = {}
        for clients in context.settings.clients:
            batch, source = batch_of(bank, store, clients)
            label = f"raw {store} C={clients} batch {batch}"
            measured = guarded(label, partial(measure, context, store, clients, batch))
            measured = {"batch": batch, "batch_source": source, **measured}
            if "rows_per_second" in measured:
                log(f"{label}: {measured['rows_per_second']:,.0f} rows/s")
            by_clients[str(clients)] = measured
        results[store] = by_clients
    return results


def batch_of(bank: dict[str, Any] | None, store: str, clients: int) -> tuple[int, str]:
    """The batch eventactors reached in the bank scenario (this run's, or the last recorded),
    rounded to whole rows; else one row per client."""
    measured = (bank or {}).get(store, {}).get(str(clients), {}).get("eventactors", {})
    average = measured.get("average_batch")
    if average:
        return max(1, round(average)), measured.get("batch_source", "bank scenario")
    return clients, "assumed: clients (no bank figures)"


def measure(context: Context, store: str, clients: int, batch: int) -> dict[str, Any]:
    rows = max(context.settings.deposits[clients], batch * 20)
    if store == "sqlite":
        return sqlite_rate(context, batch, rows)
    dsn = context.postgres
    assert dsn is not None

    def unit() -> dict[str, Any]:
        context.run(drop_schemas(dsn, SCHEMA))
        try:
            return context.run(postgres_rates(context, dsn, batch, rows))
        finally:
            context.run(drop_schemas(dsn, SCHEMA))

    return on_postgres(context, f"raw postgres batch {batch}", unit)


def streams(context: Context, count: int) -> list[tuple[str, str, int]]:
    """(persistence_id, entity_id, sequence) of `count` deposits spread over the accounts."""
    accounts = context.settings.accounts
    return [
        (
            f"account|acc-{index % accounts:05d}",
            f"acc-{index % accounts:05d}",
            index // accounts + 1,
        )
        for index in range(count)
    ]


# -- SQLite -------------------------------------------------------------------------------


def sqlite_rate(context: Context, batch: int, count: int) -> dict[str, Any]:
    path = context.sqlite_path("raw")
    context.run(_create_sqlite_schema(path))  # the store's own DDL
    timestamp = datetime.now(UTC).isoformat()
    rows = []
    for persistence_id, entity_id, sequence in streams(context, count):
        command_id = new_id()
        rows.append((
            new_id(), persistence_id, "account", entity_id, sequence, "Deposited", PAYLOAD,
            timestamp, "[]", "{}", command_id, command_id,
        ))  # fmt: skip
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        insert = (
            "INSERT INTO ea_events (event_id, persistence_id, entity_type, entity_id, "
            "sequence_number, event_type, payload, timestamp, tags, metadata, command_id, "
            "correlation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        written, started = 0, time.perf_counter()
        for start in range(0, len(rows), batch):
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(insert, rows[start : start + batch])
            connection.execute("COMMIT")
            written += len(rows[start : start + batch])
            if time.perf_counter() - started > context.settings.raw_seconds:
                break
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    return {
        "rows": written,
        "seconds": round(elapsed, 3),
        "rows_per_second": rate(written, elapsed),
    }


async def _create_sqlite_schema(path: Any) -> None:
    store = ea.SQLiteStore(path)
    await store.head_position()
    await store.close()


# -- PostgreSQL ---------------------------------------------------------------------------

COLUMNS = [
    "global_position", "event_id", "persistence_id", "entity_type", "entity_id",
    "sequence_number", "event_type", "payload_json", "timestamp", "tags", "metadata",
    "command_id", "correlation_id",
]  # fmt: skip


async def postgres_rates(context: Context, dsn: str, batch: int, count: int) -> dict[str, Any]:
    store = ea.PostgresStore(dsn, schema=SCHEMA)  # the store's own DDL
    await store.head_position()
    await store.close()
    timestamp = datetime.now(UTC)
    rows = []
    for position, (persistence_id, entity_id, sequence) in enumerate(streams(context, count), 1):
        command_id = new_id()
        rows.append((
            position, uuid.uuid4(), persistence_id, "account", entity_id, sequence, "Deposited",
            PAYLOAD, timestamp, [], "{}", command_id, command_id,
        ))  # fmt: skip
    connection = await asyncpg.connect(dsn)
    table = f'"{SCHEMA}".ea_events'
    insert = (
        f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES "
        f"({', '.join(f'${n}' for n in range(1, len(COLUMNS) + 1))})"
    )
    results: dict[str, Any] = {}
    try:
        for method in ("executemany", "copy"):
            await connection.execute(f"TRUNCATE {table}")
            written, started = 0, time.perf_counter()
            for start in range(0, len(rows), batch):
                chunk = rows[start : start + batch]
                async with connection.transaction():
                    if method == "executemany":
                        await connection.executemany(insert, chunk)
                    else:
                        await connection.copy_records_to_table(
                            "ea_events", schema_name=SCHEMA, columns=COLUMNS, records=chunk
                        )
                written += len(chunk)
                if time.perf_counter() - started > context.settings.raw_seconds:
                    break
            elapsed = time.perf_counter() - started
            results[method] = {
                "rows": written,
                "seconds": round(elapsed, 3),
                "rows_per_second": rate(written, elapsed),
            }
    finally:
        await connection.close()
    best = max(results, key=lambda method: results[method]["rows_per_second"])
    return {"rows_per_second": results[best]["rows_per_second"], "method": best, **results}
