"""The same application, unchanged, in one process and sharded over Ray: same results, entities
on the shards their ids name, order kept, shards calling shards, passivation and snapshots."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cluster_behaviors import Add, Deposit, SetBalance, TransferTo, Withdraw, register
from postgres_support import DSN

import eventactors as ea
from eventactors.cluster import shard_of


async def run_script(engine: ea.Engine) -> list[Any]:
    """A workload whose every answer is recorded: replies, rejections, states."""
    seen: list[Any] = []
    for i in range(12):
        reply = await engine.send("account", f"acc-{i % 5}", Deposit(10 + i, note=f"n{i}"))
        seen.append(("deposit", reply.state, reply.revision, [e.event for e in reply.events]))
    for command in (Withdraw(5), Withdraw(10_000), Deposit(-3), TransferTo("acc-4", 7)):
        try:
            reply = await engine.send("account", "acc-1", command)
            seen.append(("ok", reply.state, reply.revision))
        except ea.Rejected as rejected:
            seen.append(("rejected", rejected.reason, rejected.meta))
    for i in range(3):
        seen.append(("counter", (await engine.send("counter", "c-1", Add(i + 1))).state))
    for i in range(5):
        seen.append(("state", await engine.get_state("account", f"acc-{i}")))
    seen.append(("at", await engine.get_state("account", "acc-1", at_revision=2)))
    seen.append(("history", [e.event async for e in engine.events("account", "acc-4")]))
    return seen


async def test_the_same_application_gives_the_same_results_in_one_process_and_in_a_cluster(
    cluster_app, pg_schema
):
    single = register(ea.Engine(store=ea.PostgresStore(DSN, schema=pg_schema)))
    async with single:
        expected = await run_script(single)
    async with cluster_app.engine() as clustered:
        assert await run_script(clustered) == expected


async def test_each_entity_lives_on_the_shard_its_id_hashes_to_and_nowhere_else(cluster_app):
    async with cluster_app.engine(num_shards=4) as engine:
        ids = [f"acc-{i}" for i in range(40)]
        await asyncio.gather(*(engine.send("account", i, Deposit(1)) for i in ids))
        statuses = await engine.cluster_status()
    assert [status["shard"] for status in statuses] == [0, 1, 2, 3]
    assert len({status["pid"] for status in statuses}) == 4  # one process per shard
    for status in statuses:
        expected = {f"account|{i}" for i in ids if shard_of(f"account|{i}", 4) == status["shard"]}
        assert set(status["live_entities"]) == expected
        assert expected  # 40 ids spread over every shard


async def test_commands_from_one_sender_to_one_entity_keep_their_order(cluster_app):
    async with cluster_app.engine() as engine:
        notes = [str(i) for i in range(300)]
        # All in flight at once: they travel in several batches, possibly in parallel calls.
        await asyncio.gather(*(engine.send("account", "ordered", Deposit(1, n)) for n in notes))
        state, revision = await engine.get_state("account", "ordered")
    assert revision == 300
    assert state.log == notes


async def test_a_shard_sends_to_an_entity_on_another_shard_through_self_engine(cluster_app):
    source_shard = shard_of("account|acc-1", 4)
    source, target = (
        "acc-1",
        next(f"t-{i}" for i in range(100) if shard_of(f"account|t-{i}", 4) != source_shard),
    )
    async with cluster_app.engine() as engine:
        await engine.send("account", source, Deposit(50))
        reply = await engine.send("account", source, TransferTo(target, 20))
        assert reply.state.balance == 30
        state, _ = await engine.get_state("account", target)
        assert (state.balance, state.log) == (20, ["transfer"])


async def test_errors_reach_the_caller_as_in_one_process(cluster_app):
    async with cluster_app.engine() as engine:
        with pytest.raises(ea.Rejected) as rejected:
            await engine.send("account", "acc-1", Withdraw(5))
        assert rejected.value.reason == "insufficient funds"
        assert rejected.value.meta == {"balance": 0}
        with pytest.raises(ea.UnknownEntityType, match="'nope'"):
            await engine.send("nope", "x", Deposit(1))
        with pytest.raises(ea.InvalidEntityId):
            await engine.send("account", "  ", Deposit(1))
        with pytest.raises(ea.SerializationError, match="BalanceSet"):
            await engine.send("account", "acc-1", SetBalance(1))  # its event is undeclared
        with pytest.raises(ea.SerializationError, match="importable in every process"):
            await engine.send("account", "acc-1", OnlyInThisProcess())
        with pytest.raises(ea.ConcurrencyError):
            await engine.send("account", "acc-1", Deposit(1), expected_revision=7)
        # A command that cannot travel fails alone; the others of its batch go through.
        results = await asyncio.gather(
            engine.send("account", "acc-2", Deposit(1)),
            engine.send("account", "acc-2", Unpicklable()),
            engine.send("account", "acc-2", Deposit(2)),
            return_exceptions=True,
        )
        assert [type(r).__name__ for r in results] == ["Reply", "SerializationError", "Reply"]
        assert "cannot be pickled" in str(results[1])
        assert (await engine.get_state("account", "acc-2"))[1] == 2


class OnlyInThisProcess:
    """Defined in a test module the shard processes cannot import."""


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("this command cannot be pickled")


async def test_a_timeout_is_the_callers_bound_in_cluster_mode_too(cluster_app):
    async with cluster_app.engine(command_timeout=5.0) as engine:
        with pytest.raises(ValueError, match="timeout"):
            await engine.send("account", "acc-1", Deposit(1), timeout=0)
        reply = await engine.send("account", "acc-1", Deposit(1), timeout=30.0)
        assert reply.revision == 1


async def test_passivation_and_snapshots_work_per_shard(cluster_app):
    async with cluster_app.engine(snapshot_every=5, passivate_after=0.3) as engine:
        for _ in range(12):
            await engine.send("account", "snap", Deposit(1))
        shard = shard_of("account|snap", 4)

        async def live_on_shard() -> list[str]:
            return (await engine.cluster_status())[shard]["live_entities"]

        assert "account|snap" in await live_on_shard()
        deadline = asyncio.get_running_loop().time() + 10
        while "account|snap" in await live_on_shard():
            assert asyncio.get_running_loop().time() < deadline, "never passivated"
            await asyncio.sleep(0.1)
        snapshot = await engine.store.load_snapshot("account|snap")
        assert snapshot is not None and snapshot.sequence_number == 10
        assert (await engine.get_state("account", "snap"))[0].balance == 12


async def test_two_drivers_share_the_shards_and_see_each_others_writes(cluster_app):
    first, second = cluster_app.engine(), cluster_app.engine()
    async with first, second:
        await first.send("account", "shared", Deposit(1))
        reply = await second.send("account", "shared", Deposit(2))
        assert (reply.state.balance, reply.revision) == (3, 2)
        pids = [s["pid"] for s in await first.cluster_status()]
        assert pids == [s["pid"] for s in await second.cluster_status()]


async def test_a_driver_of_another_application_is_refused_by_name(cluster_app):
    async with cluster_app.engine():
        other = ea.Engine(store=cluster_app.store(), cluster=cluster_app.cluster())
        other.register("counter", register.__globals__["CounterBehavior"])
        with pytest.raises(ea.EventActorsError, match="another application"):
            await other.start()
        assert not other.is_running
