"""Cluster mode where it is easiest to get wrong: order across kinds of messages, timeouts
across the hop, stopping with commands in flight, subscriptions, restarts nobody asks for,
and a second shard count in one namespace."""

from __future__ import annotations

import asyncio
import functools

import asyncpg
import pytest
import ray
from cluster_behaviors import SEEN_TABLE, Deposit, SlowDeposit, record_events
from postgres_support import DSN

import eventactors as ea


async def test_order_holds_across_commands_with_and_without_timeouts_and_state_queries(
    cluster_app,
):
    async with cluster_app.engine() as engine:
        await engine.send("account", "mixed", Deposit(1, "warm"))
        calls = []
        for i in range(60):
            if i % 3 == 0:
                calls.append(engine.send("account", "mixed", Deposit(1, str(i)), timeout=30))
            elif i % 3 == 1:
                calls.append(engine.send("account", "mixed", Deposit(1, str(i))))
            else:
                calls.append(engine.get_state("account", "mixed", timeout=30))
        results = await asyncio.gather(*calls)
        state, _ = await engine.get_state("account", "mixed")
        sent = [str(i) for i in range(60) if i % 3 != 2]
        assert state.log == ["warm", *sent]
        for i in range(2, 60, 3):  # each query saw exactly the commands sent before it
            seen_state, revision = results[i]
            assert seen_state.log == ["warm", *[n for n in sent if int(n) < i]]
            assert revision == len(seen_state.log)


async def test_a_command_that_times_out_before_its_turn_never_runs(cluster_app):
    async with cluster_app.engine() as engine:
        await engine.send("account", "busy", Deposit(1, "warm"))
        slow = asyncio.create_task(engine.send("account", "busy", SlowDeposit(1, 1.0, "slow")))
        await asyncio.sleep(0.2)
        with pytest.raises(ea.CommandTimeout):
            await engine.send("account", "busy", Deposit(1, "late"), timeout=0.3)
        await slow
        state, _ = await engine.get_state("account", "busy")
        assert state.log == ["warm", "slow"]


async def test_stop_waits_for_the_commands_in_flight(cluster_app):
    engine = cluster_app.engine()
    await engine.start()
    await engine.send("account", "inflight", Deposit(1))
    calls = [
        asyncio.create_task(engine.send("account", f"inflight-{i}", SlowDeposit(1, 0.5)))
        for i in range(8)
    ]
    await asyncio.sleep(0.1)
    await engine.stop()
    assert all(call.done() and not call.exception() for call in calls)


async def test_stop_with_a_drain_timeout_abandons_the_rest_with_engine_not_started(cluster_app):
    engine = cluster_app.engine()
    await engine.start()
    await engine.send("account", "abandoned", Deposit(1))
    call = asyncio.create_task(engine.send("account", "abandoned", SlowDeposit(1, 3.0)))
    await asyncio.sleep(0.2)
    await engine.stop(drain_timeout=0.2)
    with pytest.raises(ea.EngineNotStarted):
        await asyncio.wait_for(call, 5)
    with pytest.raises(ea.EngineNotStarted):
        await engine.send("account", "abandoned", Deposit(1))


async def test_subscribe_starts_after_the_events_this_driver_has_seen(cluster_app):
    async with cluster_app.engine() as engine:
        for i in range(3):
            await engine.send("account", "sub", Deposit(1, f"before-{i}"))
        subscription = engine.subscribe()
        await engine.send("account", "sub", Deposit(1, "after"))
        async with asyncio.timeout(10):
            first = await anext(aiter(subscription))
        assert first.event.note == "after"
        subscription.close()


async def test_a_restarted_projection_catches_up_without_being_asked(cluster_app):
    handler = functools.partial(record_events, cluster_app.schema)
    async with cluster_app.engine() as engine:
        await engine.store.head_position()
        connection = await asyncpg.connect(DSN)
        try:
            await connection.execute(SEEN_TABLE.format(schema=cluster_app.schema))
            await engine.add_projection("seen", handler, transactional=True)
            await engine.send("account", "p", Deposit(1))
            await engine.wait_for_projection("seen", timeout=30)
            actor = ray.get_actor("projection-seen", namespace=cluster_app.namespace)
            ray.kill(actor, no_restart=False)
            for _ in range(10):
                await engine.send("account", "p", Deposit(1))
            query = f'SELECT count(*) FROM "{cluster_app.schema}".seen'
            for _ in range(600):  # 60 s; nobody calls the projection meanwhile
                seen = await connection.fetchval(query)
                if seen >= 11:
                    break
                await asyncio.sleep(0.1)
            assert seen == 11, f"the restarted projection saw {seen} of 11 events"
        finally:
            await connection.close()


async def test_a_second_shard_count_in_one_namespace_is_refused(cluster_app):
    async with cluster_app.engine(num_shards=4):
        other = cluster_app.engine(num_shards=8)
        with pytest.raises(ea.EventActorsError, match="shards of another count"):
            await other.start()
