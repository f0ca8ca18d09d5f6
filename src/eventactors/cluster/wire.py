"""The forms in which commands, replies and errors cross between processes.

Replies carry their events as plain fields and payload bytes, never the decoder of the store
that wrote them: the receiving engine rebinds them to its own store's decoder.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from ..errors import EventActorsError, SerializationError, ShardUnavailable
from ..records import _UNSET, EventEnvelope, Reply

#: Options of a send, in `Engine._post` order: metadata, command_id, correlation_id,
#: expected_revision.
SendOptions = tuple[Mapping[str, str] | None, str | None, str | None, int | None]


class SendMessage(NamedTuple):
    entity_type: str
    entity_id: str
    command: Any
    timeout: float | None
    options: SendOptions
    creates_with: str | None = None
    addressed_by: str | None = None
    must_create: bool = False  # send_by(create=True): IdentifierTaken is the answer


class StateMessage(NamedTuple):
    entity_type: str
    entity_id: str
    timeout: float | None
    at_revision: int | None = None
    at_time: datetime | None = None


Message = SendMessage | StateMessage
#: (True, result in wire form) or (False, the exception)
Outcome = tuple[bool, Any]

_NOT_DECODED = "not-decoded"


def pack(message: Message) -> bytes:
    """A message pickled on its own (cloudpickle, as Ray does), so that a command that cannot
    travel, or cannot be unpickled in the shard, fails alone rather than its whole batch."""
    from ray import cloudpickle

    packed: bytes = cloudpickle.dumps(message)  # type: ignore[no-untyped-call]
    return packed


def unpack(packed: bytes, shard: int | None) -> Message:
    from ray import cloudpickle

    try:
        message: Message = cloudpickle.loads(packed)
    except Exception as error:
        raise SerializationError(
            f"a command could not be unpickled in shard {shard}: {type(error).__name__}: "
            f"{error}. Its type must be importable in every process of the cluster."
        ) from None
    return message


def cannot_travel(message: Message, error: BaseException) -> SerializationError:
    what = type(getattr(message, "command", message)).__qualname__
    return SerializationError(
        f"{what} for {message.entity_type!r}/{message.entity_id!r} cannot be sent to its "
        f"shard: pickling failed with {type(error).__name__}: {error}"
    )


def envelope_to_wire(envelope: EventEnvelope) -> tuple[Any, ...]:
    decoded = _is_decoded(envelope)
    return (
        envelope.event_id, envelope.persistence_id, envelope.entity_type, envelope.entity_id,
        envelope.sequence_number, envelope.global_position, envelope.event_type,
        envelope.timestamp, envelope.tags, dict(envelope.metadata), envelope.command_id,
        envelope.correlation_id, envelope.payload,
        envelope.event if decoded else _NOT_DECODED, decoded, envelope.event_version,
    )  # fmt: skip


def _is_decoded(envelope: EventEnvelope) -> bool:
    return envelope._event is not _UNSET


def envelope_from_wire(
    wire: tuple[Any, ...], decode: Callable[[EventEnvelope], Any]
) -> EventEnvelope:
    (event_id, persistence_id, entity_type, entity_id, sequence_number, global_position,
     event_type, timestamp, tags, metadata, command_id, correlation_id, payload,
     event, decoded, event_version) = wire  # fmt: skip
    envelope = EventEnvelope(
        event_id, persistence_id, entity_type, entity_id, sequence_number, global_position,
        event_type, timestamp, tags, metadata, command_id, correlation_id, payload, decode,
        event_version=event_version,
    )  # fmt: skip
    if decoded:
        object.__setattr__(envelope, "_event", event)
    return envelope


def reply_to_wire(reply: Reply[Any]) -> tuple[Any, ...]:
    return (
        reply.state,
        reply.revision,
        tuple(envelope_to_wire(envelope) for envelope in reply.events),
        reply.entity_id,
    )


def reply_from_wire(wire: tuple[Any, ...], decode: Callable[[EventEnvelope], Any]) -> Reply[Any]:
    state, revision, events, entity_id = wire
    return Reply(
        state, revision, tuple(envelope_from_wire(event, decode) for event in events), entity_id
    )


def outcome_of(task: asyncio.Future[Any]) -> Outcome:
    """A finished command's outcome, ready to travel."""
    if task.cancelled():
        return (False, ShardUnavailable("the command was cancelled in its shard"))
    error = task.exception()
    if error is not None:
        return (False, portable(error))
    result = task.result()
    return (True, reply_to_wire(result) if isinstance(result, Reply) else result)


def portable(error: BaseException) -> BaseException:
    """The error itself if it survives pickling, else an `EventActorsError` that names it: an
    exception with unusual constructor arguments must still reach the caller as an error."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return EventActorsError(f"{type(error).__qualname__}: {error} (raised in a shard process)")
    return error
