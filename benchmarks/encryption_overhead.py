"""What encryption at rest costs: the same SQLite workloads with and without `EncryptedStore`.

    python -m benchmarks.encryption_overhead            # writes encryption_overhead_results.json
    python -m benchmarks.encryption_overhead --quick    # a smoke run, prints only

Three measurements (sizes in `Sizes`), each on a fresh SQLite file with full durability in a
temporary directory under the current one (a real disk: fsync must cost), plain and
encrypted in turn, 5 times, alternating which goes first; the best run of each side counts
(the machine is shared and noisy). About 45 seconds on 2 cores.
- commands: bank deposits per second, 64 clients each sending to its own accounts one
  command after the other, after all 512 accounts were opened (not timed); group commit.
- replay: one account's 100,000 events (filled with `store.append`, not timed), recovered
  by `engine.get_state` on a fresh engine and store object, in events per second.
- catch-up: a projection from the start of a log of 100,000 events in streams of 1,000,
  pages of 1,000, decoding every event (it sums the amounts, checked), timed until
  `wait_for_projection` sees it at the head, in events per second.
The encrypted side pays AES-GCM per payload, a data key per entity (created on its first
write, looked up a page at a time on reads: a fresh store object starts with none cached),
and opening the envelopes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cryptography
from eventactors_examples.bank.domain import AccountBehavior, Deposit, Deposited, Open, Opened

import eventactors as ea
from eventactors._ids import uuid7

RESULTS = Path(__file__).with_name("encryption_overhead_results.json")
MASTER_KEY = os.urandom(32)


class Sizes:
    def __init__(self, quick: bool) -> None:
        self.repeats = 1 if quick else 5
        self.accounts = 64 if quick else 512
        self.clients = 16 if quick else 64
        self.deposits = 640 if quick else 8192
        self.replay_events = 5000 if quick else 100_000
        self.catch_up_events = 5000 if quick else 100_000


def open_store(path: Path, encrypted: bool) -> ea.Store:
    store = ea.SQLiteStore(path)
    return ea.EncryptedStore(store, MASTER_KEY) if encrypted else store


def fresh(directory: Path, name: str) -> Path:
    path = directory / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


async def commands(path: Path, encrypted: bool, sizes: Sizes) -> float:
    engine = ea.Engine(store=open_store(path, encrypted))
    engine.register("account", AccountBehavior)
    async with engine:
        await asyncio.gather(
            *(engine.send("account", f"a{n}", Open(f"owner {n}")) for n in range(sizes.accounts))
        )
        per_client = sizes.deposits // sizes.clients

        async def client(index: int) -> None:
            mine = [f"a{n}" for n in range(index, sizes.accounts, sizes.clients)]
            for number in range(per_client):
                await engine.send("account", mine[number % len(mine)], Deposit(1))

        started = time.perf_counter()
        await asyncio.gather(*(client(index) for index in range(sizes.clients)))
        elapsed = time.perf_counter() - started
    return per_client * sizes.clients / elapsed


async def fill(store: ea.Store, streams: list[tuple[str, int]]) -> None:
    """Appends each stream's events (an Opened, then Deposited(n)), 1,000 per append."""
    serializer = store.serializer
    serializer.register(Opened)
    serializer.register(Deposited)
    now = datetime.now(UTC)
    for entity_id, count in streams:
        persistence_id = f"account|{entity_id}"
        for first in range(1, count + 1, 1000):
            records = [
                ea.EventRecord(
                    event_id=uuid7(),
                    persistence_id=persistence_id,
                    entity_type="account",
                    entity_id=entity_id,
                    sequence_number=n,
                    event_type="Opened" if n == 1 else "Deposited",
                    payload=serializer.encode(Opened("owner") if n == 1 else Deposited(n)),
                    timestamp=now,
                )
                for n in range(first, min(count, first + 999) + 1)
            ]
            await store.append(persistence_id, records, first - 1)
    await store.close()


async def replay(path: Path, encrypted: bool, sizes: Sizes) -> float:
    await fill(open_store(path, encrypted), [("big", sizes.replay_events)])
    engine = ea.Engine(store=open_store(path, encrypted))
    engine.register("account", AccountBehavior)
    async with engine:
        await engine.store.head_position()  # connections open before the clock starts
        started = time.perf_counter()
        _, revision = await engine.get_state("account", "big")
        elapsed = time.perf_counter() - started
    assert revision == sizes.replay_events, revision
    return sizes.replay_events / elapsed


async def catch_up(path: Path, encrypted: bool, sizes: Sizes) -> float:
    streams = [(f"s{n}", 1000) for n in range(sizes.catch_up_events // 1000)]
    await fill(open_store(path, encrypted), streams)
    expected = sum(n for _, count in streams for n in range(2, count + 1))
    engine = ea.Engine(store=open_store(path, encrypted))
    engine.register("account", AccountBehavior)
    total = 0

    def handler(envelopes: list[ea.EventEnvelope]) -> None:
        nonlocal total
        for envelope in envelopes:
            event = envelope.event
            if type(event) is Deposited:
                total += event.amount

    async with engine:
        await engine.store.head_position()
        started = time.perf_counter()
        await engine.add_projection("sum", handler, batched=True, batch_size=1000)
        await engine.wait_for_projection("sum", timeout=120)
        elapsed = time.perf_counter() - started
    assert total == expected, (total, expected)
    return sizes.catch_up_events / elapsed


MEASUREMENTS: dict[str, Callable[[Path, bool, Sizes], Awaitable[float]]] = {
    "commands_per_second": commands,
    "replay_events_per_second": replay,
    "catch_up_events_per_second": catch_up,
}


async def main(quick: bool) -> dict[str, Any]:
    sizes = Sizes(quick)
    best: dict[str, dict[str, float]] = {"plain": {}, "encrypted": {}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch:  # a real disk: fsync costs
        for repeat in range(sizes.repeats):
            for name, measure in MEASUREMENTS.items():
                for mode in ("plain", "encrypted") if repeat % 2 == 0 else ("encrypted", "plain"):
                    path = fresh(Path(scratch), f"{name}-{mode}")
                    rate = await measure(path, mode == "encrypted", sizes)
                    best[mode][name] = max(best[mode].get(name, 0.0), rate)
                    print(f"{name:28} {mode:9} {rate:12,.0f}", flush=True)
    overhead = {
        name: round(100 * (1 - best["encrypted"][name] / best["plain"][name]), 1)
        for name in MEASUREMENTS
    }
    return {
        "command": "python -m benchmarks.encryption_overhead" + (" --quick" if quick else ""),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "cryptography": cryptography.__version__,
        },
        "workload": {
            "store": "SQLiteStore, synchronous=FULL, a fresh file per run",
            "repeats": sizes.repeats,
            "best_of": "the best run of each side counts",
            "accounts": sizes.accounts,
            "clients": sizes.clients,
            "deposits": sizes.deposits,
            "replay_events": sizes.replay_events,
            "catch_up_events": sizes.catch_up_events,
            "catch_up_page": 1000,
        },
        "plain": {name: round(rate) for name, rate in best["plain"].items()},
        "encrypted": {name: round(rate) for name, rate in best["encrypted"].items()},
        "overhead_percent": overhead,
        "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes; nothing written")
    arguments = parser.parse_args()
    results = asyncio.run(main(arguments.quick))
    print(json.dumps(results, indent=2))
    if not arguments.quick:
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
