"""Event-sourced entities: recover by replay, decide, persist, then apply and reply."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

from .._ids import uuid7
from ..behavior import EventSourcedBehavior
from ..errors import EventActorsError, SerializationError
from ..records import ACCEPTED, EventEnvelope, EventRecord, PayloadRow, Reply, Snapshot
from .command_log import command_entry
from .entity import EntityActor, Message
from .payload_limit import too_large
from .snapshot_loading import usable_snapshot

log = logging.getLogger("eventactors.entity")

REPLAY_PAGE = 2000


class EventSourcedEntity(EntityActor):
    __slots__ = ("snapshot_due",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.snapshot_due = False

    behavior: EventSourcedBehavior[Any]

    async def recover(self) -> None:
        """Latest snapshot, then every event after it; refuses a stream with a gap.

        Pages are read ahead: the store fetches the next page while this one is replayed.
        """
        kind = self.kind
        store = kind.store
        state = self.behavior.initial_state()
        sequence = 0
        snapshot = await usable_snapshot(store, self.persistence_id)
        if snapshot is not None:
            state, sequence = snapshot.state, snapshot.sequence_number
        handle_event = self.behavior.handle_event
        decode = kind.serializer.decode
        read = getattr(store, "read_stream_payloads", None) or self._read_payloads
        pid = self.persistence_id
        start = sequence
        pending = asyncio.ensure_future(read(pid, sequence + 1, REPLAY_PAGE))
        try:
            while True:
                page = await pending
                if len(page) == REPLAY_PAGE:
                    pending = asyncio.ensure_future(read(pid, page[-1][0] + 1, REPLAY_PAGE))
                for number, event_type, payload, version in page:
                    if number != sequence + 1:
                        raise EventActorsError(
                            f"stream {self.persistence_id!r} jumps from sequence {sequence} to "
                            f"{number}: events were deleted that no snapshot covers"
                        )
                    try:
                        event = decode(event_type, payload, version)
                    except SerializationError:
                        await self._explain_undecodable(number)
                        raise
                    state = handle_event(state, event)
                    sequence = number
                if len(page) < REPLAY_PAGE:
                    break
        finally:
            if not pending.done():
                pending.cancel()
            elif not pending.cancelled():
                pending.exception()  # a prefetch that failed after replay did: retrieved
        replayed = sequence > start
        # Deletion only ever removes a stream's first events, so once an event after the
        # snapshot was read, the gap check above has seen any deletion; only a stream with
        # nothing to replay needs to ask how far it really goes (one query less per entity).
        highest = sequence if replayed else await store.highest_sequence_number(pid)
        if highest != sequence:
            raise EventActorsError(
                f"stream {self.persistence_id!r} is at sequence {highest} but only events up to "
                f"{sequence} can be read: events were deleted that no snapshot covers"
            )
        self.state, self.revision = state, sequence

    async def _explain_undecodable(self, sequence_number: int) -> None:
        """Raises the store's own error for an event that does not decode: it names the
        stream, the sequence and the global position."""
        store = self.kind.store
        for envelope in await store.read_stream(
            self.persistence_id, sequence_number, sequence_number
        ):
            envelope.event  # noqa: B018 - decoding is the point

    async def _read_payloads(
        self, persistence_id: str, from_sequence: int, limit: int
    ) -> list[PayloadRow]:
        """For a store without `read_stream_payloads`: the same rows, from envelopes."""
        page = await self.kind.store.read_stream(persistence_id, from_sequence, limit=limit)
        return [(e.sequence_number, e.event_type, e.payload, e.event_version) for e in page]

    async def handle(self, message: Message) -> Reply[Any]:
        events = self._as_events(await self.decide(message))
        if not events:
            return await self.accepted_without_change(message)
        # Apply to a candidate first: a failing event handler must not leave behind an event
        # that can never be replayed. The candidate becomes the state only after the write.
        state = self.state
        for event in events:
            state = self.behavior.handle_event(state, event)
        kind = self.kind
        records = self._records(events, message)
        started = perf_counter()
        try:
            if kind.identifiers is None and not kind.command_log:  # the common case
                envelopes = await kind.store.append(self.persistence_id, records, self.revision)
            else:
                envelopes = await self._append_with_extras(state, records, message)
        except BaseException:
            self.recovered = False  # the store may hold more than we know: re-read it first
            raise
        kind.recorder.appended(kind.name, len(records), perf_counter() - started)
        for envelope, event in zip(envelopes, events, strict=True):
            object.__setattr__(envelope, "_event", event)  # no decode for in-process readers
        every = self.kind.snapshot_every
        last = records[-1].sequence_number
        self.snapshot_due = every is not None and last // every > self.revision // every
        self.state = state
        self.revision = last
        self.kind.publish(envelopes)
        return Reply(state, self.revision, tuple(envelopes))

    async def _append_with_extras(
        self, state: Any, records: list[EventRecord], message: Message
    ) -> list[EventEnvelope]:
        """The append of a kind with natural keys or a command log: the claim and the log
        entry go in the transaction of the events."""
        claim = self.claim_for(state, message)
        command = None
        if self.kind.command_log:
            command = command_entry(
                self, message, ACCEPTED,
                revision=records[-1].sequence_number,
                event_ids=[record.event_id for record in records],
            )  # fmt: skip
        return await self.kind.store.append(
            self.persistence_id, records, self.revision, command=command, claim=claim
        )

    def _as_events(self, result: Any) -> list[Any]:
        if result is None:
            return []
        events = list(result) if isinstance(result, list | tuple) else [result]
        declared = self.kind.event_types
        for event in events:
            if type(event) in declared:
                continue
            if self.kind.serializer.supports(type(event)):
                raise SerializationError(
                    f"event type {type(event).__qualname__} is not declared in "
                    f"{self.kind.behavior_class.__qualname__}.events "
                    f"(stream {self.persistence_id!r}); nothing was persisted"
                )
            raise self.invalid_result(
                event, "return an event, a list of events, or None; nothing was persisted"
            )
        return events

    def _records(self, events: Sequence[Any], message: Message) -> list[EventRecord]:
        kind = self.kind
        serializer = kind.serializer
        now = datetime.now(UTC)
        metadata = message.metadata or {}
        limit = kind.max_event_bytes
        records = []
        for offset, event in enumerate(events, start=1):
            event_type = serializer.type_name(type(event))
            try:
                payload = serializer.encode(event)
            except SerializationError as exc:
                raise SerializationError(
                    f"{exc} (stream {self.persistence_id!r}); nothing was persisted"
                ) from exc
            if limit is not None and len(payload) > limit:
                too_large("event", event_type, self.persistence_id, len(payload), limit)
            records.append(
                EventRecord(
                    event_id=uuid7(),
                    persistence_id=self.persistence_id,
                    entity_type=kind.name,
                    entity_id=self.entity_id,
                    sequence_number=self.revision + offset,
                    event_type=event_type,
                    payload=payload,
                    timestamp=now,
                    tags=tuple(self.behavior.tags_for(event)),
                    metadata=metadata,
                    command_id=message.command_id,
                    correlation_id=message.correlation_id,
                    event_version=kind.event_versions[type(event)],
                )
            )
        return records

    async def after_reply(self) -> None:
        if not self.snapshot_due:
            return
        self.snapshot_due = False
        snapshot = Snapshot(
            self.persistence_id,
            self.revision,
            self.kind.state_type_name,
            self.state,
            datetime.now(UTC),
        )
        try:
            await self.kind.store.save_snapshot(snapshot)
        except Exception:  # a snapshot only shortens recovery; losing one is not an error
            log.warning(
                "snapshot of %s at %d failed", self.persistence_id, self.revision, exc_info=True
            )
