"""Property: whatever the checks decide, and however often the engine restarts, the stream holds
exactly the accepted events, in order, and the revision is their number.

Each step sends a few bids at once to one auction; the validator accepts, rejects, fails or
hangs each (a hanging check runs into a short command_timeout). After every step the engine
stops and a new one opens the same data. Sync tests that call `asyncio.run` per example, since
hypothesis examples and async fixtures do not mix.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from validation_behaviors import (
    Auction,
    Bid,
    BidPlaced,
    OpenStore,
    Validation,
    Validator,
    auction_behavior,
    stored_events,
)

import eventactors as ea

pytestmark = pytest.mark.timeout(60)

COMMAND_TIMEOUT = 0.05
OUTCOMES = ("accept", "reject", "hang", "fail")

steps = st.lists(st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=3), max_size=6)


def decide_by_plan(plan: dict[int, str]) -> Callable[[Validation], None]:
    """Settles each check at once by its bid's planned outcome; a hang is left undecided."""

    def decide(validation: Validation) -> None:
        match plan[validation.command.amount]:
            case "accept":
                validation.accept()
            case "reject":
                validation.reject("planned", {"highest": validation.state.highest})
            case "fail":
                validation.fail(ConnectionError("planned"))

    return decide


async def run(open_store: OpenStore, plan_steps: list[list[str]]) -> None:
    plan: dict[int, str] = {}
    validator = Validator(decide_by_plan(plan))
    accepted: list[BidPlaced] = []

    def engine() -> ea.Engine:
        engine = ea.Engine(store=open_store())
        engine.register("auction", auction_behavior(validator), command_timeout=COMMAND_TIMEOUT)
        return engine

    async def check_stored(engine: ea.Engine) -> None:
        assert await stored_events(engine, "auction", "lot") == accepted
        state, revision = await engine.get_state("auction", "lot")
        assert (state.bids, revision) == (tuple(accepted), len(accepted))

    for step in plan_steps:
        async with engine() as live:
            await check_stored(live)
            bids = []
            for outcome in step:
                amount = len(plan) + 1
                plan[amount] = outcome
                bids.append(Bid(outcome, amount))
            replies = await asyncio.wait_for(
                asyncio.gather(
                    *(live.send("auction", "lot", bid) for bid in bids), return_exceptions=True
                ),
                30,
            )
            for bid, reply in zip(bids, replies, strict=True):
                highest = max((event.amount for event in accepted), default=0)
                match plan[bid.amount]:
                    case "accept":
                        accepted.append(BidPlaced(bid.bidder, bid.amount))
                        assert isinstance(reply, ea.Reply)
                        assert reply.revision == len(accepted)
                        assert reply.state.bids == tuple(accepted)
                    case "reject":
                        assert isinstance(reply, ea.Rejected) and reply.reason == "planned"
                        assert reply.meta == {"highest": highest}
                    case "fail":
                        assert isinstance(reply, ConnectionError) and str(reply) == "planned"
                    case "hang":
                        assert isinstance(reply, ea.CommandTimeout)
            await check_stored(live)
    async with engine() as live:
        await check_stored(live)
        state, _ = await live.get_state("auction", "lot")
        assert state == Auction(tuple(accepted), max((b.amount for b in accepted), default=0))
    assert validator.abandoned == [
        ("lot", Bid(outcome, amount)) for amount, outcome in plan.items() if outcome == "hang"
    ]


@settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(plan_steps=steps)
def test_an_sqlite_stream_holds_exactly_the_accepted_events_across_restarts(plan_steps):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "property.db"
        asyncio.run(run(lambda: ea.SQLiteStore(path), plan_steps))


@settings(
    max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(plan_steps=steps)
def test_a_memory_stream_holds_exactly_the_accepted_events_across_restarts(plan_steps):
    store = ea.MemoryStore()
    asyncio.run(run(lambda: store, plan_steps))
