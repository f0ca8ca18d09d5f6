"""Fault: a slow store. Appends (or replay reads) take longer than callers are willing to wait.

The store is a real SQLite file behind `SlowStore`, which sleeps before each append. The
documented semantics: `send(timeout=)` bounds the caller's wait; a command already running
when its caller gives up may still complete (here its append had begun, so it does: it is
persisted and applied, never half-done), and one that had not started is dropped. The entity's
state afterwards is the fold of its stored events, and once the latency goes everything flows.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from eventactors_examples.bank.domain import AccountBehavior, Deposit, Deposited, Open, Withdraw
from fault_support import Ledger, assert_recovered, assert_state_is_the_fold
from slow_store import SlowStore
from waits import wait_until

import eventactors as ea

pytestmark = pytest.mark.timeout(60)

GAVE_UP = r"no reply from 'account\|{}' within 0\.2s; .*one already running may still complete"
LATENCY = 1.5  # far beyond the callers' 0.2 s, so their timeouts always come first


def slow_engine(path: Path, command_timeout: float | None = None) -> tuple[ea.Engine, SlowStore]:
    store = SlowStore(ea.SQLiteStore(path))
    engine = ea.Engine(store=store)
    engine.register("account", AccountBehavior, command_timeout=command_timeout)
    return engine, store


async def landed(engine: ea.Engine, ledger: Ledger, account: str, amount: int) -> None:
    """Adds to the ledger the one event of a command whose caller gave up: the store must
    hold it exactly once."""
    stream = await engine.store.read_stream(f"account|{account}")
    matching = [e for e in stream if e.event == Deposited(amount)]
    assert len(matching) == 1, [e.event for e in stream]
    ledger.add(matching[0].persistence_id, matching[0].sequence_number, matching[0].event_id)


async def test_callers_give_up_on_slow_appends_which_still_land_whole(tmp_path: Path) -> None:
    engine, store = slow_engine(tmp_path / "slow.db")
    ledger = Ledger()
    accounts = ["a", "b", "c"]
    async with engine:
        for account in [*accounts, "other"]:
            ledger.record(await engine.send("account", account, Open(account), timeout=30))

        store.latency = LATENCY
        # Each caller gives up while its command's append is under way.
        results = await asyncio.gather(
            *(engine.send("account", a, Deposit(5), timeout=0.2) for a in accounts),
            return_exceptions=True,
        )
        for account, result in zip(accounts, results, strict=True):
            assert isinstance(result, ea.CommandTimeout), result
            assert re.search(GAVE_UP.format(account), str(result)), result
        # A command queued behind a slow one, whose caller gives up before its turn: dropped.
        with pytest.raises(ea.CommandTimeout, match=GAVE_UP.format("a")):
            await engine.send("account", "a", Deposit(6), timeout=0.2)

        # The engine stays up: an idle entity answers at once, a rejection needs no write,
        # and a caller willing to wait gets its (slow) write.
        state, revision = await engine.get_state("account", "other", timeout=5)
        assert (state.owner, revision) == ("other", 1)
        with pytest.raises(ea.Rejected, match="insufficient funds"):
            await engine.send("account", "other", Withdraw(1), timeout=5)
        reply = ledger.record(await engine.send("account", "other", Deposit(1), timeout=30))
        assert reply.revision == 2

        await wait_until(lambda: store.appends_in_flight == 0, timeout=30)
        await wait_until(lambda: engine.statistics().busy_entities == 0, timeout=30)
        for account in accounts:
            await landed(engine, ledger, account, 5)  # persisted once, after its caller left
            state, revision = await assert_state_is_the_fold(
                engine, "account", account, AccountBehavior
            )
            assert (state.balance, revision) == (5, 2)  # and applied; the dropped 6 is not

        store.latency = 0.0
        for account in accounts:
            reply = ledger.record(await engine.send("account", account, Deposit(7), timeout=5))
            assert (reply.revision, reply.state.balance) == (3, 12)
        await assert_recovered(
            engine, ledger, AccountBehavior, "account", ea.SQLiteStore(tmp_path / "slow.db")
        )


async def test_command_timeout_bounds_the_handler_not_a_slow_append(tmp_path: Path) -> None:
    """`command_timeout` abandons a handler, persisting nothing; an append that has begun
    cannot be abandoned that way (it may already be written), so it runs to its end and the
    caller's own `timeout` is what bounds the wait."""
    engine, store = slow_engine(tmp_path / "slow-bounded.db", command_timeout=0.2)
    ledger = Ledger()
    async with engine:
        ledger.record(await engine.send("account", "a", Open("ann"), timeout=30))
        store.latency = 0.6
        reply = ledger.record(await engine.send("account", "a", Deposit(3), timeout=30))
        assert (reply.revision, reply.state.balance) == (2, 3)
        with pytest.raises(ea.CommandTimeout, match=GAVE_UP.format("a")):
            await engine.send("account", "a", Deposit(4), timeout=0.2)
        await wait_until(lambda: store.appends_in_flight == 0, timeout=30)
        await landed(engine, ledger, "a", 4)
        store.latency = 0.0
        assert ledger.record(await engine.send("account", "a", Deposit(5), timeout=5)).revision == 4
        await assert_recovered(
            engine, ledger, AccountBehavior, "account", ea.SQLiteStore(tmp_path / "slow-bounded.db")
        )


async def test_a_caller_who_gives_up_during_a_slow_recovery_leaves_the_entity_exact(
    tmp_path: Path,
) -> None:
    """The command was taken from the mailbox and waits for the replay: it may or may not
    run once the replay ends (today it runs). Either way it runs at most once, and the
    entity's state is the fold of its stored events."""
    path = tmp_path / "slow-replay.db"
    engine, store = slow_engine(path)
    ledger = Ledger()
    async with engine:
        ledger.record(await engine.send("account", "a", Open("ann"), timeout=30))
        ledger.record(await engine.send("account", "a", Deposit(1), timeout=30))
    async with engine:  # a new start: "a" must replay its events first
        store.read_latency = LATENCY
        with pytest.raises(ea.CommandTimeout, match=GAVE_UP.format("a")):
            await engine.send("account", "a", Deposit(2), timeout=0.2)
        # Another entity recovers (slowly) and works meanwhile.
        reply = ledger.record(await engine.send("account", "b", Open("bob"), timeout=30))
        assert reply.revision == 1
        await wait_until(lambda: engine.statistics().busy_entities == 0, timeout=30)
        store.read_latency = 0.0
        stream = await engine.store.read_stream("account|a")
        assert [e.event for e in stream[1:]] in ([Deposited(1)], [Deposited(1), Deposited(2)])
        if len(stream) == 3:
            await landed(engine, ledger, "a", 2)
        await assert_state_is_the_fold(engine, "account", "a", AccountBehavior)
        reply = ledger.record(await engine.send("account", "a", Deposit(4), timeout=5))
        assert reply.revision == len(stream) + 1
        await assert_recovered(engine, ledger, AccountBehavior, "account", ea.SQLiteStore(path))
