"""Durable bank-account commands per second on an SQLite file, against the peer and the raw limit.

Same workload for everyone: open ACCOUNTS accounts, then deposit COMMANDS times, round-robin.
- eventactors: concurrent clients (group commit shares transactions between entities), with
  synchronous=FULL (the default: a reply means the event is on disk) and NORMAL.
- the peer: the `eventsourcing` library's SQLite application, with its aggregate cache on (its
  fastest setting); it is synchronous, so its clients are sequential calls.
- the raw limit: plain sqlite3 inserting rows of the same shape, WAL and synchronous=FULL, in
  transactions of the average size eventactors' group commit reached.

Run: .venv/bin/python benchmarks/bank_sqlite.py   (needs `pip install eventsourcing`)
Writes benchmarks/results/bank_sqlite.json. Figures are noisy on a shared machine: compare the
ratios within one run, not absolute rates across runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from eventactors_examples.bank.domain import AccountBehavior, Deposit, Open

import eventactors as ea

ACCOUNTS = 200
COMMANDS = int(os.environ.get("BENCH_COMMANDS", "20000"))
PEER_COMMANDS = int(os.environ.get("BENCH_PEER_COMMANDS", "3000"))
CLIENTS = 64
RESULTS = Path(__file__).with_name("results") / "bank_sqlite.json"


async def eventactors_rate(path: Path, synchronous: str) -> dict[str, float]:
    store = ea.SQLiteStore(path, synchronous=synchronous)  # type: ignore[arg-type]
    engine = ea.Engine(store=store)
    engine.register("account", AccountBehavior)
    async with engine:
        await asyncio.gather(
            *(engine.send("account", f"a{i}", Open(f"owner{i}")) for i in range(ACCOUNTS))
        )
        writer = store._writer
        assert writer is not None
        batches_before, jobs_before = writer.batches, writer.jobs_done
        per_client = COMMANDS // CLIENTS

        async def client(number: int) -> None:
            for k in range(per_client):
                account = f"a{(number * per_client + k) % ACCOUNTS}"
                await engine.send("account", account, Deposit(1))

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(CLIENTS)))
        elapsed = time.perf_counter() - started
        batches = writer.batches - batches_before
        jobs = writer.jobs_done - jobs_before
    return {
        "commands_per_second": per_client * CLIENTS / elapsed,
        "average_batch": jobs / max(batches, 1),
    }


def peer_rate(path: Path) -> float:
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class PeerAccount(Aggregate):
        @event("Opened")
        def __init__(self, owner: str) -> None:
            self.owner = owner
            self.balance = 0

        @event("Deposited")
        def deposit(self, amount: int) -> None:
            self.balance += amount

    class Bank(Application):
        def open(self, owner: str) -> Any:
            account = PeerAccount(owner)
            self.save(account)
            return account.id

        def deposit(self, account_id: Any, amount: int) -> None:
            account = self.repository.get(account_id)
            account.deposit(amount)
            self.save(account)

    bank = Bank(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(path),
            "AGGREGATE_CACHE_MAXSIZE": str(ACCOUNTS * 2),
        }
    )
    ids = [bank.open(f"owner{i}") for i in range(ACCOUNTS)]
    started = time.perf_counter()
    for k in range(PEER_COMMANDS):
        bank.deposit(ids[k % ACCOUNTS], 1)
    return PEER_COMMANDS / (time.perf_counter() - started)


def raw_insert_rate(path: Path, batch: int) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute(
        "CREATE TABLE events (position INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT, "
        "sequence INTEGER, event_id TEXT, type TEXT, payload TEXT, ts TEXT, "
        "UNIQUE (stream, sequence))"
    )
    row_count = COMMANDS
    rows = [
        (f"account|a{i % ACCOUNTS}", i, f"0190-{i:012d}", "Deposited", '{"amount":1}',
         "2026-11-22T10:00:00+00:00")
        for i in range(row_count)
    ]  # fmt: skip
    started = time.perf_counter()
    for start in range(0, row_count, batch):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO events (stream, sequence, event_id, type, payload, ts) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows[start : start + batch],
        )
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return row_count / elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        full = asyncio.run(eventactors_rate(folder / "full.db", "FULL"))
        normal = asyncio.run(eventactors_rate(folder / "normal.db", "NORMAL"))
        peer = peer_rate(folder / "peer.db")
        batch = max(1, round(full["average_batch"]))
        raw = raw_insert_rate(folder / "raw.db", batch)
    results = {
        "workload": {"accounts": ACCOUNTS, "commands": COMMANDS, "clients": CLIENTS,
                     "peer_commands": PEER_COMMANDS},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "sqlite": sqlite3.sqlite_version},
        "eventactors_full": full,
        "eventactors_normal": normal,
        "peer_eventsourcing_commands_per_second": peer,
        "raw_sqlite_rows_per_second_at_same_batch": raw,
        "raw_batch_size": batch,
        "ratio_full_vs_peer": full["commands_per_second"] / peer,
        "ratio_full_vs_raw": full["commands_per_second"] / raw,
        "ratio_normal_vs_full": normal["commands_per_second"] / full["commands_per_second"],
    }  # fmt: skip
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
