"""Bank deposits: durable commands per second and latency, eventactors against the peer.

The workload, identical for both systems: open `accounts` accounts (not timed), then C clients
make the deposits (timed), each client sequentially, C = 1, 16, 256. Client k owns the accounts
k, k + C, k + 2C, ... and deposits into them round-robin, so that no two clients ever touch the
same account. That matters for the peer: its aggregate cache is not safe when two threads
command the same aggregate at once (they can both save version n + 1 and one fails on the
unique key), so every client gets a disjoint set of accounts, here and on eventactors alike.
Each deposit's latency is the wall time around one `await engine.send(...)` (or one
`bank.deposit(...)` call for the peer); balances are checked after each run.

- eventactors: `engine.send` from C concurrent asyncio tasks; `ea.SQLiteStore` (default
  synchronous=FULL) on a file, or `ea.PostgresStore` in the schema bench_bank with its
  default pool. The average batch (appends per transaction) comes from `store.write_statistics()`
  over the timed phase, for the raw-limit scenario.
- the peer: `eventsourcing` with its SQLite module (WAL; SQLite's default synchronous=FULL) or
  its PostgreSQL module in the schema bench_bank_peer, aggregate cache on (see benchmarks.peer).
  At C = 1 it runs as it is naturally used, single-threaded; at C = 16 and 256 from a
  concurrent.futures thread pool of C workers, with its PostgreSQL pool sized to C
  (POSTGRES_POOL_SIZE, no overflow), but at most 64 connections and 10 fewer than the server
  has free: at C = 256 threads queue for connections, as they would in production.
Every run starts on a fresh file or schema.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any
from uuid import UUID

from eventactors_examples.bank.domain import AccountBehavior

import eventactors as ea

from .common import Context, batch_between, guarded, log, write_counts
from .deposits import account_ids, check_total, deposit_clients, measurement, open_accounts
from .peer import PeerBank, cache_environment
from .pg import drop_schemas, fetchval, free_connections, on_postgres, peer_environment

SCHEMA = "bench_bank"
PEER_SCHEMA = "bench_bank_peer"
PEER_POOL_CAP = 64  # of the server's 100 connections, leaving room for everyone else


def run(context: Context) -> dict[str, Any]:
    settings = context.settings
    results: dict[str, Any] = {
        "workload": {
            "accounts": settings.accounts,
            "clients": list(settings.clients),
            "deposits": {str(c): settings.deposits[c] for c in settings.clients},
            "command": "Deposit(1) to an open account: one Deposited event per command",
            "disjoint_accounts": "client k owns accounts k, k + C, ...; round-robin over them",
        }
    }
    for store in context.stores():
        by_clients: dict[str, Any] = {}
        for clients in settings.clients:
            row: dict[str, Any] = {}
            label = f"bank {store} C={clients}"
            row["eventactors"] = guarded(
                f"{label} eventactors", partial(ours, context, store, clients)
            )
            report(f"{label} eventactors", row["eventactors"])
            if clients == 1:
                row["peer_fastforward"] = guarded(
                    f"{label} peer (fast-forward on)",
                    partial(theirs, context, store, clients, fastforward=True),
                )
                report(f"{label} peer (fast-forward on)", row["peer_fastforward"])
            row["peer"] = guarded(f"{label} peer", partial(theirs, context, store, clients))
            report(f"{label} peer", row["peer"])
            by_clients[str(clients)] = row
        results[store] = by_clients
    return results


def report(label: str, measured: dict[str, Any]) -> None:
    if "error" in measured:
        return
    batch = measured.get("average_batch")
    log(
        f"{label}: {measured['commands_per_second']:,.0f} cmd/s, p50 {measured['p50_ms']} ms, "
        f"p99 {measured['p99_ms']} ms"
        + (f", {batch} appends/transaction" if batch is not None else "")
        + (f", {measured['errors']} errors" if measured["errors"] else "")
    )


# -- eventactors --------------------------------------------------------------------------


def ours(context: Context, store_name: str, clients: int) -> dict[str, Any]:
    if store_name == "sqlite":
        path = context.sqlite_path("bank")
        return context.run(eventactors_deposits(context, ea.SQLiteStore(path), clients))
    dsn = context.postgres
    assert dsn is not None

    def unit() -> dict[str, Any]:
        context.run(drop_schemas(dsn, SCHEMA))
        try:
            store = ea.PostgresStore(dsn, schema=SCHEMA)
            return context.run(eventactors_deposits(context, store, clients))
        finally:
            context.run(drop_schemas(dsn, SCHEMA))

    return on_postgres(context, f"bank postgres C={clients} eventactors", unit)


async def eventactors_deposits(context: Context, store: ea.Store, clients: int) -> dict[str, Any]:
    settings = context.settings
    accounts = account_ids(settings.accounts)
    per_client = settings.deposits[clients] // clients
    engine = ea.Engine(store=store)
    engine.register("account", AccountBehavior)
    async with engine:
        await open_accounts(engine, accounts)
        before = write_counts(store)
        started, cpu = time.perf_counter(), time.process_time()
        latencies, errors = await deposit_clients(engine, accounts, clients, per_client)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        after = write_counts(store)
        states = await asyncio.gather(*(engine.get_state("account", a) for a in accounts))
    check_total(sum(state.balance for state, _ in states), len(latencies))
    return {
        **measurement(len(latencies), elapsed, cpu, latencies, errors),
        **batch_between(before, after, clients),
    }


# -- the peer -----------------------------------------------------------------------------


def theirs(
    context: Context, store_name: str, clients: int, *, fastforward: bool = False
) -> dict[str, Any]:
    cache = cache_environment(context.settings.accounts, fastforward=fastforward)
    if store_name == "sqlite":
        path = context.sqlite_path("bank_peer")
        environment = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
        return peer_deposits(context, {**environment, **cache}, clients)
    dsn = context.postgres
    assert dsn is not None

    def unit() -> dict[str, Any]:
        context.run(drop_schemas(dsn, PEER_SCHEMA))
        context.run(fetchval(dsn, f'CREATE SCHEMA "{PEER_SCHEMA}"'))
        pool = max(1, min(clients, PEER_POOL_CAP, context.run(free_connections(dsn)) - 10))
        environment = {
            **peer_environment(dsn, PEER_SCHEMA),
            "POSTGRES_POOL_SIZE": str(pool),
            "POSTGRES_MAX_OVERFLOW": "0",
        }
        try:
            return {**peer_deposits(context, {**environment, **cache}, clients), "pool": pool}
        finally:
            context.run(drop_schemas(dsn, PEER_SCHEMA))

    return on_postgres(context, f"bank postgres C={clients} peer", unit)


def peer_deposits(context: Context, environment: dict[str, str], clients: int) -> dict[str, Any]:
    """Single-threaded at one client (the library's natural use), else a pool of C threads."""
    settings = context.settings
    per_client = settings.deposits[clients] // clients
    bank = PeerBank(env=environment)
    try:
        accounts = [bank.open(f"owner {index}") for index in range(settings.accounts)]

        def client(number: int) -> tuple[list[float], list[str]]:
            mine: list[UUID] = accounts[number::clients]
            latencies: list[float] = []
            errors: list[str] = []
            for index in range(per_client):
                started = time.perf_counter()
                try:
                    bank.deposit(mine[index % len(mine)], 1)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append(time.perf_counter() - started)
            return latencies, errors

        started, cpu = time.perf_counter(), time.process_time()
        if clients == 1:
            outcomes = [client(0)]
        else:
            with ThreadPoolExecutor(max_workers=clients) as pool:
                outcomes = list(pool.map(client, range(clients)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        latencies = [sample for samples, _ in outcomes for sample in samples]
        errors = [error for _, failures in outcomes for error in failures]
        check_total(sum(bank.balance(account) for account in accounts), len(latencies))
    finally:
        bank.close()
    mode = "single thread" if clients == 1 else f"{clients} threads"
    return {**measurement(len(latencies), elapsed, cpu, latencies, errors), "mode": mode}
