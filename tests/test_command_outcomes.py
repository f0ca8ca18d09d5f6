"""Every command counts once in `statistics()`, by how it ended for its caller, and its span
says the same: a `send_by` creation that lost the race and went on to the winner, a caller's
timeout behind a stuck entity, and the commands the engine drops or abandons when it stops."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from opentelemetry.trace import StatusCode
from otel_support import Otel, outcome, private_otel
from test_statistics import Hold, LedgerBehavior, Put
from waits import wait_until

import eventactors as ea

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def otel() -> Iterator[Otel]:
    with private_otel() as providers:
        yield providers


class Join(msgspec.Struct, frozen=True):
    email: str


class Joined(msgspec.Struct, frozen=True):
    email: str


class Member(msgspec.Struct, frozen=True):
    email: str = ""


class MemberBehavior(ea.EventSourcedBehavior[Member]):
    """Each Join waits until `racers` Joins have begun, so that concurrent creations with the
    same keys both reach the store before either has claimed them."""

    events = (Joined,)
    racers = 2
    entered = 0
    all_in: asyncio.Event

    def initial_state(self) -> Member:
        return Member()

    async def handle_command(self, state: Member, command: Any) -> Any:
        cls = type(self)
        cls.entered += 1
        if cls.entered >= cls.racers:
            cls.all_in.set()
        await cls.all_in.wait()
        return None if state.email else Joined(command.email)

    def handle_event(self, state: Member, event: Joined) -> Member:
        return Member(event.email)


def member_engine(otel: Otel, store: ea.Store | None = None) -> ea.Engine:
    behavior = type("Racing", (MemberBehavior,), {"all_in": asyncio.Event()})
    engine = ea.Engine(store=store)
    engine.register("member", behavior, identifiers=lambda state: {"email": state.email})
    otel.instrument(engine)
    return engine


def outcomes(otel: Otel, name: str) -> list[Any]:
    return sorted(outcome(span) for span in otel.finished(name))


async def test_two_creations_racing_for_the_same_keys_count_two_accepted_and_no_error(
    otel: Otel,
) -> None:
    async with member_engine(otel) as engine:
        replies = await asyncio.gather(
            *(engine.send_by("member", {"email": "a@x"}, Join("a@x")) for _ in range(2))
        )
        assert len({reply.entity_id for reply in replies}) == 1
        assert engine.statistics().commands == ea.CommandCounts(accepted=2)
    spans = otel.finished("member Join")
    assert outcomes(otel, "member Join") == ["accepted", "accepted", "retried"]
    assert all(span.status.status_code is StatusCode.UNSET for span in spans)


async def test_a_create_only_call_that_loses_the_race_counts_one_error(otel: Otel) -> None:
    async with member_engine(otel) as engine:
        results = await asyncio.gather(
            *(engine.send_by("member", {"email": "a@x"}, Join("a@x"), create=True) for _ in "ab"),
            return_exceptions=True,
        )
        assert sorted(type(result).__name__ for result in results) == ["IdentifierTaken", "Reply"]
        assert engine.statistics().commands == ea.CommandCounts(accepted=1, error=1)
        with pytest.raises(ea.IdentifierTaken):  # refused before any entity runs it
            await engine.send_by("member", {"email": "a@x"}, Join("a@x"), create=True)
        assert engine.statistics().commands == ea.CommandCounts(accepted=1, error=2)
    assert outcomes(otel, "member Join") == ["accepted", "error"]


class StaleIndex(ea.MemoryStore):
    """An identifier index that names, every time, an entity that does not hold the keys:
    as if they changed hands between each lookup and the command's turn."""

    async def find_entity(self, entity_type: str, identifiers: str) -> str | None:
        return "gone"


async def test_keys_that_keep_moving_fail_the_call_once(otel: Otel) -> None:
    async with member_engine(otel, StaleIndex()) as engine:
        with pytest.raises(ea.IdentifierTaken, match="kept changing hands"):
            await engine.send_by("member", {"email": "a@x"}, Join("a@x"))
        assert engine.statistics().commands == ea.CommandCounts(error=1)
    assert outcomes(otel, "member Join") == ["retried"] * 3


async def test_a_callers_timeout_counts_at_once_though_the_entity_stays_stuck(
    otel: Otel,
) -> None:
    engine = ea.Engine()
    engine.register("ledger", LedgerBehavior)
    otel.instrument(engine)
    async with engine:
        gate = asyncio.Event()
        held = asyncio.ensure_future(engine.send("ledger", "stuck", Hold(gate)))
        try:
            await wait_until(lambda: engine.statistics().busy_entities == 1)
            for _ in range(5):
                with pytest.raises(ea.CommandTimeout):
                    await engine.send("ledger", "stuck", Put(), timeout=0.01)
            counted, traced = engine.statistics().commands, outcomes(otel, "ledger Put")
        finally:
            gate.set()  # a failure must not leave the stop waiting for the Hold
        assert counted == ea.CommandCounts(timeout=5)
        assert traced == ["timeout"] * 5
        await held
        await wait_until(lambda: engine.statistics().busy_entities == 0)
        assert engine.statistics().commands == ea.CommandCounts(accepted=1, timeout=5)
    assert len(otel.finished("ledger Put")) == 5


async def test_commands_dropped_at_stop_count_as_errors_and_their_timeouts_once(
    otel: Otel,
) -> None:
    engine = ea.Engine()
    engine.register("ledger", LedgerBehavior)
    otel.instrument(engine)
    await engine.start()
    held = asyncio.ensure_future(engine.send("ledger", "x", Hold(asyncio.Event())))
    await wait_until(lambda: engine.statistics().busy_entities == 1)
    given_up = asyncio.ensure_future(engine.send("ledger", "x", Put(), timeout=0.01))
    queued = asyncio.ensure_future(engine.send("ledger", "x", Put()))
    with pytest.raises(ea.CommandTimeout):
        await given_up
    await engine.stop(drain_timeout=0.01)
    for call in (held, queued):
        with pytest.raises(ea.EngineNotStarted):
            await call
    assert engine.statistics().commands == ea.CommandCounts(error=2, timeout=1)
    assert outcomes(otel, "ledger Put") == ["error", "timeout"]
    assert outcomes(otel, "ledger Hold") == ["error"]
    (dropped,) = [span for span in otel.finished("ledger Put") if outcome(span) == "error"]
    assert dropped.status.description is not None
    assert "before a command to 'ledger|x' ran" in dropped.status.description


async def test_a_behavior_that_cannot_be_made_fails_its_commands_as_counted_errors(
    otel: Otel,
) -> None:
    class Broken(LedgerBehavior):
        broken = False

        def __init__(self) -> None:
            if Broken.broken:
                raise RuntimeError("no behavior today")

    engine = ea.Engine()
    engine.register("ledger", Broken)  # makes one to probe it
    otel.instrument(engine)
    Broken.broken = True
    async with engine:
        with pytest.raises(RuntimeError, match="no behavior today"):
            await engine.send("ledger", "l", Put())
        assert engine.statistics().commands == ea.CommandCounts(error=1)
    (span,) = otel.finished("ledger Put")
    assert outcome(span) == "error" and span.status.status_code is StatusCode.ERROR


class Hang(msgspec.Struct, frozen=True):
    pass


def stubborn_ledger(let_go: asyncio.Event, finished: asyncio.Event) -> type[LedgerBehavior]:
    """A Hang that catches every cancellation and carries on waiting: stop() can only
    abandon it; once let go, it returns, long after its caller had an error."""

    class Stubborn(LedgerBehavior):
        async def handle_command(self, state: Any, command: Any) -> Any:
            if not isinstance(command, Hang):
                return await super().handle_command(state, command)
            while not let_go.is_set():
                try:
                    await let_go.wait()
                except asyncio.CancelledError:
                    continue
            finished.set()
            return None  # accepted, with nothing to write, long after its caller had an error

    return Stubborn


async def test_commands_of_an_abandoned_handler_count_once_even_when_it_returns_later(
    otel: Otel,
) -> None:
    let_go, finished = asyncio.Event(), asyncio.Event()
    engine = ea.Engine()
    engine.register("ledger", stubborn_ledger(let_go, finished))
    otel.instrument(engine)
    await engine.start()
    hung = asyncio.ensure_future(engine.send("ledger", "stuck", Hang()))
    try:
        await wait_until(lambda: engine.statistics().busy_entities == 1)
        given_up = asyncio.ensure_future(engine.send("ledger", "stuck", Put(), timeout=0.01))
        queued = asyncio.ensure_future(engine.send("ledger", "stuck", Put()))
        with pytest.raises(ea.CommandTimeout):
            await given_up
        (task,) = [t for t in asyncio.all_tasks() if t.get_name() == "entity ledger|stuck"]
        await asyncio.wait_for(engine.stop(drain_timeout=0.01), 10)  # abandons the task
        for call in (hung, queued):
            with pytest.raises(ea.EngineNotStarted):
                await call
        counted = ea.CommandCounts(error=2, timeout=1)
        assert engine.statistics().commands == counted
        assert outcomes(otel, "ledger Hang") == ["error"]  # ended when abandoned
    finally:
        let_go.set()  # else the stubborn task outlives the test's event loop
    await finished.wait()
    await asyncio.wait_for(task, 5)
    assert engine.statistics().commands == counted  # its late return counts nothing more
    assert outcomes(otel, "ledger Hang") == ["error"]
    assert outcomes(otel, "ledger Put") == ["error", "timeout"]
