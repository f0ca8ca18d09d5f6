"""The child of the PostgreSQL SIGKILL test in test_group_commit.py.

Many concurrent clients deposit into bank accounts through one engine on a PostgresStore, so
that the store's writer commits many appends per transaction, until the parent kills it.

Usage: group_commit_child.py DSN SCHEMA SEED ACCOUNT,ACCOUNT,... CLIENTS

Prints "ready" once every account is open, then one line per acknowledged deposit, flushed at
once: "ack <account> <revision> <event id> <amount>".
"""

from __future__ import annotations

import asyncio
import random
import sys

from eventactors_examples.bank.domain import Deposit, Open, register

import eventactors as ea


async def main(dsn: str, schema: str, seed: int, accounts: list[str], clients: int) -> None:
    engine = ea.Engine(store=ea.PostgresStore(dsn, schema=schema))
    register(engine)
    out = sys.stdout
    async with engine:
        for account in accounts:
            state, _ = await engine.get_state("account", account, timeout=30)
            if not state.is_open:
                await engine.send("account", account, Open("owner-" + account), timeout=30)
        out.write("ready\n")
        out.flush()

        async def client(number: int) -> None:
            rng = random.Random(seed * 1000 + number)
            while True:
                account = rng.choice(accounts)
                amount = rng.randint(1, 1000)
                reply = await engine.send("account", account, Deposit(amount), timeout=30)
                (envelope,) = reply.events
                out.write(f"ack {account} {reply.revision} {envelope.event_id} {amount}\n")
                out.flush()

        await asyncio.gather(*(client(number) for number in range(clients)))


if __name__ == "__main__":
    dsn, schema, seed, accounts, clients = sys.argv[1:6]
    asyncio.run(main(dsn, schema, int(seed), accounts.split(","), int(clients)))
