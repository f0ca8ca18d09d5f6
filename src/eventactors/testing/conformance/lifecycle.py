"""Sharing and lifecycle: stores on the same data see each other; close() is not the end."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest

import eventactors as ea

from .base import OpenStore, StoreContractBase
from .kit import Kit


class Written(TypedDict):
    events: list[ea.EventEnvelope]
    snapshot: ea.Snapshot[Any]
    state: ea.StateRecord[Any]


async def write_one_of_each(store: ea.Store, kit: Kit) -> Written:
    """Writes an event, a snapshot, a durable state and an offset; returns what was written."""
    stream = kit.pid("a")
    events = await store.append(stream, kit.records(stream, 1, 3), 0)
    snapshot = kit.snapshot(stream, 2)
    await store.save_snapshot(snapshot)
    state = kit.state(kit.pid("d"), 1, 50)
    await store.upsert_state(kit.pid("d"), 1, state)
    await store.save_offset("balances", events[-1].global_position)
    return {"events": events, "snapshot": snapshot, "state": state}


async def assert_sees(store: ea.Store, kit: Kit, written: Written) -> None:
    events = written["events"]
    read = await store.read_stream(kit.pid("a"))
    assert [e.event_id for e in read] == [e.event_id for e in events]
    assert [e.global_position for e in read] == [e.global_position for e in events]
    assert [e.event for e in read] == [
        kit.Deposited(account=kit.pid("a"), amount=sequence) for sequence in (1, 2, 3)
    ]
    assert [e.event_id for e in await store.read_all()] == [e.event_id for e in events]
    assert await store.highest_sequence_number(kit.pid("a")) == 3
    assert await store.persistence_ids() == [kit.pid("a")]
    snapshot = await store.load_snapshot(kit.pid("a"))
    assert snapshot is not None
    assert snapshot.sequence_number == 2
    assert snapshot.state == written["snapshot"].state
    state = await store.get_state(kit.pid("d"))
    assert state is not None
    assert state.revision == 1
    assert state.state == written["state"].state
    assert await store.get_offset("balances") == events[-1].global_position


class LifecycleContract(StoreContractBase):
    """Needs `EventStore`, `SnapshotStore`, `StateStore` and `OffsetStore`."""

    async def test_two_stores_on_the_same_data_see_each_others_writes(
        self, store: ea.Store, reopen: OpenStore, kit: Kit
    ) -> None:
        other = reopen()
        written = await write_one_of_each(store, kit)

        await assert_sees(other, kit, written)

        # Writes through the second store are seen through the first, and the two stores
        # check each other's sequence numbers and revisions.
        stream = kit.pid("a")
        more = await other.append(stream, kit.records(stream, 4, 2), 3)
        await other.upsert_state(kit.pid("d"), 2, kit.state(kit.pid("d"), 2, 60))
        await other.save_offset("balances", more[-1].global_position)

        assert [e.sequence_number for e in await store.read_stream(stream)] == [1, 2, 3, 4, 5]
        assert await store.highest_sequence_number(stream) == 5
        assert (await store.read_all())[-1].global_position == more[-1].global_position
        stored = await store.get_state(kit.pid("d"))
        assert stored is not None and stored.revision == 2
        assert await store.get_offset("balances") == more[-1].global_position
        with pytest.raises(ea.ConcurrencyError):
            await store.append(stream, kit.records(stream, 4, 1), 3)
        with pytest.raises(ea.ConcurrencyError):
            await store.upsert_state(kit.pid("d"), 2, kit.state(kit.pid("d"), 2, 70))

    async def test_a_closed_store_reopens_on_its_next_call(self, store: ea.Store, kit: Kit) -> None:
        written = await write_one_of_each(store, kit)

        await store.close()

        await assert_sees(store, kit, written)
        stream = kit.pid("a")
        appended = await store.append(stream, kit.records(stream, 4, 1), 3)
        assert appended[0].global_position > written["events"][-1].global_position
        assert await store.highest_sequence_number(stream) == 4

    async def test_data_outlives_close_for_a_new_store(
        self, store: ea.Store, reopen: OpenStore, kit: Kit
    ) -> None:
        written = await write_one_of_each(store, kit)
        await store.close()

        await assert_sees(reopen(), kit, written)

    async def test_close_twice_then_use(self, store: ea.Store, kit: Kit) -> None:
        written = await write_one_of_each(store, kit)

        await store.close()
        await store.close()

        await assert_sees(store, kit, written)
