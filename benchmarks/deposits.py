"""The bank's deposit workload on an eventactors engine, and how a run of it is measured.

Shared by the bank scenario (one engine per client count, against the peer) and the cluster
scenario (one warm engine per configuration, in one process or through Ray), so that both run
exactly the same commands; it needs neither the peer nor Ray. Client k of C owns the accounts
k, k + C, k + 2C, ... and deposits into them round-robin (why: see benchmarks.bank).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from eventactors_examples.bank.domain import Deposit, Open

import eventactors as ea

from .common import latency_ms, rate

DEPOSIT = Deposit(1)


def account_ids(count: int) -> list[str]:
    return [f"acc-{index:05d}" for index in range(count)]


async def open_accounts(engine: ea.Engine, accounts: list[str]) -> None:
    await asyncio.gather(*(engine.send("account", a, Open(f"owner {a}")) for a in accounts))


async def deposit_clients(
    engine: ea.Engine, accounts: list[str], clients: int, per_client: int
) -> tuple[list[float], list[str]]:
    """C concurrent asyncio tasks, each making `per_client` deposits into its own accounts,
    one `await engine.send(...)` at a time: the latencies of those that succeeded, in seconds,
    and the failures."""
    latencies: list[float] = []
    errors: list[str] = []

    async def client(number: int) -> None:
        mine = accounts[number::clients]
        for index in range(per_client):
            started = time.perf_counter()
            try:
                await engine.send("account", mine[index % len(mine)], DEPOSIT)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client(number) for number in range(clients)))
    return latencies, errors


def measurement(
    commands: int, elapsed: float, cpu: float, latencies: list[float], errors: list[str]
) -> dict[str, Any]:
    """The rate counts successful commands only; failures are counted and the first shown."""
    return {
        "commands": commands,
        "seconds": round(elapsed, 3),
        "commands_per_second": rate(commands, elapsed),
        **latency_ms(latencies),
        "client_cpu_seconds": round(cpu, 3),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def check_total(balance: int, deposits: int) -> None:
    if balance != deposits:
        raise AssertionError(f"balances add up to {balance}, but {deposits} deposits succeeded")
