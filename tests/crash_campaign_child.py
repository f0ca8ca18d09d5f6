"""The crash campaign's child: the bank app on a store, with many clients, until it is killed.

Usage: crash_campaign_child.py LOCATION SCHEMA ACK_FD SEED RUN CLIENTS ACCOUNTS

Runs the bank example's engine (accounts, snapshots every 100, the transactional balances
projection in the same database) and CLIENTS concurrent clients sending deposits and
withdrawals to random accounts; withdrawals beyond the balance are rejected. Every line goes
to the pipe ACK_FD in one write (shorter than PIPE_BUF, so a kill never tears one), made as
soon as the reply arrives:

  up                      the engine started; the projection resumes from its offset
  ready                   every account is open (recovered, or opened now)
  ack <command id> <account> <kind> <amount> <events> <revision> <event id>

kind is O (open), D (deposit), W (withdraw) or R (a rejected withdrawal: events 0, revision
and event id "-"). Command ids are unique per run, so the checker finds a command's events
by the command_id they carry.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from typing import Any

from eventactors_examples.bank.app import build_engine
from eventactors_examples.bank.domain import Deposit, Open, Withdraw

import eventactors as ea

LIFETIME = 300.0  # seconds: a child the parent forgot (it died) ends on its own


class Acks:
    """Writes protocol lines to the parent's pipe, one unbuffered write each."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def line(self, text: str) -> None:
        os.write(self._fd, (text + "\n").encode())

    def reply(self, command_id: str, account: str, kind: str, amount: int, reply: Any) -> None:
        event_ids = ",".join(envelope.event_id for envelope in reply.events) or "-"
        self.line(
            f"ack {command_id} {account} {kind} {amount} {len(reply.events)} "
            f"{reply.revision} {event_ids}"
        )

    def rejected(self, command_id: str, account: str, amount: int) -> None:
        self.line(f"ack {command_id} {account} R {amount} 0 - -")


async def open_accounts(engine: ea.Engine, acks: Acks, accounts: list[str], run: int) -> None:
    """Recovers every account at once (concurrent recoveries beside the projection's catch-up)
    and opens those a previous run did not."""

    async def one(account: str) -> None:
        state, _ = await engine.get_state("account", account)
        if state.is_open:
            return
        command_id = f"r{run}-open-{account}"
        reply = await engine.send(
            "account", account, Open(f"owner-{account}"), command_id=command_id
        )
        acks.reply(command_id, account, "O", 0, reply)

    await asyncio.gather(*(one(account) for account in accounts))


async def client(
    engine: ea.Engine, acks: Acks, accounts: list[str], rng: random.Random, prefix: str
) -> None:
    number = 0
    while True:
        number += 1
        command_id = f"{prefix}-{number}"
        account = rng.choice(accounts)
        if rng.random() < 0.55:
            amount = rng.randint(1, 100)
            reply = await engine.send("account", account, Deposit(amount), command_id=command_id)
            acks.reply(command_id, account, "D", amount, reply)
            continue
        amount = rng.randint(1, 150)  # withdrawals outweigh deposits: balances hover near 0
        try:
            reply = await engine.send("account", account, Withdraw(amount), command_id=command_id)
        except ea.Rejected:
            acks.rejected(command_id, account, amount)
            continue
        acks.reply(command_id, account, "W", amount, reply)


async def main(argv: list[str]) -> None:
    location, schema, fd, seed, run, clients, accounts = argv
    acks = Acks(int(fd))
    names = [f"acc-{index:03d}" for index in range(int(accounts))]
    engine = await build_engine(ea.open_store(location, schema=schema))
    async with engine:
        acks.line("up")
        await open_accounts(engine, acks, names, int(run))
        acks.line("ready")
        tasks = [
            client(engine, acks, names, random.Random(f"{seed}-{run}-{n}"), f"r{run}-c{n}")
            for n in range(int(clients))
        ]
        async with asyncio.timeout(LIFETIME):
            await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
