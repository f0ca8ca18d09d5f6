"""What the NATS publisher reports: its errors and its statistics. No nats-py needed, so
callers can catch these without it."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import EventActorsError, StoreUnavailable


class PublisherUnavailable(StoreUnavailable):
    """NATS or its JetStream cannot take messages now; the projection waits it out and
    resumes from its offset once they are back."""


class PublishRejected(EventActorsError):
    """JetStream refused an event and would refuse it again (too large, a stream limit); the
    projection's failure policy decides what happens next."""


class StreamMismatch(EventActorsError, ValueError):
    """The stream is missing (with `create_stream=False`) or does not capture the
    publisher's subjects."""


@dataclass(frozen=True, slots=True)
class PublisherStatistics:
    """Counts since the publisher was made; `duplicates` are re-publications (after a crash
    or a retry) that JetStream recognised by their message id and did not store again."""

    published: int
    duplicates: int
    pages: int
    connections: int
    connected: bool
    last_error: str | None
