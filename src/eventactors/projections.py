"""Projections: read models built by following the global event log from a stored offset.

A projection is a handler plus an offset. The runner reads the log after the offset in pages,
hands the events to the handler in global order, and then commits the new offset, once per
page: at-least-once delivery. With `transactional=True` the handler receives the store's own
connection and the offset is committed in the same transaction: exactly-once for a read model
kept in the same database.

Failure policies, as in eGo: `fail()` (the default) stops the projection with its error in the
status; `retry(n, backoff)` tries again first; `retry_then_skip(n, backoff, dead_letter)` gives
up on the event after that, hands it to the dead-letter callback, and carries on. Store errors
are not the handler's fault: they are retried with backoff for as long as they last.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .records import EventEnvelope

DeadLetter = Callable[[EventEnvelope, BaseException], Any]


class ProjectionState(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """A point-in-time view of one projection.

    `lag` is how far the log's head (as last seen) is ahead of the committed offset, in global
    positions: the number of events still to read, unless some positions are holes.
    """

    name: str
    state: ProjectionState
    position: int
    head: int
    lag: int
    events_handled: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """What a projection does when its handler raises."""

    retries: int = 0
    backoff: float = 0.1
    skip: bool = False
    dead_letter: DeadLetter | None = None

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0:
            raise ValueError("retries and backoff must not be negative")


def fail() -> FailurePolicy:
    """Stop at the first handler error; the status shows it (the default)."""
    return FailurePolicy()


def retry(times: int, backoff: float = 0.1) -> FailurePolicy:
    """Try the handler again `times` times, waiting `backoff` seconds, doubling; then fail."""
    return FailurePolicy(retries=times, backoff=backoff)


def retry_then_skip(
    times: int, backoff: float = 0.1, dead_letter: DeadLetter | None = None
) -> FailurePolicy:
    """Retry, then give up on the event: `dead_letter(envelope, error)` gets it, and the
    projection carries on with the next one."""
    return FailurePolicy(retries=times, backoff=backoff, skip=True, dead_letter=dead_letter)


class ProjectionFailed(Exception):
    """Raised inside the runner when the policy gives up; the status shows its message."""

    def __init__(self, envelope: EventEnvelope | None, error: BaseException) -> None:
        where = (
            f" at global position {envelope.global_position} ({envelope.persistence_id} "
            f"#{envelope.sequence_number}, {envelope.event_type})"
            if envelope is not None
            else ""
        )
        super().__init__(f"{type(error).__name__}: {error}{where}")
        self.envelope = envelope
        self.error = error
