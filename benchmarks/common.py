"""What every scenario shares: sizes, the run context, progress lines, percentiles, RSS.

PostgreSQL helpers live in `benchmarks.pg`; the peer (the `eventsourcing` library) in
`benchmarks.peer`; the bank's deposit workload on eventactors in `benchmarks.deposits`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

STARTED = time.perf_counter()


def log(message: str) -> None:
    """A progress line, stamped with the seconds since the harness started."""
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", flush=True)


@contextlib.contextmanager
def phase(name: str, seconds: dict[str, float] | None = None) -> Iterator[None]:
    """Logs the start and end of a phase; records its wall time in `seconds` if given."""
    log(f"{name} ...")
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        if seconds is not None:
            seconds[name] = round(elapsed, 2)
        log(f"{name}: {elapsed:.1f} s")


@dataclass(frozen=True, slots=True)
class Settings:
    """Workload sizes: `FULL` for the published figures, `QUICK` for a smoke run."""

    accounts: int
    clients: tuple[int, ...]
    deposits: Mapping[int, int]  # per client count: C=1 needs fewer to be stable, and is slow
    raw_seconds: float  # each raw-insert measurement stops after this long (or its rows)
    big_stream_events: int
    small_streams: int
    small_stream_events: int
    recovery_in_flight: int
    snapshot_every: int
    recovery_repeats: int
    memory_entities: int
    memory_gather: int
    catch_up_events: int
    catch_up_stream_events: int
    catch_up_pages: tuple[int, ...]
    cluster_deposits: int  # per timed phase of the cluster scenario, at every client count


FULL = Settings(
    accounts=1024, clients=(1, 16, 256), deposits={1: 5000, 16: 20_000, 256: 20_480},
    raw_seconds=4.0, big_stream_events=100_000, small_streams=10_000, small_stream_events=10,
    recovery_in_flight=64, snapshot_every=100, recovery_repeats=2,
    memory_entities=1_000_000, memory_gather=10_000,
    catch_up_events=250_000, catch_up_stream_events=1000, catch_up_pages=(1000, 5000),
    cluster_deposits=16_384,
)  # fmt: skip

QUICK = Settings(
    accounts=256, clients=(1, 16, 256), deposits={1: 300, 16: 1024, 256: 1024},
    raw_seconds=0.5, big_stream_events=5000, small_streams=500, small_stream_events=10,
    recovery_in_flight=64, snapshot_every=100, recovery_repeats=1,
    memory_entities=100_000, memory_gather=10_000,
    catch_up_events=5000, catch_up_stream_events=500, catch_up_pages=(1000,),
    cluster_deposits=2048,
)  # fmt: skip


@dataclass(slots=True)
class Context:
    """One harness run: its sizes, where PostgreSQL is (None: skipped), a scratch directory for
    SQLite files, and the event loop every eventactors part runs on (uvloop if asked)."""

    settings: Settings
    postgres: str | None
    scratch: Path
    runner: asyncio.Runner
    loop: str

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)

    def stores(self) -> list[str]:
        return ["sqlite", "postgres"] if self.postgres else ["sqlite"]

    def sqlite_path(self, name: str) -> Path:
        """A fresh SQLite file name in the scratch directory (any old one is deleted)."""
        path = self.scratch / f"{name}.db"
        remove_sqlite(path)
        return path


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")


def guarded(label: str, unit: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Runs one measurement; a failure is logged and recorded as {"error": ...} so that the
    other measurements still run (a peer that breaks under threads is a finding, not a crash)."""
    try:
        return unit()
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        log(f"{label} FAILED: {message}")
        return {"error": message}


def latency_ms(samples: list[float]) -> dict[str, float | None]:
    """p50 and p99 in milliseconds (nearest rank) of per-command latencies in seconds."""
    if not samples:
        return {"p50_ms": None, "p99_ms": None}
    ordered = sorted(samples)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000, 3)

    return {"p50_ms": rank(0.50), "p99_ms": rank(0.99)}


def rss_bytes() -> int:
    """The resident set size now: /proc/self/statm on Linux; elsewhere the peak (ru_maxrss),
    which is what we have, and which still grows with what we measure."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def new_id() -> str:
    """An event or command id for rows the harness writes itself (any UUID string will do)."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class WriteCounts:
    transactions: int
    appends: int
    events: int


def write_counts(store: object) -> WriteCounts | None:
    """The store's cumulative write counters, or None if this version of the store does not
    offer `write_statistics()` yet."""
    method = getattr(store, "write_statistics", None)
    if method is None:
        return None
    counted = method()
    return WriteCounts(int(counted.transactions), int(counted.appends), int(counted.events))


def batch_between(
    before: WriteCounts | None, after: WriteCounts | None, clients: int
) -> dict[str, Any]:
    """Average appends per transaction over a phase; without counters, assumes one append per
    client per transaction (what a perfect group commit would reach) and says so."""
    if before is None or after is None:
        return {"average_batch": float(clients), "batch_source": "assumed: clients"}
    transactions = after.transactions - before.transactions
    appends = after.appends - before.appends
    return {
        "average_batch": round(appends / transactions, 2) if transactions else None,
        "batch_source": "write_statistics",
        "transactions": transactions,
        "appends": appends,
        "events": after.events - before.events,
    }


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0
