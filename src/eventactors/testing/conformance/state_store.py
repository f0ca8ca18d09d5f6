"""The StateStore contract: durable state written revision by revision, never skipping one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import eventactors as ea

from .base import OpenStore, StoreContractBase
from .kit import Kit


def assert_same_state(loaded: ea.StateRecord[Any] | None, saved: ea.StateRecord[Any]) -> None:
    assert isinstance(loaded, ea.StateRecord)
    assert loaded.persistence_id == saved.persistence_id
    assert loaded.revision == saved.revision
    assert loaded.state_type == saved.state_type
    assert type(loaded.state) is type(saved.state)
    assert loaded.state == saved.state
    assert loaded.timestamp == saved.timestamp


async def upsert(
    store: ea.Store, kit: Kit, stream: str, revision: int, balance: int
) -> ea.StateRecord[Any]:
    record = kit.state(stream, revision, balance)
    await store.upsert_state(stream, revision, record)
    return record


async def racing_upserts(
    stores: list[ea.Store], kit: Kit, stream: str, revision: int
) -> list[object]:
    """Each store writes `revision` at once, with its own balance; returns the outcomes."""
    return await asyncio.gather(
        *(
            s.upsert_state(stream, revision, kit.state(stream, revision, 100 + n))
            for n, s in enumerate(stores)
        ),
        return_exceptions=True,
    )


class StateStoreContract(StoreContractBase):
    """Needs `StateStore`."""

    async def test_unknown_state_is_none(self, store: ea.Store, kit: Kit) -> None:
        await upsert(store, kit, kit.pid("other"), 1, 10)

        assert await store.get_state(kit.pid("nobody")) is None

    async def test_first_revision_then_the_next(self, store: ea.Store, kit: Kit) -> None:
        stream = kit.pid("a")

        first = await upsert(store, kit, stream, 1, 10)
        assert_same_state(await store.get_state(stream), first)

        second = await upsert(store, kit, stream, 2, 20)
        assert_same_state(await store.get_state(stream), second)

        third = await upsert(store, kit, stream, 3, 30)
        assert_same_state(await store.get_state(stream), third)

    @pytest.mark.parametrize("revision", [0, 2, 5])
    async def test_a_new_state_starts_at_revision_one(
        self, store: ea.Store, kit: Kit, revision: int
    ) -> None:
        stream = kit.pid("a")

        with pytest.raises(ea.ConcurrencyError):
            await store.upsert_state(stream, revision, kit.state(stream, revision, 10))

        assert await store.get_state(stream) is None

    @pytest.mark.parametrize("revision", [1, 2, 4, 5, 100])
    async def test_any_revision_but_the_next_is_rejected(
        self, store: ea.Store, kit: Kit, revision: int
    ) -> None:
        stream = kit.pid("a")
        await upsert(store, kit, stream, 1, 10)
        current = await upsert(store, kit, stream, 2, 20)

        with pytest.raises(ea.ConcurrencyError):
            await store.upsert_state(stream, revision, kit.state(stream, revision, 999))

        assert_same_state(await store.get_state(stream), current)
        # The next revision is still the one after the stored one.
        following = await upsert(store, kit, stream, 3, 30)
        assert_same_state(await store.get_state(stream), following)

    async def test_states_are_independent(self, store: ea.Store, kit: Kit) -> None:
        a1 = await upsert(store, kit, kit.pid("a"), 1, 10)
        b1 = await upsert(store, kit, kit.pid("b"), 1, 100)
        a2 = await upsert(store, kit, kit.pid("a"), 2, 20)

        assert_same_state(await store.get_state(kit.pid("a")), a2)
        assert_same_state(await store.get_state(kit.pid("b")), b1)
        assert a1.state != a2.state

    @pytest.mark.parametrize("revision", [0, 1, 3])
    async def test_delete_with_the_wrong_revision_is_rejected(
        self, store: ea.Store, kit: Kit, revision: int
    ) -> None:
        stream = kit.pid("a")
        await upsert(store, kit, stream, 1, 10)
        current = await upsert(store, kit, stream, 2, 20)

        with pytest.raises(ea.ConcurrencyError):
            await store.delete_state(stream, revision)

        assert_same_state(await store.get_state(stream), current)

    async def test_delete_with_the_right_revision_removes_the_state(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream, other = kit.pid("a"), kit.pid("b")
        await upsert(store, kit, stream, 1, 10)
        await upsert(store, kit, stream, 2, 20)
        kept = await upsert(store, kit, other, 1, 5)

        await store.delete_state(stream, 2)

        assert await store.get_state(stream) is None
        assert_same_state(await store.get_state(other), kept)

    async def test_racing_writers_of_the_same_revision_have_exactly_one_winner(
        self, reopen: OpenStore, kit: Kit
    ) -> None:
        stores = [reopen() for _ in range(4)]
        for round_ in range(10):
            stream = kit.pid(f"race-{round_}")
            for revision in (1, 2):  # a first write (an insert) and a later one (an update)
                outcomes = await racing_upserts(stores, kit, stream, revision)
                winners = [n for n, outcome in enumerate(outcomes) if outcome is None]
                assert len(winners) == 1, f"revision {revision}: {outcomes}"
                losers = [o for n, o in enumerate(outcomes) if n != winners[0]]
                assert all(isinstance(o, ea.ConcurrencyError) for o in losers), repr(losers)
                stored = await stores[0].get_state(stream)
                assert stored is not None and stored.revision == revision
                assert stored.state.balance == 100 + winners[0]  # the winner's write, not a loser's
