"""Time travel: an event-sourced entity's past state, by revision or by moment, rebuilt beside
the live entity from the nearest snapshot; and `engine.events`, an entity's stored events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from behaviors_for_tests import Add, Added, Tally, TallyBehavior
from identity_behaviors import BACKENDS, PatronBehavior, backend
from waits import wait_until

import eventactors as ea
from eventactors.records import persistence_id_of

pytestmark = pytest.mark.timeout(60)

PID = persistence_id_of("tally", "t")


class GatedTally(TallyBehavior):
    """Add(n) with n < 0 waits at the gate until the test opens it."""

    gate: asyncio.Event
    entered: asyncio.Event

    async def handle_command(self, state: Tally, command: Any) -> Any:
        if command.n < 0:
            type(self).entered.set()
            await type(self).gate.wait()
        return Added(command.n)


def gated() -> type[GatedTally]:
    return type("Gated", (GatedTally,), {"gate": asyncio.Event(), "entered": asyncio.Event()})


def folded(numbers: list[int]) -> Tally:
    return Tally(tuple(numbers), sum(numbers))


@pytest.fixture(params=BACKENDS)
async def db(request, tmp_path):
    async with backend(request.param, tmp_path) as opened:
        yield opened


def engine_on(
    db, *, snapshot_every: int | None = None, behavior: type[GatedTally] | None = None
) -> ea.Engine:
    engine = ea.Engine(store=db.open())
    engine.register("tally", behavior or gated(), snapshot_every=snapshot_every)
    engine.register("patron", PatronBehavior)
    return engine


async def add(engine: ea.Engine, numbers: range, entity: str = "t") -> list[ea.Reply[Tally]]:
    return [await engine.send("tally", entity, Add(n)) for n in numbers]


async def test_every_revision_equals_the_fold_of_its_events(db):
    async with engine_on(db) as engine:
        await add(engine, range(1, 11))
        for revision in range(11):
            assert await engine.get_state("tally", "t", at_revision=revision) == (
                folded(list(range(1, revision + 1))),
                revision,
            )


async def test_snapshots_give_the_same_states_and_rebuilds_start_at_the_nearest(db):
    async with engine_on(db, snapshot_every=3) as engine:
        await add(engine, range(1, 11))
        await engine.get_state("tally", "t")  # queued behind the last snapshot's write
        store = engine.store
        assert [
            (await store.load_snapshot(PID, max_sequence=n)).sequence_number for n in (3, 8, 10)
        ] == [3, 6, 9]
        for revision in range(11):
            assert await engine.get_state("tally", "t", at_revision=revision) == (
                folded(list(range(1, revision + 1))),
                revision,
            )

        # Without events 1..6, only the snapshots at 3 and 6 can stand in for them.
        await store.delete_events_to(PID, 6)
        for revision in (0, 3, 6, 7, 8, 9, 10):
            assert await engine.get_state("tally", "t", at_revision=revision) == (
                folded(list(range(1, revision + 1))),
                revision,
            )
        for revision in (1, 2, 4, 5):
            with pytest.raises(ea.EventActorsError, match="events were deleted"):
                await engine.get_state("tally", "t", at_revision=revision)
        # The live entity is unaffected by either.
        assert await engine.get_state("tally", "t") == (folded(list(range(1, 11))), 10)


async def next_instant(after: datetime) -> datetime:
    """The current time, once the clock has moved past `after`: so that what happens next is
    timestamped strictly later."""
    await wait_until(lambda: datetime.now(UTC) > after)
    return datetime.now(UTC)


async def test_at_time_gives_the_state_after_the_last_event_by_then(db):
    async with engine_on(db) as engine:
        start = datetime.now(UTC)
        await next_instant(start)
        moments = []
        stamps = []
        for n in range(1, 6):
            (event,) = (await engine.send("tally", "t", Add(n))).events
            stamps.append(event.timestamp)
            moments.append(await next_instant(event.timestamp))
            await next_instant(moments[-1])
        assert await engine.get_state("tally", "t", at_time=start) == (Tally(), 0)
        for n, (moment, stamp) in enumerate(zip(moments, stamps, strict=True), start=1):
            expected = (folded(list(range(1, n + 1))), n)
            assert await engine.get_state("tally", "t", at_time=moment) == expected
            assert await engine.get_state("tally", "t", at_time=stamp) == expected  # inclusive
            east = moment.astimezone(timezone(timedelta(hours=5, minutes=30)))
            assert await engine.get_state("tally", "t", at_time=east) == expected
        later = datetime.now(UTC) + timedelta(days=1)
        assert await engine.get_state("tally", "t", at_time=later) == (folded([1, 2, 3, 4, 5]), 5)
        assert await engine.get_state("tally", "nobody", at_time=later) == (Tally(), 0)


async def test_a_rebuild_never_spawns_the_entity(db):
    async with engine_on(db) as engine:
        await add(engine, range(1, 6))
    async with engine_on(db) as engine:
        assert not engine.is_live("tally", "t")
        assert await engine.get_state("tally", "t", at_revision=2) == (folded([1, 2]), 2)
        assert await engine.get_state("tally", "t", at_time=datetime.now(UTC)) == (
            folded([1, 2, 3, 4, 5]),
            5,
        )
        assert [e.sequence_number async for e in engine.events("tally", "t")] == [1, 2, 3, 4, 5]
        assert not engine.is_live("tally", "t")
        assert engine.statistics().live_entities == 0


async def test_a_live_entity_is_left_as_it_was(db):
    async with engine_on(db) as engine:
        await add(engine, range(1, 6))
        live = await engine.get_state("tally", "t")
        assert await engine.get_state("tally", "t", at_revision=1) == (folded([1]), 1)
        assert await engine.get_state("tally", "t") == live
        assert (await engine.send("tally", "t", Add(6))).state == folded([1, 2, 3, 4, 5, 6])
        assert await engine.get_state("tally", "t", at_revision=5) == live


async def test_a_rebuild_runs_while_a_command_is_in_flight(db):
    behavior = gated()
    async with engine_on(db, behavior=behavior) as engine:
        await add(engine, range(1, 6))
        in_flight = asyncio.ensure_future(engine.send("tally", "t", Add(-1)))
        queued = asyncio.ensure_future(engine.send("tally", "t", Add(100)))
        await asyncio.wait_for(behavior.entered.wait(), 5)
        # The mailbox is blocked behind the gate, yet rebuilds answer.
        assert await asyncio.wait_for(engine.get_state("tally", "t", at_revision=3), 5) == (
            folded([1, 2, 3]),
            3,
        )
        assert await asyncio.wait_for(
            engine.get_state("tally", "t", at_time=datetime.now(UTC)), 5
        ) == (folded([1, 2, 3, 4, 5]), 5)
        assert not in_flight.done() and not queued.done()
        behavior.gate.set()
        assert (await in_flight).revision == 6
        assert (await queued).state == folded([1, 2, 3, 4, 5, -1, 100])
        assert await engine.get_state("tally", "t", at_revision=6) == (
            folded([1, 2, 3, 4, 5, -1]),
            6,
        )


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"at_revision": 6}, "beyond"),
        ({"at_revision": -1}, "at_revision"),
        ({"at_revision": True}, "at_revision"),
        ({"at_revision": "3"}, "at_revision"),
        ({"at_revision": 2, "at_time": datetime.now(UTC)}, "not both"),
        ({"at_time": datetime(2030, 1, 1)}, "timezone-aware"),
        ({"at_time": "2030-01-01T00:00:00+00:00"}, "timezone-aware"),
    ],
)
async def test_bad_time_travel_is_refused(db, options, match):
    async with engine_on(db) as engine:
        await add(engine, range(1, 6))
        with pytest.raises(ValueError, match=match):
            await engine.get_state("tally", "t", **options)
        assert await engine.get_state("tally", "t") == (folded([1, 2, 3, 4, 5]), 5)


async def test_time_travel_needs_an_event_sourced_type(db):
    async with engine_on(db) as engine:
        with pytest.raises(ValueError, match="'patron' keeps durable state"):
            await engine.get_state("patron", "p", at_revision=0)
        with pytest.raises(ValueError, match="'patron' keeps durable state"):
            await engine.get_state("patron", "p", at_time=datetime.now(UTC))


async def test_an_unknown_entity_is_at_revision_zero_only(db):
    async with engine_on(db) as engine:
        assert await engine.get_state("tally", "nobody", at_revision=0) == (Tally(), 0)
        with pytest.raises(ValueError, match="beyond"):
            await engine.get_state("tally", "nobody", at_revision=1)


# -- engine.events ------------------------------------------------------------------------


async def sequences(events: AsyncIterator[ea.EventEnvelope]) -> list[int]:
    return [envelope.sequence_number async for envelope in events]


async def test_events_are_the_stored_envelopes_in_order(db):
    async with engine_on(db) as engine:
        replies = await add(engine, range(1, 11))
        await add(engine, range(1, 4), entity="other")
        events = [e async for e in engine.events("tally", "t")]
        assert events == await engine.store.read_stream(PID)
        assert [e.event_id for e in events] == [r.events[0].event_id for r in replies]
        assert [e.event for e in events] == [Added(n) for n in range(1, 11)]
        middle = [
            e.sequence_number
            async for e in engine.events("tally", "t", from_sequence=3, to_sequence=7)
        ]
        assert middle == [3, 4, 5, 6, 7]
        assert [e.sequence_number async for e in engine.events("tally", "t", from_sequence=9)] == [
            9,
            10,
        ]
        assert [e async for e in engine.events("tally", "t", to_sequence=0)] == []
        assert [e async for e in engine.events("tally", "t", from_sequence=11)] == []
        assert [e async for e in engine.events("tally", "nobody")] == []


async def test_events_are_read_a_page_at_a_time(db, monkeypatch):
    async with engine_on(db) as engine:
        await add(engine, range(1, 26))
        store = engine.store
        read_stream = store.read_stream
        pages: list[tuple[int, int | None]] = []

        async def counting(persistence_id, from_sequence=1, to_sequence=None, limit=None):
            pages.append((from_sequence, limit))
            return await read_stream(persistence_id, from_sequence, to_sequence, limit)

        monkeypatch.setattr(store, "read_stream", counting)
        events = [e async for e in engine.events("tally", "t", page_size=4)]
        assert [e.sequence_number for e in events] == list(range(1, 26))
        assert [e.event for e in events] == [Added(n) for n in range(1, 26)]
        assert pages == [(1 + 4 * n, 4) for n in range(7)]
        pages.clear()
        tail = [
            e.sequence_number
            async for e in engine.events("tally", "t", from_sequence=20, page_size=3)
        ]
        assert tail == [20, 21, 22, 23, 24, 25]
        assert pages == [(20, 3), (23, 3), (26, 3)]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"from_sequence": -1}, "from_sequence"),
        ({"to_sequence": -2}, "to_sequence"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": True}, "page_size"),
    ],
)
async def test_bad_event_ranges_are_refused(db, options, named):
    async with engine_on(db) as engine:
        with pytest.raises(ValueError, match=named):
            engine.events("tally", "t", **options)


async def test_at_time_before_deleted_events_is_not_answered_from_a_later_snapshot(db):
    async with engine_on(db, snapshot_every=3) as engine:
        start = await next_instant(datetime.now(UTC))
        await next_instant(start)
        await add(engine, range(1, 11))
        await engine.get_state("tally", "t")  # queued behind the last snapshot's write
        await engine.store.delete_events_to(PID, 6)
        try:
            past = await engine.get_state("tally", "t", at_time=start)
        except ea.EventActorsError:
            return  # refusing is fine: the events that would tell were deleted
        assert past == (Tally(), 0)
