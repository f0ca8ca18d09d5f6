"""The data-key table of `MemoryStore` (see `KeyStore`): a dict, as the rest of its data."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from ._key_checks import check_persistence_id, check_persistence_ids, check_wrapped_key

# persistence id -> (wrapped key or None once erased, created at, erased at)
KeyRows = dict[str, tuple[bytes | None, datetime, datetime | None]]


class MemoryKeys:
    """Mixed into `MemoryStore`."""

    _data_keys: KeyRows

    async def load_data_keys(self, persistence_ids: Sequence[str]) -> dict[str, bytes | None]:
        rows = self._data_keys
        return {
            name: rows[name][0] for name in check_persistence_ids(persistence_ids) if name in rows
        }

    async def create_data_key(self, persistence_id: str, wrapped_key: bytes) -> bytes | None:
        check_wrapped_key(persistence_id, wrapped_key)
        row = self._data_keys.setdefault(persistence_id, (wrapped_key, datetime.now(UTC), None))
        return row[0]

    async def erase_data_key(self, persistence_id: str) -> None:
        check_persistence_id(persistence_id)
        now = datetime.now(UTC)
        row = self._data_keys.get(persistence_id)
        if row is not None and row[0] is None:
            return  # erased already: the first erasure's time stands
        self._data_keys[persistence_id] = (None, now if row is None else row[1], now)

    def _connections_open(self) -> bool:
        return False  # nothing to open: the data lives in the object
