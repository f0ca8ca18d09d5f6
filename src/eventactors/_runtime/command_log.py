"""Building command-log entries: what a command asked for and what came of it.

An accepted command that wrote something has its entry written with that write, in the same
transaction; every other outcome is written on its own before the caller hears of it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import CommandTimeout, Rejected, SerializationError
from ..records import ACCEPTED, FAILED, REJECTED, TIMED_OUT, CommandRecord

if TYPE_CHECKING:
    from .entity import EntityActor, Message

log = logging.getLogger("eventactors.command_log")


def command_entry(
    actor: EntityActor,
    message: Message,
    outcome: str,
    *,
    revision: int,
    event_ids: Sequence[str] = (),
    reason: str = "",
) -> CommandRecord:
    serializer = actor.kind.serializer
    command = message.command
    command_type = type(command)
    try:
        payload = serializer.encode(command)
    except SerializationError as exc:  # the log keeps what it can: the type and the reason
        payload = b""
        reason = reason or f"command not serializable: {exc}"
    type_name = (
        serializer.type_name(command_type)
        if serializer.is_registered(command_type)
        else command_type.__qualname__
    )
    return CommandRecord(
        command_id=message.command_id,
        persistence_id=actor.persistence_id,
        entity_type=actor.kind.name,
        entity_id=actor.entity_id,
        command_type=type_name,
        payload=payload,
        timestamp=datetime.now(UTC),
        outcome=outcome,
        reason=reason,
        event_ids=tuple(event_ids),
        revision=revision,
        correlation_id=message.correlation_id,
        metadata=dict(message.metadata or {}),
    )


def outcome_of(error: BaseException) -> tuple[str, str]:
    """(outcome, reason) for a command that failed with `error`."""
    if isinstance(error, Rejected):
        return REJECTED, error.reason
    if isinstance(error, CommandTimeout):
        return TIMED_OUT, error.reason
    return FAILED, f"{type(error).__qualname__}: {error}"


async def record_unwritten(
    actor: EntityActor, message: Message, outcome: str, reason: str = ""
) -> None:
    """Writes the entry of a command that wrote nothing. A log the store cannot take is
    reported, never raised: the command's own outcome stands."""
    try:
        entry = command_entry(actor, message, outcome, revision=actor.revision, reason=reason)
        await actor.kind.store.record_command(entry)
    except Exception:
        log.warning(
            "command log entry for %s (command %s, %s) could not be written",
            actor.persistence_id,
            message.command_id,
            outcome,
            exc_info=True,
        )


def decode_command(serializer: Any, entry: CommandRecord) -> Any:
    """The command object of an entry, or None when its type is not registered here."""
    if not entry.payload:
        return None
    try:
        return serializer.decode(entry.command_type, entry.payload)
    except SerializationError:
        return None


__all__ = ["ACCEPTED", "command_entry", "decode_command", "outcome_of", "record_unwritten"]
