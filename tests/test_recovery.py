"""Recovery after restart, snapshot equivalence, passivation, and durable state."""

from __future__ import annotations

import random

import msgspec
import pytest
from behaviors_for_tests import Add, tally_behavior
from waits import wait_until

import eventactors as ea


async def test_state_is_recovered_by_a_fresh_engine_on_the_same_file(tmp_path):
    path = tmp_path / "r.db"
    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("tally", tally_behavior())
    async with engine:
        for i in range(25):
            await engine.send("tally", f"t{i % 5}", Add(i))
        before = {f"t{k}": await engine.get_state("tally", f"t{k}") for k in range(5)}
    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("tally", tally_behavior())
    async with engine:
        after = {f"t{k}": await engine.get_state("tally", f"t{k}") for k in range(5)}
        reply = await engine.send("tally", "t0", Add(100))
    assert after == before
    assert reply.revision == 6  # the next event continues the stream


@pytest.mark.parametrize("snapshot_every", [1, 3, 7])
async def test_recovery_from_snapshots_equals_full_replay(tmp_path, snapshot_every):
    path = tmp_path / "s.db"
    rng = random.Random(snapshot_every)
    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("tally", tally_behavior(), snapshot_every=snapshot_every)
    async with engine:
        for _ in range(40):
            await engine.send("tally", "t", Add(rng.randint(-50, 50)))
        live = await engine.get_state("tally", "t")

    store = ea.SQLiteStore(path)
    with_snapshots = ea.Engine(store=store)
    with_snapshots.register("tally", tally_behavior(), snapshot_every=snapshot_every)
    async with with_snapshots:
        snapshot = await store.load_snapshot("tally|t")
        assert snapshot is not None and snapshot.sequence_number == 40 - 40 % snapshot_every
        from_snapshot = await with_snapshots.get_state("tally", "t")

    # A full replay: the same events folded from the initial state, no snapshot involved.
    behavior = tally_behavior()()
    replayed = behavior.initial_state()
    async with ea.Engine(store=ea.SQLiteStore(path)) as reader:
        reader.register("tally", tally_behavior())
        for envelope in await reader.store.read_stream("tally|t"):
            replayed = behavior.handle_event(replayed, envelope.event)
    assert from_snapshot == live == (replayed, 40)


async def test_recovery_really_starts_from_the_snapshot(tmp_path):
    """With the events the snapshot covers deleted, recovery can only succeed through it."""
    store = ea.SQLiteStore(tmp_path / "s.db")
    engine = ea.Engine(store=store)
    engine.register("tally", tally_behavior(), snapshot_every=10)
    async with engine:
        for i in range(13):
            await engine.send("tally", "t", Add(i))
        live = await engine.get_state("tally", "t")
    await store.delete_events_to("tally|t", 10)
    async with engine:
        assert await engine.get_state("tally", "t") == live


async def test_a_stream_with_a_gap_no_snapshot_covers_is_an_error(tmp_path):
    store = ea.SQLiteStore(tmp_path / "gap.db")
    engine = ea.Engine(store=store)
    engine.register("tally", tally_behavior())
    async with engine:
        for i in range(3):
            await engine.send("tally", "t", Add(i))
    await store.delete_events_to("tally|t", 1)
    async with engine:
        with pytest.raises(ea.EventActorsError, match=r"tally\|t.*jumps from sequence 0 to 2"):
            await engine.send("tally", "t", Add(9))


async def test_idle_entities_passivate_and_reactivate_transparently():
    behavior = tally_behavior()
    engine = ea.Engine()
    engine.register("tally", behavior, passivate_after=0.05)
    behavior.probe.recoveries = 0  # register() calls initial_state() once to learn the type
    async with engine:
        await engine.send("tally", "a", Add(1))
        await engine.send("tally", "b", Add(2))
        assert engine.is_live("tally", "a")
        await wait_until(lambda: not engine.is_live("tally", "a"))
        await wait_until(lambda: engine.statistics().live_entities == 0)
        reply = await engine.send("tally", "a", Add(10))
        assert (reply.state.items, reply.revision) == ((1, 10), 2)
        assert behavior.probe.recoveries == 3  # a, b, then a again after passivation
        assert engine.is_live("tally", "a")


async def test_busy_entities_are_not_passivated():
    behavior = tally_behavior()
    engine = ea.Engine()
    engine.register("tally", behavior, passivate_after=0.02)
    behavior.probe.recoveries = 0
    async with engine:
        for i in range(5):  # each command outlasts the idle limit; the entity stays live
            reply = await engine.send("tally", "a", Add(i, delay=0.03))
            assert reply.revision == i + 1
        assert behavior.probe.recoveries == 1


class Counter(msgspec.Struct, frozen=True):
    value: int = 0


class Increment(msgspec.Struct, frozen=True):
    by: int = 1


class CounterBehavior(ea.DurableStateBehavior[Counter]):
    async def handle_command(self, state: Counter, command: Increment) -> Counter | None:
        if command.by == 0:
            return None
        return Counter(state.value + command.by)

    def initial_state(self) -> Counter:
        return Counter()


async def test_durable_state_revision_grows_by_one_per_change_and_survives_restart(tmp_path):
    path = tmp_path / "d.db"
    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("counter", CounterBehavior, passivate_after=60)
    async with engine:
        replies = [await engine.send("counter", "c", Increment(2)) for _ in range(5)]
        assert [r.revision for r in replies] == [1, 2, 3, 4, 5]
        unchanged = await engine.send("counter", "c", Increment(0))
        assert (unchanged.state, unchanged.revision, unchanged.events) == (Counter(10), 5, ())
    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("counter", CounterBehavior)
    async with engine:
        assert await engine.get_state("counter", "c") == (Counter(10), 5)
        record = await engine.store.get_state("counter|c")
        assert record is not None and (record.revision, record.state) == (5, Counter(10))
