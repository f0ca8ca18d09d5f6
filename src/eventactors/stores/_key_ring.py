"""The data keys of one `EncryptedStore`: one random 256-bit key per stream, created on the
stream's first write, stored wrapped under the master key, kept unwrapped in memory.

Readers look up the keys of a whole page in one query. Erasure is final, so an erased
stream is remembered for good; a stream without a key is not (another writer may create it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from time import monotonic

from ..errors import EntityErased, SerializationError
from ..records import split_persistence_id
from ._payload_cipher import AESGCM, KEY_MAGIC, InvalidTag, key_aad, open_sealed, seal
from .protocols import KeyStore


class Erased:
    """The key state of an erased stream."""

    def __repr__(self) -> str:
        return "ERASED"


ERASED = Erased()
#: A stream's key (ready to use), ERASED, None (no key: nothing sealed was written), or the
#: error that unwrapping its key met (a wrong master key), to raise where it is needed.
KeyState = AESGCM | Erased | SerializationError | None

_WRAPPED_SIZE = len(KEY_MAGIC) + 12 + 32 + 16  # magic, nonce, key, tag


def entity_erased(persistence_id: str) -> EntityErased:
    entity_type, entity_id = split_persistence_id(persistence_id)
    return EntityErased(
        f"entity {entity_type!r}/{entity_id!r} (stream {persistence_id!r}) was erased: its "
        "data key is deleted, so its data cannot be read and its stream cannot be written",
        persistence_id=persistence_id,
    )


class KeyRing:
    def __init__(
        self, master_key: bytes, store: KeyStore, cache_size: int, cache_ttl: float
    ) -> None:
        self._master = AESGCM(master_key)
        self._store = store
        # persistence id -> (key, when it was read), least recently used first
        self._cache: OrderedDict[str, tuple[AESGCM, float]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_ttl = cache_ttl
        self._erased: set[str] = set()

    def known(self, persistence_id: str, now: float | None = None) -> KeyState:
        """What memory holds, without a query: a key, ERASED, or None (look it up). A key
        read more than the cache's time to live ago is looked up again, so an erasure by
        another process is seen within that time."""
        if persistence_id in self._erased:
            return ERASED
        cached = self._cache.get(persistence_id)
        if cached is None:
            return None
        if (now if now is not None else monotonic()) - cached[1] > self._cache_ttl:
            del self._cache[persistence_id]
            return None
        self._cache.move_to_end(persistence_id)
        return cached[0]

    async def lookup(self, persistence_ids: Iterable[str]) -> dict[str, KeyState]:
        """The state of each stream's key; the ones not in memory in one query."""
        states: dict[str, KeyState] = {}
        missing: list[str] = []
        now = monotonic()
        for name in persistence_ids:
            state = self.known(name, now)
            if state is None:
                missing.append(name)
            else:
                states[name] = state
        if missing:
            stored = await self._store.load_data_keys(missing)
            for name in missing:
                states[name] = self._remember(name, stored[name]) if name in stored else None
        return states

    async def refresh(self, persistence_id: str) -> KeyState:
        """The stream's key as the key table has it now: what an entity's recovery checks,
        so that an erasure by another store object is seen on the entity's next activation."""
        if persistence_id not in self._erased:
            self._cache.pop(persistence_id, None)
        return (await self.lookup([persistence_id]))[persistence_id]

    async def for_writing(self, persistence_id: str) -> AESGCM:
        """The stream's key, created (and stored) if it has none; `EntityErased` if erased,
        also by an `erase` of this ring that began while the key was being loaded or created
        (its key may have been stored before the erasure deleted it)."""
        state = self.known(persistence_id)
        if state is None:
            state = (await self.lookup([persistence_id]))[persistence_id]
        if state is None:
            data_key = AESGCM.generate_key(bit_length=256)
            wrapped = seal(self._master, data_key, key_aad(persistence_id), KEY_MAGIC)
            stored = await self._store.create_data_key(persistence_id, wrapped)
            state = self._remember(persistence_id, stored)  # another writer's key may win
        return usable(state, persistence_id)

    async def erase(self, persistence_id: str) -> None:
        """Deletes the key in the key table, refusing this store's writes from the start."""
        self._erased.add(persistence_id)
        self._cache.pop(persistence_id, None)
        try:
            await self._store.erase_data_key(persistence_id)
        except BaseException:
            self._erased.discard(persistence_id)  # not erased: the next read finds the key
            raise

    def _remember(self, persistence_id: str, wrapped: bytes | None) -> KeyState:
        """The state of a key just read from the key table. An `erase` here that began while
        it was read wins: the key read may be one the erasure has deleted since."""
        if wrapped is None or persistence_id in self._erased:
            self._erased.add(persistence_id)
            self._cache.pop(persistence_id, None)
            return ERASED
        try:
            if len(wrapped) != _WRAPPED_SIZE or not wrapped.startswith(KEY_MAGIC):
                raise InvalidTag
            key = AESGCM(open_sealed(self._master, wrapped, key_aad(persistence_id)))
        except InvalidTag:
            return SerializationError(
                f"cannot unwrap the data key of stream {persistence_id!r}: the master key is "
                "not the one it was wrapped with, or its row in ea_data_keys was altered"
            )
        cache = self._cache
        cache[persistence_id] = (key, monotonic())
        if len(cache) > self._cache_size:
            cache.popitem(last=False)
        return key


def usable(state: KeyState, persistence_id: str) -> AESGCM:
    """The key, or the error that stands in its way."""
    if isinstance(state, AESGCM):
        return state
    if state is ERASED:
        raise entity_erased(persistence_id)
    if isinstance(state, SerializationError):
        raise SerializationError(str(state))
    raise SerializationError(f"stream {persistence_id!r} has sealed data but no data key")
