"""Atomic validation against an external system (issue 6, part 1), on every store.

A command handler may await an external check before it decides. While it waits, later
commands to the same entity queue behind it; other entities go on. An accepted event is written
only once the check accepts it, so it lands after everything written meanwhile; a rejection,
a timeout, a failing check or a stopping engine writes nothing.
"""

from __future__ import annotations

import asyncio

import pytest
from validation_behaviors import (
    BACKENDS,
    Auction,
    Bid,
    OpenStore,
    Validator,
    auction_behavior,
    backend,
    placed,
    stored_events,
)
from waits import wait_until

import eventactors as ea

pytestmark = pytest.mark.timeout(60)

COMMAND_TIMEOUT = 0.5  # long enough for a decided check on a loaded machine


@pytest.fixture(params=BACKENDS)
async def open_store(request: pytest.FixtureRequest, tmp_path):
    async with backend(request.param, tmp_path) as opener:
        yield opener


def new_engine(open_store: OpenStore, validator: Validator, **options) -> ea.Engine:
    engine = ea.Engine(store=open_store())
    engine.register("auction", auction_behavior(validator), **options)
    return engine


async def decided(
    engine: ea.Engine, validator: Validator, entity_id: str, bid: Bid, how: str = "accept"
) -> ea.Reply:
    """Sends `bid`, waits for its check to start, and accepts it (or rejects it, `how="reject"`)."""
    sending = asyncio.create_task(engine.send("auction", entity_id, bid))
    validation = await validator.next()
    assert (validation.entity_id, validation.command) == (entity_id, bid)
    if how == "accept":
        validation.accept()
    else:
        validation.reject("refused", {"highest": validation.state.highest})
    return await asyncio.wait_for(sending, 10)


async def test_an_accepted_event_is_written_after_its_check_as_the_last_event(open_store):
    validator = Validator()
    async with new_engine(open_store, validator) as engine:
        await decided(engine, validator, "lot1", Bid("ann", 10))
        slow = asyncio.create_task(engine.send("auction", "lot1", Bid("bob", 20)))
        check = await validator.next()
        assert check.state == Auction(tuple(placed(("ann", 10))), 10)  # the state it decides on
        # While the check runs, nothing of it is written, and another lot's bid is.
        other = await decided(engine, validator, "lot2", Bid("cy", 5))
        assert await engine.store.highest_sequence_number("auction|lot1") == 1
        assert not slow.done()
        check.accept()
        reply = await asyncio.wait_for(slow, 10)

        assert reply.revision == 2
        assert reply.state == Auction(tuple(placed(("ann", 10), ("bob", 20))), 20)
        assert await engine.get_state("auction", "lot1") == (reply.state, 2)
        stream = [envelope async for envelope in engine.events("auction", "lot1")]
        assert [envelope.event for envelope in stream] == placed(("ann", 10), ("bob", 20))
        assert [stream[-1].event_id] == [envelope.event_id for envelope in reply.events]
        # It is the last event of the whole log too: written at the decision, not the request.
        log = await engine.store.read_all(0, 100)
        assert log[-1].event_id == reply.events[0].event_id
        assert log[-1].global_position > other.events[0].global_position


async def test_a_rejected_event_returns_its_reason_and_meta_and_is_not_stored(open_store):
    validator = Validator()
    async with new_engine(open_store, validator) as engine:
        await decided(engine, validator, "lot1", Bid("ann", 10))
        sending = asyncio.create_task(engine.send("auction", "lot1", Bid("bob", 5)))
        check = await validator.next()
        check.reject("outbid", {"highest": check.state.highest, "bidder": "ann"})
        with pytest.raises(ea.Rejected) as refused:
            await asyncio.wait_for(sending, 10)
        assert refused.value.reason == "outbid"
        assert refused.value.meta == {"highest": 10, "bidder": "ann"}

        assert await stored_events(engine, "auction", "lot1") == placed(("ann", 10))
        state, revision = await engine.get_state("auction", "lot1")
        assert (state, revision) == (Auction(tuple(placed(("ann", 10))), 10), 1)
        reply = await decided(engine, validator, "lot1", Bid("cy", 30))
        assert reply.revision == 2  # no gap where the rejected bid would have been
        assert await stored_events(engine, "auction", "lot1") == placed(("ann", 10), ("cy", 30))


async def test_a_command_sent_during_validation_waits_while_other_entities_proceed(open_store):
    validator = Validator()
    async with new_engine(open_store, validator) as engine:
        first = asyncio.create_task(engine.send("auction", "lot1", Bid("ann", 10)))
        check = await validator.next()
        second = asyncio.create_task(engine.send("auction", "lot1", Bid("bob", 20)))
        await wait_until(lambda: engine.statistics().queued_messages == 1)

        # Another entity's command completes, check and write, while lot1's check hangs.
        other = await decided(engine, validator, "lot2", Bid("cy", 5))
        assert other.revision == 1
        # The second command's handler has not started: its check was never asked for.
        assert validator.started == [("lot1", Bid("ann", 10)), ("lot2", Bid("cy", 5))]
        assert validator.pending.empty()
        assert not first.done() and not second.done()
        assert engine.statistics().queued_messages == 1

        check.accept()
        assert (await asyncio.wait_for(first, 10)).revision == 1
        then = await validator.next()  # only now does the second one start
        assert then.command == Bid("bob", 20)
        assert then.state == Auction(tuple(placed(("ann", 10))), 10)  # it sees the first's event
        then.accept()
        assert (await asyncio.wait_for(second, 10)).revision == 2
        assert await stored_events(engine, "auction", "lot1") == placed(("ann", 10), ("bob", 20))


async def test_stopping_the_engine_during_validation_discards_the_event(open_store):
    validator = Validator()
    engine = new_engine(open_store, validator)
    await engine.start()
    try:
        await decided(engine, validator, "lot1", Bid("ann", 10))
        hanging = asyncio.create_task(engine.send("auction", "lot1", Bid("bob", 20)))
        check = await validator.next()  # never decided
        queued = asyncio.create_task(engine.send("auction", "lot1", Bid("cy", 30)))
        await wait_until(lambda: engine.statistics().queued_messages == 1)
    finally:
        await engine.stop(drain_timeout=0.05)

    with pytest.raises(ea.EngineNotStarted, match=r"'auction\|lot1' was running; it was abandoned"):
        await asyncio.wait_for(hanging, 10)
    with pytest.raises(ea.EngineNotStarted, match=r"before .* ran; nothing was persisted"):
        await asyncio.wait_for(queued, 10)
    assert check.decision.cancelled()
    assert validator.abandoned == [("lot1", Bid("bob", 20))]
    assert ("lot1", Bid("cy", 30)) not in validator.started
    with pytest.raises(ea.EngineNotStarted):
        await engine.send("auction", "lot1", Bid("dan", 40))

    validator = Validator()
    async with new_engine(open_store, validator) as engine:
        assert await stored_events(engine, "auction", "lot1") == placed(("ann", 10))
        assert (await engine.get_state("auction", "lot1"))[1] == 1
        reply = await decided(engine, validator, "lot1", Bid("dan", 40))
        assert reply.revision == 2
        assert reply.state == Auction(tuple(placed(("ann", 10), ("dan", 40))), 40)


@pytest.mark.parametrize("snapshot_every", [None, 2])
async def test_a_restart_restores_every_accepted_event(open_store, snapshot_every):
    validator = Validator()
    outcomes = [
        ("lot1", Bid("ann", 10), "accept"),
        ("lot2", Bid("bob", 7), "accept"),
        ("lot1", Bid("cy", 5), "reject"),
        ("lot1", Bid("dan", 15), "accept"),
        ("lot2", Bid("eve", 3), "reject"),
        ("lot1", Bid("fay", 25), "accept"),
        ("lot2", Bid("gus", 9), "accept"),
    ]
    async with new_engine(open_store, validator, snapshot_every=snapshot_every) as engine:
        for entity_id, bid, how in outcomes:
            if how == "accept":
                await decided(engine, validator, entity_id, bid)
            else:
                with pytest.raises(ea.Rejected, match="refused"):
                    await decided(engine, validator, entity_id, bid, how)
        before = {lot: await engine.get_state("auction", lot) for lot in ("lot1", "lot2")}

    expected = {
        "lot1": placed(("ann", 10), ("dan", 15), ("fay", 25)),
        "lot2": placed(("bob", 7), ("gus", 9)),
    }
    validator = Validator()
    async with new_engine(open_store, validator, snapshot_every=snapshot_every) as engine:
        for lot, events in expected.items():
            assert await stored_events(engine, "auction", lot) == events
            state, revision = await engine.get_state("auction", lot)
            assert (state, revision) == before[lot]
            assert (state.bids, state.highest, revision) == (
                tuple(events), max(e.amount for e in events), len(events)
            )  # fmt: skip
        sending = asyncio.create_task(engine.send("auction", "lot1", Bid("hal", 30)))
        check = await validator.next()
        assert check.state == before["lot1"][0]  # the restored state is what is validated
        check.accept()
        assert (await asyncio.wait_for(sending, 10)).revision == 4


async def test_scopes_are_isolated_between_entities_and_entity_types(open_store):
    auctions, sales = Validator(), Validator()
    engine = ea.Engine(store=open_store())
    engine.register("auction", auction_behavior(auctions))
    engine.register("sale", auction_behavior(sales))
    async with engine:
        # Three scopes' checks are pending at once; each is decided on its own.
        a = asyncio.create_task(engine.send("auction", "a", Bid("ann", 10)))
        a_check = await auctions.next()
        b = asyncio.create_task(engine.send("auction", "b", Bid("bob", 20)))
        b_check = await auctions.next()
        sale = asyncio.create_task(engine.send("sale", "a", Bid("cy", 30)))
        sale_check = await sales.next()
        assert [c.entity_id for c in (a_check, b_check, sale_check)] == ["a", "b", "a"]
        assert all(c.state == Auction() for c in (a_check, b_check, sale_check))
        sale_check.accept()
        assert (await asyncio.wait_for(sale, 10)).revision == 1
        b_check.reject("no", {"highest": 0})
        with pytest.raises(ea.Rejected):
            await asyncio.wait_for(b, 10)
        a_check.accept()
        assert (await asyncio.wait_for(a, 10)).revision == 1

        # Each check sees its own entity's state and nothing of the others'.
        highest = {}
        for entity_type, entity_id, validator, amount in [
            ("auction", "a", auctions, 11),
            ("auction", "b", auctions, 21),
            ("sale", "a", sales, 31),
        ]:
            sending = asyncio.create_task(engine.send(entity_type, entity_id, Bid("dan", amount)))
            check = await validator.next()
            highest[entity_type, entity_id] = check.state.highest
            check.accept()
            await asyncio.wait_for(sending, 10)
        assert highest == {("auction", "a"): 10, ("auction", "b"): 0, ("sale", "a"): 30}

        assert await stored_events(engine, "auction", "a") == placed(("ann", 10), ("dan", 11))
        assert await stored_events(engine, "auction", "b") == placed(("dan", 21))
        assert await stored_events(engine, "sale", "a") == placed(("cy", 30), ("dan", 31))
        assert (await engine.get_state("auction", "b"))[1] == 1
        assert (await engine.get_state("sale", "a"))[0].highest == 31
        assert sorted(await engine.store.persistence_ids()) == ["auction|a", "auction|b", "sale|a"]


async def test_a_validation_past_command_timeout_times_out_and_the_queue_proceeds(open_store):
    validator = Validator()
    async with new_engine(open_store, validator, command_timeout=COMMAND_TIMEOUT) as engine:
        await decided(engine, validator, "lot1", Bid("ann", 10))
        slow = asyncio.create_task(engine.send("auction", "lot1", Bid("bob", 20)))
        check = await validator.next()  # hangs
        queued = asyncio.create_task(engine.send("auction", "lot1", Bid("cy", 30)))
        await wait_until(lambda: engine.statistics().queued_messages == 1)

        with pytest.raises(ea.CommandTimeout) as timed_out:
            await asyncio.wait_for(slow, 10)
        assert f"command_timeout={COMMAND_TIMEOUT}s" in timed_out.value.reason
        assert "'auction|lot1'" in timed_out.value.reason
        assert "nothing was persisted" in timed_out.value.reason
        assert check.decision.cancelled()
        assert validator.abandoned == [("lot1", Bid("bob", 20))]

        then = await validator.next()  # the waiting command proceeds
        assert then.command == Bid("cy", 30)
        assert then.state == Auction(tuple(placed(("ann", 10))), 10)
        then.accept()
        assert (await asyncio.wait_for(queued, 10)).revision == 2
        assert await stored_events(engine, "auction", "lot1") == placed(("ann", 10), ("cy", 30))

    async with new_engine(open_store, Validator()) as engine:
        assert await stored_events(engine, "auction", "lot1") == placed(("ann", 10), ("cy", 30))


async def test_expected_revision_is_checked_when_the_commands_turn_comes(open_store):
    validator = Validator()
    async with new_engine(open_store, validator) as engine:
        with pytest.raises(ea.ConcurrencyError, match=r"'auction\|new' is at revision 0, .* 1"):
            await engine.send("auction", "new", Bid("x", 1), expected_revision=1)
        assert await engine.store.highest_sequence_number("auction|new") == 0

        first = asyncio.create_task(
            engine.send("auction", "lot1", Bid("ann", 10), expected_revision=0)
        )
        (await validator.next()).accept()
        assert (await asyncio.wait_for(first, 10)).revision == 1
        second = asyncio.create_task(
            engine.send("auction", "lot1", Bid("bob", 20), expected_revision=1)
        )
        (await validator.next()).accept()
        assert (await asyncio.wait_for(second, 10)).revision == 2

        with pytest.raises(ea.ConcurrencyError, match="at revision 2, the command expected 1"):
            await engine.send("auction", "lot1", Bid("cy", 30), expected_revision=1)
        assert len(validator.started) == 2  # refused before its check was asked for

        # Queued behind a check: compared with the revision after it, not at sending.
        pending = asyncio.create_task(engine.send("auction", "lot1", Bid("dan", 40)))
        check = await validator.next()
        stale = asyncio.create_task(
            engine.send("auction", "lot1", Bid("eve", 50), expected_revision=2)
        )
        await wait_until(lambda: engine.statistics().queued_messages == 1)
        check.accept()
        assert (await asyncio.wait_for(pending, 10)).revision == 3
        with pytest.raises(ea.ConcurrencyError, match="at revision 3, the command expected 2"):
            await asyncio.wait_for(stale, 10)

        # A rejected check leaves the revision where it was, so the queued command proceeds.
        pending = asyncio.create_task(engine.send("auction", "lot1", Bid("fay", 1)))
        check = await validator.next()
        guarded = asyncio.create_task(
            engine.send("auction", "lot1", Bid("gus", 60), expected_revision=3)
        )
        await wait_until(lambda: engine.statistics().queued_messages == 1)
        check.reject("too low", {"highest": 40})
        with pytest.raises(ea.Rejected):
            await asyncio.wait_for(pending, 10)
        (await validator.next()).accept()
        assert (await asyncio.wait_for(guarded, 10)).revision == 4

        assert await stored_events(engine, "auction", "lot1") == placed(
            ("ann", 10), ("bob", 20), ("dan", 40), ("gus", 60)
        )
        assert (await engine.get_state("auction", "lot1"))[1] == 4


async def test_a_check_that_raises_reaches_the_caller_unchanged_and_persists_nothing(open_store):
    validator = Validator()
    async with new_engine(open_store, validator) as engine:
        await decided(engine, validator, "lot1", Bid("ann", 10))
        sending = asyncio.create_task(engine.send("auction", "lot1", Bid("bob", 20)))
        queued = asyncio.create_task(engine.send("auction", "lot1", Bid("cy", 30)))
        check = await validator.next()
        error = ConnectionError("the bid service is unreachable")
        check.fail(error)
        with pytest.raises(ConnectionError) as failed:
            await asyncio.wait_for(sending, 10)
        assert failed.value is error

        then = await validator.next()  # the next command works, on the consistent state
        assert then.command == Bid("cy", 30)
        assert then.state == Auction(tuple(placed(("ann", 10))), 10)
        then.accept()
        assert (await asyncio.wait_for(queued, 10)).revision == 2
        assert await stored_events(engine, "auction", "lot1") == placed(("ann", 10), ("cy", 30))

    async with new_engine(open_store, Validator()) as engine:
        assert await stored_events(engine, "auction", "lot1") == placed(("ann", 10), ("cy", 30))
        assert (await engine.get_state("auction", "lot1"))[1] == 2
