"""What the NATS publisher reports: its errors and its statistics. No nats-py needed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..errors import EventActorsError, StoreUnavailable

log = logging.getLogger("eventactors.publishers.nats")


class PublisherUnavailable(StoreUnavailable):
    """NATS or its JetStream cannot take messages now; the projection waits it out and
    resumes from its offset once they are back."""


class PublishRejected(EventActorsError):
    """JetStream refused an event and would refuse it again (too large, a stream limit); the
    publisher's `on_rejected` decides what happens next."""


class StreamMismatch(EventActorsError, ValueError):
    """The stream is missing (with `create_stream=False`), cannot be created, does not
    capture the publisher's subjects, or never acknowledges (`no_ack`)."""


@dataclass(frozen=True, slots=True)
class PublisherStatistics:
    """Counts since the publisher was made; `duplicates` are re-publications (after a crash
    or a retry) that JetStream recognised by their message id and did not store again;
    `skipped` are events JetStream refused, dead-lettered under `on_rejected="skip"`.
    `connected`: every partition that has connected is connected now."""

    published: int
    duplicates: int
    skipped: int
    pages: int
    connections: int
    connected: bool
    last_error: str | None


@dataclass(slots=True)
class Counters:
    """The counts behind `PublisherStatistics`, shared by the publisher's partitions."""

    published: int = 0
    duplicates: int = 0
    skipped: int = 0
    pages: int = 0
    connections: int = 0
    last_error: str | None = None
    outage: bool = False
    concerns: set[str] = field(default_factory=set)  # about the stream, logged once each

    def failed(self, failure: Exception) -> None:
        self.last_error = f"{type(failure).__name__}: {failure}"
        if isinstance(failure, PublisherUnavailable) and not self.outage:
            self.outage = True
            log.warning("NATS publisher: %s", failure)

    def page_done(self) -> None:
        self.pages += 1
        if self.outage:
            self.outage = False
            log.info("NATS publisher: JetStream is back, publishing again")
