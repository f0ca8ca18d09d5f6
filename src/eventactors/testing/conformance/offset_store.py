"""The OffsetStore contract: one position per projection, None until first saved."""

from __future__ import annotations

import pytest

import eventactors as ea

from .base import StoreContractBase


class OffsetStoreContract(StoreContractBase):
    """Needs `OffsetStore`."""

    async def test_a_projection_that_never_saved_has_no_offset(self, store: ea.Store) -> None:
        await store.save_offset("other", 5)

        assert await store.get_offset("never-saved") is None

    async def test_save_then_get(self, store: ea.Store) -> None:
        await store.save_offset("balances", 42)
        assert await store.get_offset("balances") == 42

        await store.save_offset("balances", 43)
        assert await store.get_offset("balances") == 43

    async def test_zero_is_a_saved_offset(self, store: ea.Store) -> None:
        await store.save_offset("balances", 0)

        offset = await store.get_offset("balances")
        assert offset == 0
        assert offset is not None

    async def test_offsets_are_per_projection(self, store: ea.Store) -> None:
        await store.save_offset("balances", 10)
        await store.save_offset("audit", 20)

        assert await store.get_offset("balances") == 10
        assert await store.get_offset("audit") == 20

    async def test_reset_to_zero_by_default(self, store: ea.Store) -> None:
        await store.save_offset("balances", 42)
        await store.save_offset("audit", 7)

        await store.reset_offset("balances")

        assert await store.get_offset("balances") == 0
        assert await store.get_offset("audit") == 7

    async def test_reset_to_a_given_position(self, store: ea.Store) -> None:
        await store.save_offset("balances", 42)

        await store.reset_offset("balances", 17)
        assert await store.get_offset("balances") == 17

        await store.reset_offset("balances", 0)
        assert await store.get_offset("balances") == 0

    async def test_reset_of_a_projection_that_never_saved(self, store: ea.Store) -> None:
        await store.reset_offset("fresh", 5)

        assert await store.get_offset("fresh") == 5

    @pytest.mark.parametrize("position", [-1, -100])
    async def test_a_negative_position_is_rejected(self, store: ea.Store, position: int) -> None:
        await store.save_offset("balances", 3)

        with pytest.raises(ValueError):
            await store.save_offset("balances", position)
        with pytest.raises(ValueError):
            await store.reset_offset("balances", position)
        with pytest.raises(ValueError):
            await store.save_offset("fresh", position)

        assert await store.get_offset("balances") == 3
        assert await store.get_offset("fresh") is None
