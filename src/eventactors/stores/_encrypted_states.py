"""Snapshots and durable state through `EncryptedStore`: sealed on write, opened on read.

Reading them is also where an entity's recovery meets an erasure: `load_snapshot` (the first
read of an event-sourced entity's recovery) and `get_state` (a durable-state entity's) ask
the key table afresh, so an erasure by another store object is seen on the next activation.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from ..errors import SerializationError
from ..records import CommandRecord, IdentifierClaim, Snapshot, StateRecord
from ..serialization import Serializer
from ._common import check_extras, check_state_record, decode_state, encode_state
from ._envelope_cipher import seal_command
from ._key_ring import ERASED, KeyRing, KeyState, entity_erased, usable
from ._payload_cipher import InvalidTag, is_sealed, open_sealed, seal, snapshot_aad, state_aad
from .protocols import Store


class EncryptedStates:
    """Mixed into `EncryptedStore`."""

    serializer: Serializer
    _inner: Store
    _keys: KeyRing

    # -- snapshots ------------------------------------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot[Any]) -> None:
        pid, sequence = snapshot.persistence_id, snapshot.sequence_number
        key = await self._keys.for_writing(pid)
        plaintext = encode_state(self.serializer, snapshot.state, pid)
        sealed = seal(key, plaintext, snapshot_aad(pid, sequence, snapshot.state_type))
        await self._inner.save_snapshot(dataclasses.replace(snapshot, state=sealed))

    async def load_snapshot(
        self, persistence_id: str, max_sequence: int | None = None
    ) -> Snapshot[Any] | None:
        """Also where an entity's recovery checks the key table: `EntityErased` if erased."""
        state, snapshot = await asyncio.gather(
            self._keys.refresh(persistence_id),
            self._inner.load_snapshot(persistence_id, max_sequence),
        )
        if state is ERASED:
            raise entity_erased(persistence_id)
        if snapshot is None:
            return None
        where = f"snapshot of stream {persistence_id!r} at sequence {snapshot.sequence_number}"
        aad = snapshot_aad(persistence_id, snapshot.sequence_number, snapshot.state_type)
        decoded = self._open_state(
            persistence_id, state, snapshot.state_type, snapshot.state, aad, where
        )
        opened: Snapshot[Any] = dataclasses.replace(snapshot, state=decoded)
        return opened

    async def delete_snapshots_to(self, persistence_id: str, to_sequence: int) -> None:
        await self._inner.delete_snapshots_to(persistence_id, to_sequence)

    # -- durable state --------------------------------------------------------------------

    async def upsert_state(
        self,
        persistence_id: str,
        revision: int,
        state_record: StateRecord[Any],
        *,
        command: CommandRecord | None = None,
        claim: IdentifierClaim | None = None,
    ) -> None:
        check_state_record(persistence_id, revision, state_record)
        check_extras(persistence_id, command, claim)
        key = await self._keys.for_writing(persistence_id)
        plaintext = encode_state(self.serializer, state_record.state, persistence_id)
        aad = state_aad(persistence_id, revision, state_record.state_type)
        await self._inner.upsert_state(
            persistence_id,
            revision,
            dataclasses.replace(state_record, state=seal(key, plaintext, aad)),
            command=None if command is None else seal_command(key, command),
            claim=claim,
        )

    async def get_state(self, persistence_id: str) -> StateRecord[Any] | None:
        """Also where an entity's recovery checks the key table: `EntityErased` if erased."""
        state, record = await asyncio.gather(
            self._keys.refresh(persistence_id), self._inner.get_state(persistence_id)
        )
        if state is ERASED:
            raise entity_erased(persistence_id)
        if record is None:
            return None
        where = f"state of stream {persistence_id!r} at revision {record.revision}"
        aad = state_aad(persistence_id, record.revision, record.state_type)
        decoded = self._open_state(
            persistence_id, state, record.state_type, record.state, aad, where
        )
        restored: StateRecord[Any] = dataclasses.replace(record, state=decoded)
        return restored

    async def delete_state(self, persistence_id: str, revision: int) -> None:
        await self._inner.delete_state(persistence_id, revision)

    def _open_state(
        self,
        persistence_id: str,
        state: KeyState,
        state_type: str,
        payload: bytes,
        aad: bytes,
        where: str,
    ) -> Any:
        if is_sealed(payload):
            try:
                payload = open_sealed(usable(state, persistence_id), payload, aad)
            except InvalidTag:
                raise SerializationError(
                    f"cannot open the {where}: it was not sealed for this row, or was altered"
                ) from None
        return decode_state(self.serializer, state_type, payload, where)
