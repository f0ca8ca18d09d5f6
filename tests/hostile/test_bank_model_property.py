"""Property: random bank commands, across engine restarts and passivation, always give the
replies and states a plain model of the bank's rules gives.

Each example runs a list of steps in one event loop: commands to a few accounts (rejected
ones included: overdrafts, deposits to unopened or closed accounts, amounts that are not
positive, a second opening), restarts (the engine stops, a new one opens the same database),
and passivations (the entity leaves memory and is recovered from its snapshot and events).
After every step the reply (state and revision, or the rejection's reason) and `get_state`
must equal the model's; at the end, a fresh engine recovers every account as the model has
it, and each stream holds exactly the accepted events. Sync tests that call `asyncio.run` per
example, since hypothesis examples and async fixtures do not mix.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bank_model import BankModel, Refused, as_balance
from eventactors_examples.bank.domain import AccountBehavior, Close, Deposit, Open, Withdraw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from postgres_support import DSN, drop_schema, new_schema_name
from waits import wait_until

import eventactors as ea

pytestmark = pytest.mark.timeout(120)

ACCOUNTS = ("a", "b", "c")
PASSIVATE_AFTER = 0.05
accounts = st.sampled_from(ACCOUNTS)
amounts = st.integers(min_value=-2, max_value=40)
commands = st.one_of(
    st.builds(Open, st.sampled_from(["ann", "bob", ""])),
    st.builds(Deposit, amounts),
    st.builds(Deposit, amounts),
    st.builds(Withdraw, amounts),
    st.builds(Withdraw, amounts),
    st.builds(Close),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("send"), accounts, commands),
        st.tuples(st.just("send"), accounts, commands),
        st.tuples(st.just("send"), accounts, commands),
        st.tuples(st.just("restart")),
        st.tuples(st.just("passivate"), accounts),
    ),
    min_size=3,
    max_size=40,
)
snapshot_every = st.sampled_from([None, 1, 2, 3, 5])

EVENT_OF = {Open: "Opened", Deposit: "Deposited", Withdraw: "Withdrawn", Close: "Closed"}

OpenStore = Callable[[], ea.Store]


async def started(open_store: OpenStore, every: int | None) -> ea.Engine:
    engine = ea.Engine(store=open_store())
    engine.register(
        "account", AccountBehavior, snapshot_every=every, passivate_after=PASSIVATE_AFTER
    )
    await engine.start()
    return engine


async def check_state(engine: ea.Engine, model: BankModel, account: str) -> None:
    state, revision = await engine.get_state("account", account, timeout=10)
    assert (as_balance(state), revision) == model.state_of(account), account


async def send(engine: ea.Engine, model: BankModel, account: str, command: Any) -> None:
    expected = model.handle(account, command)
    try:
        reply = await engine.send("account", account, command, timeout=10)
    except ea.Rejected as rejected:
        assert expected == Refused(rejected.reason), (account, command)
    else:
        assert not isinstance(expected, Refused), (account, command, expected)
        assert (as_balance(reply.state), reply.revision) == expected, (account, command)
        assert [envelope.event_type for envelope in reply.events] == [EVENT_OF[type(command)]]
    await check_state(engine, model, account)


async def passivate(engine: ea.Engine, model: BankModel, account: str) -> None:
    """Brings the entity into memory, waits until it is passivated, then reads it again:
    recovered from the store (its latest snapshot and the events after it)."""
    await check_state(engine, model, account)
    await wait_until(lambda: not engine.is_live("account", account), timeout=10)
    await check_state(engine, model, account)


async def run(open_store: OpenStore, plan: list[tuple[Any, ...]], every: int | None) -> None:
    model = BankModel()
    engine = await started(open_store, every)
    try:
        for step in plan:
            match step:
                case ("send", account, command):
                    await send(engine, model, account, command)
                case ("passivate", account):
                    await passivate(engine, model, account)
                case ("restart",):
                    await engine.stop()
                    engine = await started(open_store, every)
                    for account in ACCOUNTS:
                        await check_state(engine, model, account)
        await engine.stop()
        engine = await started(open_store, every)
        for account in ACCOUNTS:
            await check_state(engine, model, account)
            stream = await engine.store.read_stream(f"account|{account}")
            assert [e.sequence_number for e in stream] == list(
                range(1, model.state_of(account)[1] + 1)
            )
    finally:
        await engine.stop()


SETTINGS = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


@settings(max_examples=150, **SETTINGS)
@given(plan=steps, every=snapshot_every)
def test_the_bank_on_sqlite_agrees_with_its_model(plan, every):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bank.db"
        asyncio.run(run(lambda: ea.SQLiteStore(path, synchronous="NORMAL"), plan, every))


@settings(max_examples=20, **SETTINGS)
@given(plan=steps, every=snapshot_every)
def test_the_bank_on_postgres_agrees_with_its_model(plan, every):
    async def in_a_schema() -> None:
        schema = new_schema_name()
        try:
            await run(lambda: ea.PostgresStore(DSN, schema=schema), plan, every)
        finally:
            await drop_schema(schema)

    asyncio.run(in_a_schema())


def test_the_model_follows_the_rules():
    """The model itself, on the cases the bank's own tests name."""
    model = BankModel()
    assert model.handle("a", Deposit(5)) == Refused("account a is not open")
    assert model.handle("a", Open("")) == Refused("an account needs an owner")
    assert model.handle("a", Open("ann"))[1] == 1
    assert model.handle("a", Open("bob")) == Refused("account already exists")
    assert model.handle("a", Deposit(0)) == Refused("amount must be positive")
    assert model.handle("a", Deposit(10))[1] == 2
    assert model.handle("a", Withdraw(11)) == Refused("insufficient funds")
    assert model.handle("a", Close()) == Refused("balance must be zero to close")
    assert model.handle("a", Withdraw(10))[1] == 3
    state, revision = model.handle("a", Close())
    assert (state.is_open, state.is_closed, revision) == (False, True, 4)
    assert model.handle("a", Deposit(1)) == Refused("account a is not open")
