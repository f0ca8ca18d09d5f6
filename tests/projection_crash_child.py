"""A child process for the crash tests: writes bank commands with the balances projection
running, and can SIGKILL itself inside a projection transaction, after the read-model rows
are written and before the transaction (rows and offset) commits.

Usage: projection_crash_child.py <sqlite-path | postgres-dsn> <schema> <commands> <crash-at-page>
(crash-at-page 0: never crash; run the commands, then wait for the projection to catch up).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
from typing import Any

from eventactors_examples.bank import balances
from eventactors_examples.bank.domain import AccountBehavior, Deposit, Open, Withdraw

import eventactors as ea
from eventactors import open_store

ACCOUNTS = 8


def crashing(handler: Any, crash_at: int) -> Any:
    """Wraps a handler: on page `crash_at`, kill this process once the rows are written."""
    pages = 0

    def count() -> None:
        nonlocal pages
        pages += 1
        if pages == crash_at:
            os.kill(os.getpid(), signal.SIGKILL)

    if asyncio.iscoroutinefunction(handler):

        async def async_wrapper(envelopes: Any, connection: Any) -> None:
            await handler(envelopes, connection)
            count()

        return async_wrapper

    def wrapper(envelopes: Any, connection: Any) -> None:
        handler(envelopes, connection)
        if pages + 1 == crash_at and os.environ.get("CRASH_AT_OFFSET"):
            # Die when the offset is written: after the rows, before the commit.
            connection.create_function("crash_now", 0, lambda: os.kill(os.getpid(), signal.SIGKILL))
            connection.execute(
                "CREATE TEMP TRIGGER crash_on_offset BEFORE INSERT ON ea_offsets "
                "BEGIN SELECT crash_now(); END"
            )
            return
        count()

    return wrapper


async def main(location: str, schema: str, commands: int, crash_at: int) -> None:
    store = open_store(location, schema=schema)
    engine = ea.Engine(store=store)
    engine.register("account", AccountBehavior)
    if isinstance(store, ea.PostgresStore):
        handler, reset = balances.postgres_handlers(store.schema)
    else:
        handler, reset = balances.apply_sqlite, balances.reset_sqlite
    if crash_at:
        handler = crashing(handler, crash_at)
    await engine.add_projection(
        balances.NAME, handler, transactional=True, reset=reset,
        entity_types=["account"], batch_size=7,
    )  # fmt: skip
    rng = random.Random()
    async with engine:
        for i in range(ACCOUNTS):
            state, _ = await engine.get_state("account", f"a{i}")
            if not state.is_open:
                await engine.send("account", f"a{i}", Open(f"owner{i}"))

        async def client() -> None:
            for _ in range(commands // 4):
                account = f"a{rng.randrange(ACCOUNTS)}"
                command: Any = Deposit(rng.randint(1, 50))
                if rng.random() < 0.3:
                    command = Withdraw(rng.randint(1, 30))
                with contextlib.suppress(ea.Rejected):  # insufficient funds: nothing persisted
                    await engine.send("account", account, command)

        await asyncio.gather(*(client() for _ in range(4)))
        await engine.wait_for_projection(balances.NAME, timeout=60)
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
