"""The command log: for the entity types that opt in, every handled command with its outcome,
in handling order, an accepted command's entry written atomically with its events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from identity_behaviors import (
    BACKENDS,
    ChangeEmail,
    MemberBehavior,
    Register,
    Rename,
    backend,
    member_keys,
)

import eventactors as ea
from eventactors.records import persistence_id_of

pytestmark = pytest.mark.timeout(60)


class Deposit(msgspec.Struct, frozen=True):
    amount: int


class DepositTwice(msgspec.Struct, frozen=True):
    amount: int


class Withdraw(msgspec.Struct, frozen=True):
    amount: int


class Noop(msgspec.Struct, frozen=True):
    pass


class Explode(msgspec.Struct, frozen=True):
    message: str


class Hang(msgspec.Struct, frozen=True):
    """Awaits forever: only the entity's command_timeout ends it."""


class Deposited(msgspec.Struct, frozen=True):
    amount: int


class Withdrawn(msgspec.Struct, frozen=True):
    amount: int


class Ledger(msgspec.Struct, frozen=True):
    balance: int = 0


class LedgerBehavior(ea.EventSourcedBehavior[Ledger]):
    commands = (Deposit, DepositTwice, Withdraw, Noop, Explode, Hang)
    events = (Deposited, Withdrawn)

    def initial_state(self) -> Ledger:
        return Ledger()

    async def handle_command(self, state: Ledger, command: Any) -> Any:
        match command:
            case Deposit(amount=amount):
                return Deposited(amount)
            case DepositTwice(amount=amount):
                return [Deposited(amount), Deposited(amount)]
            case Withdraw(amount=amount):
                if amount > state.balance:
                    raise ea.Rejected("insufficient funds", meta={"balance": state.balance})
                return Withdrawn(amount)
            case Noop():
                return None
            case Explode(message=message):
                raise RuntimeError(message)
            case Hang():
                await asyncio.Event().wait()
        raise AssertionError(command)

    def handle_event(self, state: Ledger, event: Any) -> Ledger:
        match event:
            case Deposited(amount=amount):
                return Ledger(state.balance + amount)
            case Withdrawn(amount=amount):
                return Ledger(state.balance - amount)
        raise AssertionError(event)


class Counter(msgspec.Struct, frozen=True):
    value: int = 0


class SetTo(msgspec.Struct, frozen=True):
    value: int


class CounterBehavior(ea.DurableStateBehavior[Counter]):
    commands = (SetTo, Noop, Explode)

    def initial_state(self) -> Counter:
        return Counter()

    def handle_command(self, state: Counter, command: Any) -> Counter | None:
        match command:
            case SetTo(value=value):
                if value < 0:
                    raise ea.Rejected("negative")
                return Counter(value)
            case Noop():
                return None
            case Explode(message=message):
                raise RuntimeError(message)
        raise AssertionError(command)


TIMEOUT = 0.05


@pytest.fixture(params=BACKENDS)
async def db(request, tmp_path):
    async with backend(request.param, tmp_path) as opened:
        yield opened


def bank(db) -> ea.Engine:
    engine = ea.Engine(store=db.open())
    engine.register("ledger", LedgerBehavior, command_log=True, command_timeout=TIMEOUT)
    engine.register("counter", CounterBehavior, command_log=True)
    engine.register("quiet", LedgerBehavior)  # keeps no log
    return engine


@pytest.fixture
async def engine(db):
    async with bank(db) as engine:
        yield engine


LEDGER = persistence_id_of("ledger", "l")
ANN = {"email": "ann@example.org"}
BOB = {"email": "bob@example.org"}


async def test_a_type_without_command_log_keeps_none(engine):
    await engine.send("quiet", "q", Deposit(5))
    await engine.send("quiet", "q", Noop())
    with pytest.raises(ea.Rejected):
        await engine.send("quiet", "q", Withdraw(50))
    with pytest.raises(RuntimeError):
        await engine.send("quiet", "q", Explode("boom"))
    with pytest.raises(ValueError, match=r"'quiet' keeps no command log.*command_log=True"):
        await engine.command_log("quiet", "q")
    assert await engine.store.read_commands("quiet|q") == []
    assert (await engine.store.read_stream("quiet|q"))[0].command_id  # events still carry it


async def test_an_accepted_command_entry_names_its_events(engine):
    reply = await engine.send(
        "ledger", "l", DepositTwice(5), correlation_id="corr-1", metadata={"user": "ann"}
    )
    before = datetime.now(UTC)
    (entry,) = await engine.command_log("ledger", "l")
    assert entry.outcome == ea.ACCEPTED
    assert entry.event_ids == tuple(envelope.event_id for envelope in reply.events)
    assert len(entry.event_ids) == 2
    assert all(envelope.command_id == entry.command_id for envelope in reply.events)
    assert entry.correlation_id == "corr-1"
    assert [envelope.correlation_id for envelope in reply.events] == ["corr-1", "corr-1"]
    assert entry.metadata == {"user": "ann"}
    assert all(envelope.metadata == {"user": "ann"} for envelope in reply.events)
    assert (entry.persistence_id, entry.entity_type, entry.entity_id) == (LEDGER, "ledger", "l")
    assert (entry.command_type, entry.command, entry.revision) == (
        "DepositTwice",
        DepositTwice(5),
        2,
    )
    assert entry.reason == ""
    assert msgspec.json.decode(entry.payload) == {"amount": 5}
    assert entry.timestamp.tzinfo is not None and entry.timestamp <= before
    stored = await engine.store.read_stream(LEDGER)
    assert [e.event_id for e in stored] == list(entry.event_ids)
    assert {e.command_id for e in stored} == {entry.command_id}


async def test_a_given_command_id_is_used_and_correlation_defaults_to_it(engine):
    reply = await engine.send("ledger", "l", Deposit(1), command_id="cmd-42")
    (entry,) = await engine.command_log("ledger", "l")
    assert (entry.command_id, entry.correlation_id) == ("cmd-42", "cmd-42")
    assert reply.events[0].command_id == "cmd-42"


async def test_an_accepted_no_op_is_logged_without_events(engine):
    await engine.send("ledger", "l", Deposit(5))
    reply = await engine.send("ledger", "l", Noop(), metadata={"why": "ping"})
    assert reply.events == ()
    entry = (await engine.command_log("ledger", "l"))[-1]
    assert (entry.outcome, entry.event_ids, entry.revision, entry.command) == (
        ea.ACCEPTED,
        (),
        1,
        Noop(),
    )
    assert entry.metadata == {"why": "ping"}


async def test_a_rejected_command_is_logged_with_its_reason(engine):
    await engine.send("ledger", "l", Deposit(5))
    with pytest.raises(ea.Rejected, match="insufficient funds"):
        await engine.send("ledger", "l", Withdraw(50), correlation_id="corr-r")
    entry = (await engine.command_log("ledger", "l"))[-1]
    assert (entry.outcome, entry.reason, entry.event_ids, entry.revision) == (
        ea.REJECTED,
        "insufficient funds",
        (),
        1,
    )
    assert (entry.command, entry.correlation_id) == (Withdraw(50), "corr-r")
    assert len(await engine.store.read_stream(LEDGER)) == 1


async def test_a_command_past_its_deadline_is_logged_as_timed_out(engine):
    with pytest.raises(ea.CommandTimeout) as timed_out:
        await engine.send("ledger", "l", Hang())
    (entry,) = await engine.command_log("ledger", "l")
    assert (entry.outcome, entry.reason, entry.event_ids, entry.revision) == (
        ea.TIMED_OUT,
        timed_out.value.reason,
        (),
        0,
    )
    assert "command_timeout" in entry.reason
    assert (await engine.send("ledger", "l", Deposit(1))).revision == 1


async def test_failures_are_logged_with_the_exception(engine):
    with pytest.raises(RuntimeError, match="boom"):
        await engine.send("ledger", "l", Explode("boom"))
    await engine.send("ledger", "l", Deposit(5))
    with pytest.raises(ea.ConcurrencyError):
        await engine.send("ledger", "l", Deposit(7), expected_revision=0)
    failed, accepted, stale = await engine.command_log("ledger", "l")
    assert (failed.outcome, failed.reason, failed.revision) == (ea.FAILED, "RuntimeError: boom", 0)
    assert accepted.outcome == ea.ACCEPTED
    assert stale.outcome == ea.FAILED
    assert stale.reason.startswith("ConcurrencyError: ") and "expected 0" in stale.reason
    assert (stale.command, stale.event_ids, stale.revision) == (Deposit(7), (), 1)
    assert len(await engine.store.read_stream(LEDGER)) == 1


async def test_entries_follow_the_handling_order(engine):
    commands = [
        Deposit(10),
        Withdraw(100),
        Noop(),
        Explode("x"),
        DepositTwice(1),
        Withdraw(3),
        Hang(),
        Deposit(2),
    ]
    results = await asyncio.gather(
        *(
            engine.send("ledger", "l", command, command_id=f"cmd-{n}")
            for n, command in enumerate(commands)
        ),
        engine.send("ledger", "l", Deposit(99), command_id="cmd-stale", expected_revision=0),
        return_exceptions=True,
    )
    outcomes = [
        r if isinstance(r, ea.Reply) else type(r).__name__ for r in results
    ]  # for the failure message
    log = await engine.command_log("ledger", "l")
    assert [e.command_id for e in log] == [f"cmd-{n}" for n in range(8)] + ["cmd-stale"], outcomes
    assert [e.outcome for e in log] == [
        ea.ACCEPTED,
        ea.REJECTED,
        ea.ACCEPTED,
        ea.FAILED,
        ea.ACCEPTED,
        ea.ACCEPTED,
        ea.TIMED_OUT,
        ea.ACCEPTED,
        ea.FAILED,
    ]
    assert [e.revision for e in log] == [1, 1, 1, 1, 3, 4, 4, 5, 5]
    assert [e.command for e in log] == [*commands, Deposit(99)]
    assert [e.command_id for e in await engine.command_log("ledger", "l", limit=3)] == [
        "cmd-0",
        "cmd-1",
        "cmd-2",
    ]
    # Every stored event belongs to exactly the accepted entry that names it.
    stored = await engine.store.read_stream(LEDGER)
    named = [event_id for entry in log for event_id in entry.event_ids]
    assert named == [e.event_id for e in stored]
    by_command = {entry.command_id: entry for entry in log}
    assert all(e.event_id in by_command[e.command_id].event_ids for e in stored)
    assert await engine.command_log("ledger", "nobody") == []


async def test_entries_survive_a_restart(db):
    async with bank(db) as engine:
        await engine.send("ledger", "l", Deposit(5), metadata={"k": "v"})
        with pytest.raises(ea.Rejected):
            await engine.send("ledger", "l", Withdraw(50))
        await engine.send("counter", "c", SetTo(3))
        before = await engine.command_log("ledger", "l")
        counter_before = await engine.command_log("counter", "c")
    async with bank(db) as engine:
        after = await engine.command_log("ledger", "l")
        assert after == before
        assert [e.command for e in after] == [Deposit(5), Withdraw(50)]
        assert await engine.command_log("counter", "c") == counter_before
        await engine.send("ledger", "l", Deposit(1))
        assert [e.revision for e in await engine.command_log("ledger", "l")] == [1, 1, 2]


async def test_durable_state_commands_are_logged(engine):
    await engine.send("counter", "c", SetTo(3), correlation_id="corr-c")
    await engine.send("counter", "c", Noop())
    with pytest.raises(ea.Rejected, match="negative"):
        await engine.send("counter", "c", SetTo(-1))
    with pytest.raises(RuntimeError, match="bang"):
        await engine.send("counter", "c", Explode("bang"))
    with pytest.raises(ea.ConcurrencyError):
        await engine.send("counter", "c", SetTo(9), expected_revision=0)
    await engine.send("counter", "c", SetTo(4))
    log = await engine.command_log("counter", "c")
    assert [(e.outcome, e.revision, e.event_ids) for e in log] == [
        (ea.ACCEPTED, 1, ()),
        (ea.ACCEPTED, 1, ()),
        (ea.REJECTED, 1, ()),
        (ea.FAILED, 1, ()),
        (ea.FAILED, 1, ()),
        (ea.ACCEPTED, 2, ()),
    ]
    assert [e.command for e in log] == [
        SetTo(3),
        Noop(),
        SetTo(-1),
        Explode("bang"),
        SetTo(9),
        SetTo(4),
    ]
    assert log[0].correlation_id == "corr-c"
    assert (log[2].reason, log[3].reason) == ("negative", "RuntimeError: bang")
    assert (await engine.store.get_state("counter|c")).revision == 2


async def test_a_failed_append_leaves_no_accepted_entry(db):
    async with bank(db) as engine:
        await engine.send("ledger", "l", Deposit(1))
        # Another writer appends to the stream behind the engine's back.
        intruder = db.open()
        foreign_id = str(uuid.uuid4())
        try:
            foreign = ea.EventRecord(
                event_id=foreign_id,
                persistence_id=LEDGER,
                entity_type="ledger",
                entity_id="l",
                sequence_number=2,
                event_type=engine.serializer.type_name(Deposited),
                payload=engine.serializer.encode(Deposited(100)),
                timestamp=datetime.now(UTC),
            )
            await intruder.append(LEDGER, [foreign], 1)
        finally:
            if intruder is not engine.store:
                await intruder.close()
        with pytest.raises(ea.ConcurrencyError):
            await engine.send("ledger", "l", Deposit(2), command_id="cmd-lost")
        log = await engine.command_log("ledger", "l")
        lost = [entry for entry in log if entry.command_id == "cmd-lost"]
        assert [entry.outcome for entry in lost] == [ea.FAILED], log
        assert lost[0].reason.startswith("ConcurrencyError: ")
        assert lost[0].event_ids == ()
        stored = await engine.store.read_stream(LEDGER)
        assert [e.event_id for e in stored][1:] == [foreign_id]
        assert all(e.command_id != "cmd-lost" for e in stored)
        # The entity re-reads the stream and carries on after the foreign event.
        reply = await engine.send("ledger", "l", Deposit(3))
        assert (reply.state, reply.revision) == (Ledger(104), 3)
    store = db.open()
    try:
        assert [e.outcome for e in await store.read_commands(LEDGER)] == [
            ea.ACCEPTED,
            ea.FAILED,
            ea.ACCEPTED,
        ]
    finally:
        await store.close()


async def test_a_refused_identifier_claim_leaves_no_accepted_entry(db):
    engine = ea.Engine(store=db.open())
    engine.register("member", MemberBehavior, identifiers=member_keys, command_log=True)
    async with engine:
        ann = (await engine.send_by("member", ANN, Register(ANN["email"], "Ann"))).entity_id
        await engine.send_by("member", BOB, Register(BOB["email"], "Bob"))
        with pytest.raises(ea.IdentifierTaken):
            await engine.send("member", ann, ChangeEmail(BOB["email"]), command_id="cmd-steal")
        log = await engine.command_log("member", ann)
        assert [(e.command_id, e.outcome) for e in log][1:] == [("cmd-steal", ea.FAILED)]
        assert log[1].reason.startswith("IdentifierTaken: ")
        assert (await engine.send("member", ann, Rename("Ann B."))).revision == 2
        assert [e.outcome for e in await engine.command_log("member", ann)] == [
            ea.ACCEPTED,
            ea.FAILED,
            ea.ACCEPTED,
        ]
