"""What an entity's mailbox holds: a command and where its answer goes."""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import EngineNotStarted, EventActorsError

#: The command of a state query: `(state, revision)` is its answer.
GET_STATE = object()


class Message:
    """A command (or a state query, when `command` is `GET_STATE`) and where its answer goes.

    `expected_revision` guards a command from a caller who decided on a state read earlier;
    `creates_with` is set by `send_by` for a new entity: the identifiers it must end up with
    (`must_create`: with `create=True`, where losing them to another entity is the answer,
    not a reason to re-route); `addressed_by`, for an existing one: the identifiers it must
    still hold when the command's turn comes (else `KeysMoved`, and `send_by` looks the keys
    up again). `trace` is the caller's tracing context, captured only while telemetry is
    instrumented, and the command's span once its turn comes.

    Each command is counted once, by outcome: `started` is set when its turn comes (the
    entity counts it when it ends), `timed_out` when its caller's timeout passed before that
    (counted then; the entity drops it without counting it again).
    """

    __slots__ = (
        "addressed_by",
        "command",
        "command_id",
        "correlation_id",
        "creates_with",
        "expected_revision",
        "future",
        "metadata",
        "must_create",
        "started",
        "timed_out",
        "trace",
    )

    def __init__(
        self,
        command: Any,
        future: asyncio.Future[Any],
        command_id: str = "",
        correlation_id: str = "",
        metadata: dict[str, str] | None = None,
        expected_revision: int | None = None,
        creates_with: str | None = None,
        addressed_by: str | None = None,
        must_create: bool = False,
    ) -> None:
        self.command = command
        self.future = future
        self.command_id = command_id
        self.correlation_id = correlation_id
        self.metadata = metadata
        self.expected_revision = expected_revision
        self.creates_with = creates_with
        self.addressed_by = addressed_by
        self.must_create = must_create
        self.started = False
        self.timed_out = False
        self.trace: Any = None


class KeysMoved(EventActorsError):
    """The entity `send_by` found by its keys gave them up before the command's turn came;
    `send_by` resolves the keys again. Never reaches a caller."""


def abandoned(persistence_id: str, *, started: bool) -> EngineNotStarted:
    """The error for a command the engine gave up on while stopping."""
    if started:
        return EngineNotStarted(
            f"the engine stopped while a command to {persistence_id!r} was running; it was "
            "abandoned, and whether its events were written is unknown until the entity recovers"
        )
    return EngineNotStarted(
        f"the engine stopped before a command to {persistence_id!r} ran; nothing was persisted"
    )
