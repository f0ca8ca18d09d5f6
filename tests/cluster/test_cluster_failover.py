"""A shard process that dies (ray.kill, or SIGKILL of its process) comes back on a restarted
actor and recovers its entities from the store; callers in flight get `ShardUnavailable`, and
no acknowledged event is lost. Two owners of one entity are fenced by the store."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import ray
from cluster_behaviors import Deposit

import eventactors as ea
from eventactors.cluster import shard_of
from eventactors.cluster.shard_host import ShardHost
from eventactors.cluster.wire import SendMessage

SHARDS = 4


def shard_actor(engine: ea.Engine, shard: int) -> ray.actor.ActorHandle:
    assert engine.cluster is not None
    return ray.get_actor(engine.cluster.shard_name(shard), namespace=engine.cluster.namespace)


async def wait_for(condition, timeout: float = 30.0) -> None:
    """Polls `condition` (a function, plain or async) until it holds, or fails the test."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (await result if asyncio.iscoroutine(result := condition()) else result):
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("kill", ["ray.kill", "SIGKILL"])
async def test_a_killed_shard_comes_back_and_no_acknowledged_event_is_lost(cluster_app, kill):
    ids = [f"v-{i}" for i in range(16)]
    victim = shard_of(f"account|{ids[0]}", SHARDS)
    async with cluster_app.engine(num_shards=SHARDS) as engine:
        await asyncio.gather(*(engine.send("account", i, Deposit(1)) for i in ids))
        old_pid = (await engine.cluster_status())[victim]["pid"]
        acknowledged: dict[str, set[str]] = {i: set() for i in ids}
        failures: list[BaseException] = []

        async def client(number: int) -> None:
            entity = ids[number % len(ids)]
            for attempt in range(60):
                command_id = f"c{number}-{attempt}"
                try:
                    await engine.send("account", entity, Deposit(1), command_id=command_id)
                except ea.ShardUnavailable as error:
                    failures.append(error)
                else:
                    acknowledged[entity].add(command_id)

        clients = [asyncio.create_task(client(n)) for n in range(16)]
        await wait_for(lambda: sum(map(len, acknowledged.values())) >= 100)
        if kill == "ray.kill":
            ray.kill(shard_actor(engine, victim), no_restart=False)
        else:
            os.kill(old_pid, signal.SIGKILL)
        await asyncio.gather(*clients)

        async def restarted() -> bool:
            return bool((await engine.cluster_status())[victim]["pid"] != old_pid)

        await wait_for(restarted)
        for entity in ids:  # every acknowledged command's event is stored, once, in order
            events = await engine.store.read_stream(f"account|{entity}")
            assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))
            command_ids = [e.command_id for e in events]
            assert len(set(command_ids)) == len(command_ids)
            assert acknowledged[entity] <= set(command_ids)
            state, revision = await engine.get_state("account", entity)  # recovered
            assert (state.balance, revision) == (len(events), len(events))
        assert all("may or may not have been persisted" in str(f) for f in failures)
        assert sum(map(len, acknowledged.values())) + len(failures) == 16 * 60
        reply = await engine.send("account", ids[0], Deposit(1))  # the shard serves again
        assert reply.revision == len(await engine.store.read_stream(f"account|{ids[0]}"))


async def test_commands_sent_while_a_shard_restarts_wait_for_it(cluster_app):
    async with cluster_app.engine(num_shards=SHARDS) as engine:
        await engine.send("account", "patient", Deposit(1))
        shard = shard_of("account|patient", SHARDS)
        ray.kill(shard_actor(engine, shard), no_restart=False)
        # Sent after the kill: Ray holds them until the actor is back; none is lost.
        replies = await asyncio.gather(
            *(engine.send("account", "patient", Deposit(1)) for _ in range(20)),
            return_exceptions=True,
        )
        succeeded = [r for r in replies if isinstance(r, ea.Reply)]
        assert all(isinstance(r, ea.Reply | ea.ShardUnavailable) for r in replies)
        state, revision = await engine.get_state("account", "patient")
        assert 1 + len(succeeded) <= revision <= 21  # a failed one may have been persisted
        assert state.balance == revision


async def test_two_owners_of_one_entity_are_fenced_by_the_stores_concurrency_check(cluster_app):
    async with cluster_app.engine(num_shards=SHARDS) as engine:
        shard = shard_of("account|fenced", SHARDS)
        host = ray.remote(ShardHost).options(num_cpus=0)
        spec = engine._app_spec()
        first, second = host.remote(spec, shard), host.remote(spec, shard)
        deposit = SendMessage("account", "fenced", Deposit(1), None, (None, None, None, None))
        try:
            assert (await first.send_now.remote(deposit))[0]  # revision 1, held by first
            assert (await second.send_now.remote(deposit))[0]  # second recovers: revision 2
            succeeded, error = await first.send_now.remote(deposit)  # first is stale
            assert not succeeded and isinstance(error, ea.ConcurrencyError)
            succeeded, reply = await first.send_now.remote(deposit)  # it recovered: revision 3
            assert succeeded and reply[1] == 3
            # The cluster's own shard is a third owner: it recovers and goes on at 4.
            assert (await engine.send("account", "fenced", Deposit(1))).revision == 4
        finally:
            ray.kill(first)
            ray.kill(second)
        events = await engine.store.read_stream("account|fenced")
        assert [e.sequence_number for e in events] == [1, 2, 3, 4]
        assert len({e.command_id for e in events}) == 4
