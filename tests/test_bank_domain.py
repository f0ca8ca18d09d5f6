"""The bank example's rules, one behavior at a time, with the testkit: no engine, no store."""

from __future__ import annotations

import pytest
from eventactors_examples.bank.domain import (
    Account,
    AccountBehavior,
    Close,
    Closed,
    Deposit,
    Deposited,
    Open,
    Opened,
    Withdraw,
    Withdrawn,
)

from eventactors.testing import BehaviorTestKit


@pytest.fixture
def opened() -> BehaviorTestKit[Account]:
    return BehaviorTestKit(AccountBehavior, entity_id="acc-1").given(Opened("ann"))


async def test_an_account_opens_once_and_needs_an_owner():
    kit = BehaviorTestKit(AccountBehavior)
    (await kit.when(Open(""))).then_rejected("an account needs an owner").then_revision(0)
    (await kit.when(Open("ann"))).then_events(Opened("ann")).then_state(Account("ann", 0, True))
    (await kit.when(Open("bo"))).then_rejected("account already exists", meta={"owner": "ann"})


async def test_deposits_and_withdrawals_move_the_balance(opened):
    (await opened.when(Deposit(100))).then_events(Deposited(100))
    (await opened.when(Withdraw(40))).then_events(Withdrawn(40)).then_state(
        Account("ann", 60, True)
    )


@pytest.mark.parametrize("command", [Deposit(0), Deposit(-5), Withdraw(0)])
async def test_amounts_must_be_positive(opened, command):
    (await opened.when(command)).then_rejected("amount must be positive").then_no_events()


async def test_the_balance_never_goes_below_zero(opened):
    opened_with_money = opened.given(Deposited(10))
    (await opened_with_money.when(Withdraw(11))).then_rejected(
        "insufficient funds", meta={"balance": 10, "requested": 11}
    )


async def test_only_an_empty_account_closes_and_then_takes_nothing(opened):
    (await opened.when(Deposit(5))).then_revision(2)
    (await opened.when(Close())).then_rejected("balance must be zero to close")
    await opened.when(Withdraw(5))
    (await opened.when(Close())).then_events(Closed())
    (await opened.when(Deposit(1))).then_rejected("account acc-1 is not open")
