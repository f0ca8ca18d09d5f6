"""In-memory store: all four protocols in dicts, for tests and for throwaway runs.

Events are kept encoded, exactly as a database would keep them, so that serialization
problems show up here as they would in production. Data survives `close()`, so an engine
restarted on the same `MemoryStore` object recovers as it would from a file.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..errors import EventActorsError
from ..records import (
    CommandRecord,
    EventEnvelope,
    EventRecord,
    IdentifierClaim,
    PayloadRow,
    Snapshot,
    StateRecord,
)
from ..serialization import JsonSerializer, Serializer
from ._common import (
    check_append,
    check_at_time,
    check_command_record,
    check_extras,
    check_filter,
    check_position,
    check_range,
    check_state_record,
    check_state_revision,
    check_stream_position,
    decode_event,
    decode_state,
    encode_state,
    envelope_from_record,
    identifier_taken,
    matches,
)
from ._memory_keys import KeyRows, MemoryKeys
from ._notify import AppendSignal
from .group_commit import WriteCounter, WriteStatistics


class MemoryStore(MemoryKeys):
    """Everything in process memory; nothing survives the process."""

    def __init__(self, serializer: Serializer | None = None) -> None:
        self.serializer: Serializer = serializer or JsonSerializer()
        self._streams: dict[str, list[EventEnvelope]] = {}
        self._highest: dict[str, int] = {}
        self._log: list[EventEnvelope] = []
        self._last_position = 0
        self._snapshots: dict[str, dict[int, tuple[str, bytes, Any]]] = {}
        self._states: dict[str, tuple[int, str, bytes, Any]] = {}
        self._offsets: dict[str, int] = {}
        self._owners: dict[tuple[str, str], str] = {}  # (entity type, identifiers) -> entity id
        self._identifiers: dict[tuple[str, str], str] = {}  # (entity type, entity id) -> ids
        self._commands: dict[str, list[CommandRecord]] = {}
        self._data_keys: KeyRows = {}  # for EncryptedStore: see KeyStore
        self._signal = AppendSignal(self.head_position, poll_interval=None)
        self._counter = WriteCounter()

    def write_statistics(self) -> WriteStatistics:
        """Every append is its own "transaction" here: there is nothing to group."""
        return self._counter.snapshot()

    def decode_event(self, envelope: EventEnvelope) -> Any:
        return decode_event(self.serializer, envelope)

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
        highest = self._highest.get(persistence_id, 0)
        try:
            check_stream_position(persistence_id, highest, expected_sequence_number)
            self._check_claim(claim)
        except EventActorsError:
            self._counter.count(1, 1, 0)
            raise
        self._counter.count(1, 1, len(records))
        self._write_extras(command, claim)
        if not records:
            return []
        stored = []
        for record in records:
            self._last_position += 1
            stored.append(envelope_from_record(record, self._last_position, self))
        self._streams.setdefault(persistence_id, []).extend(stored)
        self._log.extend(stored)
        self._highest[persistence_id] = records[-1].sequence_number
        self._signal.notify()
        # The caller may attach its in-memory event to what it gets back; replay must still
        # decode the stored bytes, as it would from a database.
        return [
            envelope_from_record(record, envelope.global_position, self)
            for record, envelope in zip(records, stored, strict=True)
        ]

    async def read_stream(
        self,
        persistence_id: str,
        from_sequence: int = 1,
        to_sequence: int | None = None,
        limit: int | None = None,
    ) -> list[EventEnvelope]:
        check_range(from_sequence, to_sequence, limit)
        stream = self._streams.get(persistence_id, [])
        start = bisect_left(stream, from_sequence, key=_sequence)
        end = (
            len(stream) if to_sequence is None else bisect_right(stream, to_sequence, key=_sequence)
        )
        if limit is not None:
            end = min(end, start + limit)
        return stream[start:end] if start < end else []

    async def read_stream_payloads(
        self, persistence_id: str, from_sequence: int = 1, limit: int | None = None
    ) -> list[PayloadRow]:
        page = await self.read_stream(persistence_id, from_sequence, None, limit)
        return [(e.sequence_number, e.event_type, e.payload, e.event_version) for e in page]

    async def highest_sequence_number(self, persistence_id: str) -> int:
        return self._highest.get(persistence_id, 0)

    async def sequence_at(self, persistence_id: str, at_time: datetime) -> int:
        check_at_time(at_time)
        for envelope in self._streams.get(persistence_id, []):
            if envelope.timestamp > at_time:
                return envelope.sequence_number - 1
        return self._highest.get(persistence_id, 0)

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        entity_types: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> list[EventEnvelope]:
        check_range(0, None, limit)
        filters = (
            check_filter(entity_types, "entity_types"),
            check_filter(event_types, "event_types"),
            check_filter(tags, "tags"),
        )
        start = bisect_right(self._log, after_position, key=_position)
        if filters == (None, None, None):
            return self._log[start : start + limit]
        selected: list[EventEnvelope] = []
        for envelope in self._log[start:]:
            if len(selected) >= limit:
                break
            if matches(envelope, *filters):
                selected.append(envelope)
        return selected

    async def head_position(self) -> int:
        return self._last_position

    async def wait_for_events(self, after_position: int, timeout: float) -> bool:
        return await self._signal.wait(after_position, timeout)

    async def delete_events_to(self, persistence_id: str, to_sequence: int) -> None:
        stream = self._streams.get(persistence_id)
        if not stream:
            return
        cut = bisect_right(stream, to_sequence, key=_sequence)
        doomed = {id(envelope) for envelope in stream[:cut]}
        del stream[:cut]
        if doomed:
            self._log = [envelope for envelope in self._log if id(envelope) not in doomed]

    async def persistence_ids(self) -> list[str]:
        return sorted(self._highest)

    # -- snapshots ------------------------------------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot[Any]) -> None:
        payload = encode_state(self.serializer, snapshot.state, snapshot.persistence_id)
        by_sequence = self._snapshots.setdefault(snapshot.persistence_id, {})
        by_sequence[snapshot.sequence_number] = (snapshot.state_type, payload, snapshot.timestamp)

    async def load_snapshot(
        self, persistence_id: str, max_sequence: int | None = None
    ) -> Snapshot[Any] | None:
        by_sequence = self._snapshots.get(persistence_id, {})
        eligible = [s for s in by_sequence if max_sequence is None or s <= max_sequence]
        if not eligible:
            return None
        sequence = max(eligible)
        state_type, payload, timestamp = by_sequence[sequence]
        where = f"snapshot of stream {persistence_id!r} at sequence {sequence}"
        state = decode_state(self.serializer, state_type, payload, where)
        return Snapshot(persistence_id, sequence, state_type, state, timestamp)

    async def delete_snapshots_to(self, persistence_id: str, to_sequence: int) -> None:
        by_sequence = self._snapshots.get(persistence_id, {})
        for sequence in [s for s in by_sequence if s <= to_sequence]:
            del by_sequence[sequence]

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
        stored = self._states.get(persistence_id, (0,))[0]
        check_state_revision(persistence_id, stored, revision, deleting=False)
        self._check_claim(claim)
        payload = encode_state(self.serializer, state_record.state, persistence_id)
        self._write_extras(command, claim)
        self._states[persistence_id] = (
            revision,
            state_record.state_type,
            payload,
            state_record.timestamp,
        )

    async def get_state(self, persistence_id: str) -> StateRecord[Any] | None:
        stored = self._states.get(persistence_id)
        if stored is None:
            return None
        revision, state_type, payload, timestamp = stored
        where = f"state of stream {persistence_id!r} at revision {revision}"
        state = decode_state(self.serializer, state_type, payload, where)
        return StateRecord(persistence_id, revision, state_type, state, timestamp)

    async def delete_state(self, persistence_id: str, revision: int) -> None:
        stored = self._states.get(persistence_id, (0,))[0]
        check_state_revision(persistence_id, stored, revision, deleting=True)
        self._states.pop(persistence_id, None)

    # -- natural identifiers and the command log -----------------------------------------

    def _check_claim(self, claim: IdentifierClaim | None) -> None:
        if claim is None or not claim.identifiers:
            return
        owner = self._owners.get((claim.entity_type, claim.identifiers))
        if owner is not None and owner != claim.entity_id:
            raise identifier_taken(claim, owner)

    def _write_extras(self, command: CommandRecord | None, claim: IdentifierClaim | None) -> None:
        if command is not None:
            self._commands.setdefault(command.persistence_id, []).append(command)
        if claim is not None:
            entity = (claim.entity_type, claim.entity_id)
            previous = self._identifiers.get(entity)
            if previous is not None:
                del self._owners[(claim.entity_type, previous)]
                del self._identifiers[entity]
            if claim.identifiers:
                self._owners[(claim.entity_type, claim.identifiers)] = claim.entity_id
                self._identifiers[entity] = claim.identifiers

    async def find_entity(self, entity_type: str, identifiers: str) -> str | None:
        return self._owners.get((entity_type, identifiers))

    async def identifiers_of(self, entity_type: str, entity_id: str) -> str | None:
        return self._identifiers.get((entity_type, entity_id))

    async def record_command(self, command: CommandRecord) -> None:
        check_command_record(command)
        self._write_extras(command, None)

    async def read_commands(
        self, persistence_id: str, *, limit: int | None = None
    ) -> list[CommandRecord]:
        check_range(0, None, limit)
        entries = self._commands.get(persistence_id, [])
        return list(entries if limit is None else entries[:limit])

    # -- offsets --------------------------------------------------------------------------

    async def get_offset(self, projection: str) -> int | None:
        return self._offsets.get(projection)

    async def list_offsets(self) -> dict[str, int]:
        return dict(sorted(self._offsets.items()))

    async def save_offset(self, projection: str, position: int) -> None:
        self._offsets[projection] = check_position(position)

    async def reset_offset(self, projection: str, position: int = 0) -> None:
        self._offsets[projection] = check_position(position)

    async def close(self) -> None:
        """Nothing to release; the data stays for the next engine on this object."""


def _sequence(envelope: EventEnvelope) -> int:
    return envelope.sequence_number


def _position(envelope: EventEnvelope) -> int:
    return envelope.global_position
