"""Subscriptions: the global log after a position, then live, as an async iterator; on
MemoryStore and both durable stores where the store is involved."""

from __future__ import annotations

import asyncio

import pytest
from behaviors_for_tests import (
    Envelopes,
    OpenStore,
    add_events,
    keys,
    memory,
    read_log,
    tally_behavior,
)
from waits import wait_until

import eventactors as ea

pytestmark = pytest.mark.timeout(60)


def new_engine(store: ea.Store) -> ea.Engine:
    engine = ea.Engine(store)
    engine.register("tally", tally_behavior())
    return engine


async def take(subscription: ea.Subscription, count: int, timeout: float = 10.0) -> Envelopes:
    """The next `count` events, failing the test if they do not come within `timeout`."""
    taken: Envelopes = []
    async with asyncio.timeout(timeout):
        async for envelope in subscription:
            taken.append(envelope)
            if len(taken) == count:
                break
    return taken


async def consume(subscription: ea.Subscription, into: Envelopes, count: int | None) -> None:
    async for envelope in subscription:
        into.append(envelope)
        if len(into) == count:
            return


# -- where a subscription starts ----------------------------------------------------------


async def check_subscribe_sees_only_later_events(open_store: OpenStore) -> None:
    store = open_store()
    engine = new_engine(store)
    async with engine:
        await add_events(engine, 6)
        subscription = engine.subscribe()
        await add_events(engine, 9, start=6)
        got = await take(subscription, 9)
        log = await read_log(store)
        assert keys(got) == keys(log[6:])
        assert (subscription.position, subscription.pending) == (log[-1].global_position, 0)
        # then live
        following = asyncio.create_task(take(subscription, 1))
        await add_events(engine, 1, start=15, entities=("a",))
        later = await following
        assert keys(later) == keys((await read_log(store))[15:])


async def test_subscribe_sees_only_events_after_the_call_on_memory():
    await check_subscribe_sees_only_later_events(memory())


async def test_subscribe_sees_only_events_after_the_call_on_durable_stores(open_durable_store):
    await check_subscribe_sees_only_later_events(open_durable_store)


async def check_from_position(open_store: OpenStore) -> None:
    store = open_store()
    engine = new_engine(store)
    async with engine:
        await add_events(engine, 20)
        start = (await read_log(store))[6].global_position
        after_start = engine.subscribe(from_position=start)
        everything = engine.subscribe(from_position=0, page_size=4)
        writer = asyncio.create_task(add_events(engine, 20, start=20, entities=("d", "e")))
        got, got_all = await asyncio.gather(take(after_start, 33), take(everything, 40))
        await writer
        log = await read_log(store)
        assert (after_start.pending, everything.pending) == (0, 0)
    assert len(log) == 40
    assert keys(got) == keys(log[7:])
    assert keys(got_all) == keys(log)


async def test_from_position_then_live_without_gap_or_duplicate_on_memory():
    await check_from_position(memory())


async def test_from_position_then_live_without_gap_or_duplicate_on_durable_stores(
    open_durable_store,
):
    await check_from_position(open_durable_store)


async def check_concurrent_writers_and_a_mid_stream_join(open_store: OpenStore) -> None:
    store = open_store()
    engine = new_engine(store)
    entities = tuple(f"e{i}" for i in range(12))
    first: Envelopes = []
    second: Envelopes = []
    async with engine:
        reader = asyncio.create_task(asyncio.wait_for(consume(engine.subscribe(), first, 96), 20))
        await add_events(engine, 48, entities=entities)
        await wait_until(lambda: len(first) >= 30, timeout=10)
        # joins mid-stream, after the 30th event, while the writers carry on
        joiner = engine.subscribe(from_position=first[29].global_position)
        follower = asyncio.create_task(asyncio.wait_for(consume(joiner, second, 66), 20))
        await add_events(engine, 48, start=48, entities=entities)
        await asyncio.gather(reader, follower)
        log = await read_log(store)
    assert len(log) == 96
    assert keys(first) == keys(log)
    assert keys(second) == keys(log[30:])
    positions = [envelope.global_position for envelope in first]
    assert positions == sorted(set(positions))


async def test_concurrent_writers_and_a_subscriber_joining_mid_stream_on_memory():
    await check_concurrent_writers_and_a_mid_stream_join(memory())


async def test_concurrent_writers_and_a_subscriber_joining_mid_stream_on_durable_stores(
    open_durable_store,
):
    await check_concurrent_writers_and_a_mid_stream_join(open_durable_store)


# -- a slow subscriber --------------------------------------------------------------------


async def test_a_slow_subscriber_does_not_hold_up_commands_and_misses_nothing():
    store = ea.MemoryStore()
    engine = new_engine(store)
    seen: Envelopes = []
    gate = asyncio.Event()

    async with engine:
        subscription = engine.subscribe(page_size=10)

        async def slow() -> None:
            async for envelope in subscription:
                seen.append(envelope)
                if len(seen) == 1:
                    await gate.wait()
                await asyncio.sleep(0.001)  # slow on every event
                if len(seen) == 100:
                    return

        reader = asyncio.create_task(slow())
        await add_events(engine, 1, entities=("a",))
        await wait_until(lambda: len(seen) == 1)
        # every command completes while the subscriber is stuck on its first event
        await asyncio.wait_for(
            add_events(engine, 99, start=1, entities=tuple(f"e{i}" for i in range(5))), 10
        )
        assert len(seen) == 1
        assert subscription.pending <= 10  # it holds at most one page; the rest stays stored
        assert engine.statistics().queued_messages == 0
        gate.set()
        await asyncio.wait_for(reader, 10)
        log = await read_log(store)
    assert keys(seen) == keys(log)


# -- the end of a subscription ------------------------------------------------------------


async def check_the_iterator_ends_when_the_engine_stops(open_store: OpenStore) -> None:
    engine = new_engine(open_store())
    received: Envelopes = []
    await engine.start()
    try:
        subscription = engine.subscribe()
        reader = asyncio.create_task(consume(subscription, received, None))
        await add_events(engine, 3)
        await wait_until(lambda: len(received) == 3)
        assert engine.statistics().subscriptions == 1
    finally:
        await engine.stop()
    await asyncio.wait_for(reader, 5)
    assert engine.statistics().subscriptions == 0
    with pytest.raises(StopAsyncIteration):
        await anext(subscription)


async def test_the_iterator_ends_when_the_engine_stops_on_memory():
    await check_the_iterator_ends_when_the_engine_stops(memory())


async def test_the_iterator_ends_when_the_engine_stops_on_durable_stores(open_durable_store):
    await check_the_iterator_ends_when_the_engine_stops(open_durable_store)


async def test_close_ends_the_iterator():
    engine = new_engine(ea.MemoryStore())
    received: Envelopes = []
    async with engine:
        subscription = engine.subscribe()
        reader = asyncio.create_task(consume(subscription, received, None))
        await add_events(engine, 2)
        await wait_until(lambda: len(received) == 2)
        assert engine.statistics().subscriptions == 1
        subscription.close()  # while the reader waits for more
        await asyncio.wait_for(reader, 5)
        assert engine.statistics().subscriptions == 0
        await add_events(engine, 2, start=2)
        with pytest.raises(StopAsyncIteration):
            await anext(subscription)
        assert len(received) == 2

        async with engine.subscribe() as scoped:
            assert engine.statistics().subscriptions == 1
        assert engine.statistics().subscriptions == 0
        with pytest.raises(StopAsyncIteration):
            await anext(scoped)


async def test_subscribe_needs_a_running_engine_and_a_valid_position():
    engine = new_engine(ea.MemoryStore())
    with pytest.raises(ea.EngineNotStarted):
        engine.subscribe()
    with pytest.raises(ea.EngineNotStarted):
        engine.subscribe(from_position=0)
    async with engine:
        for bad in (-1, True, "3", 1.5):
            with pytest.raises(ValueError, match="an offset must be an int >= 0"):
                engine.subscribe(from_position=bad)  # type: ignore[arg-type]
        assert engine.statistics().subscriptions == 0
    with pytest.raises(ea.EngineNotStarted):
        engine.subscribe()


async def test_subscribe_refuses_a_page_size_below_one():
    """A page of 0 would never deliver anything: refused, as batch_size=0 is."""
    engine = new_engine(ea.MemoryStore())
    async with engine:
        with pytest.raises(ValueError, match="page_size"):
            engine.subscribe(page_size=0).close()
