"""The engine works unchanged on every durable store: same behaviors, same guarantees."""

from __future__ import annotations

import asyncio

import pytest
from behaviors_for_tests import Add, tally_behavior
from eventactors_examples.bank.domain import AccountBehavior, Deposit, Open, Withdraw

import eventactors as ea

pytestmark = pytest.mark.timeout(60)


async def test_commands_are_sequential_and_recovered_after_a_restart(open_durable_store):
    engine = ea.Engine(store=open_durable_store())
    behavior = tally_behavior()
    engine.register("tally", behavior, snapshot_every=5)
    async with engine:
        replies = await asyncio.gather(
            *(engine.send("tally", "t", Add(i, delay=0.001)) for i in range(30))
        )
        assert [r.revision for r in replies] == list(range(1, 31))
        assert behavior.probe.max_active == 1
        live = await engine.get_state("tally", "t")
    engine = ea.Engine(store=open_durable_store())
    engine.register("tally", tally_behavior(), snapshot_every=5)
    async with engine:
        assert await engine.get_state("tally", "t") == live
        assert (await engine.store.load_snapshot("tally|t")).sequence_number == 30


async def test_the_bank_rules_hold_and_events_reach_subscribers(open_durable_store):
    engine = ea.Engine(store=open_durable_store())
    engine.register("account", AccountBehavior)
    async with engine:
        subscription = engine.subscribe()
        await engine.send("account", "a", Open("ann"))
        await engine.send("account", "a", Deposit(50))
        with pytest.raises(ea.Rejected, match="insufficient funds"):
            await engine.send("account", "a", Withdraw(80))
        reply = await engine.send("account", "a", Withdraw(20))
        assert (reply.state.balance, reply.revision) == (30, 3)
        seen = [await asyncio.wait_for(anext(subscription), 5) for _ in range(3)]
        assert [e.event_type for e in seen] == ["Opened", "Deposited", "Withdrawn"]
        stored = await engine.store.read_stream("account|a")
        assert [e.event_id for e in stored] == [e.event_id for e in seen]


INJECTIONS = [
    "o'brien",
    'quote"double',
    "x'; DROP TABLE ea_events; --",
    "1; DELETE FROM ea_streams",
    "Robert'); DROP TABLE students;--",
    "semi;colon|pipe",
    "ünïcödé 🏦 账户",
    "back\\slash",
    "$1 $$ dollar",
]


async def test_hostile_entity_ids_and_payloads_are_stored_verbatim(open_durable_store):
    engine = ea.Engine(store=open_durable_store())
    engine.register("account", AccountBehavior)
    async with engine:
        for entity_id in INJECTIONS:
            await engine.send("account", entity_id, Open(owner=entity_id))
            await engine.send("account", entity_id, Deposit(7), metadata={"note": entity_id})
    engine = ea.Engine(store=open_durable_store())
    engine.register("account", AccountBehavior)
    async with engine:
        for entity_id in INJECTIONS:
            state, revision = await engine.get_state("account", entity_id)
            assert (state.owner, state.balance, revision) == (entity_id, 7, 2)
        stream_ids = await engine.store.persistence_ids()
        assert sorted(stream_ids) == sorted(f"account|{entity_id}" for entity_id in INJECTIONS)
        log = await engine.store.read_all(limit=100)
        assert len(log) == 2 * len(INJECTIONS)  # no table was dropped, no row deleted
        assert {e.metadata.get("note") for e in log} - {None} == set(INJECTIONS)
