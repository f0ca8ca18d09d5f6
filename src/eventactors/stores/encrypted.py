"""Encryption at rest for any store, and the right to be forgotten (crypto-shredding).

`EncryptedStore(store, master_key)` wraps a store. What it writes through it, event
payloads, snapshots, durable state and command-log payloads, is sealed with AES-GCM under a
data key of the entity's own (see `_payload_cipher` for the format); what it reads is
opened again. The metadata stays readable (stream names, sequence numbers, positions, types,
timestamps, tags, event metadata, natural identifiers), so ordering, offsets, filters and
unique identifiers keep working.

Each entity's data key is created on its first write and stored in the same database,
wrapped under the master key, which stays in this process (see `KeyStore`). `erase` deletes
an entity's key: its ciphertext can no longer be opened by anyone, while the rest of the
log is untouched. `Engine.erase_entity` is the way in for applications.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..errors import ConcurrencyError
from ..records import (
    CommandRecord,
    EventEnvelope,
    EventRecord,
    IdentifierClaim,
    PayloadRow,
)
from ..serialization import Serializer
from ._common import (
    check_append,
    check_command_record,
    check_extras,
    decode_event,
)
from ._encrypted_states import EncryptedStates
from ._envelope_cipher import (
    UNDECODED,
    changed_in_place,
    open_command,
    open_page,
    open_payloads,
    rebuilt,
    seal_command,
    seal_record,
)
from ._key_checks import check_persistence_id
from ._key_ring import ERASED, KeyRing, KeyState, entity_erased
from ._opaque_serializer import OpaqueSerializer
from .protocols import KeyStore, Store
from .sqlite import SQLiteStore

_MASTER_KEY_SIZES = (16, 24, 32)
#: The `KeyStore` methods of the wrapped store, which the wrapper does not pass on.
_KEY_STORE_METHODS = frozenset({"load_data_keys", "create_data_key", "erase_data_key"})
_EVERY_SEQUENCE = 2**62


class EncryptedStore(EncryptedStates):
    """A store whose payloads are encrypted at rest, one data key per entity.

    `master_key` is 32 random bytes (16 or 24 also work: AES-128 or AES-192), kept outside
    the database, for example in a secret manager: it wraps the data keys. A wrong master
    key makes every encrypted read fail with `SerializationError`, never a silent tombstone.

    The store it wraps must be new, not yet opened: it then stores opaque bytes (BLOB,
    bytea), and `serializer` here is the real one, where the engine registers its types.
    Data written before encryption was turned on stays plaintext, and is read as before; it
    is not encrypted afterwards. Entity ids, tags, event metadata, command-log reasons and
    natural identifiers stay plaintext too (identifiers must, for their unique index).

    `erase(persistence_id)` deletes an entity's key for good (see `Engine.erase_entity`).
    Afterwards its events read as tombstones (see `ErasedEvent`), its snapshots, state and
    recovery raise `EntityErased`, and writes to its stream through any `EncryptedStore`
    raise `EntityErased`. Another store object (another process) that holds the key in
    memory sees the erasure when the entity is next recovered there (its next activation),
    or once its cached key is older than `key_cache_ttl` seconds, whichever comes first;
    until then it can still read and write that entity with the key it holds.
    `key_cache_size` bounds how many unwrapped keys are kept (least recently used go).

    What this class does not define is the wrapped store's, read through it as it is:
    `commit_with_offset` (a transactional projection's read-model writes and offset),
    `list_offsets`, `write_statistics`, `drop_schema` (PostgreSQL), and attributes such as
    `path`, `dsn`, `schema` and `read_only`. None of them returns a payload. The data-key
    methods (`ea.KeyStore`: `load_data_keys`, `create_data_key`, `erase_data_key`) are not
    passed on: keys go through this store's key ring, and erasure through `erase`, so an
    `EncryptedStore` is not a `KeyStore` itself. `inner` is the wrapped store, whose reads
    return sealed payloads.

    `around(store)` wraps another store object on the same data (one a tool opened) in an
    `EncryptedStore` with this one's master key and options.
    """

    def __init__(
        self,
        store: Store,
        master_key: bytes,
        *,
        key_cache_size: int = 100_000,
        key_cache_ttl: float = 60.0,
    ) -> None:
        if not isinstance(master_key, bytes) or len(master_key) not in _MASTER_KEY_SIZES:
            got = (
                f"{len(master_key)} bytes"
                if isinstance(master_key, bytes)
                else type(master_key).__name__
            )
            raise ValueError(
                f"master_key must be 32 random bytes (AES-256; 16 or 24 for AES-128 or "
                f"AES-192), got {got}"
            )
        if type(key_cache_size) is not int or key_cache_size < 1:
            raise ValueError(f"key_cache_size must be an int >= 1, got {key_cache_size!r}")
        if type(key_cache_ttl) not in (int, float) or not 0 <= key_cache_ttl < float("inf"):
            raise ValueError(f"key_cache_ttl must be seconds >= 0, got {key_cache_ttl!r}")
        _check_wrappable(store)
        self._wrap(store, master_key, key_cache_size, float(key_cache_ttl))

    def _wrap(
        self, store: Store, master_key: bytes, key_cache_size: int, key_cache_ttl: float
    ) -> None:
        self.serializer: Serializer = store.serializer
        store.serializer = OpaqueSerializer()
        self._inner = store
        self._rebuild = changed_in_place if _builds_new_envelopes(store) else rebuilt
        self._master_key = master_key
        self._options = {"key_cache_size": key_cache_size, "key_cache_ttl": key_cache_ttl}
        keys: KeyStore = store  # type: ignore[assignment]  # checked by _check_wrappable
        self._keys = KeyRing(master_key, keys, key_cache_size, key_cache_ttl)

    def around(self, store: Store) -> EncryptedStore:
        """A new `EncryptedStore` with this one's master key and options around `store`,
        another store object on the same data: for a tool that opened the database itself
        (the inspector, the console, `eventactors rebuild` with `--app`), so that it reads
        what this store wrote and writes as this store does.

        `store` takes this store's place as the constructor's does (its serializer becomes
        the wrapper's), except that it may have been used already: a tool opens a store to
        check that it can read it before it loads the application. A read-only store reads
        through the wrapper as through any other; a write fails as the store fails it."""
        _check_wrappable(store, opened_ok=True)
        wrapper = object.__new__(type(self))
        options = self._options
        wrapper._wrap(
            store,
            self._master_key,
            int(options["key_cache_size"]),
            float(options["key_cache_ttl"]),
        )
        return wrapper

    @property
    def inner(self) -> Store:
        """The wrapped store, which holds sealed bytes only."""
        return self._inner

    def __repr__(self) -> str:
        return f"EncryptedStore({self._inner!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles (for cluster mode) as the wrapped store's configuration and the master
        key: the key then travels to every process that unpickles it."""
        if type(self._inner).__reduce__ is object.__reduce__:
            raise TypeError(
                f"an EncryptedStore over {type(self._inner).__name__} cannot be pickled: only "
                "a store that pickles as its configuration (SQLiteStore, PostgresStore) can "
                "be opened again in another process"
            )
        return (_reopen, (self._inner, self._master_key, type(self.serializer), self._options))

    def __getattr__(self, name: str) -> Any:
        """What the wrapper does not touch is the wrapped store's (projections'
        `commit_with_offset`, `list_offsets`, `path`, ...), except the data-key methods:
        a caller that deleted a key behind the key ring's back would leave this store
        reading and writing the stream with the key it holds."""
        if name.startswith("__"):
            raise AttributeError(name)
        if name in _KEY_STORE_METHODS:
            raise AttributeError(
                f"an EncryptedStore keeps its data keys to itself, it has no {name!r}: "
                "erase a stream with erase(), ask with is_erased()"
            )
        try:
            inner = object.__getattribute__(self, "_inner")
        except AttributeError:
            raise AttributeError(name) from None
        return getattr(inner, name)

    def decode_event(self, envelope: EventEnvelope) -> Any:
        return decode_event(self.serializer, envelope)

    async def close(self) -> None:
        """Closes the wrapped store; the keys in memory stay, as a store's data does."""
        await self._inner.close()

    # -- events ---------------------------------------------------------------------------

    async def append(
        self,
        persistence_id: str,
        records: Sequence[EventRecord],
        expected_sequence_number: int,
        *,
        command: CommandRecord | None = None,
        claim: IdentifierClaim | None = None,
    ) -> list[EventEnvelope]:
        check_append(persistence_id, records, expected_sequence_number)
        check_extras(persistence_id, command, claim)
        if not records and command is None:  # a claim alone: nothing to seal
            await self._refuse_if_erased(persistence_id)
            return await self._inner.append(
                persistence_id, records, expected_sequence_number, claim=claim
            )
        key = await self._keys.for_writing(persistence_id)
        envelopes = await self._inner.append(
            persistence_id,
            [seal_record(key, record) for record in records],
            expected_sequence_number,
            command=None if command is None else seal_command(key, command),
            claim=claim,
        )
        decode, rebuild = self.decode_event, self._rebuild
        return [
            rebuild(envelope, record.payload, decode, UNDECODED)
            for envelope, record in zip(envelopes, records, strict=True)
        ]

    async def read_stream(
        self,
        persistence_id: str,
        from_sequence: int = 1,
        to_sequence: int | None = None,
        limit: int | None = None,
    ) -> list[EventEnvelope]:
        page = await self._inner.read_stream(persistence_id, from_sequence, to_sequence, limit)
        return await self._opened(page)

    async def read_stream_payloads(
        self, persistence_id: str, from_sequence: int = 1, limit: int | None = None
    ) -> list[PayloadRow]:
        """Opened payloads, for recovery: `EntityErased` for an erased stream, and
        `SerializationError` at the first payload that cannot be opened."""
        rows = await self._inner.read_stream_payloads(persistence_id, from_sequence, limit)
        if not rows:
            return rows
        state = await self._key_state(persistence_id)
        return open_payloads(rows, persistence_id, state)

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        entity_types: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> list[EventEnvelope]:
        page = await self._inner.read_all(
            after_position, limit, entity_types=entity_types, event_types=event_types, tags=tags
        )
        return await self._opened(page)

    async def _opened(self, page: list[EventEnvelope]) -> list[EventEnvelope]:
        if not page:
            return page
        states = await self._keys.lookup({envelope.persistence_id for envelope in page})
        return open_page(page, states, self.decode_event, self._rebuild)

    async def highest_sequence_number(self, persistence_id: str) -> int:
        return await self._inner.highest_sequence_number(persistence_id)

    async def sequence_at(self, persistence_id: str, at_time: datetime) -> int:
        return await self._inner.sequence_at(persistence_id, at_time)

    async def head_position(self) -> int:
        return await self._inner.head_position()

    async def wait_for_events(self, after_position: int, timeout: float) -> bool:
        return await self._inner.wait_for_events(after_position, timeout)

    async def delete_events_to(self, persistence_id: str, to_sequence: int) -> None:
        await self._inner.delete_events_to(persistence_id, to_sequence)

    async def persistence_ids(self) -> list[str]:
        return await self._inner.persistence_ids()

    # -- offsets, natural identifiers and the command log --------------------------------

    async def get_offset(self, projection: str) -> int | None:
        return await self._inner.get_offset(projection)

    async def save_offset(self, projection: str, position: int) -> None:
        await self._inner.save_offset(projection, position)

    async def reset_offset(self, projection: str, position: int = 0) -> None:
        await self._inner.reset_offset(projection, position)

    async def find_entity(self, entity_type: str, identifiers: str) -> str | None:
        """Natural identifiers stay plaintext: their unique index must compare them."""
        return await self._inner.find_entity(entity_type, identifiers)

    async def identifiers_of(self, entity_type: str, entity_id: str) -> str | None:
        return await self._inner.identifiers_of(entity_type, entity_id)

    async def record_command(self, command: CommandRecord) -> None:
        check_command_record(command)
        key = await self._keys.for_writing(command.persistence_id)
        await self._inner.record_command(seal_command(key, command))

    async def read_commands(
        self, persistence_id: str, *, limit: int | None = None
    ) -> list[CommandRecord]:
        """Entries with their payloads opened; an erased entity's have empty payloads."""
        entries = await self._inner.read_commands(persistence_id, limit=limit)
        if not entries:
            return entries
        state = await self._key_state(persistence_id)
        return [open_command(entry, state) for entry in entries]

    # -- erasure --------------------------------------------------------------------------

    async def erase(self, persistence_id: str) -> None:
        """Crypto-shreds a stream: deletes its data key for good, then its snapshots and
        durable state. Its events stay in the log, unreadable (tombstones to readers); its
        stream can never be written again. Erasing twice is harmless. Prefer
        `Engine.erase_entity`, which also stops the live entity first."""
        check_persistence_id(persistence_id)
        await self._keys.erase(persistence_id)
        inner = self._inner
        await inner.delete_snapshots_to(persistence_id, _EVERY_SEQUENCE)
        for _ in range(3):  # a write in flight may move the revision on
            stored = await inner.get_state(persistence_id)
            if stored is None:
                return
            try:
                await inner.delete_state(persistence_id, stored.revision)
                return
            except ConcurrencyError:
                continue

    async def is_erased(self, persistence_id: str) -> bool:
        """Whether the stream was erased, as the key table has it now."""
        return await self._keys.refresh(check_persistence_id(persistence_id)) is ERASED

    async def _key_state(self, persistence_id: str) -> KeyState:
        state = self._keys.known(persistence_id)
        if state is None:
            state = (await self._keys.lookup([persistence_id]))[persistence_id]
        return state

    async def _refuse_if_erased(self, persistence_id: str) -> None:
        if await self._key_state(persistence_id) is ERASED:
            raise entity_erased(persistence_id)


def _builds_new_envelopes(store: Store) -> bool:
    """Whether the store's reads and appends return envelopes no one else holds, which can
    be opened in place: SQLite's and PostgreSQL's build them from rows. A MemoryStore hands
    out the ones it keeps, and another store might: theirs are copied."""
    postgres = sys.modules.get("eventactors.stores.postgres")  # loaded if it is in use
    return type(store) is SQLiteStore or (
        postgres is not None and type(store) is postgres.PostgresStore
    )


def _check_wrappable(store: Any, *, opened_ok: bool = False) -> None:
    if isinstance(store, EncryptedStore) or isinstance(
        getattr(store, "serializer", None), OpaqueSerializer
    ):
        raise ValueError(f"{store!r} is already wrapped by an EncryptedStore")
    if not isinstance(store, Store):
        raise TypeError(f"EncryptedStore wraps a store (ea.Store), not {type(store).__name__}")
    if not isinstance(store, KeyStore):
        raise TypeError(
            f"EncryptedStore needs a store that keeps data keys (ea.KeyStore: MemoryStore, "
            f"SQLiteStore, PostgresStore); {type(store).__name__} does not"
        )
    opened = getattr(store, "_connections_open", None)
    if not opened_ok and opened is not None and opened():
        raise ValueError(
            f"{store!r} has already been used: wrap a new store object in the EncryptedStore "
            "before its first call (its payloads would otherwise be read with the wrong "
            "serializer)"
        )


def _reopen(
    store: Store, master_key: bytes, serializer_type: type, options: dict[str, Any]
) -> EncryptedStore:
    """Unpickles an `EncryptedStore`: the wrapped store comes back unopened with a new
    serializer of the real type, where the engine there registers its types again."""
    store.serializer = serializer_type()
    return EncryptedStore(store, master_key, **options)
