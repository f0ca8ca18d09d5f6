"""The SnapshotStore contract: every snapshot kept, the newest at or below a bound loaded."""

from __future__ import annotations

from typing import Any

import pytest

import eventactors as ea

from .base import StoreContractBase
from .kit import Kit


async def save_all(
    store: ea.Store, kit: Kit, stream: str, sequences: list[int]
) -> dict[int, ea.Snapshot[Any]]:
    saved = {}
    for sequence in sequences:
        snapshot = kit.snapshot(stream, sequence)
        await store.save_snapshot(snapshot)
        saved[sequence] = snapshot
    return saved


def assert_same_snapshot(loaded: ea.Snapshot[Any] | None, saved: ea.Snapshot[Any]) -> None:
    assert isinstance(loaded, ea.Snapshot)
    assert loaded.persistence_id == saved.persistence_id
    assert loaded.sequence_number == saved.sequence_number
    assert loaded.state_type == saved.state_type
    assert type(loaded.state) is type(saved.state)
    assert loaded.state == saved.state
    assert loaded.timestamp == saved.timestamp


class SnapshotStoreContract(StoreContractBase):
    """Needs `SnapshotStore`, and `EventStore` (snapshots outlive deleted events)."""

    async def test_unknown_stream_has_no_snapshot(self, store: ea.Store, kit: Kit) -> None:
        await save_all(store, kit, kit.pid("other"), [1, 5])

        assert await store.load_snapshot(kit.pid("nobody")) is None
        assert await store.load_snapshot(kit.pid("nobody"), max_sequence=100) is None

    async def test_load_without_bound_gives_the_newest(self, store: ea.Store, kit: Kit) -> None:
        # Saved out of order: "newest" means the highest sequence number, not the last saved.
        saved = await save_all(store, kit, kit.pid("a"), [3, 10, 7])
        await save_all(store, kit, kit.pid("b"), [20])

        assert_same_snapshot(await store.load_snapshot(kit.pid("a")), saved[10])

    @pytest.mark.parametrize(
        ("max_sequence", "expected"),
        [(100, 10), (10, 10), (9, 7), (7, 7), (6, 3), (4, 3), (3, 3), (None, 10)],
    )
    async def test_load_gives_the_newest_at_or_below_max_sequence(
        self, store: ea.Store, kit: Kit, max_sequence: int | None, expected: int
    ) -> None:
        saved = await save_all(store, kit, kit.pid("a"), [3, 7, 10])

        loaded = await store.load_snapshot(kit.pid("a"), max_sequence=max_sequence)

        assert_same_snapshot(loaded, saved[expected])

    @pytest.mark.parametrize("max_sequence", [0, 1, 2])
    async def test_load_gives_none_when_no_snapshot_qualifies(
        self, store: ea.Store, kit: Kit, max_sequence: int | None
    ) -> None:
        await save_all(store, kit, kit.pid("a"), [3, 7])

        assert await store.load_snapshot(kit.pid("a"), max_sequence=max_sequence) is None

    async def test_every_snapshot_is_kept(self, store: ea.Store, kit: Kit) -> None:
        stream = kit.pid("a")
        saved = await save_all(store, kit, stream, list(range(1, 21)))

        for sequence, snapshot in saved.items():
            assert_same_snapshot(await store.load_snapshot(stream, max_sequence=sequence), snapshot)

    async def test_delete_snapshots_to_is_inclusive(self, store: ea.Store, kit: Kit) -> None:
        stream, other = kit.pid("a"), kit.pid("b")
        saved = await save_all(store, kit, stream, [3, 7, 10])
        kept = await save_all(store, kit, other, [3, 7])

        await store.delete_snapshots_to(stream, 7)

        assert_same_snapshot(await store.load_snapshot(stream), saved[10])
        assert await store.load_snapshot(stream, max_sequence=9) is None
        assert await store.load_snapshot(stream, max_sequence=7) is None
        assert await store.load_snapshot(stream, max_sequence=3) is None
        assert_same_snapshot(await store.load_snapshot(other, max_sequence=3), kept[3])
        assert_same_snapshot(await store.load_snapshot(other), kept[7])

    async def test_delete_snapshots_to_between_snapshots(self, store: ea.Store, kit: Kit) -> None:
        stream = kit.pid("a")
        saved = await save_all(store, kit, stream, [3, 7, 10])

        await store.delete_snapshots_to(stream, 8)

        assert await store.load_snapshot(stream, max_sequence=9) is None
        assert_same_snapshot(await store.load_snapshot(stream, max_sequence=10), saved[10])

        await store.delete_snapshots_to(stream, 10)

        assert await store.load_snapshot(stream) is None

    async def test_snapshots_are_independent_of_events(self, store: ea.Store, kit: Kit) -> None:
        stream = kit.pid("a")
        await kit.append(stream, 5)
        saved = await save_all(store, kit, stream, [5])

        await store.delete_events_to(stream, 5)

        assert_same_snapshot(await store.load_snapshot(stream), saved[5])
        assert await store.highest_sequence_number(stream) == 5
