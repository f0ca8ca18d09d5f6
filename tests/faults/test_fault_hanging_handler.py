"""Fault: a command handler that hangs forever (it awaits an event nobody sets).

Only its own entity may suffer. Without `command_timeout` the hung command holds its entity
until the engine stops: later callers with a `timeout` get `CommandTimeout`, and `stop` with a
`drain_timeout` abandons the hung command and the ones queued behind it with
`EngineNotStarted`. With `command_timeout` the hung command fails with `CommandTimeout`,
nothing persisted, and the entity takes its next command. Meanwhile every other entity keeps
working under concurrent traffic, and afterwards the log is the acknowledged events.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from eventactors_examples.bank.domain import AccountBehavior, Deposit, Open
from fault_support import Ledger, assert_recovered

import eventactors as ea

pytestmark = pytest.mark.timeout(60)

OTHERS = [f"other-{n}" for n in range(12)]


class Hang(msgspec.Struct, frozen=True):
    pass


def hanging_behavior(entered: asyncio.Event, release: asyncio.Event) -> type[AccountBehavior]:
    """The bank's accounts, plus a command whose handler waits for `release`."""

    class Hanging(AccountBehavior):
        commands = (*AccountBehavior.commands, Hang)

        async def handle_command(self, state: Any, command: object) -> object:
            if isinstance(command, Hang):
                entered.set()
                await release.wait()
                return None
            return super().handle_command(state, command)

    return Hanging


async def traffic(engine: ea.Engine, ledger: Ledger) -> None:
    """Every other entity opens and takes deposits, all at once, within a deadline."""

    async def one(account: str) -> None:
        ledger.record(await engine.send("account", account, Open(account), timeout=30))
        for amount in range(1, 6):
            reply = await engine.send("account", account, Deposit(amount), timeout=30)
            assert ledger.record(reply).revision == amount + 1

    async with asyncio.timeout(45):
        await asyncio.gather(*(one(account) for account in OTHERS))


async def test_a_hung_handler_holds_only_its_entity_until_stop_abandons_it(
    tmp_path: Path,
) -> None:
    entered, never = asyncio.Event(), asyncio.Event()
    behavior = hanging_behavior(entered, never)
    engine = ea.Engine(store=ea.SQLiteStore(tmp_path / "hung.db"))
    engine.register("account", behavior)
    ledger = Ledger()
    await engine.start()
    try:
        ledger.record(await engine.send("account", "stuck", Open("s"), timeout=30))
        hung = asyncio.create_task(engine.send("account", "stuck", Hang()))
        queued = asyncio.create_task(engine.send("account", "stuck", Deposit(1)))
        await asyncio.wait_for(entered.wait(), 30)

        await traffic(engine, ledger)  # other entities work while it hangs
        assert not hung.done() and not queued.done()
        # Later callers to the hung entity hear of it, instead of waiting forever.
        with pytest.raises(ea.CommandTimeout, match=r"no reply from 'account\|stuck' within"):
            await engine.send("account", "stuck", Deposit(2), timeout=0.2)
        with pytest.raises(ea.CommandTimeout, match=r"'account\|stuck'"):
            await engine.get_state("account", "stuck", timeout=0.2)

        started = time.monotonic()
        await asyncio.wait_for(engine.stop(drain_timeout=0.5), 30)
        assert time.monotonic() - started < 20
    finally:
        never.set()  # only matters if the test failed before stop
        await engine.stop()
    with pytest.raises(ea.EngineNotStarted, match="was running; it was abandoned"):
        await hung
    with pytest.raises(ea.EngineNotStarted, match=r"before a command.*nothing was persisted"):
        await queued

    engine = ea.Engine(store=ea.SQLiteStore(tmp_path / "hung.db"))
    engine.register("account", behavior)
    async with engine:  # nothing of the hung entity's later commands was written
        reply = ledger.record(await engine.send("account", "stuck", Deposit(3), timeout=30))
        assert (reply.revision, reply.state.balance) == (2, 3)
        await assert_recovered(
            engine, ledger, behavior, "account", ea.SQLiteStore(tmp_path / "hung.db")
        )


async def test_command_timeout_abandons_each_hang_and_the_entity_carries_on(
    tmp_path: Path,
) -> None:
    entered, never = asyncio.Event(), asyncio.Event()
    behavior = hanging_behavior(entered, never)
    engine = ea.Engine(store=ea.SQLiteStore(tmp_path / "bounded.db"))
    engine.register("account", behavior, command_timeout=0.3)
    ledger = Ledger()
    async with engine:
        ledger.record(await engine.send("account", "stuck", Open("s"), timeout=30))
        hung = asyncio.create_task(engine.send("account", "stuck", Hang()))
        behind = asyncio.create_task(engine.send("account", "stuck", Deposit(5)))
        await asyncio.wait_for(entered.wait(), 30)
        await traffic(engine, ledger)

        with pytest.raises(
            ea.CommandTimeout,
            match=r"handle_command for 'account\|stuck' ran past command_timeout=0\.3s; "
            "nothing was persisted",
        ):
            await asyncio.wait_for(hung, 30)
        reply = ledger.record(await asyncio.wait_for(behind, 30))
        assert (reply.revision, reply.state.balance) == (2, 5)
        for _ in range(2):  # every hang is abandoned on its own; none wedges the mailbox
            with pytest.raises(ea.CommandTimeout, match=r"command_timeout=0\.3s"):
                await asyncio.wait_for(engine.send("account", "stuck", Hang()), 30)
        reply = ledger.record(await engine.send("account", "stuck", Deposit(1), timeout=30))
        assert reply.revision == 3
        await assert_recovered(
            engine, ledger, behavior, "account", ea.SQLiteStore(tmp_path / "bounded.db")
        )


async def test_a_command_timeout_is_not_reported_as_the_callers_timeout() -> None:
    entered, never = asyncio.Event(), asyncio.Event()
    engine = ea.Engine()
    engine.register("account", hanging_behavior(entered, never), command_timeout=0.3)
    async with engine:
        await engine.send("account", "stuck", Open("s"))
        with pytest.raises(ea.CommandTimeout) as raised:
            await engine.send("account", "stuck", Hang(), timeout=30)
        assert "within 30s" not in str(raised.value)
        assert "ran past command_timeout=0.3s; nothing was persisted" in str(raised.value)


# -- a handler that also swallows its cancellation ------------------------------------------


def stubborn_behavior(let_go: asyncio.Event) -> type[AccountBehavior]:
    """Hangs, and catches every CancelledError to carry on waiting: what a client library
    with a retry loop around its own awaits does. asyncio cannot force it to stop."""

    class Stubborn(AccountBehavior):
        commands = (*AccountBehavior.commands, Hang)

        async def handle_command(self, state: Any, command: object) -> object:
            if isinstance(command, Hang):
                while not let_go.is_set():
                    try:
                        await let_go.wait()
                    except asyncio.CancelledError:
                        continue
                return None
            return super().handle_command(state, command)

    return Stubborn


async def test_command_timeout_abandons_a_handler_that_swallows_its_cancellation() -> None:
    let_go = asyncio.Event()
    engine = ea.Engine()
    engine.register("account", stubborn_behavior(let_go), command_timeout=0.3)
    await engine.start()
    hung = behind = None
    try:
        await engine.send("account", "stuck", Open("s"))
        hung = asyncio.create_task(engine.send("account", "stuck", Hang()))
        behind = asyncio.create_task(engine.send("account", "stuck", Deposit(5)))
        done, _ = await asyncio.wait({hung}, timeout=5)
        assert hung in done, "the hung command was not abandoned 5 s after command_timeout=0.3s"
        with pytest.raises(ea.CommandTimeout, match=r"command_timeout=0\.3s"):
            await hung
        assert (await asyncio.wait_for(behind, 5)).revision == 2
    finally:
        let_go.set()
        await asyncio.gather(*(t for t in (hung, behind) if t), return_exceptions=True)
        await asyncio.wait_for(engine.stop(), 10)


async def test_stop_returns_within_its_drain_timeout_though_a_handler_swallows_cancellation() -> (
    None
):
    let_go = asyncio.Event()
    engine = ea.Engine()
    engine.register("account", stubborn_behavior(let_go))
    await engine.start()
    hung = asyncio.create_task(engine.send("account", "stuck", Hang()))
    stopping = None
    try:
        await asyncio.sleep(0)  # the command reaches its handler
        stopping = asyncio.create_task(engine.stop(drain_timeout=0.3))
        done, _ = await asyncio.wait({stopping}, timeout=5)
        assert stopping in done, "stop(drain_timeout=0.3) had not returned 5 s later"
        with pytest.raises(ea.EngineNotStarted, match="was running; it was abandoned"):
            await asyncio.wait_for(hung, 5)
    finally:
        let_go.set()
        await asyncio.gather(hung, return_exceptions=True)
        if stopping is not None:
            await asyncio.wait_for(stopping, 10)
