"""The given/when/then kit: what it passes, and that it fails, with a message naming what
differed, whenever the behavior does something else."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from cluster_behaviors import Add, Counter, CounterBehavior
from eventactors_examples.bank.domain import (
    Account,
    AccountBehavior,
    Deposit,
    Deposited,
    Open,
    Opened,
    Withdraw,
    Withdrawn,
)

import eventactors as ea
from eventactors.testing import BehaviorTestKit


async def test_given_when_then_for_an_event_sourced_behavior():
    kit = BehaviorTestKit(AccountBehavior, entity_id="acc-1")
    kit.given(Opened("ann"), Deposited(100))
    outcome = await kit.when(Withdraw(30))
    outcome.then_events(Withdrawn(30)).then_state(Account("ann", 70, True)).then_revision(3)
    assert outcome.envelopes[0].sequence_number == 3
    (await kit.when(Withdraw(500))).then_rejected(
        "insufficient funds", meta={"balance": 70, "requested": 500}
    ).then_no_events().then_state(Account("ann", 70, True)).then_revision(3)
    assert await kit.state() == (Account("ann", 70, True), 3)


async def test_each_step_builds_on_the_last_and_survives_a_replay():
    kit = BehaviorTestKit(AccountBehavior)
    (await kit.when(Open("bo"))).then_events(Opened("bo"))
    for amount in (1, 2, 3):
        await kit.when(Deposit(amount))
    (await kit.when(Deposit(4))).then_state(Account("bo", 10, True)).then_revision(5)
    assert len(await kit.store.read_stream(kit.persistence_id)) == 5


async def test_given_when_then_for_a_durable_state_behavior():
    kit = BehaviorTestKit(CounterBehavior)
    kit.given_state(Counter(5), revision=3)
    (await kit.when(Add(2))).then_state(Counter(7)).then_revision(4).then_no_events()


async def test_every_mismatch_fails_with_what_was_expected_and_what_happened():
    kit = BehaviorTestKit(AccountBehavior).given(Opened("ann"), Deposited(10))
    outcome = await kit.when(Withdraw(3))
    with pytest.raises(AssertionError, match=r"persisted \[Withdrawn\(amount=3\)\], expected"):
        outcome.then_events(Withdrawn(4))
    with pytest.raises(AssertionError, match="the state is"):
        outcome.then_state(Account("ann", 99, True))
    with pytest.raises(AssertionError, match="revision is 3, expected 2"):
        outcome.then_revision(2)
    with pytest.raises(AssertionError, match="was not rejected: it persisted"):
        outcome.then_rejected()
    rejected = await kit.when(Withdraw(1000))
    with pytest.raises(AssertionError, match="expected events from Withdraw, but it raised"):
        rejected.then_events()
    with pytest.raises(AssertionError, match="rejected with 'insufficient funds', expected 'no'"):
        rejected.then_rejected("no")
    with pytest.raises(AssertionError, match="rejected with meta"):
        rejected.then_rejected("insufficient funds", meta={})
    with pytest.raises(AssertionError, match="expected to raise KeyError"):
        rejected.then_error(KeyError)


async def test_the_runtime_checks_apply_as_in_production():
    class Undeclared(msgspec.Struct):
        pass

    class Sloppy(ea.EventSourcedBehavior[Account]):
        events = (Opened,)

        def initial_state(self) -> Account:
            return Account()

        async def handle_command(self, state: Account, command: object) -> object:
            if command == "hang":
                await asyncio.sleep(10)
            return Undeclared()

        def handle_event(self, state: Account, event: object) -> Account:
            return state

    kit = BehaviorTestKit(Sloppy, command_timeout=0.05)
    (await kit.when("anything")).then_error(ea.SerializationError, "not declared")
    (await kit.when("hang")).then_error(ea.CommandTimeout)
    (await BehaviorTestKit(AccountBehavior).when(object())).then_error(ea.UnknownCommand)


def test_bad_givens_are_refused_by_name():
    with pytest.raises(TypeError, match="Withdraw is not declared"):
        BehaviorTestKit(AccountBehavior).given(Withdraw(1))
    with pytest.raises(TypeError, match="use given_state"):
        BehaviorTestKit(CounterBehavior).given(Add(1))
    with pytest.raises(TypeError, match="use given"):
        BehaviorTestKit(AccountBehavior).given_state(Account())
    with pytest.raises(ValueError, match="revision"):
        BehaviorTestKit(CounterBehavior).given_state(Counter(), revision=0)
    with pytest.raises(TypeError, match="not an EventSourcedBehavior"):
        BehaviorTestKit(dict)  # type: ignore[arg-type]


async def test_a_given_after_the_first_command_is_refused():
    kit = BehaviorTestKit(AccountBehavior)
    await kit.when(Open("ann"))
    with pytest.raises(RuntimeError, match="before the first when"):
        kit.given(Deposited(1))


async def test_a_long_scenario_keeps_every_step():
    kit = BehaviorTestKit(AccountBehavior).given(Opened("ann"))
    for _ in range(50):
        await kit.when(Deposit(1))
    assert await kit.state() == (Account("ann", 50, True), 51)
