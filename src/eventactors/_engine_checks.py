"""Argument checks and the reply wait shared by the engine's modules."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .errors import CommandTimeout, InvalidEntityId

if TYPE_CHECKING:
    from ._runtime.entity import EntityActor
    from ._runtime.message import Message

MAX_ENTITY_ID_LENGTH = 1024


async def wait_reply(
    future: asyncio.Future[Any], timeout: float | None, persistence_id: str
) -> Any:
    if timeout is None:
        return await future
    try:
        return await asyncio.wait_for(future, timeout)
    except CommandTimeout:
        raise  # the entity's own command_timeout: its message says what ran out
    except TimeoutError:
        raise caller_timeout(persistence_id, timeout) from None


async def wait_command(actor: EntityActor, message: Message, timeout: float | None) -> Any:
    """A command's reply from an entity of this engine. Past the caller's `timeout`, one
    whose turn has not come is counted as a timeout at once, not when the entity reaches it,
    which a stuck entity may never do."""
    if timeout is None:
        return await message.future
    try:
        return await asyncio.wait_for(message.future, timeout)
    except CommandTimeout:
        raise  # the entity's own command_timeout: its message says what ran out
    except TimeoutError:
        actor.gave_up(message)
        raise caller_timeout(actor.persistence_id, timeout) from None


def caller_timeout(persistence_id: str, timeout: float) -> CommandTimeout:
    return CommandTimeout(
        f"no reply from {persistence_id!r} within {timeout}s; a command that had not "
        "started was dropped, one already running may still complete"
    )


def check_entity_id(entity_id: object) -> None:
    if not isinstance(entity_id, str):
        raise InvalidEntityId(f"entity id must be a str, got {type(entity_id).__qualname__}")
    if not entity_id.strip():
        raise InvalidEntityId(f"entity id must not be empty or blank, got {entity_id!r}")
    if len(entity_id) > MAX_ENTITY_ID_LENGTH:
        raise InvalidEntityId(
            f"entity id is {len(entity_id)} characters; the limit is {MAX_ENTITY_ID_LENGTH}"
        )
    if "\x00" in entity_id:
        raise InvalidEntityId(f"entity id must not contain NUL characters: {entity_id!r}")


def check_send_options(timeout: object, expected_revision: object) -> None:
    """Checked before an actor is made for the command, so a refused call leaves nothing."""
    check_timeout(timeout)
    if expected_revision is not None:
        check_revision(expected_revision, "expected_revision")


def check_revision(value: object, name: str) -> int:
    """A revision argument: an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def check_timeout(timeout: object) -> None:
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
    ):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")


def check_positive(name: str, value: object, kinds: type | tuple[type, ...]) -> None:
    if value is None:
        return
    # `not value > 0` also refuses NaN, which every comparison calls false
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be a positive number, got {value!r}")
