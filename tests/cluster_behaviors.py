"""Behaviors for the cluster tests. Shard processes import them by module name, so they live
in a module of their own on the workers' PYTHONPATH (the tests directory)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

import eventactors as ea


class Account(msgspec.Struct):
    balance: int = 0
    deposits: int = 0
    log: list[str] = []


class Deposit(msgspec.Struct):
    amount: int
    note: str = ""


class Withdraw(msgspec.Struct):
    amount: int


class Deposited(msgspec.Struct):
    amount: int
    note: str = ""


class Withdrawn(msgspec.Struct):
    amount: int


class SlowDeposit(msgspec.Struct):
    """Deposits after `seconds`: a command that is still running when something happens."""

    amount: int
    seconds: float
    note: str = ""


class TransferTo(msgspec.Struct):
    """Withdraws here, then deposits on another account through `self.engine`: a call from
    one shard to another."""

    target: str
    amount: int


class SetBalance(msgspec.Struct):
    """Its handler returns an event type the behavior does not declare: refused in the shard."""

    amount: int


class BalanceSet(msgspec.Struct):
    amount: int


class AccountBehavior(ea.EventSourcedBehavior[Account]):
    events = (Deposited, Withdrawn)

    def initial_state(self) -> Account:
        return Account()

    async def handle_command(self, state: Account, command: Any) -> Any:
        if isinstance(command, Deposit):
            if command.amount <= 0:
                raise ea.Rejected("amount must be positive", meta={"amount": command.amount})
            return Deposited(command.amount, command.note)
        if isinstance(command, Withdraw):
            if command.amount > state.balance:
                raise ea.Rejected("insufficient funds", meta={"balance": state.balance})
            return Withdrawn(command.amount)
        if isinstance(command, TransferTo):
            if command.amount > state.balance:
                raise ea.Rejected("insufficient funds", meta={"balance": state.balance})
            await self.engine.send("account", command.target, Deposit(command.amount, "transfer"))
            return Withdrawn(command.amount)
        if isinstance(command, SlowDeposit):
            await asyncio.sleep(command.seconds)
            return Deposited(command.amount, command.note)
        if isinstance(command, SetBalance):
            return BalanceSet(command.amount)
        raise ea.Rejected(f"unknown command {type(command).__name__}")

    def handle_event(self, state: Account, event: Any) -> Account:
        if isinstance(event, Deposited):
            note = [event.note] if event.note else []
            return Account(state.balance + event.amount, state.deposits + 1, state.log + note)
        return Account(state.balance - event.amount, state.deposits, state.log)


class Counter(msgspec.Struct):
    value: int = 0


class Add(msgspec.Struct):
    amount: int


class CounterBehavior(ea.DurableStateBehavior[Counter]):
    def initial_state(self) -> Counter:
        return Counter()

    def handle_command(self, state: Counter, command: Any) -> Counter:
        return Counter(state.value + command.amount)


def register(engine: ea.Engine, **account_options: Any) -> ea.Engine:
    engine.register("account", AccountBehavior, **account_options)
    engine.register("counter", CounterBehavior)
    return engine


async def record_events(schema: str, envelopes: list[ea.EventEnvelope], connection: Any) -> None:
    """A transactional projection handler: one row per event it sees, in the offset's
    transaction, so the table shows exactly what was delivered and how often."""
    await connection.executemany(
        f'INSERT INTO "{schema}".seen (projection, global_position, persistence_id, sequence) '
        "VALUES ($1, $2, $3, $4)",
        [("p", e.global_position, e.persistence_id, e.sequence_number) for e in envelopes],
    )


SEEN_TABLE = (
    'CREATE TABLE "{schema}".seen (id bigserial PRIMARY KEY, projection text, '
    "global_position bigint, persistence_id text, sequence bigint)"
)
