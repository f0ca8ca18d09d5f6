"""Time travel: an event-sourced entity's state as it was at a revision or a moment.

Rebuilt beside the live entity, never through it: a fresh behavior folds the nearest
snapshot at or before the target and the events after it, up to the target. The live actor,
its mailbox and its state are not touched, and an entity that is not in memory stays out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from .._engine_checks import check_revision
from ..errors import EventActorsError, SerializationError
from ..records import EventEnvelope
from ..stores._common import check_at_time
from .kinds import EntityKind
from .snapshot_loading import usable_snapshot

PAGE = 2000


async def state_at(
    kind: EntityKind,
    persistence_id: str,
    entity_id: str,
    *,
    at_revision: int | None,
    at_time: datetime | None,
) -> tuple[Any, int]:
    """(state, revision) after event `at_revision`, or after the last event at `at_time`."""
    if kind.is_durable_state:
        raise ValueError(
            f"entity type {kind.name!r} keeps durable state, only its latest revision: "
            "at_revision and at_time need an event-sourced entity type"
        )
    if at_revision is not None and at_time is not None:
        raise ValueError("give at_revision or at_time, not both")
    store = kind.store
    if at_time is not None:
        target = await store.sequence_at(persistence_id, check_at_time(at_time))
        await _check_not_hidden_by_deletion(kind, persistence_id, target, at_time)
    else:
        target = check_revision(at_revision, "at_revision")
        highest = await store.highest_sequence_number(persistence_id)
        if target > highest:
            raise ValueError(
                f"{persistence_id!r} is at revision {highest}; at_revision={target} is beyond it"
            )
    behavior = kind.behavior_class()
    behavior.entity_id = entity_id
    state = behavior.initial_state()
    sequence = 0
    if target > 0:
        snapshot = await usable_snapshot(store, persistence_id, max_sequence=target)
        if snapshot is not None:
            state, sequence = snapshot.state, snapshot.sequence_number
    decode = kind.serializer.decode
    handle_event = behavior.handle_event  # type: ignore[union-attr]
    while sequence < target:
        page = await store.read_stream_payloads(
            persistence_id, sequence + 1, min(PAGE, target - sequence)
        )
        if not page or page[0][0] != sequence + 1:
            found = f"sequence {page[0][0]}" if page else "nothing"
            raise EventActorsError(
                f"cannot rebuild {persistence_id!r} at revision {target}: after sequence "
                f"{sequence} the stream holds {found}; events were deleted that no snapshot "
                "covers"
            )
        for number, event_type, payload, version in page:
            if number != sequence + 1:
                raise EventActorsError(
                    f"stream {persistence_id!r} jumps from sequence {sequence} to {number}"
                )
            try:
                event = decode(event_type, payload, version)
            except SerializationError as exc:
                raise SerializationError(
                    f"{exc} (stream {persistence_id!r}, sequence {number})"
                ) from exc
            state = handle_event(state, event)
            sequence = number
    return state, target


async def stream_events(
    kind: EntityKind,
    persistence_id: str,
    from_sequence: int,
    to_sequence: int | None,
    page_size: int,
) -> AsyncIterator[EventEnvelope]:
    """The stream's envelopes in order, read a page at a time."""
    store = kind.store
    next_sequence = from_sequence
    while to_sequence is None or next_sequence <= to_sequence:
        page = await store.read_stream(persistence_id, next_sequence, to_sequence, page_size)
        for envelope in page:
            yield envelope
        if len(page) < page_size:
            return
        next_sequence = page[-1].sequence_number + 1


async def _check_not_hidden_by_deletion(
    kind: EntityKind, persistence_id: str, target: int, at_time: datetime
) -> None:
    """`sequence_at` sees only the events still stored. When its answer lands just before
    the first of them and earlier events were deleted, their times are gone: the answer
    stands only if a snapshot at that point was taken by `at_time` (its events are older)."""
    if target == 0:
        return
    store = kind.store
    first = await store.read_stream_payloads(persistence_id, 1, 1)
    first_stored = first[0][0] if first else None
    if first_stored is not None and first_stored != target + 1:
        return  # the answer is the last stored event at or before `at_time`
    if first_stored is None and target != await store.highest_sequence_number(persistence_id):
        return
    snapshot = await store.load_snapshot(persistence_id, max_sequence=target)
    if snapshot is None or snapshot.sequence_number != target or snapshot.timestamp > at_time:
        raise EventActorsError(
            f"cannot tell the state of {persistence_id!r} at {at_time.isoformat()}: the events "
            f"up to sequence {target} were deleted, and no snapshot shows when they happened"
        )
